"""Sampling controls: temperature, top-p, density, key/scale and pitch-range masks.

Everything here is pure. A sample is drawn from one uniform number ``u`` in [0, 1) by inverse
CDF, so the caller decides where randomness comes from. The engine uses :func:`keyed_uniform`,
a counter-based generator (SplitMix64 over ``(seed, step, voice)``): a re-decided step draws the
same number as its first decision, so rollbacks and the lookahead never shift the random stream,
and a seed change reseeds every later step at once.

A token is two draws from one number: the event (HOLD, REST or a note) from the model's own
distribution, moved only by ``density``, then the pitch among the legal notes at the sampling
temperature within the top-p nucleus. So rhythm and note density follow what the model learnt
whatever the temperature, key or range (see :meth:`Sampler.sample_rows`).

Masks never leave a voice without a legal token: REST is always legal, HOLD only while the voice
sounds, and when key and range leave no pitch the key mask is dropped first, then the range.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from liveduet.core.codec import HOLD, N_SPECIAL, REST, GridCodec
from liveduet.core.settings import KEYS, SCALES

TONICS = KEYS[2:]
# Krumhansl-Kessler key profiles (probe-tone ratings), tonic first.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MIN_KEY_NOTES = 4
_MASK64 = (1 << 64) - 1
DENSITY_GAIN = 4.0  # logit bias on NOTE_ON tokens at density 0 (-) or 1 (+)


def _mix64(x: int) -> int:
    """SplitMix64 finaliser: a bijective 64-bit mix with full avalanche."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def keyed_uniform(seed: int, step: int, voice: int) -> float:
    """A uniform number in [0, 1) determined by ``(seed, step, voice)`` alone."""
    h = _mix64(_mix64(_mix64(seed & _MASK64) ^ (step & _MASK64)) ^ (voice & _MASK64))
    return (h >> 11) / float(1 << 53)


@lru_cache(maxsize=1)
def _profiles() -> np.ndarray:
    rows = [np.roll(KK_MAJOR, t) for t in range(12)] + [np.roll(KK_MINOR, t) for t in range(12)]
    prof = np.array(rows)
    prof = prof - prof.mean(axis=1, keepdims=True)
    return prof / np.linalg.norm(prof, axis=1, keepdims=True)


def estimate_key(
    pitches: Sequence[int], weights: Sequence[float] | None = None
) -> tuple[int, str] | None:
    """Tonic pitch class and 'major'/'minor' that best fit the notes (Krumhansl-Schmuckler).

    Returns ``None`` with fewer than ``MIN_KEY_NOTES`` notes or a flat histogram.
    """
    if len(pitches) < MIN_KEY_NOTES:
        return None
    pcs = np.asarray(pitches, dtype=np.int64) % 12
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    hist = np.bincount(pcs, weights=w, minlength=12).astype(np.float64)
    hist = hist - hist.mean()
    norm = np.linalg.norm(hist)
    if norm == 0.0:
        return None
    scores = _profiles() @ (hist / norm)
    best = int(np.argmax(scores))  # first maximum: deterministic on ties
    return best % 12, ("major" if best < 12 else "minor")


def scale_pcs(tonic: int, scale: str) -> frozenset[int]:
    """Pitch classes of ``scale`` on ``tonic`` (0 = C)."""
    return frozenset((tonic + step) % 12 for step in SCALES[scale])


def key_pcs(
    key: str, scale: str, recent: Sequence[tuple[int, float]] = ()
) -> frozenset[int] | None:
    """Allowed pitch classes for a key setting, or ``None`` for no key mask.

    ``key`` is 'off', a tonic name, or 'auto': the tonic (and, for scale major/minor, the mode)
    estimated from ``recent`` (pitch, duration) pairs of the human's notes.
    """
    if key == "off" or scale == "chromatic":
        return None
    if key != "auto":
        return scale_pcs(TONICS.index(key), scale)
    if not recent:
        return None
    found = estimate_key([p for p, _ in recent], [max(d, 0.25) for _, d in recent])
    if found is None:
        return None
    tonic, mode = found
    return scale_pcs(tonic, mode if scale in ("major", "minor") else scale)


