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
