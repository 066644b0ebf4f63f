"""Candidate phrases: N continuations sampled in one batch, the critic picks one.

The model state before the phrase's first step is forked over the batch dimension
(:meth:`StepModel.fork`); all rows step together, each drawing from its own keyed random
stream: row 0 draws exactly what a single sample draws (``keyed_uniform(seed, step, voice)``),
row r > 0 from seed ``seed | r << 32`` (beyond any seed setting). The state is restored after,
so the planner feeds the chosen row's tokens itself and keeps its snapshots and rollbacks.

Every row follows the planner's rules for a line the machine carries (:class:`Line`): the
metrical position fed with each token, the pace controller, the hold limit, and a note on an
answer's first step; so row 0 is exactly the phrase a single sample would play.

A deadline (``time.perf_counter`` seconds) cuts the search short: the rows are judged on what
they hold so far and the best one's steps play; the planner samples the rest as without
candidates. Offline there is no deadline, so the same seed gives the same phrase.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from liveduet.core.codec import HOLD, N_SPECIAL, REST, GridCodec
from liveduet.core.critic import Context, Verdict, best, judge
from liveduet.core.model import StepModel
from liveduet.core.motifs import PNote
from liveduet.core.pace import next_rate, pace_bias
from liveduet.core.sampling import Sampler
from liveduet.core.settings import Settings

PositionsOf = Callable[[int], tuple[int, ...]]
"""Step -> the position id fed with each voice's token of that step (Planner.positions)."""
_MASK64 = (1 << 64) - 1


def no_positions(step: int) -> tuple[int, ...]:
    """Position ids when no metre map is wired: 0 for up to eight voices."""
    return (0,) * 8


@dataclass(frozen=True)
class Line:
    """The rules of a line the machine carries, as the planner keeps them at a phrase's start.

    ``target`` onsets per step (the corpus's pace at the density setting), each voice's moving
    onset ``rate`` and steps ``held`` so far, the longest note ``hold_limit`` in steps,
    ``paced`` voices (the pace and the limit apply to them), and ``enters``: the first step
    is an answer's entry, where the machine plays a note.
    """

    target: float
    rate: tuple[float, ...]
    held: tuple[int, ...]
    hold_limit: int
    paced: tuple[bool, ...]
    enters: bool = False


def free_line(voices: int) -> Line:
    """No pace, no hold limit, no entry rule (tests and old callers)."""
    return Line(0.0, (0.0,) * voices, (0,) * voices, 1 << 30, (False,) * voices)


def row_seed(seed: int, row: int) -> int:
    """The random stream of candidate ``row`` (row 0 is the single sample's own)."""
    return seed | (row << 32)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 arrays (wrapping arithmetic, as in sampling)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def row_uniforms(seed: int, rows: int, step: int, voice: int) -> np.ndarray:
    """``keyed_uniform(row_seed(seed, r), step, voice)`` for every row, in one pass."""
    return _uniforms(_seeds(seed, rows), step, voice)


def _seeds(seed: int, rows: int) -> np.ndarray:
    """Every row's seed, mixed once (the first round of keyed_uniform)."""
    with np.errstate(over="ignore"):
        return _mix(np.array([row_seed(seed, r) for r in range(rows)], dtype=np.uint64))


