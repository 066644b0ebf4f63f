"""The conductor's output: send now, or at the wall time of a grid position; never lose a note-off.

:class:`Sender` keeps the :class:`~liveduet.schedule.Schedule` of messages waiting for their
position, the :class:`~liveduet.schedule.SentLedger` of notes sounding, and the wake-up error
of every timed send (actual minus intended wall time). It runs only on the conductor thread.
A send that fails (a vanished port) is counted and logged once; the conductor plays on.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from liveduet.clock import InternalClock, MidiClockFollower
from liveduet.schedule import Metronome, Schedule, SentLedger

log = logging.getLogger("liveduet.runtime")


class Sender:
    """Sends and schedules MIDI for the conductor; see the module docstring."""

    def __init__(self, send: Callable[[Sequence[int]], None],
                 clock: InternalClock | MidiClockFollower, opt: Any,
                 counters: dict[str, int], errors: dict[str, int]) -> None:
        self._send_raw = send
        self.clock = clock
        self.opt = opt
        self.counters = counters
        self.errors = errors
        self.ledger = SentLedger()
        self.schedule = Schedule()
        self.clicks = (None if opt.metronome is None else
                       Metronome(opt.metronome, opt.steps_per_beat, opt.beats_per_bar))
        self.wake_errors: deque[float] = deque(maxlen=opt.keep_samples)

    def due_time(self) -> float | None:
        """Wall time the earliest scheduled message is due (None: nothing, or stopped)."""
        first = self.schedule.first()
        if first is None:
            return None
        t = self.clock.time_of(first[0])
        return None if t is None else t + self.opt.latency_offset

    def record_wake(self, pos: float) -> None:
        """Intended vs actual send time of an event due at grid position ``pos``."""
        t = self.clock.time_of(pos)
        if t is not None:
            err = time.perf_counter() - (t + self.opt.latency_offset)
            self.wake_errors.append(err)
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
        sched = self.schedule
        while (first := sched.first()) is not None and first[1]:
            t = self.due_time()
            if t is None or t - time.perf_counter() > self.opt.early:
                return
            pos, msg, _ = sched.pop()
            self.record_wake(pos)
            self.send(msg)

    def push(self, pos: float, msg: tuple[int, ...], timed: bool) -> None:
        """Schedule ``msg`` at grid position ``pos``."""
        self.schedule.push(pos, msg, timed)

    def send_due(self, now: float) -> None:
        """Send every scheduled message due by ``now``."""
        sched, perf = self.schedule, time.perf_counter
        while len(sched):
            t = self.due_time()
            if t is None or t > now:
                return
            pos, msg, timed = sched.pop()
            if timed:
                self.record_wake(pos)
            self.send(msg)
            now = perf()

    def metronome_due(self, pos: float) -> None:
        """Schedule the next click when it is within a step of ``pos``."""
        if self.clicks is not None:
            for at, msg, timed in self.clicks.due(pos):
                self.push(at, msg, timed)

    def send(self, msg: Sequence[int]) -> None:
        """Send one message now and track it in the ledger."""
        try:
            self._send_raw(msg)
        except Exception as err:  # a vanished port must not stop the conductor
            key = f"send:{type(err).__name__}"
            self.errors[key] = self.errors.get(key, 0) + 1
            if self.errors[key] == 1:
                log.warning("MIDI send failed (%s); further failures are counted", err)
            return
        self.ledger.note(msg)
        self.counters["out"] += 1

    def send_now(self, outs: Sequence[Any]) -> None:
        """Send engine ``Out`` events now, whatever their position."""
        self.send_msgs([tuple(o.msg) for o in outs])

    def send_msgs(self, msgs: Sequence[tuple[int, ...]]) -> None:
        """Send raw messages now, in order."""
        for msg in msgs:
            self.send(msg)

    def drop_pending(self) -> None:
        """Forget scheduled events; note-offs of notes already sounding go out now."""
        if self.clicks is not None:
            self.clicks.reset()
        for msg in self.schedule.drain():
            if self.ledger.ends_sounding(msg):
                self.send(msg)

    def flush_all(self, all_notes_off: bool = False) -> None:
        """Note-off for everything sounding; with ``all_notes_off`` also CC 123 on every channel."""
        for msg in self.ledger.offs():
            self.send(msg)
        if all_notes_off:
            for ch in range(16):
                self.send((0xB0 | ch, 123, 0))
