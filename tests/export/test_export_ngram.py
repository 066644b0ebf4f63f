"""export/ngram.py: the Kneser-Ney baseline is a proper distribution and learns context."""

from __future__ import annotations

import numpy as np
import pytest

from export.ngram import KneserNey, score


def _random_seqs(vocab: int, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.concatenate([[0], rng.integers(1, vocab, rng.integers(3, 30))]) for _ in range(n)]


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_probabilities_sum_to_one_in_seen_and_unseen_contexts(order: int) -> None:
    vocab = 6
    model = KneserNey(vocab, order).fit(_random_seqs(vocab, 40, 0))
    for ctx in ([0, 1, 2, 3], [0, 5, 5, 5, 5, 5, 5, 5]):
        probs = [np.exp(model.logprobs([np.array([*ctx, w])])[-1]) for w in range(vocab)]
        assert sum(probs) == pytest.approx(1.0, abs=1e-9)


def test_longer_context_predicts_a_periodic_pattern_better() -> None:
    pattern = np.array([3, 1, 1, 4, 2, 5, 1, 3, 3, 1])  # needs > 2 tokens of context
    seqs = [np.concatenate([[0], np.tile(pattern, 6)]) for _ in range(5)]
    nll = {n: score(KneserNey(6, n).fit(seqs), seqs[:1])["nll_per_token"] for n in (1, 2, 4)}
    assert nll[4] < nll[2] < nll[1]
    assert nll[4] < 0.3


def test_score_counts_notes_as_note_on_targets() -> None:
    seqs = [np.array([0, 3, 1, 1, 4, 2, 5])]
    result = score(KneserNey(6, 2).fit(seqs), seqs)
    assert result["tokens"] == 6 and result["notes"] == 3
    assert result["nll_per_note"] == pytest.approx(result["nll_per_token"] * 6 / 3)


def test_order_too_large_for_int64_keys_is_refused() -> None:
    with pytest.raises(ValueError, match="int64"):
        KneserNey(55, 11)