def _uniforms(mixed: np.ndarray, step: int, voice: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = _mix(_mix(mixed ^ np.uint64(step & _MASK64)) ^ np.uint64(voice & _MASK64))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass(frozen=True)
class Batch:
    """Sampled rows: tokens ``[rows, steps, voices]`` and each token's log-probability."""

    start: int
    tokens: np.ndarray
    logp: np.ndarray

    @property
    def steps(self) -> int:
        """Steps every row holds (fewer than asked when a deadline cut the search)."""
        return self.tokens.shape[1]


@dataclass(frozen=True)
class Phrase:
    """The chosen candidate: the machine's tokens from ``start`` on, one tuple per step."""

    start: int
    tokens: tuple[tuple[int, ...], ...]
    verdict: Verdict
    complete: bool

    @property
    def end(self) -> int:
        """First step after the phrase's tokens."""
        return self.start + len(self.tokens)

    def token(self, step: int, voice: int) -> int | None:
        """The chosen token of ``voice`` at ``step``, or None outside the phrase."""
        k = step - self.start
        return self.tokens[k][voice] if 0 <= k < len(self.tokens) else None


def sample(model: StepModel, sampler: Sampler, settings: Settings, start: int, length: int,
           logits0: np.ndarray, sounding0: tuple[bool, ...], pcs: frozenset[int] | None,
           positions_of: PositionsOf, deadline: float | None = None,
           line: Line | None = None) -> Batch:
    """Sample ``settings.candidates`` rows of ``length`` steps from the model's current state
    (whose next-step logits are ``logits0``) under ``line``'s rules; the model state is left
    as it was."""
    rows, voices = settings.candidates, model.codec.n_voices
    line = line or free_line(voices)
    snap = model.snapshot()
    model.fork(rows)
    logits = np.repeat(np.asarray(logits0, dtype=np.float32)[None, :], rows, axis=0)
    sounding = np.tile(np.array(sounding0, dtype=bool), (rows, 1))
    held = np.tile(np.array(line.held, dtype=np.int64), (rows, 1))
    rate = np.tile(np.array(line.rate, dtype=np.float64), (rows, 1))
    toks = np.zeros((rows, length, voices), dtype=np.int64)
    logp = np.zeros((rows, length, voices), dtype=np.float64)
    seeds = _seeds(settings.seed, rows)
    done = 0
    try:
        for k in range(length):
            positions = positions_of(start + k)
            for v in range(voices):
                u = _uniforms(seeds, start + k, v)
                paced = line.paced[v]
                can_hold = sounding[:, v] & ((held[:, v] < line.hold_limit) | (not paced))
                bias = (np.array([pace_bias(r, line.target) for r in rate[:, v]])
                        if paced else 0.0)
                tok = _draw(sampler, settings, logits, can_hold, pcs, u, v, bias,
                            enters=line.enters and k == 0)
                toks[:, k, v] = tok
                logp[:, k, v] = _log_softmax_at(logits, tok)
                sounding[:, v] = (tok > REST) | ((tok == HOLD) & sounding[:, v])
                held[:, v] = np.where(sounding[:, v], np.where(tok == HOLD, held[:, v] + 1, 1), 0)
                rate[:, v] = [next_rate(r, t > REST) for r, t in zip(rate[:, v], tok, strict=True)]
                model.set_position(positions[v])
                logits = model.step(tok).copy()
            done = k + 1
            if deadline is not None and time.perf_counter() > deadline:
                break
    finally:
        model.restore(snap)
    return Batch(start, toks[:, :done], logp[:, :done])


def _draw(sampler: Sampler, s: Settings, logits: np.ndarray, can_hold: np.ndarray,
          pcs: frozenset[int] | None, u: np.ndarray, voice: int, bias: np.ndarray | float,
          enters: bool) -> np.ndarray:
    """One token per row, row r drawn with ``u[r]``; a row whose logits are not finite rests.

    ``can_hold`` per row: the voice sounds and may go on holding; ``bias`` the pace's note
    bias per row; ``enters``: no rest (an answer's first step comes in with a note)."""
    held = sampler.legal(voice, s.low, s.high, pcs, True)
    free = sampler.legal(voice, s.low, s.high, pcs, False)
    legal = np.where(can_hold[:, None], held[None, :], free[None, :])
    if enters:
        legal[:, REST] = False
    tok = sampler.sample_rows(logits, legal, temperature=s.temperature, top_p=s.top_p,
                              density=s.density, u=u, voice=voice,  # type: ignore[arg-type]
                              note_bias=bias)
    return np.where(tok < 0, REST, tok)


def _log_softmax_at(logits: np.ndarray, tok: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    return z[np.arange(z.shape[0]), tok] - lse


def notes_of(codec: GridCodec, tokens: np.ndarray, start: int, voice: int = 0) -> list[PNote]:
    """The notes one row starts in ``voice`` (steps ``start`` on; a note holds over HOLDs)."""
    out: list[PNote] = []
    col = tokens[:, voice].tolist()
    for k, tok in enumerate(col):
        if tok >= N_SPECIAL:
            end = k + 1
            while end < len(col) and col[end] == HOLD:
                end += 1
            out.append(PNote(start + k, end - k, int(codec.pitch_of(tok) or 0)))
    return out


def choose(codec: GridCodec, batch: Batch, ctx: Context, length: int, voice: int = 0) -> Phrase:
    """The critic's pick among the rows of ``batch`` (judged on ``voice``'s notes) for a
    phrase of ``length`` steps (incomplete when a deadline cut the batch short)."""
    verdicts = []
    for r in range(batch.tokens.shape[0]):
        row = batch.tokens[r]
        notes = notes_of(codec, row, batch.start, voice)
        onsets = batch.logp[r, :, voice][row[:, voice] >= N_SPECIAL]
        verdicts.append(judge(notes, onsets.tolist(), ctx))
    pick = best(verdicts, ctx.max_copy)
    tokens = tuple(tuple(int(t) for t in step) for step in batch.tokens[pick])
    return Phrase(batch.start, tokens, verdicts[pick], complete=batch.steps == length)
