"""Training batches: pieces -> token sequences with BOS, transposition augmentation, padding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from liveduet.codec import BOS, N_SPECIAL, GridCodec


def transpose(frames: np.ndarray, shift: int) -> np.ndarray:
    """Frames with every NOTE_ON moved by ``shift`` semitones (token ids are pitch-ordered)."""
    out = frames.copy()
    out[frames >= N_SPECIAL] += shift
    return out


def feasible_shifts(codec: GridCodec, frames: np.ndarray, max_shift: int) -> list[int]:
    """Shifts in ``-max_shift..max_shift`` that keep every voice inside its own range."""
    lo, hi = -max_shift, max_shift
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


def pad(seqs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``inputs, targets, mask`` (``[batch, time]``) for next-token training."""
    width = max(len(s) for s in seqs) - 1
    inputs = np.zeros((len(seqs), width), dtype=np.int64)
    targets = np.zeros_like(inputs)
    mask = np.zeros(inputs.shape, dtype=bool)
    for i, s in enumerate(seqs):
        n = len(s) - 1
        inputs[i, :n], targets[i, :n], mask[i, :n] = s[:-1], s[1:], True
    return torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(mask)


class Batcher:
    """Epochs of padded batches from training pieces, each piece in a random feasible key."""

    def __init__(self, codec: GridCodec, pieces: Sequence[np.ndarray], *, cap_steps: int,
                 batch_tokens: int, max_shift: int, seed: int = 0) -> None:
        self.codec = codec
        self.pieces = list(pieces)
        self.cap = cap_steps * codec.n_voices
        self.batch_tokens = batch_tokens
        self.shifts = [feasible_shifts(codec, p, max_shift) for p in self.pieces]
        self.rng = np.random.default_rng(seed)

    def _segments(self) -> list[np.ndarray]:
        segs = []
        for frames, shifts in zip(self.pieces, self.shifts, strict=True):
            seq = sequence(self.codec, frames, int(self.rng.choice(shifts)))
            for start in range(0, len(seq) - 1, self.cap):
                seg = seq[start : start + self.cap + 1]
                if len(seg) > 2 * self.codec.n_voices:
                    segs.append(seg)
        return segs

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One pass over every piece (fresh keys), batches of similar length, shuffled."""
        segs = sorted(self._segments(), key=len)
        batches, cur = [], []
        for seg in segs:
            if cur and (len(cur) + 1) * len(seg) > self.batch_tokens:
                batches.append(cur)
                cur = []
            cur.append(seg)
        if cur:
            batches.append(cur)
        for i in self.rng.permutation(len(batches)):
            yield pad(batches[i])

    def n_batches(self) -> int:
        """Approximate batches per epoch (for the progress bar)."""
        tokens = sum(len(p) * self.codec.n_voices for p in self.pieces)
        return max(1, tokens // self.batch_tokens + 1)
