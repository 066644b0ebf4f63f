"""Training batches: pieces -> token sequences with BOS, transposition augmentation, padding.

A piece is its frames ``[steps, voices]`` and, for models with a position input, the
``metre-v1`` position id of every step. Flat input ``i`` (BOS is 0) gets the position of the
step of the token it predicts, ``i // n_voices`` (:func:`liveduet.core.metre.predicted_step`), the
convention the engine uses live.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from liveduet.core.codec import BOS, N_SPECIAL, GridCodec
from liveduet.core.metre import predicted_step

ALL_SHIFTS = -1  # max_shift value meaning: every shift that keeps each voice in its range


def transpose(frames: np.ndarray, shift: int) -> np.ndarray:
    """Frames with every NOTE_ON moved by ``shift`` semitones (token ids are pitch-ordered)."""
    out = frames.copy()
    out[frames >= N_SPECIAL] += shift
    return out


def feasible_shifts(codec: GridCodec, frames: np.ndarray, max_shift: int) -> list[int]:
    """Shifts in ``-max_shift..max_shift`` (any size for :data:`ALL_SHIFTS`) that keep every
    voice inside its own range."""
    span = codec.high - codec.low
    lo, hi = (-span, span) if max_shift == ALL_SHIFTS else (-max_shift, max_shift)
    for v, voice in enumerate(codec.voices):
        col = frames[:, v]
        notes = col[col >= N_SPECIAL]
        if notes.size:
            pitches = notes - N_SPECIAL + codec.low
            lo = max(lo, voice.low - int(pitches.min()))
            hi = min(hi, voice.high - int(pitches.max()))
    return list(range(lo, hi + 1)) if lo <= hi else [0]


def sequence(codec: GridCodec, frames: np.ndarray, shift: int = 0) -> np.ndarray:
    """``[BOS] + interleaved tokens`` of a piece, transposed by ``shift``."""
    body = codec.interleave(transpose(frames, shift) if shift else frames)
    return np.concatenate([[BOS], body]).astype(np.int64)


def input_positions(codec: GridCodec, positions: np.ndarray) -> np.ndarray:
    """Position ids aligned with :func:`sequence`: element ``i`` is the id of step
    ``predicted_step(i)``; the last element (only ever a target) repeats the last step's."""
    n = len(positions) * codec.n_voices + 1
    steps = np.minimum(predicted_step(np.arange(n), codec.n_voices), len(positions) - 1)
    return np.asarray(positions, dtype=np.int64)[steps]


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]


def pad(seqs: Sequence[np.ndarray], positions: Sequence[np.ndarray] | None = None) -> Batch:
    """Right-padded ``inputs, targets, mask, input_positions`` (``[batch, time]``) for
    next-token training; the positions are None when ``positions`` is."""
    width = max(len(s) for s in seqs) - 1
    inputs = np.zeros((len(seqs), width), dtype=np.int64)
    targets = np.zeros_like(inputs)
    mask = np.zeros(inputs.shape, dtype=bool)
    pos = None if positions is None else np.zeros_like(inputs)
    for i, s in enumerate(seqs):
        n = len(s) - 1
        inputs[i, :n], targets[i, :n], mask[i, :n] = s[:-1], s[1:], True
        if pos is not None and positions is not None:
            pos[i, :n] = positions[i][:n]
    return (torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(mask),
            None if pos is None else torch.from_numpy(pos))


class Batcher:
    """Epochs of padded batches from training pieces.

    Each epoch takes every piece in one random feasible key, or with ``every_shift`` in every
    feasible key (a small corpus such as the chorales then sees each piece in all the keys its
    voices allow, every epoch). ``positions`` (per piece, per step) adds position ids.
    """

    def __init__(self, codec: GridCodec, pieces: Sequence[np.ndarray], *, cap_steps: int,
                 batch_tokens: int, max_shift: int, seed: int = 0,
                 positions: Sequence[np.ndarray] | None = None,
                 every_shift: bool = False) -> None:
        self.codec = codec
        self.pieces = list(pieces)
        self.positions = None if positions is None else [
            input_positions(codec, p) for p in positions]
        self.cap = cap_steps * codec.n_voices
        self.batch_tokens = batch_tokens
        self.shifts = [feasible_shifts(codec, p, max_shift) for p in self.pieces]
        self.every_shift = every_shift
        self.rng = np.random.default_rng(seed)

    def _segments(self) -> list[tuple[np.ndarray, np.ndarray | None]]:
        segs = []
        for k, (frames, shifts) in enumerate(zip(self.pieces, self.shifts, strict=True)):
            keys = shifts if self.every_shift else [int(self.rng.choice(shifts))]
            pos = None if self.positions is None else self.positions[k]
            for shift in keys:
                seq = sequence(self.codec, frames, int(shift))
                for start in range(0, len(seq) - 1, self.cap):
                    seg = seq[start : start + self.cap + 1]
                    if len(seg) > 2 * self.codec.n_voices:
                        segs.append((seg, None if pos is None else
                                     pos[start : start + self.cap + 1]))
        return segs

    def epoch(self) -> Iterator[Batch]:
        """One pass over every piece (fresh keys), batches of similar length, shuffled."""
        segs = sorted(self._segments(), key=lambda s: len(s[0]))
        batches: list[list[tuple[np.ndarray, np.ndarray | None]]] = []
        cur: list[tuple[np.ndarray, np.ndarray | None]] = []
        for seg in segs:
            if cur and (len(cur) + 1) * len(seg[0]) > self.batch_tokens:
                batches.append(cur)
                cur = []
            cur.append(seg)
        if cur:
            batches.append(cur)
        for i in self.rng.permutation(len(batches)):
            seqs = [s for s, _ in batches[i]]
            pos = None if self.positions is None else [p for _, p in batches[i]]
            yield pad(seqs, pos)  # type: ignore[arg-type]

    def n_batches(self) -> int:
        """Approximate batches per epoch (for the progress bar)."""
        keys = [len(s) if self.every_shift else 1 for s in self.shifts]
        tokens = sum(len(p) * self.codec.n_voices * k for p, k in zip(self.pieces, keys,
                                                                        strict=True))
        return max(1, tokens // self.batch_tokens + 1)
