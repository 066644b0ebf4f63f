"""Part-writing rules at sampling time: alto, tenor and bass chosen jointly per soprano note.

Used by the harmony table build (:mod:`liveduet.core.harmony`), so it runs on the table builder's
thread and a note stays a lookup. For every soprano row of the table:

1. the ``KA`` best legal tokens of the alto are fed (the state forked per candidate),
   then the ``KT`` best tenor tokens after each alto, and the ``KB`` best bass tokens are read
   after each (alto, tenor): ``KA*KT*KB`` whole chords per soprano token;
2. each chord scores its model log-probability (tempered and density-biased, as the plain
   sampler draws) minus weighted rule penalties against the previous sounding chord;
3. chords that break a hard rule are dropped (when none is left, each broken hard rule
   costs ``HARD_COST`` nats instead, so a row never goes without an answer);
4. one chord is drawn from the survivors' softmax with the step's keyed uniform number
   (same seed, same choice), and its bass token is fed on the chosen (alto, tenor) state.

Which rules are hard: voice crossing and notes out of the voices' ranges always; in
``strict`` also parallel or contrary-motion consecutive fifths and octaves (between
consecutive chords, and between the chords of consecutive beats, which catches fifths hidden
by passing notes), overlaps, spacing over an octave between upper voices and a doubled leading
tone. Everything else is a weighted preference (nats of log-probability), see
:data:`WEIGHTS`: a triad or V7 on the beat, no semitone clash, notes in the soprano's key,
stepwise inner voices (leaps and re-struck notes cost), a leading tone resolving up and the
seventh of a dominant seventh falling by step, not all four voices moving the same way. Per
voice, the candidates are the tokens best by model log-probability less the penalties that
voice earns alone (:func:`voice_prior`), so stepwise and in-key notes enter the joint choice
even when the model ranks them fifth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from liveduet.core.codec import HOLD, REST, GridCodec
from liveduet.core.model import Snapshot, StepModel
from liveduet.core.sampling import Sampler
from liveduet.core.voiceleading import CHORDS, RANGES, key_scale

KA, KT, KB = 4, 3, 4  # candidates per voice: 48 chords per soprano token
KS = (KA, KT, KB)


@dataclass(frozen=True)
class Weights:
    """Penalties in nats; ``inf`` makes a rule hard."""

    parallel: float
    contrary: float
    overlap: float
    spacing: float
    leading_double: float
    tendency: float = 1.0
    leap: float = 2.0  # alto or tenor moves more than a tone
    big_leap: float = 1.5  # ... more than a fifth (on top)
    bass_leap: float = 1.2  # the bass moves more than a tone
    repeat: float = 1.5  # a lower voice strikes its previous pitch again (a hold is free)
    not_chord_beat: float = 1.0  # on a beat: not a major/minor triad or V7
    not_chord: float = 0.0  # between beats passing notes are welcome
    clash_beat: float = 1.5  # semitone clash on a beat
    clash: float = 0.2
    out_of_key: float = 1.5
    thin: float = 0.6  # fewer than three pitch classes
    same_way: float = 0.8  # all four voices move the same way
    beat_parallel: float = 3.0


INF = float("inf")
HARD_COST = 10.0  # nats per broken hard rule, when every candidate chord breaks one
WEIGHTS = {
    "guided": Weights(parallel=4.0, contrary=3.0, overlap=1.5, spacing=1.5, leading_double=3.0),
    "strict": Weights(parallel=INF, contrary=INF, overlap=INF, spacing=INF, leading_double=INF,
                      beat_parallel=INF),
}


@dataclass(frozen=True)
class Frame:
    """What the rules read besides the candidates: previous pitches (-1 silent) and the key."""

    prev: tuple[int, ...]
    key: tuple[int, str] | None
    on_beat: bool
    weights: Weights
    beat_prev: tuple[int, ...] = ()  # pitches at the previous beat: parallels across a beat


def supported(codec: GridCodec, hv: int) -> bool:
    """Joint choice is for four voices, the human's first (soprano, alto, tenor, bass)."""
    return codec.n_voices == 4 and hv == 0


def no_pause() -> None:
    """The default pause between the phases of a build: none."""


