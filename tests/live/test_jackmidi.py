"""The JACK-native MIDI backend (liveduet.live.jackmidi) over a private JACK dummy server at
256 frames.

A JACK-Client test client plays notes at known frames and records what liveduet sends in frame
time. Bounds are generous (a loaded 2-core box runs the dummy server's cycles late); the tight
figures are in benchmarks/bench_jack_grid.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from liveduet.errors import ConfigError, PortError
from liveduet.live import jackcycle, jackhost, jackmidi, jacktransport, ports
from liveduet.testkit.jack import JackServer, stop_process, wait_for
from liveduet.testkit.jackrec import FrameClient, grid_offsets
from tests.live.test_run import answer_model

__all__ = ["answer_model"]
pytest.importorskip("jack")
ROOT = Path(__file__).resolve().parents[2]
RATE, PERIOD = 48000, 256


@pytest.fixture(scope="module")
def server() -> Iterator[JackServer]:
    if not JackServer.available():
        pytest.skip("jackd2 is not installed: run 'bash scripts/test.sh' (it installs jackd2)")
    with JackServer(rate=RATE, period=PERIOD) as srv:
        yield srv


@pytest.fixture(params=["c", "python"])
def callback(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The process callback a test runs on: the C one, or the Python one it falls back to
    without a compiler."""
    if request.param == "python":
        monkeypatch.setenv("CC", "/nonexistent/cc")
        monkeypatch.setattr(jackhost, "_native_lib", None)
        monkeypatch.setattr(jackhost, "_native_why", None)
    elif shutil.which(os.environ.get("CC") or "cc") is None:
        pytest.skip("no C compiler: the C process callback cannot be built")
    return str(request.param)


@pytest.fixture
def tester(server: JackServer) -> Iterator[FrameClient]:
    client = FrameClient("tester")
    yield client
    client.close()


def test_one_client_holds_every_port(server: JackServer, tester: FrameClient) -> None:
    ps = ports.open_ports(ports.APIS["jack"], clock_out="tester:in")
    try:
        assert isinstance(ps, jackmidi.JackPortSet)
        ours = sorted(p for p in server.ports() if "liveduet" in p)
        assert ours == ["liveduet:liveduet clock", "liveduet:liveduet in",
                        "liveduet:liveduet out"]
        assert ps.input_names == ["liveduet:liveduet in"]
        assert ps.output_name == "liveduet:liveduet out"
        assert server.connections()["liveduet:liveduet clock"] == ["tester:in"]
    finally:
        ps.close()
    assert not any("liveduet" in p for p in server.ports())


def test_input_is_stamped_with_its_frame(server: JackServer, tester: FrameClient,
                                          callback: str) -> None:
    got: list[tuple[float, tuple[int, ...], int]] = []
    ps = ports.open_ports(ports.APIS["jack"], sink=lambda t, m, i: got.append((t, m, i)))
    try:
        assert ps.stats()["callback"] == callback
        tester.client.connect(tester.out, ps.input_names[0])
        offsets = [3, 77, 128, 255]   # one cycle
        tester.play([(off, bytes([0x90, 60 + i, 100])) for i, off in enumerate(offsets)])
        wait_for(lambda: len(got) == len(offsets), 5.0, what="the notes to arrive")
        assert [m for _, m, _ in got] == [(0x90, 60 + i, 100) for i in range(len(offsets))]
        assert [f - tester.sent[0][0] for f, _ in tester.sent] == [o - 3 for o in offsets]
        # each stamp is the perf_counter time of the note's frame: apart by their offsets
        apart = [(t - got[0][0]) * RATE for t, _, _ in got]
        assert apart == pytest.approx([o - 3 for o in offsets], abs=0.01)
        # and near the time the tester's own reading of the clocks gives that frame (a
        # cycle the loaded dummy server ran late moves either reading by milliseconds)
        assert abs(got[0][0] - tester.sent[0][1]) < 0.010
    finally:
        ps.close()


def test_send_at_places_each_message_at_its_frame(server: JackServer, tester: FrameClient,
                                                  callback: str) -> None:
    ps = ports.open_ports(ports.APIS["jack"])
    assert isinstance(ps, jackmidi.JackPortSet) and ps.schedules
    try:
        assert ps.stats()["callback"] == callback
        tester.client.connect(ps.output_name, tester.inp)
        time.sleep(0.05)
        start = time.perf_counter() + 0.05
        step = 0.0371   # not a multiple of the period: offsets inside cycles differ
        ps.send_at([(0x90, 60 + k, 100) for k in range(10)],
                   [start + k * step for k in range(10)])
        ps.send([0x80, 59, 0])   # now: the next cycle's start
        wait_for(lambda: len(tester.note_on_frames()) == 10, 5.0, what="ten note-ons")
        frames = np.array(tester.note_on_frames())
        spacing = np.diff(frames) - step * RATE
        assert np.all(np.abs(spacing) <= 16), spacing
        assert len(tester.got) == 11 and ps.late == 0
    finally:
        ps.close()


def test_a_note_off_sent_now_follows_its_note_on_handed_over_ahead(
        server: JackServer, tester: FrameClient, callback: str) -> None:
    ps = ports.open_ports(ports.APIS["jack"])
    try:
        assert ps.stats()["callback"] == callback
        tester.client.connect(ps.output_name, tester.inp)
        time.sleep(0.05)
        ps.send_at([(0x90, 64, 100), (0x90, 65, 100)], [time.perf_counter() + 0.2] * 2)
        ps.send([0x80, 64, 0])          # a stop: it must not leave before the note-on
        ps.send([0xB0, 123, 0])         # all notes off on channel 1: after 65 too
        ps.send([0x80, 70, 0])          # nothing pending of 70: leaves at once
        wait_for(lambda: len(tester.got) == 5, 5.0, what="five messages")
        assert [d for _, d in tester.got] == [
            bytes([0x80, 70, 0]), bytes([0x90, 64, 100]), bytes([0x90, 65, 100]),
            bytes([0x80, 64, 0]), bytes([0xB0, 123, 0])]
        assert len({f for f, _ in tester.got[1:]}) == 1   # at the note-ons' frame
    finally:
        ps.close()


