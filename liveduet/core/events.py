"""What reaches the conductor: stamped MIDI, control commands, loaded models, wake-ups.

The live runtime's queue carries these from the MIDI callback, the OSC server, the control box
and the model loader thread; offline drivers (render, the fuzz tests) hand them to the
:class:`liveduet.core.conductor.Conductor` directly in virtual time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from liveduet.core.settings import Command


@dataclass(frozen=True, slots=True)
class Midi:
    """One MIDI message and the time it arrived (the input callback's stamp)."""

    t: float
    msg: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Control:
    """A command from OSC, a mapped controller or a test."""

    cmd: Command


@dataclass(frozen=True, slots=True)
class Loaded:
    """A model load finished: the model, or the error that stopped it."""

    name: str
    model: Any
    error: BaseException | None


@dataclass(frozen=True, slots=True)
class Wake:
    """Nothing to hand over: the conductor looks at its control box and its clock."""


WAKE = Wake()
Event = Midi | Control | Loaded | Wake
