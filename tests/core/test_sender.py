"""The conductor's sender: what is due leaves back to back, in order; failures lose nothing else.

Pure: a plain clock started in the past, senders that record what they were given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pytest

from liveduet.core.clock import InternalClock
from liveduet.core.conductor import Options
from liveduet.core.sender import Msg, Sender, SendMany, one_by_one

STEP = 0.125  # 120 bpm, 4 steps per beat


class Port:
    """Stamps each message with the time it is told to (``lag`` after its due time)."""

    def __init__(self, clock: InternalClock, lag: float = 0.0, fail: Msg | None = None) -> None:
        self.clock, self.lag, self.fail = clock, lag, fail
        self.sent: list[Msg] = []
        self.calls = 0

    def send_many(self, msgs: Sequence[Msg], stamps: list[float]) -> None:
        self.calls += 1
        for msg in msgs:
            stamps.append(self.clock.time_of(0.0) + self.lag)  # type: ignore[operator]
            if msg == self.fail:
                raise OSError("port vanished")
            self.sent.append(msg)


def started_clock() -> InternalClock:
    clock = InternalClock(120.0)
    clock.start(time.perf_counter() - 10 * STEP)   # step 0 was 1.25 s ago: all below is due
    return clock


def new_sender(clock: InternalClock, send: Callable[[Sequence[int]], None],
               send_many: SendMany | None = None) -> Sender:
    return Sender(clock, Options(), {"in": 0, "out": 0, "late": 0}, {},
                  send_many or one_by_one(send, time.perf_counter), time.perf_counter)


def wired(lag: float = 0.0, fail: Msg | None = None) -> tuple[Sender, Port]:
    """A sender whose messages go to a recording :class:`Port`."""
    port = Port(started_clock(), lag, fail)
    return new_sender(port.clock, port.sent.append, port.send_many), port


CHORD = [(0x90, 60, 90), (0x90, 64, 90), (0x90, 67, 90)]


def push_chord(out: Sender) -> None:
    """A note-off and then CHORD, all timed at step 0."""
    out.push(0.0, (0x80, 55, 0), True)
    for msg in CHORD:
        out.push(0.0, msg, True)


def test_a_chord_due_at_once_goes_in_one_call_in_schedule_order() -> None:
    out, port = wired()
    push_chord(out)
    out.push(20.0, (0x80, 60, 0), True)        # not due yet
    out.send_due(time.perf_counter())
    assert port.calls == 1
    assert port.sent == [(0x80, 55, 0), *CHORD]
    assert out.ledger.sounding == {(0, 60), (0, 64), (0, 67)}
    assert out.counters["out"] == 4
    assert len(out.schedule) == 1


def test_wake_errors_come_from_the_stamp_taken_before_each_message() -> None:
    out, _ = wired(lag=0.0003)
    for msg in CHORD:
        out.push(0.0, msg, True)
    out.push(0.0, (0xB0, 7, 100), False)        # untimed: sent, not measured
    out.send_due(time.perf_counter())
    assert list(out.wake_errors) == pytest.approx([0.0003] * 3, abs=1e-9)
    assert out.counters["late"] == 0


def test_a_failing_message_is_counted_and_the_rest_still_go() -> None:
    out, port = wired(fail=CHORD[1])
    for msg in CHORD:
        out.push(0.0, msg, True)
    out.send_due(time.perf_counter())
    assert port.sent == [CHORD[0], CHORD[2]]
    assert out.errors == {"send:OSError": 1}
    assert out.ledger.sounding == {(0, 60), (0, 67)}   # the lost note-on is not "sounding"
    assert out.counters["out"] == 2
    assert len(out.wake_errors) == 2
    assert sorted(out.ledger.offs()) == [(0x80, 60, 0), (0x80, 67, 0)]


def test_plain_send_callables_are_sent_one_by_one_with_real_stamps() -> None:
    plain: list[Msg] = []
    out = new_sender(started_clock(), plain.append)
    for msg in CHORD:
        out.push(0.0, msg, True)
    before = time.perf_counter()
    out.send_due(before)
    assert plain == CHORD
    assert all(e > 0 for e in out.wake_errors)         # step 0 was 1.25 s ago
    assert all(abs(e - 10 * STEP) < 1.0 for e in out.wake_errors)


def test_stamps_of_one_by_one_are_in_send_order() -> None:
    seen: list[Msg] = []
    stamps: list[float] = []
    one_by_one(seen.append, time.perf_counter)(CHORD, stamps)
    assert seen == CHORD and len(stamps) == 3 and stamps == sorted(stamps)


def test_a_sender_that_does_not_stamp_still_finishes() -> None:
    got: list[Msg] = []
    out = new_sender(started_clock(), got.append, lambda msgs, stamps: got.extend(msgs))
    for msg in CHORD:
        out.push(0.0, msg, True)
    out.send_due(time.perf_counter())
    assert got == CHORD and out.counters["out"] == 3 and len(out.wake_errors) == 3


def test_flush_all_and_drop_pending_close_every_sounding_note() -> None:
    out, port = wired()
    out.send_msgs(CHORD)
    out.push(30.0, (0x80, 60, 0), False)           # its note-off, scheduled for later
    out.push(30.0, (0x90, 72, 90), False)          # a note that never started
    out.drop_pending()
    assert port.sent[3:] == [(0x80, 60, 0)]
    out.flush_all(all_notes_off=True)
    assert port.sent[4:6] == [(0x80, 64, 0), (0x80, 67, 0)]
    assert port.sent[6:] == [(0xB0 | ch, 123, 0) for ch in range(16)]
    assert out.ledger.sounding == set()


def test_messages_taken_early_and_put_back_keep_their_order() -> None:
    out, port = wired()
    push_chord(out)
    out.push(1.0, (0x80, 60, 0), False)
    ready = out.take_due(time.perf_counter())
    assert ready.msgs == [(0x80, 55, 0), *CHORD, (0x80, 60, 0)]
    assert len(out.schedule) == 0 and port.sent == []
    out.put_back(ready)
    out.push(0.0, (0x90, 48, 90), True)    # scheduled after: leaves after them
    out.send_due(time.perf_counter())
    assert port.sent == [(0x80, 55, 0), *CHORD, (0x90, 48, 90), (0x80, 60, 0)]


def test_a_scheduling_port_gets_scheduled_messages_a_lead_ahead_with_their_due_times() -> None:
    clock = started_clock()
    handed: list[tuple[list[Msg], list[float]]] = []
    now: list[Msg] = []
    out = Sender(clock, Options(lead=0.01), {"in": 0, "out": 0, "late": 0}, {},
                 one_by_one(now.append, time.perf_counter), time.perf_counter,
                 send_at=lambda msgs, at: handed.append((list(msgs), list(at))))
    due = clock.time_of(20.0)
    assert due is not None
    out.push(20.0, (0x90, 60, 90), True)
    out.push(20.0, (0x80, 60, 0), False)
    assert out.due_time() == pytest.approx(due - 0.01)   # the conductor wakes a lead early
    assert len(out.take_due(due - 0.011)) == 0
    batch = out.take_due(due - 0.01)
    out.send_batch(batch)
    assert handed == [([(0x90, 60, 90), (0x80, 60, 0)], [pytest.approx(due)] * 2)]
    out.send((0x80, 61, 0))   # not scheduled: sent now
    assert now == [(0x80, 61, 0)] and out.counters["out"] == 3
    assert out.ledger.offs() == []


def test_without_send_at_the_lead_is_ignored() -> None:
    clock = started_clock()
    out = new_sender(clock, lambda msg: None)
    out.opt = Options(lead=0.01)
    out.push(20.0, (0x90, 60, 90), True)
    assert out.due_time() == pytest.approx(clock.time_of(20.0))
