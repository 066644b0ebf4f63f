"""Baseline: an interpolated Kneser-Ney n-gram model over the same token streams (numpy only).

Every n-gram of up to ``order`` tokens is packed into one int64 key (base = vocab size, newest
token in the lowest digit), counted with ``np.unique`` and looked up with ``np.searchsorted``, so
fitting and scoring are vectorised. The highest order uses raw counts, lower orders use
continuation counts (how many distinct tokens precede the n-gram), each order has its own
absolute discount ``D = n1 / (n1 + 2 n2)``, and the recursion ends in the uniform distribution.
Sequences start with BOS and are left-padded with ``order - 1`` more BOS; BOS is never scored.

    python -m export.ngram melody --orders 2 3 4 5 6 8     # fit on train, score validation
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from liveduet.core.codec import BOS, N_SPECIAL


@dataclass
class _Table:
    keys: np.ndarray      # sorted n-gram keys
    counts: np.ndarray    # raw (highest order) or continuation counts
    ctx_keys: np.ndarray  # sorted context keys
    ctx_total: np.ndarray
    ctx_types: np.ndarray
    discount: float


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(keys, query)
    idx = np.minimum(idx, len(keys) - 1)
    found = keys[idx] == query if len(keys) else np.zeros(query.shape, bool)
    return np.where(found, values[idx] if len(keys) else 0, 0)


class KneserNey:
    """Interpolated Kneser-Ney language model over token ids ``0..vocab-1``."""

    def __init__(self, vocab: int, order: int) -> None:
        if order < 1 or vocab ** order >= 2**62:
            raise ValueError(f"order {order} with vocab {vocab} does not fit an int64 key")
        self.vocab, self.order = vocab, order
        self.tables: list[_Table] = []

    def _grams(self, seqs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Keys of the k-grams (k = 1..order) ending at every scored position."""
        out: list[list[np.ndarray]] = [[] for _ in range(self.order)]
        pad = self.order - 1
        for seq in seqs:
            s = np.concatenate([np.full(pad, BOS), np.asarray(seq, dtype=np.int64)])
            targets = np.arange(pad + 1, len(s))
            key = np.zeros(len(targets), dtype=np.int64)
            for k in range(self.order):
                key = key + s[targets - k] * self.vocab**k
                out[k].append(key)
        return [np.concatenate(parts) for parts in out]

    def fit(self, seqs: Sequence[np.ndarray]) -> KneserNey:
        """Count the n-grams of ``seqs`` (each starting with BOS)."""
        grams = self._grams(seqs)
        uniq = [np.unique(g, return_counts=True) for g in grams]
        self.tables = []
        for k in range(self.order):
            keys, counts = uniq[k]
            if k < self.order - 1:  # continuation counts from the distinct (k+2)-grams
                keys, counts = np.unique(uniq[k + 1][0] % self.vocab ** (k + 1),
                                         return_counts=True)
            self.tables.append(self._table(keys, counts))
        return self

    def _table(self, keys: np.ndarray, counts: np.ndarray) -> _Table:
        ctx = keys // self.vocab
        order = np.argsort(ctx, kind="stable")
        ctx_keys, start = np.unique(ctx[order], return_index=True)
        total = np.add.reduceat(counts[order], start) if len(keys) else np.zeros(0, np.int64)
        types = np.diff(np.append(start, len(keys)))
        n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
        d = n1 / (n1 + 2 * n2) if n1 + n2 else 0.5
        return _Table(keys, counts, ctx_keys, total, types, min(max(d, 0.05), 0.95))

    def logprobs(self, seqs: Sequence[np.ndarray]) -> np.ndarray:
        """Natural-log probability of every token after the first BOS of each sequence."""
        grams = self._grams(seqs)
        p = np.full(len(grams[0]), 1.0 / self.vocab)
        for k, tab in enumerate(self.tables):
            c = _lookup(tab.keys, tab.counts, grams[k]).astype(np.float64)
            ctx = grams[k] // self.vocab if k else np.zeros_like(grams[k])
            total = _lookup(tab.ctx_keys, tab.ctx_total, ctx).astype(np.float64)
            types = _lookup(tab.ctx_keys, tab.ctx_types, ctx).astype(np.float64)
            safe = np.maximum(total, 1.0)
            mixed = np.maximum(c - tab.discount, 0.0) / safe + tab.discount * types / safe * p
            p = np.where(total > 0, mixed, p)
        return np.log(p)


def score(model: KneserNey, seqs: Sequence[np.ndarray]) -> dict[str, float]:
    """NLL per token and per note (NOTE_ON targets) of ``seqs`` under ``model``."""
    lp = model.logprobs(seqs)
    targets = np.concatenate([np.asarray(s)[1:] for s in seqs])
    notes = int((targets >= N_SPECIAL).sum())
    return {"nll_per_token": float(-lp.mean()), "nll_per_note": float(-lp.sum() / max(notes, 1)),
            "tokens": int(lp.size), "notes": notes}


def evaluate_orders(corpus_name: str, orders: Sequence[int]) -> dict[str, dict[str, float]]:
    """Fit on the training split of a cached corpus, score its validation split, per order."""
    from export.corpus import load
    from export.data import sequence

    corpus = load(corpus_name)
    codec = corpus.codec
    train = [sequence(codec, p) for p in corpus.split(False)]
    valid = [sequence(codec, p) for p in corpus.split(True)]
    return {str(n): score(KneserNey(codec.vocab_size, n).fit(train), valid) for n in orders}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(prog="python -m export.ngram", description=__doc__.split("\n")[0])
    p.add_argument("corpus", help="cache name under export/runs/corpus")
    p.add_argument("--orders", type=int, nargs="+", default=[2, 3, 4, 5, 6, 8])
    args = p.parse_args(argv)
    print(json.dumps(evaluate_orders(args.corpus, args.orders), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
