"""Harmony tables: one harmonize step computed for every token the human's voice could take.

In ``harmonize`` mode a step feeds the human's token (REST, HOLD or a NOTE_ON in the given
voice's range) and then samples the machine's voices. A :class:`Table` runs that step once for
*every* candidate token of the human's voice, as one batch (``StepModel.fork``), sampling the
machine's voices per row with the same keyed uniform numbers (or, with ``voice_leading`` on,
choosing alto, tenor and bass jointly under part-writing rules: :mod:`liveduet.core.partwriting`).
When the human's token is known, the step is a table lookup: the row's tokens, its final state
and logits.

Every harmonize step goes through a table, planned ahead or not, so the music does not depend
on when (or where) the table was built: a dynamically quantised model's rows depend on the whole
batch, so a lone sequential step would not give the row's numbers. A table is reused only when
its inputs (model state and logits before the step, and everything sampling reads: the
:class:`Context`, whose settings are :data:`liveduet.core.settings.TABLE_SETTINGS`) are equal.
A :class:`TableSource` (the live runtime's worker thread) may build the next table ahead on
its own copy of the model; the table it hands back is the one this module would build.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np

from liveduet.core import partwriting
from liveduet.core.codec import HOLD, N_SPECIAL, REST, GridCodec
from liveduet.core.model import Snapshot, StepModel
from liveduet.core.sampling import Sampler, keyed_uniform


class Context(NamedTuple):
    """Everything a harmonize step reads besides the model state and logits (a tuple: made
    for every harmonize step and compared with the kept table's)."""

    step: int
    sounding: tuple[bool, ...]
    # seed .. high and voice_leading: the settings of liveduet.core.settings.TABLE_SETTINGS
    seed: int
    temperature: float
    top_p: float
    density: float
    low: int
    high: int
    pcs: frozenset[int] | None
    voice_leading: str = "off"  # off | guided | strict (liveduet.core.partwriting)
    prev: tuple[int, ...] = ()  # pitches sounding before the step, -1 silent (rules only)
    key: tuple[int, str] | None = None  # key of the human's recent notes (rules only)
    on_beat: bool = False  # the step starts a beat (rules only)
    beat_prev: tuple[int, ...] = ()  # pitches sounding at the previous beat (rules only)
    positions: tuple[int, ...] = ()  # position id fed with each voice's token (metre-v1)


@dataclass(slots=True)
class Table:
    """One step for every candidate token of the human's voice (one row each).

    Each row's tokens, flag, state and logits are also kept ready to use as they are (built with
    the table, on the builder's thread): a note's answer is a few lookups, not array work on
    the conductor, whose caches are cold when a note wakes it.
    """

    ctx: Context
    base: tuple[np.ndarray, ...]  # state before the step (batch of one)
    logits0: np.ndarray  # logits before the step
    rows: dict[int, int]  # human's token -> row
    fed: np.ndarray  # [rows, voices] tokens fed (REST where the logits were not finite)
    bad: np.ndarray  # [rows] some logits of the row were not finite
    state: tuple[np.ndarray, ...]  # state after the step, batch of rows
    axes: tuple[int, ...]  # batch axis of each state array
    logits: np.ndarray  # [rows, vocab] logits after the step (read-only)
    row_fed: list[tuple[int, ...]] = field(init=False)  # fed as Python ints
    row_bad: list[bool] = field(init=False)
    row_snaps: list[Snapshot] = field(init=False)  # state after, batch of one

    def __post_init__(self) -> None:
        for a in (self.logits, *self.state):
            a.flags.writeable = False
        self.row_fed = [tuple(r) for r in self.fed.tolist()]
        self.row_bad = [bool(b) for b in self.bad.tolist()]
        self.row_snaps = [self._row(r) for r in range(len(self.fed))]

    def _row(self, row: int) -> Snapshot:
        """Row ``row`` of the state as a batch of one: read-only views, no copies."""
        views = []
        for a, ax in zip(self.state, self.axes, strict=True):
            index: list[slice] = [slice(None)] * a.ndim
            index[ax] = slice(row, row + 1)
            views.append(a[tuple(index)])
        return Snapshot(1, tuple(views))

    def matches(self, ctx: Context, snap: Snapshot, logits0: np.ndarray) -> bool:
        """True when the table was built from exactly these inputs (bit for bit)."""
        return same_inputs(self.ctx, self.base, self.logits0, ctx, snap, logits0)

    def row_state(self, row: int) -> Snapshot:
        """The state after the step of ``row``, as a batch-of-one snapshot."""
        return self.row_snaps[row]


def same_inputs(ctx: Context, base: tuple[np.ndarray, ...], logits0: np.ndarray,
                other: Context, snap: Snapshot, other_logits: np.ndarray) -> bool:
    """True when two harmonize steps read exactly the same inputs (bit for bit)."""
    return (ctx == other and snap.batch == 1 and logits0.shape == other_logits.shape
            and logits0.tobytes() == other_logits.tobytes()
            and all(a is b or (a.shape == b.shape and a.tobytes() == b.tobytes())
                    for a, b in zip(snap.arrays, base, strict=True)))


class TableSource(Protocol):
    """Builds tables ahead, elsewhere (see :class:`liveduet.live.tablebuilder.TableBuilder`)."""

    def request(self, ctx: Context, snap: Snapshot, logits0: np.ndarray) -> None:
        """Start building the table of these inputs (replaces an older request)."""

    def take(self, ctx: Context, snap: Snapshot, logits0: np.ndarray) -> Table | None:
        """The table of these inputs if it is built or being built (waits for it), else None."""

    def close(self) -> None:
        """Stop building."""

    def busy(self) -> None:
        """The caller is answering the music now: let it have the interpreter for a moment."""


def table_voice(codec: GridCodec) -> int | None:
    """The human's voice when ``codec``'s harmonize steps go through tables (exactly one given
    voice, every other one sampled), else None."""
    roles = [v.role for v in codec.voices]
    if roles.count("given") != 1 or roles.count("sampled") != len(roles) - 1:
        return None
    return roles.index("given")


def candidates(codec: GridCodec, hv: int) -> list[int]:
    """Every token the human's voice ``hv`` can be fed: REST, HOLD, each NOTE_ON in range."""
    notes = [t for t in np.flatnonzero(codec.voice_tokens(hv)) if t >= N_SPECIAL]
    return [REST, HOLD, *(int(t) for t in notes)]


class Harmonizer:
    """Builds and keeps harmony tables per step."""

    def __init__(self, model: StepModel, sampler: Sampler, hv: int,
                 source: TableSource | None = None,
                 pause: Callable[[], None] = partwriting.no_pause) -> None:
        self.model = model
        self.sampler = sampler
        self.hv = hv
        self.source = source  # builds the next table ahead, off the caller's thread
        self.pause = pause  # called between the phases of a build (a builder thread yields)
        self.cands = np.array(candidates(model.codec, hv), dtype=np.int64)
        self.rows = {int(t): i for i, t in enumerate(self.cands)}
        self.tables: dict[int, Table] = {}
        self.built = 0
        self.hits = 0
        self.fetched = 0

    def table(self, ctx: Context, snap: Snapshot, logits0: np.ndarray) -> Table:
        """The table for ``ctx``'s step from the model's current state (== ``snap``).

        Builds it when no equal table is kept; the model state is left batched after a build
        (the caller restores a row).
        """
        if self.source is not None:
            self.source.busy()
        old = self.tables.get(ctx.step)
        if old is not None and old.matches(ctx, snap, logits0):
            self.hits += 1
            return old
        if self.source is not None and (made := self.source.take(ctx, snap, logits0)) is not None:
            self.tables[ctx.step] = made
            self.fetched += 1
            return made
        table = self._build(ctx, snap, logits0)
        self.tables[ctx.step] = table
        self.built += 1
        return table

    def prefetch(self, ctx: Context, snap: Snapshot, logits0: np.ndarray) -> None:
        """Ask the source to build this step's table ahead unless an equal one is kept."""
        old = self.tables.get(ctx.step)
        if self.source is not None and not (old is not None and old.matches(ctx, snap, logits0)):
            self.source.request(ctx, snap, logits0)

    def build(self, ctx: Context, snap: Snapshot, logits0: np.ndarray) -> Table:
        """Build the table of these inputs now, from ``snap`` (the model is left batched)."""
        self.model.restore(snap)
        return self._build(ctx, snap, logits0)

    def _build(self, ctx: Context, snap: Snapshot, logits0: np.ndarray) -> Table:
        if ctx.voice_leading != "off" and partwriting.supported(self.model.codec, self.hv):
            return self._build_joint(ctx, snap, logits0)
        model, codec, n = self.model, self.model.codec, len(self.cands)
        model.fork(n)
        logits = np.broadcast_to(logits0, (n, logits0.size))
        fed = np.empty((n, codec.n_voices), dtype=np.int64)
        bad = np.zeros(n, dtype=bool)
        for v in range(codec.n_voices):
            if v == self.hv:
                toks = self.cands
            else:
                legal = self.sampler.legal(v, ctx.low, ctx.high, ctx.pcs, ctx.sounding[v])
                toks = self.sampler.sample_rows(
                    logits, legal, temperature=ctx.temperature, top_p=ctx.top_p,
                    density=ctx.density, u=keyed_uniform(ctx.seed, ctx.step, v), voice=v)
                bad |= toks < 0
            fed[:, v] = np.where(toks < 0, REST, toks)
            if ctx.positions:
                model.set_position(ctx.positions[v])
            self.pause()
            logits = model.step(fed[:, v]).copy()
        axes = tuple(s.batch_axis for s in model.spec.states)
        state = model.snapshot().arrays  # read-only copies
        return Table(ctx, snap.arrays, logits0.copy(), self.rows, fed, bad, state, axes, logits)

    def _build_joint(self, ctx: Context, snap: Snapshot, logits0: np.ndarray) -> Table:
        """The table with alto, tenor and bass chosen together under part-writing rules."""
        model = self.model
        legal = [self.sampler.legal(v, ctx.low, ctx.high, ctx.pcs, ctx.sounding[v])
                 for v in (1, 2, 3)]
        frame = partwriting.Frame(ctx.prev, ctx.key, ctx.on_beat,
                                  partwriting.WEIGHTS[ctx.voice_leading], ctx.beat_prev)
        fed, bad, logits = partwriting.choose(
            model, self.sampler, self.cands, legal, frame, temperature=ctx.temperature,
            density=ctx.density, u=keyed_uniform(ctx.seed, ctx.step, 1), pause=self.pause,
            positions=ctx.positions)
        axes = tuple(s.batch_axis for s in model.spec.states)
        state = model.snapshot().arrays
        return Table(ctx, snap.arrays, logits0.copy(), self.rows, fed, bad, state, axes,
                     logits.copy())

    def prune(self, keep: int) -> None:
        """Forget tables of steps before ``keep``."""
        for n in [k for k in self.tables if k < keep]:
            del self.tables[n]

    def clear(self) -> None:
        """Forget every table (a new state or model)."""
        self.tables.clear()