def choose(model: StepModel, sampler: Sampler, cands: np.ndarray, legal: list[np.ndarray],
           frame: Frame, *, temperature: float, density: float, u: float,
           pause: Callable[[], None] = no_pause, positions: tuple[int, ...] = ()
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tokens fed ``[rows, 4]``, bad rows, logits after the step) for every soprano token.

    ``legal`` holds the masks of alto, tenor and bass; the model must hold the step's base
    state as a batch of one. A row is bad when some of its logits were not finite (its
    candidates there are REST). ``pause`` is called between phases (a builder thread yields
    there to a conductor that is answering a note). ``positions`` are the position ids fed
    with each voice's token (models with a position input).
    """
    n = len(cands)
    model.fork(n)
    _position(model, positions, 0)
    logits = model.step(cands)
    toks, lps, bad = [], [], np.zeros(n, dtype=bool)
    for v, mask in enumerate(legal):
        lp, ok = sampler.log_probs(logits, mask, temperature=temperature, density=density,
                                   voice=v + 1)
        tok, val = _top(lp, ok, voice_prior(v + 1, frame, model.codec), KS[v])
        bad |= ~ok.reshape(n, -1).all(axis=1)
        toks.append(tok)
        lps.append(val)
        pause()
        if v < 2:
            _expand(model, KS[v])
            _position(model, positions, v + 1)
            logits = model.step(tok.ravel())
    pick = _pick(cands, toks, lps, model.codec, frame, u)
    pause()
    _position(model, positions, 3)
    return _finish(model, cands, toks, pick, bad)


def _position(model: StepModel, positions: tuple[int, ...], voice: int) -> None:
    """Set the position id fed with ``voice``'s token, when the step has them."""
    if positions:
        model.set_position(positions[voice])


def voice_prior(v: int, frame: Frame, codec: GridCodec) -> np.ndarray:
    """Penalty per token of voice ``v`` alone (leaps, repeated strikes, range, key): it picks
    which candidates of the voice enter the joint choice, so they are ones the rules like.
    """
    w = frame.weights
    pitch = _pitch_table(codec)
    out = np.zeros(codec.vocab_size)
    note = pitch >= 0
    low, high = RANGES[v]
    out[note & ((pitch < low) | (pitch > high))] = INF
    prev = frame.prev[v]
    if prev >= 0:
        d = np.abs(pitch - prev)
        leap, big = (w.leap, w.big_leap) if v in (1, 2) else (w.bass_leap, 0.0)
        out += note * (leap * (d > 2) + big * (d > 7) + w.repeat * (d == 0))
    if frame.key is not None:
        scale = np.zeros(12, dtype=bool)
        scale[list(key_scale(*frame.key))] = True
        out += note * w.out_of_key * ~scale[pitch % 12]
    return out


