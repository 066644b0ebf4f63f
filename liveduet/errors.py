"""The one exception family of liveduet.

Every error a user can cause is a :class:`LiveduetError` whose message names the problem and
the fix. Foreign errors (onnxruntime, rtmidi, mido, OS) are converted once, at the boundary,
with ``raise ... from err``.
"""

from __future__ import annotations


class LiveduetError(Exception):
    """Base class: a problem the user can fix; the message says what and how."""


class CodecError(LiveduetError):
    """A codec description or a token/event sequence is invalid."""


class ModelError(LiveduetError):
    """A model file breaks the liveduet model contract or cannot be loaded."""

    def __init__(self, path: str, rule: str, problem: str, fix: str) -> None:
        self.path = path
        self.rule = rule
        self.problem = problem
        self.fix = fix
        super().__init__(f"{path}: breaks rule '{rule}': {problem}. Fix: {fix}")


class PortError(LiveduetError):
    """A MIDI port or MIDI system cannot be opened."""


class ConfigError(LiveduetError):
    """A setting, config file or command-line value is invalid."""
