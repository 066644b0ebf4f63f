"""The conductor in virtual time: routing, tempo, release rules and when the engine is asked.

A recording engine stands in for the real one (it plays one scheduled note per step when
asked and records every call), so each test sees exactly what the conductor asked and sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from liveduet.core.clock import InternalClock, MidiClockFollower, VirtualTime
from liveduet.core.conductor import VIRTUAL, Conductor
from liveduet.core.events import Control, Loaded, Midi
from liveduet.core.ledger import Out
from liveduet.core.settings import Act, Action, Set
from liveduet.offline.render import wake_until
from tests.live.test_control_runtime import RecordingEngine


class StepEngine(RecordingEngine):
    """Due at every whole step; each step plays a short note on channel 2."""

    def __init__(self) -> None:
        super().__init__()
        self.next = 0.0
        self.advanced: list[float] = []
        self.fed: list[tuple[float, tuple[int, ...]]] = []
        self.running = True

    def next_due(self) -> float | None:
        return self.next if self.running else None

    def advance(self, pos: float) -> list[Any]:
        self.advanced.append(pos)
        outs = []
        while self.next <= pos + 1e-9:
            outs += [Out(self.next, (0x91, 60, 90)), Out(self.next + 0.5, (0x81, 60, 0))]
            self.next += 1.0
        return outs

    def feed_many(self, events: Sequence[tuple[float, Sequence[int]]]) -> list[Any]:
        self.fed += [(pos, tuple(msg)) for pos, msg in events]
        return []

    def apply(self, cmd: Any, pos: float) -> list[Any]:
        if isinstance(cmd, Action) and cmd.name == Act.STOP:
            self.running = False
        if isinstance(cmd, Action) and cmd.name == Act.PLAY:
            self.running = True
        return super().apply(cmd, pos)


def make(clock: Any) -> tuple[Conductor, StepEngine, VirtualTime, list[tuple[float, tuple]]]:
    timer, engine, sent = VirtualTime(), StepEngine(), []

    def send_many(msgs: Sequence[tuple[int, ...]], stamps: list[float]) -> None:
        for msg in msgs:
            stamps.append(timer.now)
            sent.append((timer.now, tuple(msg)))
    conductor = Conductor(engine, clock, send_many, VIRTUAL, timer)
    conductor.start(0.0)
    return conductor, engine, timer, sent


def test_grid_notes_leave_at_their_steps_time_and_the_engine_is_asked_only_then() -> None:
    clock = InternalClock(120.0)   # a step is 0.125 s
    conductor, engine, timer, sent = make(clock)
    ticks = wake_until(conductor, timer, 1.0)
    ons = [t for t, m in sent if m[0] == 0x91]
    assert ons == [i * 0.125 for i in range(9)]
    assert ticks > len(engine.advanced)   # status ticks too, but the engine only at its steps
    assert engine.advanced == [i * 1.0 for i in range(9)]


def test_a_bpm_change_under_midi_clock_is_refused_in_one_line_and_snaps_back() -> None:
    conductor, engine, _timer, _ = make(MidiClockFollower())
    conductor.handle(0.0, [Control(Set("bpm", 90.0))])
    assert "the tempo follows the MIDI clock: change it in the DAW" in conductor.message
    assert engine.settings.bpm == 120.0
    assert conductor.errors == {"control:ConfigError": 1}


def test_a_bpm_change_on_the_internal_clock_moves_the_clock() -> None:
    clock = InternalClock(120.0)
    conductor, engine, _timer, _ = make(clock)
    conductor.handle(0.0, [Control(Set("bpm", 90.0))])
    assert clock.bpm == 90.0 and engine.settings.bpm == 90.0


def test_transport_bytes_go_to_the_followed_clock_and_start_and_stop_the_engine() -> None:
    clock = MidiClockFollower()
    conductor, engine, timer, sent = make(clock)
    conductor.handle(0.0, [Midi(0.0, (0xFA,))])          # Start
    for k in range(25):                                  # a beat of ticks at 120 bpm
        timer.now = k * 0.5 / 24
        conductor.handle(timer.now, [Midi(timer.now, (0xF8,))])
        conductor.tick(timer.now)
    assert clock.running and engine.commands.get_nowait() == Action(Act.PLAY)
    assert engine.fed == []                              # transport is not music
    assert any(m[0] == 0x91 for _, m in sent) and conductor.out.ledger.sounding
    conductor.handle(timer.now, [Midi(timer.now, (0xFC,))])   # Stop: what sounds is released
    assert not clock.running and engine.commands.get_nowait() == Action(Act.STOP)
    assert not conductor.out.ledger.sounding


def test_panic_releases_what_sounds_and_sends_all_notes_off() -> None:
    conductor, _engine, timer, sent = make(InternalClock(120.0))
    wake_until(conductor, timer, 0.01)
    assert (0.0, (0x91, 60, 90)) in sent
    conductor.handle(timer.now, [Control(Action(Act.PANIC))])
    after = [m for t, m in sent if t == timer.now]
    assert (0x81, 60, 0) in after and (0xB1, 123, 0) in after
    assert conductor.message == "panic: all notes off"


def test_a_loaded_model_swaps_in_on_the_next_step() -> None:
    conductor, engine, timer, _ = make(InternalClock(120.0))
    wake_until(conductor, timer, 0.2)                     # step 1.6
    conductor.handle(timer.now, [Loaded("other", "model-b", None)])
    assert engine.title == "first model"
    wake_until(conductor, timer, 0.25)                    # step 2 reached
    assert engine.title == "title of model-b"
    assert conductor.message == "model other playing"