def _top(lp: np.ndarray, ok: np.ndarray, prior: np.ndarray, k: int
         ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` tokens per row best by log-probability less ``prior``, and their
    log-probabilities (REST, 0 on non-finite rows)."""
    order = np.argsort(prior - lp, axis=1, kind="stable")[:, :k]
    val = np.take_along_axis(lp, order, axis=1)
    tok = np.where(np.isfinite(val), order, REST)
    tok[~ok] = REST
    val = np.where(ok[:, None], val, -INF)
    val[~ok, 0] = 0.0
    return tok, val


def _expand(model: StepModel, k: int) -> None:
    """Repeat every row of the model's batch ``k`` times (row r -> rows r*k .. r*k+k-1)."""
    snap = model.snapshot()
    arrays = tuple(np.repeat(a, k, axis=s.batch_axis)
                   for a, s in zip(snap.arrays, model.spec.states, strict=True))
    model.restore(Snapshot(snap.batch * k, arrays))


def _finish(model: StepModel, cands: np.ndarray, toks: list[np.ndarray], pick: np.ndarray,
            bad: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the chosen (alto, tenor) state of each row and feed its bass token."""
    n = len(cands)
    a, rest = np.divmod(pick, KT * KB)
    t, b = np.divmod(rest, KB)
    rows = np.arange(n)
    alto = toks[0][rows, a]
    tenor = toks[1].reshape(n, KA, KT)[rows, a, t]
    bass = toks[2].reshape(n, KA, KT, KB)[rows, a, t, b]
    state_rows = (rows * KA + a) * KT + t
    snap = model.snapshot()
    arrays = tuple(np.take(x, state_rows, axis=s.batch_axis)
                   for x, s in zip(snap.arrays, model.spec.states, strict=True))
    model.restore(Snapshot(n, arrays))
    logits = model.step(bass)
    fed = np.stack([cands, alto, tenor, bass], axis=1).astype(np.int64)
    return fed, bad, logits


def _pick(cands: np.ndarray, toks: list[np.ndarray], lps: list[np.ndarray], codec: GridCodec,
          frame: Frame, u: float) -> np.ndarray:
    """Index ``(a*KT + t)*KB + b`` of the chord drawn per soprano row."""
    n = len(cands)
    logp = (lps[0][:, :, None, None] + lps[1].reshape(n, KA, KT)[:, :, :, None]
            + lps[2].reshape(n, *KS)).reshape(n, -1)
    chords, attack = _pitches(cands, toks, codec, frame.prev)
    soft, hard = penalties(chords, attack, frame)
    score = logp - soft
    strict = np.where(hard > 0, -INF, score)
    empty = ~np.isfinite(strict).any(axis=1)
    score = np.where(empty[:, None], score - HARD_COST * hard, strict)
    p = np.exp(score - score.max(axis=1, keepdims=True))
    cum = np.cumsum(p, axis=1)
    idx = (cum <= (u * cum[:, -1])[:, None]).sum(axis=1)
    return np.minimum(idx, p.shape[1] - 1)


def _pitches(cands: np.ndarray, toks: list[np.ndarray], codec: GridCodec,
             prev: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Sounding pitches ``[rows, KA*KT*KB, 4]`` (-1 silent) of every candidate chord, and which
    voices strike a note (NOTE_ON)."""
    n = len(cands)
    shape = (n, *KS)
    grids = [np.broadcast_to(cands[:, None, None, None], shape),
             np.broadcast_to(toks[0][:, :, None, None], shape),
             np.broadcast_to(toks[1].reshape(n, KA, KT)[:, :, :, None], shape),
             toks[2].reshape(shape)]
    table = _pitch_table(codec)
    out = np.empty((*shape, 4), dtype=np.int64)
    attack = np.empty((*shape, 4), dtype=bool)
    for v, g in enumerate(grids):
        p = table[g]
        out[..., v] = np.where(g == HOLD, prev[v], p)
        attack[..., v] = p >= 0
    return out.reshape(n, -1, 4), attack.reshape(n, -1, 4)


@lru_cache(maxsize=4)
def _pitch_table(codec: GridCodec) -> np.ndarray:
    """Token -> pitch, -1 for the special tokens."""
    return np.array([-1 if (p := codec.pitch_of(t)) is None else p
                     for t in range(codec.vocab_size)], dtype=np.int64)


@lru_cache(maxsize=1)
def _mask_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per 12-bit pitch-class mask: is a triad/V7, has a semitone clash, distinct classes."""
    masks = np.arange(4096)
    chord = np.zeros(4096, dtype=bool)
    for pcs in CHORDS:
        chord[sum(1 << p for p in pcs)] = True
    rot = ((masks << 1) | (masks >> 11)) & 4095
    count = np.array([bin(m).count("1") for m in masks])
    return chord, (masks & rot) != 0, count


def penalties(chords: np.ndarray, attack: np.ndarray, frame: Frame
              ) -> tuple[np.ndarray, np.ndarray]:
    """(soft penalty in nats, hard rules broken) of chords ``[..., 4]`` after ``frame.prev``;
    ``attack`` marks the voices that strike their note (a NOTE_ON, not a HOLD)."""
    w = frame.weights
    prev = np.asarray(frame.prev, dtype=np.int64)
    sound = chords >= 0
    moved = sound & (prev >= 0) & (chords != prev)
    repeat = (attack & (chords == prev))[..., 1:].sum(axis=-1)
    soft = w.repeat * repeat
    hard = _range_and_crossing(chords, sound)
    for value, bad in _motion_rules(chords, prev, moved, w):
        soft, hard = _add(soft, hard, value, bad)
    for value, bad in _chord_rules(chords, prev, sound, moved, frame):
        soft, hard = _add(soft, hard, value, bad)
    if frame.on_beat and frame.beat_prev:
        beat = np.asarray(frame.beat_prev, dtype=np.int64)
        par, _ = consecutives(chords, beat, sound & (beat >= 0) & (chords != beat))
        soft, hard = _add(soft, hard, w.beat_parallel, par)
    return soft, hard


def _add(soft: np.ndarray, hard: np.ndarray, weight: float, count: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray]:
    if weight == INF:
        return soft, hard + count
    return soft + weight * count, hard


def _range_and_crossing(chords: np.ndarray, sound: np.ndarray) -> np.ndarray:
    hard = np.zeros(chords.shape[:-1])
    for v in (1, 2, 3):
        low, high = RANGES[v]
        hard += sound[..., v] & ((chords[..., v] < low) | (chords[..., v] > high))
    for i in range(3):
        hard += sound[..., i] & sound[..., i + 1] & (chords[..., i] < chords[..., i + 1])
    return hard


_UPPER = np.array([0, 0, 0, 1, 1, 2])  # the six voice pairs (upper, lower)
_LOWER = np.array([1, 2, 3, 2, 3, 3])


def consecutives(chords: np.ndarray, prev: np.ndarray, moved: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Voice pairs moving in parallel, and in contrary motion, between perfect fifths or
    octaves (both voices moving), per chord."""
    both = moved[..., _UPPER] & moved[..., _LOWER]
    up = chords - prev > 0
    same = up[..., _UPPER] == up[..., _LOWER]
    before = (prev[_UPPER] - prev[_LOWER]) % 12
    perfect = ((chords[..., _UPPER] - chords[..., _LOWER]) % 12 == before) & np.isin(before,
                                                                                    (0, 7))
    hit = both & perfect
    return (hit & same).sum(axis=-1), (hit & ~same).sum(axis=-1)


def _motion_rules(chords: np.ndarray, prev: np.ndarray, moved: np.ndarray, w: Weights
                  ) -> list[tuple[float, np.ndarray]]:
    """Consecutive perfect intervals, overlaps, leaps of the inner voices, block motion."""
    par, con = consecutives(chords, prev, moved)
    over = np.zeros(chords.shape[:-1])
    for i in range(3):
        j = i + 1
        over += (moved[..., j] & (prev[i] >= 0) & (chords[..., j] > prev[i])) | (
            moved[..., i] & (prev[j] >= 0) & (chords[..., i] < prev[j]))
    leap = np.zeros(chords.shape[:-1])
    big = np.zeros(chords.shape[:-1])
    for v in (1, 2):  # the inner voices: alto and tenor
        d = np.abs(chords[..., v] - prev[v]) * moved[..., v]
        leap += d > 2
        big += d > 7
    up = (chords - prev > 0) & moved
    down = (chords - prev < 0) & moved
    block = up.all(axis=-1) | down.all(axis=-1)
    bass = np.abs(chords[..., 3] - prev[3]) * moved[..., 3]
    return [(w.parallel, par), (w.contrary, con), (w.overlap, over), (w.leap, leap),
            (w.big_leap, big), (w.bass_leap, (bass > 2).astype(float)),
            (w.same_way, block.astype(float))]


def _chord_rules(chords: np.ndarray, prev: np.ndarray, sound: np.ndarray, moved: np.ndarray,
                 frame: Frame) -> list[tuple[float, np.ndarray]]:
    """Harmony, spacing, key, doubling and tendency tones of the new chord."""
    w = frame.weights
    chord_ok, clash_of, count = _mask_tables()
    pcs = np.where(sound, chords % 12, 0)
    mask = np.bitwise_or.reduce(np.where(sound, 1 << pcs, 0), axis=-1)  # 12-bit class set
    full = sound.all(axis=-1)
    changed = (moved | (sound != (prev >= 0))).any(axis=-1)
    fresh = full & changed
    not_chord = fresh & ~chord_ok[mask]
    clash = fresh & clash_of[mask]
    spacing = ((chords[..., 0] - chords[..., 1] > 12) | (chords[..., 1] - chords[..., 2] > 12))
    rules = [
        (w.not_chord_beat if frame.on_beat else w.not_chord, not_chord.astype(float)),
        (w.clash_beat if frame.on_beat else w.clash, clash.astype(float)),
        (w.spacing, (spacing & fresh).astype(float)),
        (w.thin, (fresh & (count[mask] < 3)).astype(float)),
    ]
    if frame.key is not None:
        rules += _key_rules(chords, prev, sound, moved, frame.key, w)
    seventh = dominant_seventh(frame.prev)
    if seventh is not None:  # the seventh of a V7 falls by step when its voice moves
        falls = (chords - prev < 0) & (chords - prev >= -2)
        held = (prev >= 0) & (prev % 12 == seventh) & moved & ~falls
        rules.append((w.tendency, held.sum(axis=-1).astype(float)))
    return rules


def dominant_seventh(pitches: tuple[int, ...]) -> int | None:
    """The pitch class of the seventh when ``pitches`` sound a dominant seventh, else None."""
    pcs = frozenset(p % 12 for p in pitches if p >= 0)
    for root in pcs:
        shape = frozenset((p - root) % 12 for p in pcs)
        if shape in (frozenset((0, 4, 7, 10)), frozenset((0, 4, 10))):
            return (root + 10) % 12
    return None


def _key_rules(chords: np.ndarray, prev: np.ndarray, sound: np.ndarray, moved: np.ndarray,
               key: tuple[int, str], w: Weights) -> list[tuple[float, np.ndarray]]:
    """Notes out of the soprano's key, a doubled leading tone, an unresolved leading tone."""
    tonic, mode = key
    scale = np.zeros(12, dtype=bool)
    scale[list(key_scale(tonic, mode))] = True
    pcs = chords % 12
    lower_moved = moved[..., 1:] | (sound[..., 1:] & (prev[1:] < 0))
    outside = (lower_moved & ~scale[pcs[..., 1:]]).sum(axis=-1)
    lead = (tonic + 11) % 12
    doubled = (sound & (pcs == lead)).sum(axis=-1) >= 2
    was_lead = (prev >= 0) & (prev % 12 == lead)
    unresolved = (was_lead & moved & (chords - prev != 1)).sum(axis=-1)
    return [(w.out_of_key, outside.astype(float)), (w.leading_double, doubled.astype(float)),
            (w.tendency, unresolved.astype(float))]
