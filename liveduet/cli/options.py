"""Pieces shared by the subcommands' options: renamed flags and lengths in the user's units."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from liveduet.core.metre import parse_metre
from liveduet.core.settings import FIELD_BY_NAME, Field
from liveduet.core.turns import parse_steps
from liveduet.errors import ConfigError

RENAMED = {"--channel": "--out-channel"}
"""Old flag -> new flag of ``run``, ``generate`` (render's ``--channel`` is ``--in-channel``)."""


class OldName(argparse.Action):
    """An old flag kept working for one release: sets the new option's value and says so."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str = "",
                 **kwargs: Any) -> None:
        self.new = new
        kwargs.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(f"liveduet: note: {option_string} is now {self.new}; the old name still works "
              "in this release", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_in_channel(p: argparse.ArgumentParser, what: str, old: str | None = None) -> None:
    """``--in-channel CH`` (and an old name for it, hidden)."""
    p.add_argument("--in-channel", type=int, metavar="CH", help=what)
    if old is not None:
        p.add_argument(old, dest="in_channel", type=int, action=OldName, new="--in-channel")


def check_channel(flag: str, value: Any) -> int | None:
    """A MIDI channel 1-16 (or None); ConfigError in one line otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 16:
        raise ConfigError(f"{flag} {value!r}: give a MIDI channel 1-16")
    return value


def listen_gap_steps(text: str | int, steps_per_beat: int, meter: str) -> int:
    """``--listen-gap`` in steps; out of range, the error speaks in the unit that was given."""
    steps = parse_steps(text, steps_per_beat, meter)
    field = FIELD_BY_NAME["listen_gap"]
    high = int(field.high or 0)
    if not field.low <= steps <= high:
        metre = parse_metre(meter, steps_per_beat)
        raise ConfigError(
            f"--listen-gap {text}: that is {steps} steps, the longest gap is {high} steps "
            f"({high / metre.beat_steps:g} beats, {high / metre.bar_steps:g} bars of {meter})")
    return steps


def setting_help(f: Field) -> str:
    """The help of a setting's flag: what it does and what it takes."""
    extra = f" ({', '.join(f.choices)})" if f.choices else f" ({f.low:g}..{f.high:g})"
    if f.name == "listen_gap":
        extra = " (steps, or beats/bars such as 1b, 2bar)"
    if f.name == "key":
        extra = " (C..B; flats such as Bb too)"
    if f.name == "mode":
        extra = " (harmonise is accepted too)"
    return f.help + extra
