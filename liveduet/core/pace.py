"""Pace: keep a machine line's note rate near its training corpus's, whatever it drifted to.

A sampled line drifts: after a few long notes the model's own context says "slow air" and it
keeps holding (a 16-bar piece of whole notes), or it runs on in 16ths. Each machine voice keeps
an exponential moving average of its onsets per step; the event draw gets a logit bias on notes
of ``PACE_GAIN * log(target / rate)``, so a line that fell below the corpus's pace is pushed to
move and one that races is calmed, while the model still chooses where and what. ``density``
moves the target: 0.5 is the corpus's pace, each 0.25 away doubles or halves it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from liveduet.core.metre import Metre

PACE_WINDOW = 32     # steps the moving average mostly looks back (two bars of 4/4 in 16ths)
PACE_GAIN = 1.5      # logit bias per natural-log unit of deviation
PACE_LIMIT = 3.0     # the bias never exceeds this in either direction
DEFAULT_NOTES_PER_QUARTER = 1.5  # for a model whose card gives no corpus pace


def target_rate(corpus_per_step: float, density: float) -> float:
    """Onsets per step the line aims at for ``density`` (0.5 = the corpus's pace)."""
    return corpus_per_step * 2.0 ** (4.0 * (density - 0.5))


def next_rate(rate: float, onset: bool) -> float:
    """The moving average after one more step of the line."""
    alpha = 1.0 / PACE_WINDOW
    return rate + alpha * ((1.0 if onset else 0.0) - rate)


def pace_bias(rate: float, target: float) -> float:
    """Logit bias on a note event for a line at ``rate`` aiming at ``target``."""
    floor = 0.25 / PACE_WINDOW
    raw = PACE_GAIN * math.log(max(target, floor) / max(rate, floor))
    return max(-PACE_LIMIT, min(PACE_LIMIT, raw))


DEFAULT_MAX_HOLD_BEATS = 8.0  # the longest hold, in beats, for a model whose card gives none


class CorpusPace:
    """The pace and longest note of a model's training corpus per metre, from its card's
    ``metrics.corpus`` (note-ons per beat and note lengths in beats of the metre, overall and
    under ``metres``); the defaults stand in where the card is silent."""

    def __init__(self, card: Mapping[str, Any]) -> None:
        metrics = card.get("metrics")
        corpus = metrics.get("corpus") if isinstance(metrics, Mapping) else None
        self.corpus: Mapping[str, Any] = corpus if isinstance(corpus, Mapping) else {}
        metres = self.corpus.get("metres")
        self.metres: Mapping[str, Any] = metres if isinstance(metres, Mapping) else {}

    def _figure(self, metre: Metre, name: str) -> float | None:
        for source in (self.metres.get(metre.label), self.corpus):
            value = source.get(name) if isinstance(source, Mapping) else None
            if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
                return float(value)
        return None

    def rate(self, metre: Metre) -> float:
        """Note onsets per grid step in ``metre``."""
        per_beat = self._figure(metre, "notes_per_beat")
        if per_beat is None:
            return DEFAULT_NOTES_PER_QUARTER / metre.steps_per_quarter
        return per_beat / metre.beat_steps

    def hold_steps(self, metre: Metre) -> int:
        """Steps of the longest note the corpus holds in ``metre``, leaving out its rarest
        0.1% (``hold_beats_p999``: a folk corpus's maximum is a 55-beat outlier), else its
        maximum."""
        beats = (self._figure(metre, "hold_beats_p999") or self._figure(metre, "hold_beats_max")
                 or DEFAULT_MAX_HOLD_BEATS)
        return max(1, math.ceil(beats * metre.beat_steps - 1e-9))