def test_messages_longer_than_three_bytes_are_refused_in_one_line(server: JackServer) -> None:
    ps = ports.open_ports(ports.APIS["jack"])
    try:
        with pytest.raises(ValueError, match=r"1-3 byte messages.*Fix"):
            ps.send([0xF0, 1, 2, 0xF7])
    finally:
        ps.close()


def test_named_ports_are_wired_to_our_ports(server: JackServer, tester: FrameClient) -> None:
    ps = ports.open_ports(ports.APIS["jack"], inputs=["tester:out"], output="tester:in")
    try:
        assert ps.input_names == ["tester:out"] and ps.output_name == "tester:in"
        links = server.connections()
        assert "liveduet:liveduet in" in links["tester:out"]
        assert "tester:in" in links["liveduet:liveduet out"]
        with pytest.raises(PortError, match="no input port matches --in 'nothing'"):
            ports.open_ports(ports.APIS["jack"], inputs=["nothing"])
    finally:
        ps.close()


def test_continue_mode_notes_lie_on_the_tempo_grid(server: JackServer, tester: FrameClient,
                                                   answer_model: Path) -> None:
    """``liveduet run`` on JACK: one client, and its continue-mode note-ons at the frames of
    the internal clock's 16th-note grid."""
    cmd = [sys.executable, "-m", "liveduet", "run", "--api", "jack", "--model", str(answer_model),
           "--quiet", "--no-osc", "--seed", "1", "--mode", "continue", "--bpm", "120",
           "--midi-backend", "jack", "--out", "tester:in"]
    proc = subprocess.Popen(cmd, env=server.env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(tester.note_on_frames()) >= 16 or proc.poll() is not None, 60.0,
                 what="sixteen note-ons from liveduet run")
        assert proc.poll() is None
        assert [p for p in server.ports() if "liveduet" in p] and all(
            p.startswith("liveduet:") for p in server.ports() if "liveduet" in p)
    finally:
        stop_process(proc)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    offsets = np.abs(grid_offsets(tester.note_on_times(), 60 / 120 / 4, RATE))
    # most notes: a cycle the loaded dummy server runs late throws JACK's frame clock off
    # for a few notes (both clients see the same frames, each maps them to time later)
    assert np.mean(offsets <= 16) >= 0.75, offsets


def test_without_jack_client_auto_falls_back_to_rtmidi_with_one_notice(
        server: JackServer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def missing() -> None:
        raise ConfigError("--clock jack needs JACK-Client: pip install 'liveduet[jack]'")
    monkeypatch.setattr(jacktransport, "load_jack", missing)
    ps = ports.open_ports(ports.APIS["jack"])
    try:
        assert type(ps) is ports.PortSet and not ps.schedules
        assert [r.getMessage() for r in caplog.records] == [jackmidi.MISSING]
        assert "pip install 'liveduet[jack]'" in jackmidi.MISSING
    finally:
        ps.close()
    with pytest.raises(PortError, match=r"--midi-backend jack needs JACK-Client: pip install"):
        ports.open_ports(ports.APIS["jack"], backend="jack")


def test_the_c_callback_is_in_use_when_a_compiler_exists(server: JackServer) -> None:
    if shutil.which(os.environ.get("CC") or "cc") is None:
        pytest.skip("no C compiler: the C process callback cannot be built")
    ps = ports.open_ports(ports.APIS["jack"])
    try:
        assert isinstance(ps, jackmidi.JackPortSet) and ps.host is not None
        assert ps.host.native is not None and ps.stats()["callback"] == "c"
        assert isinstance(ps._queue, jackcycle.NativeOut)
        wait_for(lambda: len(ps.host.recent_waits()) > 3, 5.0, what="the C callback's cycles")
    finally:
        ps.close()


def test_without_a_compiler_the_callback_is_python_with_one_log_line(
        server: JackServer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    monkeypatch.setattr(jackhost, "_native_lib", None)
    monkeypatch.setattr(jackhost, "_native_why", None)
    for _ in range(2):   # said once per process, not per client
        ps = ports.open_ports(ports.APIS["jack"], backend="jack")
        try:
            assert isinstance(ps, jackmidi.JackPortSet) and ps.host is not None
            assert ps.host.native is None and ps.stats()["callback"] == "python"
        finally:
            ps.close()
    said = [r.getMessage() for r in caplog.records if r.name == "liveduet.live.jackmidi"]
    assert len(said) == 1 and "not found" in said[0] and "Fix: install a C compiler" in said[0]


def test_the_c_callback_is_built_once_into_the_user_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which(os.environ.get("CC") or "cc") is None:
        pytest.skip("no C compiler: the C process callback cannot be built")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = jackcycle.build()
    assert built.parent == tmp_path / "liveduet" and built.name.startswith("jackcycle-")
    stamp = built.stat().st_mtime_ns
    assert jackcycle.build() == built and built.stat().st_mtime_ns == stamp
    assert [p.name for p in built.parent.iterdir()] == [built.name]   # no temporary left
    monkeypatch.setenv("CC", "false")   # a compiler that fails: the error says which
    monkeypatch.setattr(jackcycle, "SOURCE", tmp_path / "other.c")
    (tmp_path / "other.c").write_text("int x;\n")
    with pytest.raises(OSError, match="'false' failed"):
        jackcycle.build()
