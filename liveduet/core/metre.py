"""Metre: bars, beats and the metrical position of every grid step.

The grid's unit is fixed by the codec (``steps_per_beat`` steps per quarter note, 16ths by
default) and the tempo figure (bpm) always counts quarter notes, as DAWs and MIDI clock do
(24 ppqn is 24 ticks per quarter note). A metre groups those steps into beats and bars:

* simple metres (2/4, 3/4, 4/4, 5/4, 2/2, 3/2 ...) have a beat of one denominator note;
* compound metres (6/8, 9/8, 12/8, 6/4 ...) have a dotted beat of three denominator notes: a
  6/8 bar has two beats of a dotted quarter (6 sixteenths each);
* 7/8 and other odd numerators over 8 count each eighth as a beat (no fixed grouping).

So at 120 bpm a 6/8 bar lasts three quarter notes (1.5 s) and holds two beats of 0.75 s; a
listen gap of ``1b`` in 6/8 is a dotted quarter.

Every step has a *metrical position* id (scheme ``metre-v1``): ``beat * 12 + sub`` with
``beat`` the beat index inside the bar (0..7, clipped) and ``sub`` the step inside the beat
(0..11, clipped), so ``0`` is always a bar line. Models that declare a ``position`` input get
these ids fed by the engine (see docs/model-contract.md); training computes them with the same
functions from each piece's own time signatures.

Which step a token's position describes: the step of the token the model predicts next. In
the flat input ``[BOS, step0/voice0, step0/voice1, ...]`` input ``i`` (BOS is 0) predicts a
token of step ``i // n_voices`` (:func:`predicted_step`), so BOS carries step 0's position and
the last voice of step ``n`` carries step ``n + 1``'s.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from liveduet.errors import ConfigError

METRES = ("4/4", "3/4", "2/4", "2/2", "6/8", "9/8", "12/8", "5/4", "7/8")
POSITION_SCHEME = "metre-v1"
MAX_BEATS = 8
MAX_SUB = 12
POSITION_SIZE = MAX_BEATS * MAX_SUB
_DENOMINATORS = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class Metre:
    """A time signature ``numerator/denominator`` on a grid of ``steps_per_quarter`` steps."""

    numerator: int = 4
    denominator: int = 4
    steps_per_quarter: int = 4

    def __post_init__(self) -> None:
        if not 1 <= self.numerator <= 32 or self.denominator not in _DENOMINATORS:
            raise ConfigError(f"metre {self.numerator}/{self.denominator} is not understood; "
                              f"use one of {', '.join(METRES)}")
        if (self.steps_per_quarter * 4) % self.denominator:
            raise ConfigError(f"metre {self.label} needs a finer grid than "
                              f"{self.steps_per_quarter} steps per quarter note")

    @property
    def label(self) -> str:
        """The time signature as written, e.g. ``6/8``."""
        return f"{self.numerator}/{self.denominator}"

    @property
    def compound(self) -> bool:
        """True for dotted-beat metres (6/8, 9/8, 12/8, 6/4 ...)."""
        return self.denominator >= 4 and self.numerator >= 6 and self.numerator % 3 == 0

    @property
    def unit_steps(self) -> int:
        """Grid steps in one denominator note."""
        return self.steps_per_quarter * 4 // self.denominator

    @property
    def beat_steps(self) -> int:
        """Grid steps in one beat (a dotted beat in compound metres)."""
        return self.unit_steps * (3 if self.compound else 1)

    @property
    def beats(self) -> int:
        """Beats in a bar."""
        return self.numerator // 3 if self.compound else self.numerator

    @property
    def bar_steps(self) -> int:
        """Grid steps in one bar."""
        return self.unit_steps * self.numerator

    @property
    def quarters_per_bar(self) -> float:
        """Quarter notes in one bar (the bar's length at the bpm figure)."""
        return self.numerator * 4 / self.denominator

    def with_grid(self, steps_per_quarter: int) -> Metre:
        """The same metre on another grid."""
        return Metre(self.numerator, self.denominator, steps_per_quarter)

    def position_id(self, step_in_bar: int) -> int:
        """The ``metre-v1`` position id of a step counted from a bar line."""
        s = step_in_bar % self.bar_steps
        beat, sub = divmod(s, self.beat_steps)
        return min(beat, MAX_BEATS - 1) * MAX_SUB + min(sub, MAX_SUB - 1)

    def is_beat(self, step_in_bar: int) -> bool:
        """True when the step falls on a beat of this metre."""
        return (step_in_bar % self.bar_steps) % self.beat_steps == 0

    def __str__(self) -> str:
        return self.label


def parse_metre(text: str | Metre, steps_per_quarter: int = 4) -> Metre:
    """``'6/8'`` -> Metre; ConfigError names the accepted forms for anything else."""
    if isinstance(text, Metre):
        return text.with_grid(steps_per_quarter)
    raw = str(text).strip().replace(" ", "")
    num, sep, den = raw.partition("/")
    try:
        if not sep:
            raise ValueError(raw)
        metre = Metre(int(num), int(den), steps_per_quarter)
    except (ValueError, ConfigError) as err:
        raise ConfigError(f"meter {text!r} is not understood; use one of {', '.join(METRES)} "
                          "(compound metres count dotted beats)") from err
    return metre


def predicted_step(index: int, n_voices: int) -> int:
    """The grid step of the token predicted after flat input ``index`` (BOS = 0)."""
    return index // n_voices


@dataclass(frozen=True)
class MetreChange:
    """A metre taking effect at grid step ``step`` (a bar line of the new metre)."""

    step: int
    metre: Metre


class MetreMap:
    """The metre of every step: a list of changes, each starting on its own bar line.

    Steps before the first change belong to the first metre, with bars counted back from
    its start (so a pickup before step ``origin`` gets the positions of a bar's end).
    """

    def __init__(self, changes: Iterable[MetreChange] | Metre = Metre(),
                 origin: int = 0) -> None:
        if isinstance(changes, Metre):
            changes = (MetreChange(origin, changes),)
        items = sorted(changes, key=lambda c: c.step)
        if not items:
            raise ConfigError("a metre map needs at least one metre")
        self.changes: tuple[MetreChange, ...] = tuple(items)
        self._starts = [c.step for c in self.changes]

    def at(self, step: int) -> MetreChange:
        """The change in force at ``step``."""
        i = bisect.bisect_right(self._starts, step) - 1
        return self.changes[max(i, 0)]

    def metre(self, step: int) -> Metre:
        """The metre at ``step``."""
        return self.at(step).metre

    def step_in_bar(self, step: int) -> int:
        """Steps since the last bar line at or before ``step``."""
        change = self.at(step)
        return (step - change.step) % change.metre.bar_steps

    def position_id(self, step: int) -> int:
        """The ``metre-v1`` position id of ``step``."""
        return self.at(step).metre.position_id(self.step_in_bar(step))

    def position_ids(self, start: int, count: int) -> list[int]:
        """Position ids of ``count`` steps from ``start``."""
        return [self.position_id(s) for s in range(start, start + count)]

    def is_bar_line(self, step: int) -> bool:
        """True when ``step`` starts a bar."""
        return self.step_in_bar(step) == 0

    def is_beat(self, step: int) -> bool:
        """True when ``step`` starts a beat."""
        return self.metre(step).is_beat(self.step_in_bar(step))

    def next_bar_line(self, step: int) -> int:
        """The first bar line at or after ``step``."""
        change = self.at(step)
        k = self.step_in_bar(step)
        return step if k == 0 else step + change.metre.bar_steps - k

    def next_beat(self, step: int) -> int:
        """The first beat at or after ``step``."""
        metre = self.metre(step)
        k = self.step_in_bar(step) % metre.beat_steps
        return step if k == 0 else step + metre.beat_steps - k

    def change_at_next_bar(self, step: int, metre: Metre) -> MetreMap:
        """A map where ``metre`` takes over at the first bar line at or after ``step``."""
        at = self.next_bar_line(step)
        kept = [c for c in self.changes if c.step < at]
        return MetreMap([*kept, MetreChange(at, metre)])

    def bar_lines(self, start: int, end: int) -> list[int]:
        """Every bar line in ``[start, end)``."""
        out = []
        s = self.next_bar_line(start)
        while s < end:
            out.append(s)
            s = self.next_bar_line(s + 1)
        return out

    def labels(self) -> Sequence[tuple[int, str]]:
        """(step, label) of every change."""
        return [(c.step, c.metre.label) for c in self.changes]


class StepGrid:
    """A :class:`MetreMap` seen from the engine's steps: step ``n`` is grid position
    ``n + offset`` (the offset moves when the transport restarts elsewhere)."""

    def __init__(self, metres: MetreMap, offset: int = 0) -> None:
        self.metres = metres
        self.offset = offset

    def metre(self, step: int) -> Metre:
        """The metre at ``step``."""
        return self.metres.metre(step + self.offset)

    def position_id(self, step: int) -> int:
        """The ``metre-v1`` position id of ``step``."""
        return self.metres.position_id(step + self.offset)

    def is_bar_line(self, step: int) -> bool:
        """True when ``step`` starts a bar."""
        return self.metres.is_bar_line(step + self.offset)

    def is_beat(self, step: int) -> bool:
        """True when ``step`` starts a beat."""
        return self.metres.is_beat(step + self.offset)

    def bar_steps(self, step: int) -> int:
        """Steps in the bar that holds ``step``."""
        return self.metre(step).bar_steps

    def beat_steps(self, step: int) -> int:
        """Steps in a beat of the metre at ``step``."""
        return self.metre(step).beat_steps
