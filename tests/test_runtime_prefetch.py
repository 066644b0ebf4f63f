"""The runtime starts the next harmony table only after an answer has had time to leave.

A real Runtime, clock and conductor thread with a recording engine (it answers every note-on
with a note-on and records when it was asked to prefetch): building a table takes a core for a
few ms, and started right after a send it delayed JACK's delivery of that send (bench_e2e,
variant ``prefetch-now``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from liveduet.clock import InternalClock
from liveduet.conductor import PREFETCH_MAX_WAIT, Options
from liveduet.ledger import Out
from liveduet.runtime import Runtime
from tests.test_control_runtime import RecordingEngine


class AnsweringEngine(RecordingEngine):
    """Answers each note-on with one note-on; records the wall time of every prefetch."""

    def __init__(self) -> None:
        super().__init__()
        self.prefetched: list[float] = []
        self.answered: list[float] = []
        self.lock = threading.Lock()

    def feed_many(self, events: Sequence[tuple[float, Sequence[int]]]) -> list[Any]:
        outs = [Out(pos, (0x90, int(msg[1]) + 7, 90)) for pos, msg in events
                if (msg[0] & 0xF0) == 0x90 and msg[2] > 0]
        return outs

    def prefetch(self) -> None:
        with self.lock:
            self.prefetched.append(time.perf_counter())


@pytest.fixture(params=[0.004, 0.0], ids=["deferred", "at-once"])
def live(request: pytest.FixtureRequest) -> Iterator[tuple[AnsweringEngine, Runtime, list]]:
    engine = AnsweringEngine()
    sent: list[tuple[float, tuple[int, ...]]] = []
    rt = Runtime(engine, InternalClock(bpm=120.0),
                 lambda msg: sent.append((time.perf_counter(), tuple(msg))),
                 Options(prefetch_after=request.param))
    rt.start()
    try:
        yield engine, rt, sent
    finally:
        rt.stop()
    assert rt.failed is None


def _play(rt: Runtime, sent: list, pitch: int) -> float:
    """A note-on into the runtime; the wall time its answer was sent."""
    before = len(sent)
    rt.on_midi(time.perf_counter(), (0x90, pitch, 80))
    deadline = time.perf_counter() + 2.0
    while len(sent) == before and time.perf_counter() < deadline:
        time.sleep(0.0005)
    assert len(sent) > before, "no answer within 2 s"
    return sent[before][0]


def test_prefetch_waits_after_an_answer_and_then_comes(live: Any) -> None:
    engine, rt, sent = live
    time.sleep(0.3)   # past the start and a few quiet grid steps
    for pitch in (60, 64, 67):
        with engine.lock:
            engine.prefetched.clear()
        answered = _play(rt, sent, pitch)
        time.sleep(0.05)
        with engine.lock:
            after = [t - answered for t in engine.prefetched if t >= answered]
        assert after, "no prefetch within 50 ms of an answer"
        first = min(after)
        if rt.opt.prefetch_after > 0:
            assert first >= rt.opt.prefetch_after * 0.95, f"prefetch {first * 1e3:.2f} ms after"
            assert first < rt.opt.prefetch_after + 0.02
        else:
            assert first < 0.02


def test_a_burst_of_answers_puts_the_prefetch_off_only_so_far(live: Any) -> None:
    engine, rt, sent = live
    time.sleep(0.2)
    with engine.lock:
        engine.prefetched.clear()
    start = time.perf_counter()
    while time.perf_counter() - start < 0.1:   # a note every 1 ms for 100 ms
        rt.on_midi(time.perf_counter(), (0x90, 60, 80))
        time.sleep(0.001)
    with engine.lock:
        during = [t for t in engine.prefetched if start <= t <= start + 0.1]
    assert sum(start <= t <= start + 0.1 for t, _ in sent) >= 20, "the burst was not answered"
    assert during, "the next table was never started during a 100 ms burst of answers"
    if rt.opt.prefetch_after > 0:   # each send puts it off, but at most PREFETCH_MAX_WAIT
        assert len(during) >= 0.1 / PREFETCH_MAX_WAIT - 2, during
