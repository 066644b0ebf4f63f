"""Candidate searches started during the listen gap on a worker thread.

A search takes milliseconds to tens of them (:mod:`liveduet.core.candidates`). Run where the
conductor plans the answer's first step, it holds back any note that arrives meanwhile. So
when the engine prefetches (after a send) and the next unplanned step is the last of a
listen gap, :class:`SearchWorker` gets the state before that step: it feeds the gap's last
step itself (every voice rests while the machine listens and the human is silent), then
searches, on its own copy of the model (a second onnxruntime session of the same file, like
:mod:`liveduet.live.tablebuilder`). The conductor takes the phrase when it plans the answer's
first step, if the inputs are still exactly the ones searched from (the human stayed silent);
otherwise it searches itself. The worker's rows are bit for bit the conductor's, so the music
does not depend on where a phrase was chosen.

One request at a time: a newer request replaces a waiting one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from liveduet.core import candidates as cand
from liveduet.core.model import StepModel
from liveduet.core.sampling import Sampler
from liveduet.core.searchjob import Job, run
from liveduet.live.slotworker import SlotWorker

log = logging.getLogger("liveduet.live.searchworker")


class SearchWorker(SlotWorker[Job, cand.Phrase]):
    """Runs searches for one model on a daemon thread; see the module docstring."""

    def __init__(self, model: StepModel) -> None:
        self.taken = 0
        super().__init__(model, "liveduet-search")  # it loads its model now, not in a gap

    @classmethod
    def for_model(cls, model: StepModel) -> SearchWorker | None:
        """A worker for ``model``, or None when its conditioning lives in the conductor's
        session only."""
        return None if model.spec.conditioning else cls(model)

    @property
    def searched(self) -> int:
        """Searches done so far."""
        return self.worked

    def request(self, job: Job) -> None:
        """Search ``job`` next (a waiting older job is dropped)."""
        self._request(job)

    def take(self, job: Job, wait: float | None) -> cand.Phrase | None:
        """The phrase of ``job``: searched, or being searched (waits up to ``wait`` s; None:
        until it is done), or None (the caller searches itself)."""
        phrase = self._take(job, wait)
        if phrase is not None:
            self.taken += 1
        return phrase

    def _same(self, a: Job, b: Job) -> bool:
        return a.same(b)

    def _worker(self, own: StepModel) -> Callable[[Job], cand.Phrase]:
        sampler = Sampler(own.codec)
        return lambda job: run(own, sampler, job)

    def _failure(self) -> None:
        log.exception("a candidate search on the worker failed")
