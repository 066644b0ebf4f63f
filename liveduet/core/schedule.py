"""What the conductor will send: the timed schedule and the metronome's clicks.

:class:`Schedule` is a heap of messages keyed by grid position (not wall time: a tempo change
keeps every scheduled event on its beat); ``timed`` marks engine events computed ahead, whose
send time is measured as a wake-up error. Pure: no clock reads, no threads.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

from liveduet.core.metre import MetreMap

Msg = tuple[int, ...]


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
