"""MIDI clock out: liveduet's transport as 24 ppqn Timing Clock plus Start/Stop/Continue/SPP.

:class:`ClockOut` is pure: it is told when the transport runs, stops or jumps and at which grid
position, and answers which bytes to send and at which grid position each clock tick falls.
:class:`ClockOutput` ties it to a clock source (anything with ``running``, ``position(now)`` and
``time_of(pos)``: internal tempo, a MIDI clock being followed, Ableton Link) and a send function;
the conductor asks it :meth:`ClockOutput.due_time` to know when to wake and calls
:meth:`ClockOutput.send_due` with the time. Ticks are placed on the grid, not on a tempo: a tempo
change (an OSC bpm, a Link peer) moves the wall time of every tick that has not left yet.

MIDI clock semantics (MIDI 1.0 spec): after Start the first tick is the downbeat, position 0;
to resume elsewhere a sender stops, sends Song Position Pointer (in sixteenth notes, 6 ticks
each) then Continue, and the next tick is that position. So a transport that starts mid-bar
resumes on the next sixteenth.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from liveduet.core.clock import CLOCK, CONTINUE, PPQN, SPP, START, STOP

Msg = tuple[int, ...]
TICKS_PER_16TH = 6
SPP_MAX = 0x3FFF    # Song Position Pointer: 14 bits of sixteenths
SPP_WRAP = 15120    # farther positions are sent modulo this many sixteenths: a whole number
# of bars in every metre liveduet plays (5040 = lcm of their bar lengths in sixteenths), so
# a receiver keeps the bar phase of a Link session thousands of bars in
LATE_TICKS = 0.5    # a start at most this far past a sixteenth (in ticks) still plays it
JUMP_S = 0.25       # the last position moved this far in time: the transport jumped (a
# followed MIDI clock's fit moves by milliseconds; a Link peer re-maps by whole bars)


def spp(sixteenths: int) -> Msg:
    """Song Position Pointer bytes for ``sixteenths`` (clamped to 0..16383)."""
    s = min(max(int(sixteenths), 0), SPP_MAX)
    return (SPP, s & 0x7F, (s >> 7) & 0x7F)


class ClockOut:
    """Which transport and clock bytes to send, in grid positions (steps since start)."""

    def __init__(self, steps_per_beat: int = 4) -> None:
        if steps_per_beat <= 0 or PPQN % steps_per_beat:
            raise ValueError(f"steps_per_beat={steps_per_beat}: must divide {PPQN}")
        self.ticks_per_step = PPQN // steps_per_beat
        self.running = False
        self.next_tick = 0   # index of the next tick to send (tick k is at k / ticks_per_step)

    def tick_pos(self, k: int) -> float:
        """Grid position of tick ``k``."""
        return k / self.ticks_per_step

    @property
    def next_pos(self) -> float | None:
        """Grid position of the next tick; None while stopped."""
        return self.tick_pos(self.next_tick) if self.running else None

    def start(self, pos: float) -> list[Msg]:
        """The transport starts at ``pos``: Start at 0 (or before), else SPP + Continue at the
        next sixteenth (the first tick sent is that position). A start found up to
        ``LATE_TICKS`` after a sixteenth (the conductor saw it late) still sends that one."""
        ticks = pos * self.ticks_per_step
        self.running = True
        if ticks <= LATE_TICKS:
            self.next_tick = 0
            return [(START,)]
        sixteenth = math.ceil((ticks - LATE_TICKS) / TICKS_PER_16TH)
        self.next_tick = sixteenth * TICKS_PER_16TH
        return [spp(sixteenth % SPP_WRAP if sixteenth > SPP_MAX else sixteenth), (CONTINUE,)]

    def stop(self) -> list[Msg]:
        """The transport stops: Stop (nothing when already stopped)."""
        if not self.running:
            return []
        self.running = False
        return [(STOP,)]

    def locate(self, pos: float) -> list[Msg]:
        """The transport jumps to ``pos`` while running: Stop, SPP, Continue."""
        return self.stop() + self.start(pos)

    def take(self, until: float) -> list[Msg]:
        """Clock ticks up to grid position ``until``. Overdue ticks all go, in a burst:
        receivers count ticks for their position, so a skipped tick would shift them for good
        (a follower keeps a burst after a stall out of its tempo fit)."""
        if not self.running:
            return []
        last = math.floor(until * self.ticks_per_step + 1e-9)
        n = last - self.next_tick + 1
        if n <= 0:
            return []
        self.next_tick = last + 1
        return [(CLOCK,)] * n


class ClockSource(Protocol):
    """What clock out reads from the transport."""

    running: bool

    def position(self, now: float) -> float: ...

    def time_of(self, pos: float) -> float | None: ...


class ClockOutput:
    """Drives :class:`ClockOut` from a clock source and sends its bytes (conductor thread)."""

    def __init__(self, clock: ClockSource, send: Callable[[Sequence[Msg]], None],
                 steps_per_beat: int = 4, keep: int = 2000) -> None:
        self.clock = clock
        self.out = ClockOut(steps_per_beat)
        self._send = send
        self.sent = 0       # clock ticks sent
        self.errors: deque[float] = deque(maxlen=keep)   # send time minus due time, per send
        self._last = (0.0, 0.0)    # (now, position) at the last call while running
        # > 0 with ``send_at`` (a port that places messages at their time, JACK-native):
        # ticks are handed over this long ahead with their due times
        self.lead = 0.0
        self.send_at: Callable[[Sequence[Msg], Sequence[float]], None] | None = None

    def due_time(self) -> float | None:
        """Wall time of the next tick, or of its hand-over ``lead`` ahead (None when stopped
        or nothing is due)."""
        if self.clock.running != self.out.running:
            return -math.inf  # a transport change is due now
        pos = self.out.next_pos
        t = None if pos is None else self.clock.time_of(pos)
        return None if t is None else t - self._lead()

    def _lead(self) -> float:
        return self.lead if self.send_at is not None else 0.0

    def send_due(self, now: float) -> None:
        """Send transport changes and every tick due by ``now``."""
        clock, out = self.clock, self.out
        msgs: list[Msg] = []
        if clock.running and not out.running:
            self._last = (now, clock.position(now))
            msgs += out.start(self._last[1])
        elif not clock.running and out.running:
            msgs += out.stop()
        ahead: list[Msg] = []
        at: list[float] = []
        if out.running:
            pos = clock.position(now)
            if self._jumped(pos):
                msgs += out.locate(pos)
            self._last = (now, pos)
            due = out.next_pos
            t = clock.time_of(due) if due is not None else None
            lead = self._lead()
            if t is not None and due is not None and t <= now + lead:
                first = out.next_tick
                ticks = out.take(max(clock.position(now + lead) if lead else pos, due))
                self.sent += len(ticks)
                self.errors.append(now + lead - t)
                if lead:
                    ahead = ticks
                    at = [clock.time_of(out.tick_pos(first + i)) or t for i in range(len(ticks))]
                else:
                    msgs += ticks
        if msgs:
            self._send(msgs)
        if ahead and self.send_at is not None:
            self.send_at(ahead, at)

    def _jumped(self, pos: float) -> bool:
        """True when the transport moved (a locate, a Link peer re-mapping the beat) rather
        than ran: the last position seen is now at another time. A stalled conductor only
        finds more ticks due (they go in a burst)."""
        then, last = self._last
        if pos + 0.5 < last:
            return True
        t = self.clock.time_of(last)
        return t is not None and abs(t - then) > JUMP_S

    def stop(self) -> None:
        """Send Stop if the transport was running (exit path)."""
        msgs = self.out.stop()
        if msgs:
            self._send(msgs)
