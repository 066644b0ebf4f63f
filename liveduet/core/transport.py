"""What liveduet may do with a clock source: lead it, poll it, or follow its bytes.

A :class:`Transport` wraps any :class:`~liveduet.core.clock.Clock` and says, from what the source
can do rather than what class it is, whether liveduet sets its tempo and runs it (internal,
Ableton Link), polls it for a transport of its own (Link, JACK transport) or feeds it MIDI
clock bytes (a followed DAW). Pure: time comes in as an argument.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from liveduet.core.clock import Clock
from liveduet.core.settings import Act, Action, Command, Set


class Transport:
    """The conductor's handle on its clock source."""

    def __init__(self, clock: Clock) -> None:
        self.clock: Any = clock
        self.follow = getattr(clock, "on_message", None)  # takes MIDI clock bytes
        self.poll = getattr(clock, "poll", None)          # a transport of its own
        self.leads = callable(getattr(clock, "set_bpm", None))  # liveduet sets its tempo

    @property
    def starts_itself(self) -> bool:
        """True when liveduet starts the clock when it starts (the internal tempo)."""
        return self.leads and self.poll is None

    def play_pos(self, t: float) -> float:
        """Where play starts: the clock's position, or the next whole step when the clock's
        grid is absolute (Link beats: the engine's steps must fall on the session's 16ths)."""
        pos = self.clock.position(t)
        return float(math.ceil(pos - 1e-6)) if self.poll is not None else pos

    def heard(self, msg: Sequence[int], t: float) -> str | None:
        """A MIDI transport byte for a followed clock: its event (play/stop/locate) or None."""
        return None if self.follow is None else self.follow(msg, t)

    def command(self, cmd: Command, t: float) -> float:
        """Apply tempo and play/stop to a clock liveduet leads; return the grid position the
        engine applies ``cmd`` at."""
        clock = self.clock
        if isinstance(cmd, Set) and cmd.name == "bpm" and self.leads:
            clock.set_bpm(float(cmd.value), t)  # the schedule is keyed by position: still right
        if isinstance(cmd, Action) and self.leads:
            if cmd.name == Act.STOP and clock.running:
                clock.stop(t)
            elif cmd.name == Act.PLAY and not clock.running:
                # resume from the start of the step it stopped in: the grid stays on whole
                # steps (the 16ths of MIDI clock out and of a Link session)
                clock.start(t, float(math.floor(clock.position(t))))
        if isinstance(cmd, Action) and cmd.name == Act.PLAY:
            return self.play_pos(t)
        return float(clock.position(t))
