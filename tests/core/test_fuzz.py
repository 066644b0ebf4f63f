"""Fuzzing the pure core in virtual time: hostile MIDI streams interleaved with random commands.

The driver hands the events to the live runtime's :class:`~liveduet.core.conductor.Conductor` in
virtual time and wakes it whenever it asks, as the runtime's thread does. Invariants: nothing
goes wrong in the conductor but a LiveduetError refusing a command; every message sent is one
valid MIDI message; at most one sounding note per machine voice; at shutdown nothing liveduet
started is still sounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liveduet.core.clock import InternalClock, MidiClockFollower, VirtualTime
from liveduet.core.codec import melody_codec
from liveduet.core.conductor import VIRTUAL, Conductor
from liveduet.core.engine import Engine
from liveduet.core.events import Control, Event, Loaded, Midi
from liveduet.core.model import StepModel
from liveduet.core.settings import MODES, Action, Set, Settings
from liveduet.errors import LiveduetError
from liveduet.offline.render import Recording, wake_until
from liveduet.testkit.factory import lstm_model
from liveduet.testkit.midicheck import Sounding

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@cache
def _models() -> tuple[StepModel, ...]:
    folder = Path(mkdtemp(prefix="liveduet-fuzz-"))
    return tuple(StepModel(lstm_model(folder / f"m{i}.onnx", melody_codec(), hidden=8, seed=i))
                 for i in range(2))


data = st.integers(0, 127)
chan = st.integers(0, 15)
midi_messages = st.one_of(
    st.tuples(chan, data, data).map(lambda m: (0x90 | m[0], m[1], m[2])),      # note-on, vel 0 too
    st.tuples(chan, data, data).map(lambda m: (0x80 | m[0], m[1], m[2])),      # stray note-offs
    st.tuples(chan, data, data).map(lambda m: (0xB0 | m[0], m[1], m[2])),      # controllers
    st.tuples(chan, data).map(lambda m: (0xC0 | m[0], m[1])),                  # program change
    st.tuples(chan, data, data).map(lambda m: (0xE0 | m[0], m[1], m[2])),      # pitch bend
    st.lists(data, max_size=6).map(lambda d: (0xF0, *d, 0xF7)),                # sysex
    st.sampled_from([(0xF8,), (0xFA,), (0xFB,), (0xFC,), (0xFE,), (0xFF,)]),   # real-time
    st.tuples(data, data).map(lambda d: (0xF2, d[0], d[1])),                   # song position
    st.lists(st.integers(0, 255), max_size=4).map(tuple),                      # garbage
)
commands = st.one_of(
    st.sampled_from(MODES).map(lambda m: Set("mode", m)),
    st.floats(20, 300).map(lambda b: Set("bpm", b)),
    st.floats(0.05, 2.0).map(lambda t: Set("temperature", t)),
    st.sampled_from(["off", "auto", "C", "F#"]).map(lambda k: Set("key", k)),
    st.floats(0, 1).map(lambda d: Set("density", d)),
    st.booleans().map(lambda b: Set("thru", b)),
    st.integers(1, 16).map(lambda c: Set("channel", c)),
    st.integers(1, 64).map(lambda g: Set("listen_gap", g)),
    st.sampled_from(["end_call", "reset", "panic", "play", "stop"]).map(Action),
)
events = st.lists(
    st.tuples(
        st.floats(0, 0.25),
        st.one_of(
            midi_messages.map(lambda m: ("midi", m)),
            st.tuples(st.integers(1, 60), st.floats(0.001, 0.05)).map(lambda s: ("storm", s)),
            commands.map(lambda c: ("cmd", c)),
            st.integers(0, 1).map(lambda i: ("swap", i)),
        ),
    ),
    max_size=60,
)


class Driver:
    """Hands one event list to the live conductor in virtual time and checks what it sends."""

    def __init__(self, clock: InternalClock | MidiClockFollower, mode: str) -> None:
        model = _models()[0]
        model.reset()
        self.engine = Engine(model, Settings(mode=mode))
        self.recording = Recording(self.engine)
        self.clock = clock
        self.out = Sounding()      # what the conductor sent
        self.timer = VirtualTime()
        self.conductor = Conductor(self.recording, clock, self.send_many, VIRTUAL, self.timer)
        self.conductor.start(0.0)

    def send_many(self, msgs: Sequence[tuple[int, ...]], stamps: list[float]) -> None:
        for msg in msgs:
            stamps.append(self.timer.now)
            self.out.take(msg)

    def wait(self, dt: float) -> None:
        """Let ``dt`` seconds pass, waking the conductor whenever it asks (as the runtime does);
        a wake-up that its tick does not move on would spin the live thread."""
        wake_until(self.conductor, self.timer, self.timer.now + dt)

    def handle(self, *events: Event) -> None:
        self.conductor.handle(self.timer.now, events)

    def run(self, evs: list[tuple[float, tuple[str, Any]]]) -> None:
        for dt, (kind, arg) in evs:
            self.wait(dt)
            getattr(self, f"on_{kind}")(arg)
        self.wait(0.5)
        self.conductor.shutdown(self.timer.now)

    def on_midi(self, msg: tuple[int, ...]) -> None:
        self.handle(Midi(self.timer.now, msg))

    def on_storm(self, arg: tuple[int, float]) -> None:
        count, span = arg
        for i in range(count):
            self.on_midi((0xF8,))
            self.timer.now += span / count * (i % 3 == 0)  # bursts of ticks with equal stamps

    def on_cmd(self, cmd: Set | Action) -> None:
        self.handle(Control(cmd))  # a refused command is counted and changes nothing

    def on_swap(self, index: int) -> None:
        model = _models()[index]
        model.reset()
        self.handle(Loaded(f"m{index}", model, None))


def _check(driver: Driver) -> None:
    refusals = {c.__name__ for c in (LiveduetError, *LiveduetError.__subclasses__())}
    assert all(key.split(":")[1] in refusals for key in driver.conductor.errors), \
        driver.conductor.errors
    assert driver.out.problems == []
    assert driver.out.keys == set(), f"left sounding: {driver.out.keys}"
    voices = Sounding()   # what the engine asked for, voice by voice
    for o in driver.recording.outs:
        voices.take(o.msg, o.voice)
    assert voices.problems == []
    assert driver.engine._ledger.empty


@FUZZ
@given(evs=events, mode=st.sampled_from(["call", "continue", "off"]))
def test_hostile_streams_on_midi_clock(evs: list[tuple[float, tuple[str, Any]]],
                                       mode: str) -> None:
    driver = Driver(MidiClockFollower(), mode)
    driver.run(evs)
    _check(driver)


@FUZZ
@given(evs=events, mode=st.sampled_from(["call", "continue", "off"]),
       bpm=st.floats(20, 300))
def test_hostile_streams_on_internal_clock(evs: list[tuple[float, tuple[str, Any]]], mode: str,
                                           bpm: float) -> None:
    driver = Driver(InternalClock(bpm), mode)
    driver.run(evs)
    _check(driver)


def test_refused_mode_changes_nothing() -> None:
    driver = Driver(InternalClock(120), "call")
    before = driver.engine.settings
    driver.on_cmd(Set("mode", "harmonize"))  # one-voice model: refused with a reason
    assert driver.engine.settings == before
    assert driver.conductor.message.startswith("mode harmonize not set")


def test_driver_is_not_vacuous() -> None:
    """The same driver, with a plain stream, really makes the machine play and checks it."""
    driver = Driver(InternalClock(120), "continue")
    seen: list[tuple[int, ...]] = []
    take = driver.out.take
    driver.out.take = lambda msg, voice=None: (seen.append(tuple(msg)), take(msg))  # type: ignore
    driver.run([(0.1, ("midi", (0x90, 60, 100))), (0.5, ("midi", (0x80, 60, 0))),
                *[(0.25, ("cmd", Set("temperature", 1.0)))] * 20])
    assert sum(1 for m in seen if m[0] & 0xF0 == 0x90 and m[2] > 0 and m[0] & 0x0F == 1) >= 3
    _check(driver)
