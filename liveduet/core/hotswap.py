"""Model hot-swap: a model loaded off the conductor thread switches in on a step boundary.

:class:`PendingSwap` is the conductor's side (pure): a loaded model waits for the next grid
step (at once while stopped), and the conductor asks :meth:`PendingSwap.take` at each tick and
does the switch itself (releasing the old model's notes). The live runtime loads models on a
thread and hands back a :class:`~liveduet.core.events.Loaded`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from liveduet.core.catalog import for_mode
from liveduet.core.planner import check_mode
from liveduet.core.settings import Set
from liveduet.errors import ConfigError


class PendingSwap:
    """The model waiting to switch in, and the grid position it switches at."""

    def __init__(self) -> None:
        self._pending: tuple[Any, str, float] | None = None

    @property
    def boundary(self) -> float | None:
        """Grid position at which the pending swap happens (None: nothing pending)."""
        return None if self._pending is None else self._pending[2]

    def loaded(self, name: str, model: Any, err: BaseException | None, pos: float,
               running: bool) -> str | None:
        """Hold a loaded model for the next step after ``pos``; a failure returns why."""
        if err is not None:
            return f"model {name!r} not loaded, the old one plays on: {err}"
        self._pending = (model, name, math.floor(pos) + 1.0 if running else -math.inf)
        return None

    def take(self, pos: float) -> tuple[Any, str] | None:
        """The (model, name) to switch to now that position ``pos`` is reached, else None."""
        if self._pending is None or pos < self._pending[2] - 1e-9:  # a position from a
            # time from this very position can come back a rounding error short
            return None
        model, name, _ = self._pending
        self._pending = None
        return model, name


class Swaps:
    """Model loads asked for, the mode change waiting for its model, and the swap pending."""

    def __init__(self, load: Callable[[str], None] | None) -> None:
        self.load = load        # starts loading a model by name (None: no switching here)
        self.pending = PendingSwap()
        self.after: dict[str, Set] = {}   # model name -> the mode change waiting for it

    def request(self, name: str) -> str:
        """Start loading ``name``; the notice to show."""
        if self.load is None:
            return "model switching is not available here"
        self.load(name)
        return f"loading model {name}"

    def for_mode(self, cmd: Set, codec: Any) -> str | None:
        """None when the playing model (of ``codec``) can play mode ``cmd.value``; else start
        loading the bundled model that can and return the notice (the mode change waits for it).

        Raises:
            ConfigError: no model can be loaded here.
        """
        try:
            if codec is not None:
                check_mode(codec, str(cmd.value))
            self.after.clear()  # a later choice of mode wins over one waiting for a model
            return None
        except ConfigError:
            if self.load is None:
                raise
        name = for_mode(str(cmd.value))
        self.after[name] = cmd
        return self.request(name)
