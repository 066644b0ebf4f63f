"""Model hot-swap: load the new model off the conductor thread, switch on a step boundary.

:meth:`HotSwap.request` starts a loader thread that puts ``("loaded", name, model, error)`` on
the conductor's queue; :meth:`HotSwap.loaded` turns that into a pending swap at the next grid
step (at once while stopped) or into the reason the old model plays on; the conductor asks
:meth:`HotSwap.take` at each tick and does the switch itself (releasing the old model's notes).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any


class HotSwap:
    """The pending model swap of one runtime."""

    def __init__(self, loader: Callable[[str], Any] | None,
                 put: Callable[[tuple[Any, ...]], None]) -> None:
        self.loader = loader
        self._put = put
        self._pending: tuple[Any, str, float] | None = None

    @property
    def boundary(self) -> float | None:
        """Grid position at which the pending swap happens (None: nothing pending)."""
        return None if self._pending is None else self._pending[2]

    def request(self, name: str) -> str:
        """Start loading ``name`` in a thread; return the notice to show."""
        loader, put = self.loader, self._put
        if loader is None:
            return "model switching is not available here"

        def work() -> None:
            try:
                put(("loaded", name, loader(name), None))
            except Exception as err:  # any load failure is reported, the old model plays on
                put(("loaded", name, None, err))

        threading.Thread(target=work, name="liveduet-loader", daemon=True).start()
        return f"loading model {name}"

    def loaded(self, name: str, model: Any, err: BaseException | None, pos: float,
               running: bool) -> str | None:
        """Hold a loaded model for the next step after ``pos``; a failure returns why."""
        if err is not None:
            return f"model {name!r} not loaded, the old one plays on: {err}"
        self._pending = (model, name, math.floor(pos) + 1.0 if running else -math.inf)
        return None

    def take(self, pos: float) -> tuple[Any, str] | None:
        """The (model, name) to switch to now that position ``pos`` is reached, else None."""
        if self._pending is None or pos < self._pending[2]:
            return None
        model, name, _ = self._pending
        self._pending = None
        return model, name
