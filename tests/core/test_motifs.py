"""Figures and their relations on hand-made phrases."""

from __future__ import annotations

import pytest

from liveduet.core.motifs import (
    PNote,
    development,
    interval_figures,
    intervals,
    onset_gaps,
    phrase_of,
    relation,
    reuses_figure,
    rhythm_figures,
    self_reuse,
    sequences,
)


def line(pitches: list[int], gaps: list[int] | None = None, start: int = 0) -> list[PNote]:
    """Notes at successive onsets (default: one every 2 steps)."""
    gaps = gaps or [2] * len(pitches)
    out, t = [], start
    for p, g in zip(pitches, gaps, strict=True):
        out.append(PNote(t, g, p))
        t += g
    return out


CALL = line([60, 62, 64, 60, 67])  # C D E C G: figures (2, 2, -4) and (2, -4, 7)


def test_interval_and_rhythm_figures() -> None:
    assert intervals(CALL[:4]) == (2, 2, -4)
    assert interval_figures(CALL) == {(2, 2, -4), (2, -4, 7)}
    assert onset_gaps(line([60, 62, 64, 65], [1, 1, 2, 4])) == (1, 1, 2)
    assert rhythm_figures(line([60, 62, 64, 65], [1, 1, 2, 4])) == {(1, 1, 2)}


def test_exact_and_transposition() -> None:
    assert relation(CALL[:4], line([60, 62, 64, 60])) == "exact"
    assert relation(CALL[:4], line([67, 69, 71, 67])) == "transposition"
    assert reuses_figure(CALL, line([55, 67, 69, 71, 67]))
    assert not reuses_figure(CALL, line([60, 61, 62, 63, 64]))


def test_inversion() -> None:
    assert relation(CALL[:4], line([72, 70, 68, 72])) == "inversion"
    flat = line([60, 60, 60, 60])
    assert relation(flat, flat) == "exact"  # a repeated note is not its own inversion
    assert relation(flat, line([60, 60, 60, 60], [1, 1, 1, 1])) == "exact"


def test_augmentation() -> None:
    fast = line([60, 62, 64, 60], [1, 1, 2, 2])
    slow = line([65, 67, 69, 65], [2, 2, 4, 4])
    assert relation(fast, slow) == "augmentation"
    assert relation(slow, fast) == "transposition"  # diminution is not augmentation


def test_rhythm_reuse() -> None:
    a = line([60, 62, 64, 65], [1, 1, 2, 2])
    b = line([60, 59, 67, 62], [1, 1, 2, 2])
    assert relation(a, b) == "rhythm"
    assert relation(a, line([60, 59, 67, 62], [2, 1, 1, 2])) is None


def test_sequence() -> None:
    phrase = line([60, 62, 64, 60, 62, 64, 66, 62])  # (2, 2, -4) then up a tone
    assert (0, 4, 2) in sequences(phrase)
    repeat = line([60, 62, 64, 60, 60, 62, 64, 60])  # same pitch: a repeat, not a sequence
    assert sequences(repeat) == []


def test_development_ranks_reuse_above_unrelated() -> None:
    reuse = line([67, 69, 71, 67, 74])         # the call's figures, transposed
    inverted = line([72, 70, 68, 72, 65])      # inverted
    unrelated = line([60, 61, 63, 70, 58], [3, 1, 4, 2, 6])
    d_reuse, d_inv, d_none = (development(CALL, p) for p in (reuse, inverted, unrelated))
    assert d_reuse == pytest.approx(1.0)
    assert 0.5 < d_inv < d_reuse
    assert d_none == 0.0
    assert development(CALL[:3], reuse) == 0.0  # a source too short to hold a figure


def test_self_reuse_and_phrase_of() -> None:
    notes = CALL + line([65, 67, 69, 65, 72], start=10)
    assert self_reuse(notes, 10) == pytest.approx(1.0)
    assert self_reuse(CALL, 100) is None
    assert phrase_of([(4, 2, 60), (0, 4, 55), (4, 2, 64)]) == [PNote(0, 4, 55), PNote(4, 2, 64)]
