"""The critic: which of several candidate phrases to play.

A candidate's score adds up, with the weights below:

* **development** of the source material (:func:`liveduet.core.motifs.development`), times
  ``develop`` (0 ignores the source, 1 builds on it as strongly as the critic can);
* **likelihood**: the model's own mean log-probability per note (untempered) and its worst
  note, so a candidate with an odd note loses;
* **in key**: the share of notes in the key heard in the source (or the key setting);
* **tonal closure**: the last note on the tonic (or its third or fifth);
* **metric closure**: the last note starting on a bar line (or half bar, or beat);
* **entry**: an answer's first note on its first step (answers start where they are due);
* **pace**: how far the candidate's notes per step stray from the line's target pace (the
  corpus's at the density setting, :mod:`liveduet.core.pace`), as ``|log(rate / target)|``, so
  the critic cannot prefer sparse phrases for having fewer notes to get wrong.

A candidate with a verbatim training run longer than ``max_copy`` notes is rejected (when all
are, the one with the shortest run plays).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from liveduet.core.copyindex import CopyIndex
from liveduet.core.motifs import Material, PNote, development

W_DEVELOP = 4.0
W_LOGP = 0.5
W_WORST = 0.1
W_KEY = 4.0
W_TONAL = 0.6
W_METRIC = 0.4
W_ENTER = 0.5
W_PACE = 1.0
TONAL = {0: 1.0, 3: 0.6, 4: 0.6, 7: 0.8}  # semitones above the tonic: tonic, thirds, fifth


@dataclass(frozen=True)
class Context:
    """What every candidate of one phrase is judged against."""

    source: Material                 # the material to develop (the call, or what came before)
    prefix: Sequence[PNote]          # the machine's notes just before (for copies across)
    key: tuple[int, frozenset[int]] | None  # tonic pitch class and scale, or None
    steps_per_beat: int
    steps_per_bar: int
    develop: float
    max_copy: int
    index: CopyIndex | None
    entry: int | None = None         # an answer's first step (None: a continuation phrase)
    pace: float | None = None        # target onsets per step of the line (None: no pace term)
    span: int = 0                    # steps of the phrase (for the pace term)


@dataclass(frozen=True)
class Verdict:
    """One candidate's score, its parts, and its longest verbatim run."""

    score: float
    develop: float
    logp: float
    in_key: float
    copy: int


def metric_weight(onset: int, steps_per_beat: int, steps_per_bar: int) -> float:
    """How strong the metrical position of ``onset`` is: bar 1, half bar 0.7, beat 0.4."""
    if onset % steps_per_bar == 0:
        return 1.0
    if (2 * onset) % steps_per_bar == 0:
        return 0.7
    return 0.4 if onset % steps_per_beat == 0 else 0.0


def judge(notes: Sequence[PNote], logps: Sequence[float], ctx: Context) -> Verdict:
    """Score one candidate: its notes and the log-probability of each note-on token."""
    if not notes:
        return Verdict(-math.inf, 0.0, 0.0, 0.0, 0)
    dev = development(ctx.source, notes)
    logp = sum(logps) / len(notes)
    worst = min(logps, default=0.0)
    in_key = tonal = 0.0
    if ctx.key is not None:
        tonic, pcs = ctx.key
        in_key = sum(n.pitch % 12 in pcs for n in notes) / len(notes)
        tonal = TONAL.get((notes[-1].pitch - tonic) % 12, 0.0)
    metric = metric_weight(notes[-1].onset, ctx.steps_per_beat, ctx.steps_per_bar)
    copy = ctx.index.longest([*ctx.prefix, *notes]) if ctx.index is not None else 0
    enters = ctx.entry is not None and notes[0].onset == ctx.entry
    score = (W_DEVELOP * ctx.develop * dev + W_LOGP * logp + W_WORST * worst + W_KEY * in_key
             + W_TONAL * tonal + W_METRIC * metric + W_ENTER * enters)
    if ctx.pace and ctx.span > 0:
        score -= W_PACE * abs(math.log(len(notes) / ctx.span / ctx.pace))
    return Verdict(score, dev, logp, in_key, copy)


def best(verdicts: Sequence[Verdict], max_copy: int) -> int:
    """The row to play: the best score among rows within ``max_copy`` (first on ties); when
    every row copies, the shortest copy."""
    ok = [i for i, v in enumerate(verdicts) if v.copy <= max_copy]
    if not ok:
        return min(range(len(verdicts)), key=lambda i: (verdicts[i].copy, -verdicts[i].score))
    return max(ok, key=lambda i: (verdicts[i].score, -i))
