"""``liveduet run --api jack`` as a subprocess over a private JACK server, played by the test.

The model is scripted (liveduet/testkit/factory.py): whatever it hears, it answers C5 (72)
eighth notes, so the answer is predictable. The test plays a DAW: it sends MIDI clock from a
thread, plays a call on a keyboard port, and records what liveduet
sends, all stamped with ``time.perf_counter``.
"""

from __future__ import annotations

import os
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

from liveduet.core.codec import melody_codec
from liveduet.testkit.factory import scripted_model
from liveduet.testkit.jack import JackServer, release, stop_process, wait_for
from liveduet.testkit.midicheck import sounding_keys

ANSWER = 72
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def answer_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Answers NOTE_ON(72), HOLD, NOTE_ON(72), HOLD, ... whatever it heard."""
    codec = melody_codec()
    table = np.full((codec.vocab_size, codec.vocab_size), -50.0, np.float32)
    on = codec.note_on(ANSWER)
    table[:, on] = 50.0
    table[on, :] = -50.0
    table[on, 1] = 50.0  # HOLD after the note-on
    return scripted_model(tmp_path_factory.mktemp("run") / "answer.onnx", table, codec)


class ClockSender(threading.Thread):
    """Sends Start then MIDI clock ticks at a settable tempo, recording when each left."""

    def __init__(self, out: rtmidi.MidiOut, bpm: float) -> None:
        super().__init__(daemon=True)
        self.out, self.bpm = out, bpm
        self.ticks: list[float] = []
        self.planned: list[float] = []   # the ideal tick times (a loaded test box sends late)
        self.halt = threading.Event()

    def run(self) -> None:
        self.out.send_message([0xFA])
        nxt = time.perf_counter() + 0.005
        while not self.halt.is_set():
            while (left := nxt - time.perf_counter()) > 0.001:
                time.sleep(left - 0.001)
            while time.perf_counter() < nxt:
                pass
            self.out.send_message([0xF8])
            self.ticks.append(time.perf_counter())
            self.planned.append(nxt)
            nxt += 60.0 / (self.bpm * 24)

    def step_times(self) -> list[float]:
        """Send times of the ticks that start each grid step (every 6th tick): what the DAW
        really sent, which a loaded test box may send late."""
        return self.ticks[::6]


class Duet:
    """A running ``liveduet run`` wired to a keyboard, a clock and a recording DAW port."""

    def __init__(self, jack: JackServer, model: Path, *args: str) -> None:
        self.jack = jack
        cmd = [sys.executable, "-m", "liveduet", "run", "--api", "jack", "--model", str(model),
               "--no-osc", "--quiet", "--seed", "1", *args]
        self.proc = subprocess.Popen(cmd, env=jack.env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.got: list[tuple[float, tuple[int, ...]]] = []
        self.keys = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="keys")
        self.keys.open_virtual_port("out")
        self.clock_port = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="dawclock")
        self.clock_port.open_virtual_port("out")
        self.daw = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="daw")
        self.daw.open_virtual_port("in")
        self.daw.set_callback(lambda ev, _d: self.got.append((time.perf_counter(),
                                                              tuple(ev[0]))))
        inp = jack.find_port(":liveduet in", 20.0)
        outp = jack.find_port(":liveduet out", 20.0)
        for src in ("keys:out", "dawclock:out"):
            jack.connect(src, inp)
        jack.connect(outp, "daw:in")
        wait_for(lambda: any("Ctrl-C to stop" in ln for ln in self.stderr) or
                 self.proc.poll() is not None, 30.0, what="liveduet to start playing")
        self.clock: ClockSender | None = None

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def start_clock(self, bpm: float) -> ClockSender:
        self.clock = ClockSender(self.clock_port, bpm)
        self.clock.start()
        wait_for(lambda: len(self.clock.ticks) >= 24, 5.0, what="one beat of clock")  # type: ignore[union-attr]
        return self.clock

    def play(self, pitches: list[int], step: float) -> float:
        """Play 16th notes starting on the next step tick; return the last note-on time."""
        assert self.clock is not None
        n = len(self.clock.ticks)
        wait_for(lambda: len(self.clock.ticks) > n + 6 - n % 6, 5.0, what="a step tick")  # type: ignore[union-attr]
        last = 0.0
        for p in pitches:
            last = time.perf_counter()
            self.keys.send_message([0x90, p, 100])
            time.sleep(step * 0.8)
            self.keys.send_message([0x80, p, 0])
            time.sleep(step * 0.2)
        return last

    def answers(self) -> list[tuple[float, tuple[int, ...]]]:
        return [(t, m) for t, m in list(self.got) if m[0] & 0xF0 == 0x90 and m[1] == ANSWER
                and m[2] > 0]

    def sounding(self) -> set[tuple[int, int]]:
        """Notes with a note-on and no note-off yet, from what the DAW received."""
        return sounding_keys(m for _, m in list(self.got))

    def finish(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        if self.clock is not None:
            self.clock.halt.set()
            self.clock.join(2)
        stop_process(self.proc, sig)
        self.reader.join(5)
        err = "".join(self.stderr)
        time.sleep(0.02)  # let the last JACK period reach our port
        release(self.keys, self.clock_port, self.daw)
        return self.proc.returncode, err


@pytest.fixture
def duet(answer_model: Path) -> Iterator[Duet]:
    """A duet on its own JACK server: one wedged test cannot take the next one down."""
    if not JackServer.available():
        pytest.skip("jackd2 is not installed: run 'bash scripts/test.sh' (it installs jackd2)")
    with JackServer() as server:
        d = Duet(server, answer_model, "--clock", "midi", "--listen-gap", "4", "--answer-at",
                 "gap")
        try:
            yield d
        finally:
            if d.proc.poll() is None:
                d.finish()


@pytest.mark.wallclock
def test_call_gets_an_answer_on_the_midi_clock_grid(duet: Duet) -> None:
    clock = duet.start_clock(120)
    step = 60 / 120 / 4
    last_on = duet.play([60, 62, 64], step)
    wait_for(lambda: len(duet.answers()) >= 4, 10.0, what="four answer notes")
    answers = duet.answers()
    code, err = duet.finish()
    assert code == 0, err
    first = answers[0][0]
    assert first >= last_on + 4 * step - 0.01, "answered before the listen gap"
    assert first <= last_on + 4 * step + 16 * step, "no answer within a bar after the gap"
    steps = clock.step_times()
    phase = [t - min(steps, key=lambda s: abs(s - t)) for t, _ in answers]
    period = duet.jack.period_s
    assert all(-period <= d <= 6 * period for d in phase), phase  # on the DAW's step ticks
    # together within 6 periods (8 ms), far below a clock tick (21 ms at 120 bpm): on the grid
    assert max(phase) - min(phase) <= 6 * period, phase
    assert not duet.sounding(), "a note was left sounding"


@pytest.mark.wallclock
def test_tempo_change_from_100_to_140_is_followed(duet: Duet) -> None:
    clock = duet.start_clock(100)
    wait_for(lambda: len(clock.ticks) >= 48, 5.0, what="two beats at 100 bpm")
    clock.bpm = 140
    wait_for(lambda: len(clock.ticks) >= 48 + 24, 5.0, what="a beat at 140 bpm")
    last_on = duet.play([60, 64], 60 / 140 / 4)
    wait_for(lambda: len(duet.answers()) >= 5, 10.0, what="five answer notes")
    onsets = [t for t, _ in duet.answers()]
    code, err = duet.finish()
    assert code == 0, err
    assert onsets[0] > last_on
    gaps = np.diff(onsets)
    eighth_140 = 2 * 60 / 140 / 4
    assert np.median(gaps) == pytest.approx(eighth_140, rel=0.03), gaps  # 100 bpm: 0.300 s


@pytest.mark.wallclock
def test_stop_silences_at_once(duet: Duet) -> None:
    clock = duet.start_clock(120)
    duet.play([60, 62], 60 / 120 / 4)
    wait_for(lambda: len(duet.answers()) >= 2 and duet.sounding(), 10.0,
             what="an answer note sounding")
    clock.halt.set()
    clock.join(2)
    stop_at = time.perf_counter()
    duet.clock_port.send_message([0xFC])
    wait_for(lambda: not duet.sounding(), 2.0, what="every note off after Stop")
    off_at = max(t for t, m in duet.got if m[0] & 0xF0 == 0x80)
    assert off_at - stop_at < 0.02
    n_answers = len(duet.answers())
    time.sleep(0.4)  # the answer would have gone on for a bar: nothing more may come
    assert len(duet.answers()) == n_answers
    code, err = duet.finish()
    assert code == 0, err


def test_sigterm_mid_answer_leaves_nothing_sounding_and_exits_0(duet: Duet) -> None:
    duet.start_clock(120)
    duet.play([67], 60 / 120 / 4)
    wait_for(lambda: duet.answers() and duet.sounding(), 10.0, what="an answer note sounding")
    code, err = duet.finish(signal.SIGTERM)
    assert code == 0, err
    wait_for(lambda: not duet.sounding(), 2.0, what="the note-offs sent at exit")
    assert not any("liveduet" in p for p in duet.jack.ports()), "ports were not closed"


def test_bad_input_port_name_exits_2_with_one_clear_line(jack_server: JackServer,
                                                          answer_model: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "liveduet", "run", "--api", "jack", "--model",
                          str(answer_model), "--no-osc", "--in", "no-such-keyboard"],
                         env=jack_server.env(), cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("liveduet:")]
    assert len(lines) == 1, res.stderr
    assert "no input port matches --in 'no-such-keyboard'" in lines[0]
    assert "liveduet ports" in lines[0]


def test_missing_jack_server_exits_2_naming_jackd(answer_model: Path) -> None:
    env = {**os.environ, "JACK_DEFAULT_SERVER": "liveduet_no_server", "JACK_NO_START_SERVER": "1"}
    res = subprocess.run([sys.executable, "-m", "liveduet", "run", "--api", "jack", "--model",
                          str(answer_model), "--no-osc"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "no JACK server reachable" in res.stderr and "jackd -d" in res.stderr


def first_answer(model: Path, pitches: list[int], wait: float, *args: str
                 ) -> tuple[int, str, float, float, ClockSender]:
    """Run ``liveduet run --clock midi ARGS`` on its own JACK server at 120 bpm, play
    ``pitches`` as 16ths, wait for two answer notes: (exit code, stderr, last note-on time,
    first answer time, the clock)."""
    if not JackServer.available():
        pytest.skip("jackd2 is not installed: run 'bash scripts/test.sh' (it installs jackd2)")
    with JackServer() as server:
        d = Duet(server, model, "--clock", "midi", *args)
        try:
            clock = d.start_clock(120)
            last_on = d.play(pitches, 60 / 120 / 4)
            wait_for(lambda: len(d.answers()) >= 2, wait, what="two answer notes")
            first = d.answers()[0][0]
            code, err = d.finish()
        finally:
            if d.proc.poll() is None:
                d.finish()
    return code, err, last_on, first, clock


def test_realtime_flag_and_a_listen_gap_in_beats(answer_model: Path) -> None:
    """``--realtime`` runs (or warns that it could not) and ``--listen-gap 2b`` waits 8 steps."""
    code, err, last_on, first, _ = first_answer(answer_model, [60, 62], 10.0, "--listen-gap",
                                                "2b", "--realtime", "--answer-at", "gap")
    step = 60 / 120 / 4
    assert code == 0, err
    assert first >= last_on + 8 * step - 0.01, "answered before two beats of silence"
    assert first <= last_on + 8 * step + 16 * step


def test_answer_enters_on_a_bar_line_of_the_meter(answer_model: Path) -> None:
    """``--meter 3/4``: the answer comes in on a 3/4 bar line of the DAW's clock (12 steps)."""
    code, err, last_on, first, clock = first_answer(answer_model, [60, 62, 64, 65, 67], 20.0,
                                                    "--meter", "3/4")
    assert code == 0, err
    assert first > last_on
    steps = clock.step_times()
    index = min(range(len(steps)), key=lambda i: abs(steps[i] - first))
    assert index % 12 == 0, f"the answer entered on step {index}, not on a 3/4 bar line"