class Sampler:
    """Builds legal-token masks per voice and samples one token from logits."""

    def __init__(self, codec: GridCodec) -> None:
        self.codec = codec
        self._voice = [codec.voice_tokens(v) for v in range(codec.n_voices)]
        self._pcs = (np.arange(codec.vocab_size) - N_SPECIAL + codec.low) % 12
        self._is_note = np.arange(codec.vocab_size) >= N_SPECIAL
        self._gain = np.where(self._is_note, DENSITY_GAIN, 0.0)
        self._gains: dict[float, np.ndarray] = {}
        self._cache: dict[tuple[int, int, int, frozenset[int] | None], np.ndarray] = {}
        self._event_masks: dict[tuple[int, bool, bool], np.ndarray] = {}

    def legal(self, voice: int, low: int, high: int, pcs: frozenset[int] | None,
              allow_hold: bool) -> np.ndarray:
        """Legal tokens of ``voice``: its range ∩ [low, high] ∩ key; REST; HOLD if sounding."""
        key = (voice, low, high, pcs)
        mask = self._cache.get(key)
        if mask is None:
            mask = self._build(voice, low, high, pcs)
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = mask
        if allow_hold:
            return mask
        out = mask.copy()
        out[HOLD] = False
        return out

    def _build(self, voice: int, low: int, high: int, pcs: frozenset[int] | None) -> np.ndarray:
        base = self._voice[voice]
        idx = np.arange(self.codec.vocab_size) - N_SPECIAL + self.codec.low
        in_range = base & (~self._is_note | ((idx >= low) & (idx <= high)))
        notes = in_range & self._is_note
        if pcs is not None:
            keyed = notes & np.isin(self._pcs, sorted(pcs))
            if keyed.any():
                notes = keyed
        if not notes.any():  # range outside the voice: fall back to the voice's own range
            notes = base & self._is_note
        mask = notes.copy()
        mask[[HOLD, REST]] = True
        return mask

    def _bias(self, legal: np.ndarray, density: float) -> np.ndarray:
        """Additive logit bias: -inf on illegal tokens, the density gain on notes."""
        gain = self._gains.get(density)
        if gain is None:
            if len(self._gains) > 64:
                self._gains.clear()
            gain = self._gains[density] = self._gain * (2.0 * density - 1.0)
        return np.where(legal, gain, -np.inf)

    def _events(self, legal: np.ndarray, voice: int | None) -> np.ndarray:
        """Tokens whose model probability makes up the event draw: HOLD and REST as legal,
        and every note the voice can sing (``voice``), or the legal notes (``None``)."""
        if voice is None:
            return legal
        key = (voice, bool(legal[HOLD]), bool(legal[REST]))
        mask = self._event_masks.get(key)
        if mask is None:
            mask = self._voice[voice] & self._is_note
            mask[HOLD], mask[REST] = key[1], key[2]
            self._event_masks[key] = mask
        return mask

    def _event_logits(self, logits: np.ndarray, legal: np.ndarray, density: float,
                      voice: int | None, note_bias: float | np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(logits as float64 with non-finite rows zeroed, row is finite, legal as 2-D, the
        event draw's logits shifted to a row maximum of 0) for rows of ``logits``."""
        z = logits.astype(np.float64)
        ok = np.isfinite(z).all(axis=1)
        if not ok.all():
            z[~ok] = 0.0
        legal = np.atleast_2d(legal)
        # HOLD and REST as legal; notes: every one the voice can sing (or the legal ones)
        events = legal if voice is None else np.where(self._is_note, self._voice[voice], legal)
        ev = z + self._bias(events, density)
        bias = np.asarray(note_bias, dtype=np.float64)
        if bias.any():
            ev[:, N_SPECIAL:] += bias.reshape(-1, 1) if bias.ndim else bias
        ev -= ev.max(axis=1, keepdims=True)
        return z, ok, legal, ev

    def log_probs(self, logits: np.ndarray, legal: np.ndarray, *, temperature: float,
                  density: float, voice: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(log-probabilities ``[rows, vocab]``, row is finite) of the draw :meth:`sample_rows`
        makes before top-p: the event at the model's own temperature (density-biased, over the
        voice's note pool), then the pitch among the legal notes at ``temperature``; -inf on
        illegal tokens; rows with non-finite logits come back as zeros, flagged False.
        """
        z, ok, legal, ev = self._event_logits(logits, legal, density, voice, 0.0)
        with np.errstate(divide="ignore"):
            ev -= np.log(np.exp(ev).sum(axis=1, keepdims=True))
            note_event = np.log(np.exp(ev[:, N_SPECIAL:]).sum(axis=1, keepdims=True))
            pitch = (z[:, N_SPECIAL:] + np.where(legal[:, N_SPECIAL:], 0.0, -np.inf)) / max(
                temperature, 1e-6)
            top = pitch.max(axis=1, keepdims=True)
            pitch -= np.where(np.isfinite(top), top, 0.0)
            pitch -= np.log(np.exp(pitch).sum(axis=1, keepdims=True))
        out = np.where(legal, ev, -np.inf)
        out[:, N_SPECIAL:] = note_event + pitch
        return out, ok

    def sample(self, logits: np.ndarray, legal: np.ndarray, *, temperature: float, top_p: float,
               density: float, u: float, voice: int | None = None,
               note_bias: float = 0.0) -> int | None:
        """One token id drawn with uniform ``u``; ``None`` when the logits are not finite.

        ``note_bias`` is added to the note event's logits (the line's pace,
        :mod:`liveduet.core.pace`).

        The same arithmetic as :meth:`sample_rows` on one row (so both give the same token),
        with Python scalars where numpy's per-call overhead would dominate.
        """
        z = np.array(logits, dtype=np.float64).ravel()
        if not np.isfinite(z).all():
            return None
        ev = z + self._bias(self._events(legal, voice), density)
        if note_bias:
            ev[N_SPECIAL:] += note_bias
        ev -= ev.max()
        pe = np.exp(ev, out=ev)
        hold = float(pe[HOLD])
        rest = hold + float(pe[REST])  # p[BOS] == 0: BOS is never legal
        mass = float(pe[N_SPECIAL:].sum())
        target = u * (rest + mass)
        if target < hold:
            return HOLD
        if target < rest or mass <= 0.0:
            return REST
        z += np.where(legal, 0.0, -np.inf)
        notes = z[N_SPECIAL:] / max(temperature, 1e-6)
        top = notes.max()
        if not np.isfinite(top):
            return REST
        notes = np.exp(notes - top)
        order = None
        if top_p < 1.0:
            order = np.argsort(-notes, kind="stable")
            notes = notes[order]
        ncum = np.cumsum(notes)
        pmass = float(ncum[-1])
        keep = min(int(np.count_nonzero(ncum < top_p * pmass)) + 1, ncum.size)
        limit = float(ncum[keep - 1])
        u2 = min(max((target - rest) / mass, 0.0), 1.0 - 1e-12)
        idx = min(int(np.count_nonzero(ncum <= u2 * limit)), keep - 1)
        return int(idx if order is None else order[idx]) + N_SPECIAL

    def sample_rows(self, logits: np.ndarray, legal: np.ndarray, *, temperature: float,
                    top_p: float, density: float, u: float | np.ndarray,
                    voice: int | None = None, note_bias: float | np.ndarray = 0.0
                    ) -> np.ndarray:
        """One token per row of ``logits`` ``[rows, vocab]``, all drawn with the same ``u``
        (or row r with ``u[r]``); ``legal`` is one mask for every row or one per row, and
        ``note_bias`` (the pace) one number or one per row.

        Row ``r``'s token depends on row ``r`` alone (element-wise operations, running sums
        and counts along a row), and equals :meth:`sample` on that row. Non-finite rows give -1.

        Two draws from one ``u``. The *event* (HOLD, REST or a note) comes from the model's own
        distribution at temperature 1, shifted only by ``density``: tempering it would favour
        the likeliest event, which on a 16th grid is HOLD, and thin the line into long notes;
        masking pitches out of key or range would do the same by removing their mass, so the
        event weighs every note the voice can sing. The *pitch* is then drawn among the legal
        notes at ``temperature`` within the top-p nucleus, re-using u's position inside the
        note segment (uniform given the event). Top-p over the whole vocabulary would make
        HOLD and REST absorbing (once P(HOLD) >= top_p the nucleus is HOLD alone).
        """
        z, ok, legal, ev = self._event_logits(logits, legal, density, voice, note_bias)
        pe = np.exp(ev, out=ev)
        hold = pe[:, HOLD]
        rest = hold + pe[:, REST]
        mass = pe[:, N_SPECIAL:].sum(axis=1)
        target = u * (rest + mass)
        notes = (z[:, N_SPECIAL:] + np.where(legal[:, N_SPECIAL:], 0.0, -np.inf)) / max(
            temperature, 1e-6)
        top = notes.max(axis=1, keepdims=True)
        finite = np.isfinite(top[:, 0])
        notes = np.exp(notes - np.where(np.isfinite(top), top, 0.0))
        rows = np.arange(z.shape[0])
        order = None
        if top_p < 1.0:
            order = np.argsort(-notes, axis=1, kind="stable")
            notes = notes[rows[:, None], order]
        ncum = np.cumsum(notes, axis=1)
        pmass = ncum[:, -1]
        keep = np.minimum((ncum < (top_p * pmass)[:, None]).sum(axis=1) + 1, ncum.shape[1])
        limit = ncum[rows, keep - 1]
        u2 = np.minimum(np.maximum((target - rest) / np.maximum(mass, 1e-300), 0.0),
                        1.0 - 1e-12)
        idx = np.minimum((ncum <= (u2 * limit)[:, None]).sum(axis=1), keep - 1)
        if order is not None:
            idx = order[rows, idx]
        out = np.where((target < rest) | (mass <= 0.0) | ~finite, REST, idx + N_SPECIAL)
        out = np.where(target < hold, HOLD, out)
        return np.where(ok, out, -1)
