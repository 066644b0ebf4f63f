"""What the conductor has sent and will send: the ledger of sounding notes and the timed schedule.

:class:`SentLedger` tracks every note-on liveduet sent without its note-off yet, per (channel,
pitch), so every exit path can end them. :class:`Schedule` is a heap of messages keyed by grid
position (not wall time: a tempo change keeps every scheduled event on its beat); ``timed``
marks engine events computed ahead, whose send time is measured as a wake-up error. Pure: no
clock reads, no threads.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from liveduet.metre import MetreMap

Msg = tuple[int, ...]


@dataclass
class SentLedger:
    """Notes liveduet has sent note-on for and not yet note-off, per (channel, pitch)."""

    sounding: set[tuple[int, int]] = field(default_factory=set)

    def note(self, msg: Sequence[int]) -> None:
        """Track one outgoing message."""
        if len(msg) < 3:
            return
        kind, key = msg[0] & 0xF0, (msg[0] & 0x0F, msg[1])
        if kind == 0x90 and msg[2] > 0:
            self.sounding.add(key)
        elif kind in (0x80, 0x90):
            self.sounding.discard(key)

    def offs(self) -> list[Msg]:
        """Note-offs for everything sounding (and forget it)."""
        out = [(0x80 | ch, pitch, 0) for ch, pitch in sorted(self.sounding)]
        self.sounding.clear()
        return out

    def ends_sounding(self, msg: Msg) -> bool:
        """True when ``msg`` is a note-off for a note that sounds now."""
        kind = msg[0] & 0xF0
        off = kind == 0x80 or (kind == 0x90 and len(msg) > 2 and msg[2] == 0)
        return off and (msg[0] & 0x0F, msg[1]) in self.sounding


class Schedule:
    """Messages waiting for their grid position, earliest first (FIFO among equal positions)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Msg, bool]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, pos: float, msg: Msg, timed: bool) -> None:
        """Schedule ``msg`` at grid position ``pos``."""
        self._seq += 1
        heapq.heappush(self._heap, (pos, self._seq, msg, timed))

    def first(self) -> tuple[float, bool] | None:
        """(position, timed) of the earliest message, or None when empty."""
        if not self._heap:
            return None
        pos, _, _, timed = self._heap[0]
        return pos, timed

    def pop(self) -> tuple[float, Msg, bool]:
        """Remove and return the earliest (position, message, timed)."""
        pos, _, msg, timed = heapq.heappop(self._heap)
        return pos, msg, timed

    def drain(self) -> list[Msg]:
        """Forget everything scheduled; return the messages in position order."""
        pending, self._heap = sorted(self._heap), []
        return [msg for _, _, msg, _ in pending]


class Metronome:
    """Click notes on a channel: a high click on each bar line, a lower one on the other beats
    of the metre (dotted beats in compound metres). ``metres`` gives the metre map in force."""

    def __init__(self, channel: int, metres: Callable[[], MetreMap]) -> None:
        self.ch0 = channel - 1
        self.metres = metres
        self._next: int | None = None

    def reset(self) -> None:
        """Forget the next click (the grid moved)."""
        self._next = None

    def due(self, pos: float) -> list[tuple[float, Msg, bool]]:
        """The next click's note-on/off (position, message, timed) once within a step of it."""
        metres = self.metres()
        if self._next is None or self._next < pos:
            self._next = metres.next_beat(max(math.ceil(pos), 0))
        if self._next - pos > 1.0:
            return []
        at = self._next
        pitch, vel = (76, 110) if metres.is_bar_line(at) else (77, 80)
        self._next = metres.next_beat(at + 1)
        return [(float(at), (0x90 | self.ch0, pitch, vel), True),
                (at + 0.5, (0x80 | self.ch0, pitch, 0), False)]
