"""Faults over real JACK: unplugged output, vanished clients and ports, a killed server, signals
mid-answer, a model emitting NaN logits.

``liveduet run --api jack`` runs as a subprocess on the internal clock (240 bpm, one-bar answers,
listen gap 2 steps) with a scripted model that answers C5 (72) eighth notes. The test plays the
keyboard (``keys:out``) and the DAW (``daw:in``) with python-rtmidi; a ``spy:in`` receiver may
stay connected to see everything liveduet sends. Waits are on conditions: what a port received or
a line liveduet printed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rtmidi

from liveduet.codec import REST, melody_codec
from tests.factory import scripted_model
from tests.jack import JackServer, jack_server, release, stop_process, wait_for
from tests.midicheck import Sounding

__all__ = ["jack_server"]
ANSWER = 72
ROOT = Path(__file__).resolve().parents[1]
RUN = ["--no-osc", "--quiet", "--no-thru", "--bpm", "240", "--listen-gap", "2",
       "--answer-at", "gap", "--response-bars", "1", "--seed", "1"]


def _table(nan_after_answer: bool = False) -> np.ndarray:
    codec = melody_codec()
    table = np.full((codec.vocab_size, codec.vocab_size), -50.0, np.float32)
    on = codec.note_on(ANSWER)
    table[:, on] = 50.0
    table[on, :] = -50.0
    table[on, 1] = 50.0  # HOLD after the note-on: eighth notes
    if nan_after_answer:
        table[on, :] = np.nan  # the step after each answer note: NaN logits -> REST
        table[REST, :] = -50.0
        table[REST, on] = 50.0
    return table


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("faults")
    codec = melody_codec()
    return {"answer": scripted_model(folder / "answer.onnx", _table(), codec),
            "nan": scripted_model(folder / "nan.onnx", _table(nan_after_answer=True), codec)}


class Receiver:
    """A JACK MIDI input that stamps and keeps everything it receives."""

    def __init__(self, client: str) -> None:
        self.got: list[tuple[float, tuple[int, ...]]] = []
        self.port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=client)
        self.port.set_callback(lambda ev, _d: self.got.append((time.perf_counter(),
                                                               tuple(ev[0]))))
        self.port.open_virtual_port("in")
        self.name = f"{client}:in"

    def answers(self, since: float = 0.0) -> list[float]:
        return [t for t, m in list(self.got) if t >= since and m[0] & 0xF0 == 0x90
                and m[1] == ANSWER and m[2] > 0]

    def quiet(self, seconds: float) -> bool:
        """Nothing sounds and nothing came for ``seconds`` (a retrigger's off+on is µs apart)."""
        got = list(self.got)
        return bool(got) and not self.sounding() and time.perf_counter() - got[-1][0] > seconds

    def sounding(self) -> set[tuple[int, int]]:
        track = Sounding()
        track.take_all(m for _, m in list(self.got))
        assert track.problems == []
        return track.keys


class Live:
    """``liveduet run`` on ``jack`` with a keyboard and a DAW track wired to it."""

    def __init__(self, jack: JackServer, model: Path, *args: str, spy: bool = False,
                 inputs: tuple[str, ...] = ()) -> None:
        self.jack = jack
        cmd = [sys.executable, "-m", "liveduet", "run", "--api", "jack", "--model", str(model),
               *RUN, *args]
        for name in inputs:
            cmd += ["--in", name]
        self.proc = subprocess.Popen(cmd, env=jack.env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.keys: rtmidi.MidiOut | None = None
        if not inputs:
            self.keys = self.plug_keys()
        self.out = jack.find_port(":liveduet out", 20.0)
        self.daw = Receiver("daw")
        jack.connect(self.out, self.daw.name)
        self.spy = Receiver("spy") if spy else None
        if self.spy is not None:
            jack.connect(self.out, self.spy.name)
        self.wait_line("Ctrl-C to stop", 30.0)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def plug_keys(self, client: str = "keys") -> rtmidi.MidiOut:
        keys = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=client)
        keys.open_virtual_port("out")
        self.jack.connect(f"{client}:out", self.jack.find_port(":liveduet in", 20.0))
        return keys

    def wait_line(self, text: str, timeout: float = 10.0) -> str:
        def hit() -> str | None:
            if self.proc.poll() is not None and not self.reader.is_alive():
                raise AssertionError(f"liveduet exited {self.proc.returncode}: {self.lines}")
            return next((ln for ln in list(self.lines) if text in ln), None)
        try:
            return str(wait_for(hit, timeout, 0.02, f"liveduet to print {text!r}"))
        except TimeoutError as err:
            raise AssertionError(f"{err}; liveduet printed: {self.lines}") from None

    def call(self, pitch: int = 60, keys: rtmidi.MidiOut | None = None) -> float:
        """Play one short note; return when it started."""
        keys = keys or self.keys
        assert keys is not None
        t = time.perf_counter()
        keys.send_message([0x90, pitch, 100])
        time.sleep(0.05)
        keys.send_message([0x80, pitch, 0])
        return t

    def finish(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        try:
            if not stop_process(self.proc, sig):
                raise TimeoutError(f"liveduet did not exit within 15 s of signal {sig}")
        finally:
            self.reader.join(5)
        return self.proc.returncode, "\n".join(self.lines)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        release(self.keys, self.daw.port, self.spy.port if self.spy else None)


@pytest.fixture
def live_factory(jack_server: JackServer) -> Iterator[list[Live]]:
    made: list[Live] = []
    yield made
    for live in made:
        live.close()


def test_output_unplugged_mid_answer_closes_missed_notes_on_reconnect(
        jack_server: JackServer, models: dict[str, Path], live_factory: list[Live]) -> None:
    live = Live(jack_server, models["answer"], spy=True)
    live_factory.append(live)
    assert live.spy is not None
    live.call()
    wait_for(lambda: live.daw.sounding(), 10.0, what="an answer note sounding at the DAW")
    jack_server.disconnect(live.out, live.daw.name)
    live.wait_line("disconnected from 'daw:in'")
    held = live.daw.sounding()
    assert held, "the DAW should hold the note whose note-off it will miss"
    wait_for(lambda: live.spy.quiet(0.3), 10.0, what="the answer to end (seen by the spy)")
    assert live.daw.sounding() == held, "the unplugged DAW cannot have heard the note-offs"
    plugged = time.perf_counter()
    jack_server.connect(live.out, live.daw.name)
    live.wait_line("note-off(s) for notes a receiver missed")
    wait_for(lambda: not live.daw.sounding(), 5.0, what="the missed note-offs at the DAW")
    assert any(t >= plugged and m[0] & 0xF0 == 0x80 and (m[0] & 0x0F, m[1]) in held
               for t, m in live.daw.got)
    again = live.call(64)
    wait_for(lambda: live.daw.answers(again), 10.0, what="an answer after reconnecting")
    code, err = live.finish()
    assert code == 0, err
    wait_for(lambda: not live.daw.sounding(), 2.0, what="every note off at exit")


def test_keyboard_client_vanishing_mid_answer_plays_on(
        jack_server: JackServer, models: dict[str, Path], live_factory: list[Live]) -> None:
    live = Live(jack_server, models["answer"])
    live_factory.append(live)
    assert live.keys is not None
    live.call()
    wait_for(lambda: live.daw.answers(), 10.0, what="the first answer note")
    live.keys.delete()
    live.keys = None
    gone = time.perf_counter()
    live.wait_line("disconnected from 'keys:out'")
    wait_for(lambda: live.daw.answers(gone), 5.0, what="the answer to go on without the keys")
    keys = live.keys = live.plug_keys("keys2")
    again = live.call(64, keys)
    wait_for(lambda: live.daw.answers(again), 10.0, what="an answer to the new keyboard")
    code, err = live.finish()
    assert code == 0, err
    wait_for(lambda: not live.daw.sounding(), 2.0, what="every note off at exit")


def test_named_input_that_vanishes_is_reported_and_reopened(
        jack_server: JackServer, models: dict[str, Path], live_factory: list[Live]) -> None:
    kbd = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="kbd")
    kbd.open_virtual_port("out")
    live = Live(jack_server, models["answer"], inputs=("kbd:out",))
    live_factory.append(live)
    kbd.delete()
    live.wait_line("input port 'kbd:out' vanished")
    live.keys = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="kbd")
    live.keys.open_virtual_port("out")
    live.wait_line("input port 'kbd:out' is back; reopened")
    wait_for(lambda: jack_server.connections().get("kbd:out"), 5.0,
             what="liveduet to wire the returned port")
    start = live.call()
    wait_for(lambda: live.daw.answers(start), 10.0, what="an answer through the reopened port")
    code, err = live.finish()
    assert code == 0, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_answer_exits_0_with_every_note_closed(
        jack_server: JackServer, models: dict[str, Path], live_factory: list[Live],
        sig: int) -> None:
    live = Live(jack_server, models["answer"])
    live_factory.append(live)
    live.call()
    wait_for(lambda: live.daw.sounding(), 10.0, what="an answer note sounding")
    code, err = live.finish(sig)
    assert code == 0, err
    wait_for(lambda: not live.daw.sounding(), 2.0, what="the note-offs sent at exit")
    assert not any(ln.startswith("liveduet: error") for ln in err.splitlines()), err


