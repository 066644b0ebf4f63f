"""Control commands waiting for the conductor: coalesced, bounded, taken at a bounded rate.

MIDI input has its own queue and is always drained first; OSC and mapped CC commands wait here.
Only the latest value of a setting matters, so a Set replaces the pending Set of the same
setting, and an action replaces the pending action of the same name (a second ``panic`` before
the first ran is the same panic); the replaced one is counted as ``coalesced``. The box thus
never holds more than one entry per setting and per action, whatever arrives: memory is
bounded under any flood. The conductor takes at most ``rate`` commands per second (a burst of
``burst``), so a flood of changes cannot take its time from the notes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from liveduet.core.settings import Command, Set

RATE = 200.0   # commands applied per second at most (a fader sends ~60/s)
BURST = 40     # taken at once after a pause (every setting and action fits)


class RateLimit:
    """A token bucket: ``rate`` tokens a second, at most ``burst`` saved up (not thread-safe)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self._stamp: float | None = None

    def refill(self, now: float) -> float:
        """The tokens available at ``now``."""
        if self._stamp is not None:
            self.tokens = min(self.burst, self.tokens + max(0.0, now - self._stamp) * self.rate)
        self._stamp = now
        return self.tokens

    def take(self, cost: float, now: float) -> bool:
        """Spend ``cost`` tokens if there are that many at ``now``."""
        if self.refill(now) < cost:
            return False
        self.tokens -= cost
        return True

    def ready_at(self, now: float) -> float:
        """When one token will be there."""
        have = self.refill(now)
        return now if have >= 1.0 else now + (1.0 - have) / self.rate


class ControlBox:
    """Thread-safe: :meth:`put` from any thread, :meth:`take` on the conductor."""

    def __init__(self, wake: Callable[[], None], rate: float = RATE, burst: int = BURST) -> None:
        self._wake = wake
        self._limit = RateLimit(rate, burst)
        self._pending: OrderedDict[tuple[str, str], Command] = OrderedDict()
        self._lock = threading.Lock()
        self.coalesced = 0
        self.taken = 0

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, cmd: Command) -> None:
        """Queue ``cmd``, replacing a pending command for the same setting or action; wake the
        conductor when the box was empty (a full box already has a wake-up coming)."""
        key = ("set", cmd.name) if isinstance(cmd, Set) else ("action", cmd.name)
        with self._lock:
            empty = not self._pending
            if key in self._pending:
                self.coalesced += 1
                del self._pending[key]  # the latest goes last: it follows what came before
            self._pending[key] = cmd
        if empty:
            self._wake()

    def take(self, now: float, most: int | None = None) -> list[Command]:
        """The commands the rate allows at ``now`` (``time.perf_counter``), oldest first; at
        most ``most``."""
        with self._lock:
            if not self._pending:
                return []
            n = min(int(self._limit.refill(now)), len(self._pending))
            n = n if most is None else min(n, most)
            out = [self._pending.popitem(last=False)[1] for _ in range(n)]
            self._limit.tokens -= n
        self.taken += n
        return out

    def ready_at(self, now: float) -> float | None:
        """When :meth:`take` will give something (None: nothing is waiting)."""
        with self._lock:
            if not self._pending:
                return None
            return self._limit.ready_at(now)
