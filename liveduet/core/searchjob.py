"""A candidate search as a value: the inputs of the search of one answer phrase, and the search.

:class:`Job` carries the state before a listen gap's last step and everything the search of
the phrase after it reads; :func:`run` does that search on a model. The planner runs one itself
or hands it to a :class:`SearchSource` (the live runtime's worker thread) to run ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from liveduet.core import candidates as cand
from liveduet.core.critic import Context
from liveduet.core.model import Snapshot, StepModel
from liveduet.core.sampling import Sampler
from liveduet.core.settings import Settings


@dataclass(frozen=True, eq=False)
class Job:
    """A search: the state and logits before the gap's last step (``start - 1``), the tokens
    fed there, and everything the search of the phrase at ``start`` reads."""

    snap: Snapshot
    logits: np.ndarray
    pre: tuple[int, ...]
    start: int
    length: int
    settings: Settings
    sounding: tuple[bool, ...]
    pcs: frozenset[int] | None
    ctx: Context
    deadline: float | None
    positions_of: cand.PositionsOf = cand.no_positions
    line: cand.Line | None = None

    def same(self, other: Job) -> bool:
        """True when both searches read exactly the same inputs (bit for bit)."""
        a, b = self.ctx, other.ctx
        return (self.start == other.start and self.length == other.length
                and self.pre == other.pre and self.settings == other.settings
                and self.sounding == other.sounding and self.pcs == other.pcs
                and a.source.notes == b.source.notes and list(a.prefix) == list(b.prefix)
                and a.key == b.key and a.entry == b.entry and self.line == other.line
                and self.logits.tobytes() == other.logits.tobytes()
                and all(x is y or x.tobytes() == y.tobytes()
                        for x, y in zip(self.snap.arrays, other.snap.arrays, strict=True)))


def run(model: StepModel, sampler: Sampler, job: Job) -> cand.Phrase:
    """The search of ``job`` on ``model``: feed the gap's last step, sample, choose."""
    model.restore(job.snap)
    logits = job.logits
    for tok, position in zip(job.pre, job.positions_of(job.start - 1), strict=False):
        model.set_position(position)
        logits = model.step(tok)[0].copy()
    batch = cand.sample(model, sampler, job.settings, job.start, job.length, logits,
                        job.sounding, job.pcs, job.positions_of, job.deadline, job.line)
    return cand.choose(model.codec, batch, job.ctx, job.length)


class SearchSource(Protocol):
    """Who runs searches ahead (live: :class:`liveduet.live.searchworker.SearchWorker`)."""

    def request(self, job: Job) -> None: ...

    def take(self, job: Job, wait: float | None) -> cand.Phrase | None: ...

    def close(self) -> None: ...
