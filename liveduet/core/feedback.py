"""State feedback of the live runtime: the status snapshot and what is echoed to OSC clients.

The conductor hands :meth:`Feedback.update` the engine status plus its own figures a few times a
second and at every change; what differs from what clients last saw (a setting, the phase, the
beat in the bar, the learn target, the model title, a message) goes to the publisher
(:class:`liveduet.live.control.OscControl`). A full dump answers ``/liveduet/state``. Publishing is
best effort: a failing socket is logged, never raised into the conductor.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from liveduet.core.oscmap import changed_values, state_values

log = logging.getLogger("liveduet.live.runtime")
STATUS_PERIOD = 0.2


class Publisher(Protocol):
    """Where state changes go (OscControl)."""

    def publish(self, values: dict[str, Any]) -> None: ...


class Feedback:
    """The latest status snapshot and the values clients have seen."""

    def __init__(self, publisher: Publisher | None = None,
                 period: float = STATUS_PERIOD) -> None:
        self.publisher = publisher
        self.period = period   # seconds between snapshots (inf: only when forced)
        self.snapshot: dict[str, Any] = {}
        self.next_due = 0.0
        self._published: dict[str, Any] = {}
        self._beat: Any = None

    def update(self, now: float, settings: Any, status: dict[str, Any],
               force: bool = False) -> None:
        """Take a new snapshot; echo what changed when forced or on a new beat."""
        self.next_due = now + self.period
        self.snapshot = status
        beat = status.get("beat")
        if force or beat != self._beat:
            self._beat = beat
            self.publish_state(settings, full=False)

    def refresh(self, now: float, engine: Any, clock: Any, force: bool, **figures: Any) -> None:
        """A new snapshot of the engine's status, the clock's tempo, transport, beat and peers
        (Link) and the conductor's ``figures``; see :meth:`update`."""
        status = dict(engine.status())
        status.update(bpm=round(clock.bpm, 2), running=clock.running,
                      beat=engine.beat_at(clock.position(now)), **figures)
        peers = getattr(clock, "peers", None)
        if peers is not None:
            status["peers"] = peers
        self.update(now, engine.settings, status, force)

    def publish_state(self, settings: Any, full: bool) -> None:
        """Echo every value (``full``) or only those that changed since the last echo."""
        if self.publisher is None:
            return
        values = state_values(settings, self.snapshot)
        values["bpm"] = self.snapshot.get("bpm", values.get("bpm"))
        diff = values if full else changed_values(self._published, values)
        self._published = values
        if diff:
            self.publish(diff)

    def publish(self, values: dict[str, Any]) -> None:
        """Send ``values`` now, whether or not they changed (e.g. to undo a refused fader)."""
        if self.publisher is None or not values:
            return
        try:
            self.publisher.publish(values)
        except Exception as err:  # feedback is best effort
            log.warning("OSC feedback failed: %s", err)
        self._published.update(values)


def p99(values: Sequence[float]) -> float:
    """The 99th percentile (0.0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]

