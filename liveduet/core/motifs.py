"""Melodic figures and how one phrase develops another's.

A phrase is a list of :class:`PNote` (onset and duration in grid steps, MIDI pitch), in onset
order. A *figure* is a window of ``FIGURE`` (4) successive notes, described two ways:

* its **interval figure**: the 3 successive semitone intervals (e.g. ``(2, 2, -4)``);
* its **rhythm figure**: the 3 successive onset intervals in steps (e.g. ``(2, 2, 4)``).

Relations between a figure ``a`` (say in a call) and a figure ``b`` (say in its answer):

* **exact**: same intervals, same first pitch;
* **transposition**: same intervals, another first pitch;
* **inversion**: ``b``'s intervals are ``a``'s negated (and not all zero);
* **augmentation**: same intervals and ``b``'s onset intervals are ``a``'s doubled;
* **rhythm reuse**: same onset intervals (pitches free);
* **sequence**: inside one phrase, an interval figure repeated at another pitch by a later,
  non-overlapping window.

Durations are onset intervals, not sounding lengths, so staccato and legato readings of one
figure are the same figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import NamedTuple

FIGURE = 4  # notes in a figure: 3 intervals


class PNote(NamedTuple):
    """One note of a phrase: onset and duration in grid steps, MIDI pitch."""

    onset: int
    dur: int
    pitch: int


Figure = tuple[int, ...]


def intervals(notes: Sequence[PNote]) -> Figure:
    """Successive semitone intervals of ``notes``."""
    return tuple(b.pitch - a.pitch for a, b in pairwise(notes))


def onset_gaps(notes: Sequence[PNote]) -> Figure:
    """Successive onset intervals (steps) of ``notes``."""
    return tuple(b.onset - a.onset for a, b in pairwise(notes))


def windows(notes: Sequence[PNote], size: int = FIGURE) -> list[Sequence[PNote]]:
    """Every run of ``size`` successive notes."""
    return [notes[i:i + size] for i in range(len(notes) - size + 1)]


def interval_figures(notes: Sequence[PNote]) -> set[Figure]:
    """The interval figures of a phrase (transposition-free: a set of interval triples)."""
    return {intervals(w) for w in windows(notes)}


def rhythm_figures(notes: Sequence[PNote]) -> set[Figure]:
    """The rhythm figures (onset-interval triples) of a phrase."""
    return {onset_gaps(w) for w in windows(notes)}


def relation(a: Sequence[PNote], b: Sequence[PNote]) -> str | None:
    """How figure ``b`` relates to figure ``a``: the first of exact, transposition,
    augmentation, inversion, rhythm (in that order), or None."""
    ia, ib = intervals(a), intervals(b)
    if ia == ib:
        if onset_gaps(b) == tuple(2 * g for g in onset_gaps(a)):
            return "augmentation"
        return "exact" if a[0].pitch == b[0].pitch else "transposition"
    if any(ia) and ib == tuple(-x for x in ia):
        return "inversion"
    if onset_gaps(a) == onset_gaps(b):
        return "rhythm"
    return None


def reuses_figure(call: Sequence[PNote], answer: Sequence[PNote]) -> bool:
    """True when the answer holds an interval figure of the call, exact or transposed (the
    motif-reuse measure)."""
    return bool(interval_figures(call) & interval_figures(answer))


def sequences(notes: Sequence[PNote]) -> list[tuple[int, int, int]]:
    """(first window, later window, pitch shift) for each interval figure the phrase repeats
    at another pitch in a later window that shares no note with the first."""
    found = []
    wins = windows(notes)
    for i, a in enumerate(wins):
        for j in range(i + FIGURE, len(wins)):
            b = wins[j]
            shift = b[0].pitch - a[0].pitch
            if shift and intervals(a) == intervals(b):
                found.append((i, j, shift))
    return found


RELATION_WEIGHT = {"exact": 1.0, "transposition": 1.0, "augmentation": 1.0, "inversion": 0.8,
                   "rhythm": 0.4}


class Material:
    """A source's figures, computed once for judging many phrases against it."""

    def __init__(self, notes: Sequence[PNote]) -> None:
        self.notes = notes
        self.figures = interval_figures(notes)
        self.inversions = {tuple(-x for x in iv) for iv in self.figures if any(iv)}
        self.rhythms = rhythm_figures(notes)


def development(source: Sequence[PNote] | Material, phrase: Sequence[PNote]) -> float:
    """How much ``phrase`` builds on ``source``, 0..1. Each figure of the phrase scores the
    weight of its best relation to a source figure (interval figure 1, inversion 0.8, rhythm
    0.4); the result is half the best figure's score (the phrase takes up the source at all)
    and half the mean (how much of it is built that way), plus 0.1 when the phrase sequences
    a source figure."""
    src = source if isinstance(source, Material) else Material(source)
    if len(src.notes) < FIGURE or len(phrase) < FIGURE:
        return 0.0
    ivs = [intervals(w) for w in windows(phrase)]
    scores = [1.0 if iv in src.figures else
              RELATION_WEIGHT["inversion"] if iv in src.inversions else
              RELATION_WEIGHT["rhythm"] if onset_gaps(w) in src.rhythms else 0.0
              for iv, w in zip(ivs, windows(phrase), strict=True)]
    score = 0.5 * max(scores) + 0.5 * sum(scores) / len(scores)
    if any(ivs[i] in src.figures for i, _, _ in sequences(phrase)):
        score = min(1.0, score + 0.1)
    return score


def self_reuse(notes: Sequence[PNote], split: int) -> float | None:
    """Share of interval figures starting at or after onset ``split`` already heard before it
    (windows wholly before ``split``); None when the second half has no figure."""
    first = [n for n in notes if n.onset < split]
    second_wins = [w for w in windows(notes) if w[0].onset >= split]
    if not second_wins:
        return None
    heard = interval_figures(first)
    return sum(intervals(w) in heard for w in second_wins) / len(second_wins)


def phrase_of(events: Iterable[tuple[int, int, int]]) -> list[PNote]:
    """A phrase from (onset, duration, pitch) triples, sorted by onset (highest pitch wins a
    shared onset: a melody's reading of a chord)."""
    best: dict[int, PNote] = {}
    for onset, dur, pitch in events:
        cur = best.get(onset)
        if cur is None or pitch > cur.pitch:
            best[onset] = PNote(int(onset), int(dur), int(pitch))
    return [best[k] for k in sorted(best)]
