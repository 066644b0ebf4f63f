"""The copy guard: an index of a model's training melodies as (interval, duration) n-grams.

A melody becomes one *token* per note after its first: (semitones from the previous note,
onset interval from the previous note in grid steps): free of transposition, exact on rhythm.
A run of k notes is k - 1 tokens. The index keeps a 32-bit hash of every ``order``-note gram
(``order`` - 1 tokens) of the training split (sorted, stored as deltas) and the piece it came
from. A *verbatim run* is a chain of consecutive grams of the query that the index holds:
``order`` + (grams - 1) notes long. Chaining does not check that the grams sit next to each
other in the source, so a run is an upper bound: a guard errs toward calling a run a copy.

Index file: ``<model>.copy.npz`` beside the model (built by ``python -m export.copyindex``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from liveduet.core.motifs import PNote
from liveduet.errors import LiveduetError

ORDER = 8
_MASK = np.uint64((1 << 64) - 1)
_PRIME = np.uint64(0x100000001B3)


def tokens_of(notes: Sequence[PNote]) -> np.ndarray:
    """One int code per note after the first: interval and onset interval (clipped)."""
    if len(notes) < 2:
        return np.zeros(0, dtype=np.int64)
    pitch = np.array([n.pitch for n in notes], dtype=np.int64)
    onset = np.array([n.onset for n in notes], dtype=np.int64)
    iv = np.clip(np.diff(pitch), -64, 63) + 64
    return iv * 512 + np.clip(np.diff(onset), 1, 511)


def gram_hashes(tokens: np.ndarray, order: int = ORDER) -> np.ndarray:
    """A 32-bit hash of each ``order``-note gram of ``tokens`` (position i: notes i..i+order-1,
    tokens[i:i+order-1])."""
    width = order - 1
    count = len(tokens) - width + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint32)
    h = np.full(count, 0xCBF29CE484222325, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(width):
            h = (h ^ tokens[k:k + count].astype(np.uint64)) * _PRIME
        h ^= h >> np.uint64(29)
        h = (h * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
    return (h >> np.uint64(32)).astype(np.uint32)


@dataclass(frozen=True)
class Run:
    """A verbatim run: where it starts in the query (note index), its length in notes, and the
    training piece most of its grams come from."""

    start: int
    length: int
    source: str


class CopyIndex:
    """Sorted gram hashes with the piece of each; see the module docstring."""

    def __init__(self, hashes: np.ndarray, pieces: np.ndarray, names: list[str],
                 order: int = ORDER, steps_per_beat: int = 4) -> None:
        self.hashes = hashes
        self.pieces = pieces
        self.names = names
        self.order = order
        self.steps_per_beat = steps_per_beat  # the grid the durations count in

    @classmethod
    def build(cls, melodies: Sequence[tuple[str, Sequence[PNote]]], order: int = ORDER,
              steps_per_beat: int = 4) -> CopyIndex:
        """Index (name, notes) melodies; a gram in several pieces keeps the first."""
        hs, ps = [], []
        for i, (_, notes) in enumerate(melodies):
            h = gram_hashes(tokens_of(notes), order)
            hs.append(h)
            ps.append(np.full(h.size, i, dtype=np.int32))
        allh = np.concatenate(hs) if hs else np.zeros(0, np.uint32)
        allp = np.concatenate(ps) if ps else np.zeros(0, np.int32)
        uniq, first = np.unique(allh, return_index=True)
        return cls(uniq, allp[first], [name for name, _ in melodies], order, steps_per_beat)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the compact form: hash deltas, piece numbers, names."""
        deltas = np.diff(self.hashes.astype(np.int64), prepend=0).astype(np.uint32)
        meta = json.dumps({"order": self.order, "steps_per_beat": self.steps_per_beat,
                           "names": self.names})
        np.savez_compressed(path, deltas=deltas, pieces=self.pieces.astype(np.uint16),
                            meta=np.frombuffer(meta.encode(), dtype=np.uint8))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CopyIndex:
        """Read an index written by :meth:`save` (LiveduetError if missing or unreadable)."""
        try:
            with np.load(path) as data:
                hashes = np.cumsum(data["deltas"].astype(np.int64)).astype(np.uint32)
                pieces = data["pieces"].astype(np.int32)
                meta = json.loads(bytes(data["meta"]).decode())
        except (OSError, KeyError, ValueError) as err:
            raise LiveduetError(f"copy index {path} is unreadable ({err}); rebuild it with "
                                "python -m export.copyindex MODEL") from err
        return cls(hashes, pieces, list(meta["names"]), int(meta["order"]),
                   int(meta["steps_per_beat"]))

    def hits(self, tokens: np.ndarray) -> np.ndarray:
        """Per gram position of ``tokens``: the piece number holding it, or -1."""
        h = gram_hashes(tokens, self.order)
        if h.size == 0 or self.hashes.size == 0:
            return np.full(h.size, -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.hashes, h), self.hashes.size - 1)
        return np.where(self.hashes[at] == h, self.pieces[at], -1).astype(np.int64)

    def runs(self, notes: Sequence[PNote]) -> list[Run]:
        """Every maximal verbatim run of ``notes``, longest first."""
        hit = self.hits(tokens_of(notes))
        out, i = [], 0
        while i < hit.size:
            if hit[i] < 0:
                i += 1
                continue
            j = i
            while j + 1 < hit.size and hit[j + 1] >= 0:
                j += 1
            piece = Counter(hit[i:j + 1].tolist()).most_common(1)[0][0]
            out.append(Run(i, self.order + j - i, self.names[piece]))
            i = j + 1
        return sorted(out, key=lambda r: (-r.length, r.start))

    def longest(self, notes: Sequence[PNote]) -> int:
        """Length of the longest verbatim run in notes (0 when none)."""
        hit = self.hits(tokens_of(notes)) >= 0
        best = run = 0
        for h in hit.tolist():
            run = run + 1 if h else 0
            best = max(best, run)
        return best + self.order - 1 if best else 0


def index_path(model_path: str | os.PathLike[str]) -> Path:
    """Where a model's copy index lives: ``<model>.copy.npz`` beside it."""
    return Path(model_path).with_suffix(".copy.npz")


def load_for(model_path: str | os.PathLike[str]) -> CopyIndex | None:
    """The copy index shipped beside a model, or None when it has none. Kept once loaded
    (reading one takes ~0.1 s: a model loader calls this off the conductor first)."""
    return _load(str(index_path(model_path)))


@lru_cache(maxsize=4)
def _load(path: str) -> CopyIndex | None:
    return CopyIndex.load(path) if Path(path).exists() else None
