"""The conductor starts the next harmony table only after an answer has had time to leave.

The conductor in virtual time with an engine that answers every note-on with a note-on and
records the time of every prefetch: building a table takes a core for a few ms, and started
right after a send it delayed JACK's delivery of that send (bench_e2e, variant
``prefetch-now``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest

from liveduet.core.clock import InternalClock, VirtualTime
from liveduet.core.conductor import PREFETCH_MAX_WAIT, Conductor, Options
from liveduet.core.events import Midi
from liveduet.core.ledger import Out
from liveduet.offline.render import wake_until
from tests.live.test_control_runtime import RecordingEngine


class AnsweringEngine(RecordingEngine):
    """Answers each note-on with one note-on; records the (virtual) time of every prefetch."""

    def __init__(self, timer: VirtualTime) -> None:
        super().__init__()
        self.timer = timer
        self.prefetched: list[float] = []

    def feed_many(self, events: Sequence[tuple[float, Sequence[int]]]) -> list[Any]:
        return [Out(pos, (0x90, int(msg[1]) + 7, 90)) for pos, msg in events
                if (msg[0] & 0xF0) == 0x90 and msg[2] > 0]

    def prefetch(self) -> None:
        self.prefetched.append(self.timer.now)


class Live:
    """A conductor on an internal clock at 120 bpm, woken whenever it asks, as the runtime
    does; records the time of every message sent."""

    def __init__(self, prefetch_after: float) -> None:
        self.timer = VirtualTime()
        self.engine = AnsweringEngine(self.timer)
        self.sent: list[tuple[float, tuple[int, ...]]] = []
        self.conductor = Conductor(self.engine, InternalClock(120.0), self.send_many,
                                   Options(prefetch_after=prefetch_after), self.timer)
        self.conductor.start(0.1)

    def send_many(self, msgs: Sequence[tuple[int, ...]], stamps: list[float]) -> None:
        for msg in msgs:
            stamps.append(self.timer.now)
            self.sent.append((self.timer.now, tuple(msg)))

    def wait(self, seconds: float) -> None:
        wake_until(self.conductor, self.timer, self.timer.now + seconds)

    def play(self, pitch: int) -> float:
        """A note-on now; the time its answer was sent."""
        before = len(self.sent)
        self.conductor.handle(self.timer.now, [Midi(self.timer.now, (0x90, pitch, 80))])
        assert len(self.sent) > before, "the note was not answered at once"
        return self.sent[before][0]


@pytest.fixture(params=[0.004, 0.0], ids=["deferred", "at-once"])
def live(request: pytest.FixtureRequest) -> Live:
    return Live(request.param)


def test_prefetch_waits_after_an_answer_and_then_comes(live: Live) -> None:
    live.wait(0.3)   # past the start and a few quiet grid steps
    after_ms = live.conductor.opt.prefetch_after
    for pitch in (60, 64, 67):
        live.engine.prefetched.clear()
        answered = live.play(pitch)
        live.wait(0.05)
        after = [t - answered for t in live.engine.prefetched if t >= answered]
        assert after, "no prefetch within 50 ms of an answer"
        assert min(after) == pytest.approx(after_ms, abs=1e-9)


def test_a_burst_of_answers_puts_the_prefetch_off_only_so_far(live: Live) -> None:
    live.wait(0.2)
    live.engine.prefetched.clear()
    start = live.timer.now
    for _ in range(100):   # a note every 1 ms for 100 ms
        live.play(60)
        live.wait(0.001)
    during = [t for t in live.engine.prefetched if start <= t <= start + 0.1]
    assert sum(start <= t <= start + 0.1 for t, _ in live.sent) >= 100
    assert during, "the next table was never started during a 100 ms burst of answers"
    if live.conductor.opt.prefetch_after > 0:   # each send puts it off, at most MAX_WAIT
        gaps = [b - a for a, b in itertools.pairwise(during)]
        assert len(during) >= 0.1 / PREFETCH_MAX_WAIT - 1, during
        assert max(gaps) <= PREFETCH_MAX_WAIT + 0.001 + 1e-9, gaps
