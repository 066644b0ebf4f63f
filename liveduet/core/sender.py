"""The conductor's output: send now, or at the wall time of a grid position; never lose a note-off.

:class:`Sender` keeps the :class:`~liveduet.core.schedule.Schedule` of messages waiting for their
position, the :class:`~liveduet.core.ledger.Ledger` of notes sounding, and the wake-up error
of every timed send (actual minus intended wall time). It runs only on the conductor thread.
Messages due at the same instant leave back to back: they are taken from the schedule first and
sent in one tight loop, the bookkeeping (ledger, wake-up error, counters) after the last one, so
the second note of a chord is not late by the first one's Python work (a conductor that slept
runs from cold caches: ~20-60 µs per message sent one at a time).
A send that fails (a vanished port) is counted and logged once; the conductor plays on.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from liveduet.core.clock import Clock
from liveduet.core.ledger import Ledger
from liveduet.core.metre import MetreMap
from liveduet.core.schedule import Metronome, Schedule

log = logging.getLogger("liveduet.live.runtime")
Msg = tuple[int, ...]
SendMany = Callable[[Sequence[Msg], list[float]], None]
"""Sends messages in order, appending the send time (the conductor's timer) to the list just
before each one;
raises on the first that fails (its stamp is already appended)."""
SendAt = Callable[[Sequence[Msg], Sequence[float]], None]
"""Hands messages to a port that places each at its due time on the conductor's timer (JACK:
at the frame); used for scheduled messages when ``Options.lead`` > 0, that long ahead."""


def is_note_on(msg: Sequence[int]) -> bool:
    """A note-on with a velocity (what starts a sound)."""
    return len(msg) > 2 and msg[0] & 0xF0 == 0x90 and msg[2] > 0


class Batch:
    """Messages to send back to back: (position, message, timed) items and the bare messages,
    built as they are taken (nothing left to build between the due time and the send)."""

    __slots__ = ("at", "items", "msgs")

    def __init__(self, items: Sequence[tuple[float, Msg, bool]] = ()) -> None:
        self.items: list[tuple[float, Msg, bool]] = list(items)
        self.msgs: list[Msg] = [msg for _, msg, _ in self.items]
        self.at: list[float] = []   # due times, when handed to a scheduling port ahead

    def add(self, item: tuple[float, Msg, bool]) -> None:
        """Append one (position, message, timed)."""
        self.items.append(item)
        self.msgs.append(item[1])

    def __len__(self) -> int:
        return len(self.items)


def one_by_one(send: Callable[[Sequence[int]], None], timer: Callable[[], float]) -> SendMany:
    """A :data:`SendMany` made of a single-message ``send``, stamping with ``timer``."""
    def send_many(msgs: Sequence[Msg], stamps: list[float]) -> None:
        for msg in msgs:
            stamps.append(timer())
            send(msg)
    return send_many


class Sender:
    """Sends and schedules MIDI for the conductor; see the module docstring."""

    def __init__(self, clock: Clock, opt: Any, counters: dict[str, int],
                 errors: dict[str, int], send_many: SendMany, timer: Callable[[], float],
                 metres: Callable[[], MetreMap] = MetreMap,
                 send_at: SendAt | None = None) -> None:
        self._send_many = send_many
        self._send_at = send_at
        self.timer = timer
        self.clock = clock
        self.opt = opt
        self.counters = counters
        self.errors = errors
        self.ledger = Ledger()
        self.schedule = Schedule()
        self.clicks = (None if opt.metronome is None else
                       Metronome(opt.metronome, metres))
        self.wake_errors: deque[float] = deque(maxlen=opt.keep_samples)   # every timed message
        self.wake_first: deque[float] = deque(maxlen=opt.keep_samples)    # first of each send

    def due_time(self) -> float | None:
        """Wall time the earliest scheduled message is due (None: nothing, or stopped)."""
        first = self.schedule.first()
        if first is None:
            return None
        t = self.clock.time_of(first[0])
        return None if t is None else t + self.opt.latency_offset - self._lead()

    def _lead(self) -> float:
        """How far ahead scheduled messages are handed over (0: sent at their time)."""
        return self.opt.lead if self._send_at is not None else 0.0

    def record_wake(self, pos: float, sent: float | None = None, first: bool = True) -> None:
        """Intended vs actual (``sent``, default now) send time of an event due at ``pos``;
        ``first``: the conductor began sending with it (its wake-up error)."""
        t = self.clock.time_of(pos)
        if t is not None:
            err = (self.timer() if sent is None else sent) - (t + self.opt.latency_offset)
            self.wake_errors.append(err)
            if first:
                self.wake_first.append(err)
            self.counters["late"] += err > 0.001

    def emit(self, outs: Sequence[Any], pos: float, timed: bool = False) -> None:
        """Send what is due now; schedule the rest by grid position."""
        now_msgs = []
        for out in outs:
            if out.pos <= pos:
                now_msgs.append(tuple(out.msg))
            else:
                self.push(out.pos, tuple(out.msg), timed)
        self.send_msgs(now_msgs)

    def flush_early(self) -> None:
        """Send engine events computed ahead (at most ``early`` s) before the engine hears more.

        The engine believes they went out; what it answers to new input must follow them.
        """
        self.send_batch(self.take_due(self.timer() + self.opt.early, timed_only=True))

    def push(self, pos: float, msg: tuple[int, ...], timed: bool) -> None:
        """Schedule ``msg`` at grid position ``pos``."""
        self.schedule.push(pos, msg, timed)

    def send_due(self, now: float) -> None:
        """Send every scheduled message due by ``now``, back to back (see the module docstring)."""
        self.send_batch(self.take_due(now))

    def take_due(self, until: float, timed_only: bool = False) -> Batch:
        """Take every scheduled message due by ``until`` out of the schedule, in order, to send
        with :meth:`send_batch` then (or return with :meth:`put_back`); with ``timed_only``,
        stop at the first one that is not grid-timed."""
        sched, batch, lead = self.schedule, Batch(), self._lead()
        while (first := sched.first()) is not None and (first[1] or not timed_only):
            t = self.due_time()
            if t is None or t > until:
                break
            batch.add(sched.pop())
            if lead:
                batch.at.append(t + lead)
        return batch

    def put_back(self, batch: Batch) -> None:
        """Schedule messages from :meth:`take_due` again (same order among equal positions:
        that call took every message at their positions)."""
        for pos, msg, timed in batch.items:
            self.schedule.push(pos, msg, timed)

    def metronome_due(self, pos: float) -> None:
        """Schedule the next click when it is within a step of ``pos``."""
        if self.clicks is not None:
            for at, msg, timed in self.clicks.due(pos):
                self.push(at, msg, timed)

    def send(self, msg: Sequence[int]) -> None:
        """Send one message now and track it in the ledger."""
        self.send_batch(Batch([(0.0, tuple(msg), False)]))

    def send_batch(self, batch: Batch) -> None:
        """Send (position, message, timed) back to back; then the ledger, counters and for the
        timed ones the wake-up error, stamped just before each left. A failing message is
        counted and skipped; the rest still go."""
        msgs = batch.msgs
        if not msgs:
            return
        stamps: list[float] = []
        if batch.at and self._send_at is not None:
            # the port places each at its time and counts its own late ones; the wake-up error
            # recorded is the hand-over's, against its planned time (``lead`` before due)
            handed = self.timer() + self._lead()
            try:
                self._send_at(msgs, batch.at)
            except Exception as err:  # a vanished port must not stop the conductor
                self._failed(err)
                return
            stamps = [handed] * len(msgs)
        failed: set[int] = set()
        while len(stamps) < len(msgs):
            before = len(stamps)
            try:
                self._send_many(msgs[before:], stamps)
            except Exception as err:  # a vanished port must not stop the conductor
                self._failed(err)
                if len(stamps) == before:  # it failed before stamping the message
                    stamps.append(0.0)
                failed.add(len(stamps) - 1)
            else:  # a sender that does not stamp: now is the best guess
                stamps += [self.timer()] * (len(msgs) - len(stamps))
        ledger, counters, first = self.ledger, self.counters, True
        for i, ((pos, msg, timed), stamp) in enumerate(zip(batch.items, stamps, strict=True)):
            if i not in failed:
                if timed:
                    self.record_wake(pos, stamp, first)
                    first = False
                ledger.sent(msg)
                counters["out"] += 1

    def _failed(self, err: Exception) -> None:
        key = f"send:{type(err).__name__}"
        self.errors[key] = self.errors.get(key, 0) + 1
        if self.errors[key] == 1:
            log.warning("MIDI send failed (%s); further failures are counted", err)

    def send_now(self, outs: Sequence[Any]) -> None:
        """Send engine ``Out`` events now, whatever their position."""
        self.send_msgs([tuple(o.msg) for o in outs])

    def send_msgs(self, msgs: Sequence[tuple[int, ...]]) -> None:
        """Send raw messages now, in order, back to back."""
        self.send_batch(Batch([(0.0, tuple(m), False) for m in msgs]))

    def skip_stale(self, before: float) -> int:
        """After a stall: scheduled note-ons due before position ``before`` are dropped (played
        now they would burst out back to back); what ends a note, and anything else, goes out
        now. Returns how many note-ons were skipped (also counted as ``skipped``)."""
        sched, now_msgs, skipped = self.schedule, [], 0
        while (first := sched.first()) is not None and first[0] < before:
            _pos, msg, _timed = sched.pop()
            if is_note_on(msg):
                skipped += 1
            else:
                now_msgs.append(msg)
        self.send_msgs(now_msgs)
        self.counters["skipped"] = self.counters.get("skipped", 0) + skipped  # the runtime's
        return skipped

    def drop_pending(self) -> None:
        """Forget scheduled events; note-offs of notes already sounding go out now."""
        if self.clicks is not None:
            self.clicks.reset()
        self.send_msgs([m for m in self.schedule.drain() if self.ledger.ends_sounding(m)])

    def flush_all(self, all_notes_off: bool = False) -> None:
        """Note-off for everything sounding; with ``all_notes_off`` also CC 123 on every channel."""
        msgs = self.ledger.offs()
        if all_notes_off:
            msgs += [(0xB0 | ch, 123, 0) for ch in range(16)]
        self.send_msgs(msgs)