def test_nan_logits_fall_back_to_silence_logged_once(
        jack_server: JackServer, models: dict[str, Path], live_factory: list[Live]) -> None:
    live = Live(jack_server, models["nan"])
    live_factory.append(live)
    live.call()
    wait_for(lambda: len(live.daw.answers()) >= 2, 10.0, what="answers around the NaN steps")
    live.wait_line("NaN")
    wait_for(lambda: not live.daw.sounding(), 10.0, what="the first answer to end")
    again = live.call(64)
    wait_for(lambda: len(live.daw.answers(again)) >= 2, 10.0, what="a second answer")
    code, err = live.finish()
    assert code == 0, err
    nan_lines = [ln for ln in err.splitlines() if "NaN" in ln]
    assert len(nan_lines) == 1, err
    assert "playing on" in nan_lines[0]


def test_killed_jack_server_exits_3_with_one_clear_line(models: dict[str, Path]) -> None:
    if not JackServer.available():
        pytest.skip("jackd2 is not installed: run 'bash scripts/test.sh' (it installs jackd2)")
    with JackServer() as server:
        live = Live(server, models["answer"])
        try:
            live.call()
            wait_for(lambda: live.daw.sounding(), 10.0, what="an answer note sounding")
            assert server.proc is not None
            server.proc.kill()  # SIGKILL: no goodbye from the server
            server.proc.wait(5)
            live.proc.wait(timeout=10)
            live.reader.join(5)
        finally:
            if live.proc.poll() is None:
                live.proc.kill()
                live.proc.wait()
    assert live.proc.returncode == 3, live.lines
    errors = [ln for ln in live.lines if ln.startswith("liveduet: error")]
    assert len(errors) == 1, live.lines
    # libjack's own complaints about the lost server stay off the terminal (--debug shows them)
    assert all(ln.startswith("liveduet") for ln in live.lines if ln.strip()), live.lines
    assert "JACK server stopped" in errors[0] and "restart JACK" in errors[0]
