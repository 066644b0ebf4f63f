"""``liveduet run --clock-out`` over a private JACK server: what a receiver and a follower see.

``jack_midi_dump`` (JACK's own monitor) checks the bytes and their order in JACK frame time; a
python-rtmidi port stamps arrivals with ``time.perf_counter`` to measure the tempo (the dummy
driver's frame clock runs slow when a loaded machine makes it miss cycles, wall time does not).
A second ``liveduet run --clock midi`` fed by the first plays on the first one's grid.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import rtmidi

from liveduet.testkit.jack import JackServer, release, stop_process, wait_for
from liveduet.testkit.midicheck import sounding_keys
from tests.live.test_run import answer_model

__all__ = ["answer_model"]
ROOT = Path(__file__).resolve().parents[2]
BANNER = re.compile(r"in (\[.*?\]) -> out '(.+?)'")


class Live:
    """One ``liveduet run --api jack`` process; its port names come from its banner line."""

    def __init__(self, jack: JackServer, model: Path, *args: str, osc: bool = False) -> None:
        cmd = [sys.executable, "-m", "liveduet", "run", "--api", "jack", "--model", str(model),
               "--quiet", "--seed", "1", *([] if osc else ["--no-osc"]), *args]
        self.proc = subprocess.Popen(cmd, env=jack.env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        wait_for(lambda: any("Ctrl-C" in ln for ln in self.lines) or self.proc.poll() is not None,
                 30.0, what="liveduet run to start")
        assert self.proc.poll() is None, "".join(self.lines)
        found = BANNER.search("".join(self.lines))
        assert found, self.lines
        self.input = ast.literal_eval(found.group(1))[0]
        self.output = found.group(2)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def finish(self) -> str:
        code = stop_process(self.proc) and self.proc.returncode
        self.reader.join(5)
        assert code == 0, "".join(self.lines)
        return "".join(self.lines)


class Recorder:
    """A JACK MIDI input that stamps what arrives with ``time.perf_counter``."""

    def __init__(self, name: str) -> None:
        self.got: list[tuple[float, tuple[int, ...]]] = []
        self.port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=name)
        self.port.ignore_types(timing=False)
        self.port.open_virtual_port("in")
        self.port.set_callback(lambda ev, _d: self.got.append((time.perf_counter(),
                                                               tuple(ev[0]))))

    def times(self, msg: tuple[int, ...]) -> np.ndarray:
        return np.array([t for t, m in list(self.got) if m == msg])

    def note_ons(self) -> np.ndarray:
        return np.array([t for t, m in list(self.got) if m[0] & 0xF0 == 0x90 and m[2] > 0])


class Probe(threading.Thread):
    """Sends a message through one JACK hop every 10 ms and keeps how long each took."""

    def __init__(self, jack: JackServer) -> None:
        super().__init__(daemon=True)
        self.rec = Recorder("probein")
        self.out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="probe")
        self.out.open_virtual_port("out")
        jack.connect("probe:out", "probein:in")
        self.sent: list[float] = []
        self.halt = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.halt.wait(0.01):
            self.sent.append(time.perf_counter())
            self.out.send_message([0xB0, 0x7F, len(self.sent) % 128])

    def delays(self) -> Callable[[float], float]:
        """Time -> the delay of the hop probed nearest before it."""
        got = {m[2]: t for t, m in list(self.rec.got)}
        pairs = [(s, got[(i + 1) % 128] - s) for i, s in enumerate(self.sent)
                 if (i + 1) % 128 in got and 0 <= got[(i + 1) % 128] - s < 0.5]
        times = np.array([p[0] for p in pairs])
        lags = np.array([p[1] for p in pairs])
        return lambda t: float(lags[max(np.searchsorted(times, t) - 1, 0)])


@pytest.fixture
def jack() -> Iterator[JackServer]:
    if not JackServer.available():
        pytest.skip("jackd2 is not installed: run 'bash scripts/test.sh' (it installs jackd2)")
    with JackServer() as server:
        yield server


@pytest.mark.wallclock
def test_clock_out_is_24_ppqn_at_the_set_tempo(jack: JackServer, answer_model: Path,
                                               tmp_path: Path) -> None:
    dump = subprocess.Popen(["jack_midi_dump", "-a", "dump"], env=jack.env(),
                            stdout=subprocess.PIPE, text=True)
    rec = Recorder("rec")
    try:
        # wired at start (--out): the monitor must get the Start message
        stats = tmp_path / "stats.json"
        live = Live(jack, answer_model, "--mode", "continue", "--bpm", "100", "--clock-out",
                    "--out", jack.find_port("dump:"), "--stats", str(stats))
        jack.connect(jack.find_port(":liveduet out"), "rec:in")
        wait_for(lambda: len(rec.times((0xF8,))) >= 24 * 6, 20.0, what="six beats of clock")
        live.finish()
    finally:
        stop_process(dump, timeout=5)
        time.sleep(0.02)
        release(rec.port)
    frames = [line.split(":", 1) for line in dump.stdout.read().splitlines()  # type: ignore[union-attr]
              if ":" in line]
    kinds = [text.split()[0] for _, text in frames]
    assert "fa" not in kinds[1:] and "fc" in kinds, kinds[:10]   # one Start, a Stop at exit
    ons = [i for i, k in enumerate(kinds) if len(k) == 2 and k[0] == "9"]  # on any channel
    between = [kinds[a:b].count("f8") for a, b in itertools.pairwise(ons)]
    # 12 per eighth note: 24 per quarter (a tick and a note at one position may leave in
    # either order, and a stalled process sends both late in a burst)
    assert len(between) >= 6 and np.median(between) == 12, between
    assert np.mean(between) == pytest.approx(12, abs=0.5), between
    assert kinds[0] == "fa", kinds[:10]
    # at the source: each tick leaves at its time on the 100 bpm grid
    errors = np.array(json.loads(stats.read_text())["clock_out_errors_s"])
    assert len(errors) >= 24 * 5 and np.median(np.abs(errors)) < 0.001, errors
    # as received: a dummy JACK server on a loaded machine runs its cycles late for a while
    # (the tempo seen through it wanders by a per cent or two; on a quiet machine 0.01%)
    ticks = rec.times((0xF8,))
    k = np.arange(len(ticks))
    slope, _ = np.polyfit(k, ticks, 1)
    assert 60.0 / (slope * 24) == pytest.approx(100.0, rel=0.03)
    assert np.median(np.diff(ticks)) == pytest.approx(60 / 100 / 24, rel=0.03)


@pytest.mark.wallclock
def test_a_follower_plays_on_the_leaders_grid(jack: JackServer, answer_model: Path) -> None:
    """``run --clock-out PORT`` leads, ``run --clock midi`` follows: the follower's eighth
    notes come on the leader's 16th steps (the leader's notes mark them) at its tempo."""
    lead_rec, follow_rec = Recorder("leadrec"), Recorder("followrec")
    probe = Probe(jack)
    # python-rtmidi with --input-poll: the follower's JACK thread never waits for its
    # conductor's GIL (with a callback, or the JACK-native backend's Python process callback,
    # a follower playing continuously made its input client miss JACK cycles and ticks)
    follower = Live(jack, answer_model, "--clock", "midi", "--mode", "continue",
                    "--midi-backend", "rtmidi", "--input-poll", "0.5", "--out", "followrec:in")
    leader = None
    try:
        leader = Live(jack, answer_model, "--mode", "continue", "--bpm", "132", "--out",
                      "leadrec:in", "--clock-out", follower.input)
        wait_for(lambda: len(follow_rec.note_ons()) >= 12, 20.0, what="the follower's notes")
        probe.halt.set()
        leader.finish()
        # the leader's Stop at exit stops the follower (on a loaded machine JACK may run the
        # leader's last cycles after its port closed: then the follower's own exit ends them)
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: not sounding_keys(m for _, m in list(follow_rec.got)), 3.0,
                     what="the follower to stop with the leader's Stop")
        follower.finish()
        time.sleep(0.05)
        assert not sounding_keys(m for _, m in list(follow_rec.got)), "a note left sounding"
    finally:
        for live in (leader, follower):
            if live is not None and live.proc.poll() is None:
                stop_process(live.proc)
        probe.halt.set()
        probe.join(2)
        time.sleep(0.02)
        release(lead_rec.port, follow_rec.port, probe.out, probe.rec.port)
    step = 60 / 132 / 4
    lead, ons = lead_rec.note_ons(), follow_rec.note_ons()
    ons = ons[(ons > lead[0]) & (ons < lead[-1])]
    # distance to the leader's 16th nearest in time, both as received. A dummy JACK server on
    # a loaded machine runs its cycles up to tens of ms behind wall time for a while, then
    # catches up: the follower hears the clock that late and its notes take one hop more
    # than the leader's, so the hop's delay (probed at that time) is taken off.
    hop = probe.delays()
    near = np.abs([(t - hop(t) - lead[np.argmin(np.abs(lead - t))] + step / 2) % step
                   - step / 2 for t in ons])
    period = jack.period_s
    assert len(near) >= 8
    # on the leader's steps: a 16th is 85 periods, so a note within 2 periods of one by chance
    # has odds of 1 in 20. On a quiet machine all are; on a loaded one a dummy server that
    # stalls for 100s of ms makes the follower re-anchor its clock fit on the late ticks, and
    # the notes after that lie off by the stall's leftover: a run of notes on the grid is
    # what the follower proves
    assert np.sum(near <= 2 * period) >= 4, near
    gaps = np.diff(ons)
    gaps = gaps[gaps > 0.01]   # notes a stalled follower sent at once are no tempo
    assert np.median(gaps) == pytest.approx(2 * step, rel=0.03), gaps
