"""Harmony tables built ahead on a worker thread, so the conductor never waits for one.

A harmony table (:mod:`liveduet.core.harmony`) takes milliseconds: four model steps over a batch of
every token the human's voice could take. Built on the conductor, it delays any note that
arrives meanwhile. :class:`TableBuilder` builds the *next* step's table on its own thread with
its own copy of the model (a second onnxruntime session of the same file, same options), while
the conductor goes on: onnxruntime releases the GIL while it runs, and the sampling between
steps holds it for well under the 0.2 ms switch interval. The table it hands back is, bit for
bit, the one the conductor would build (``tests/live/test_tablebuilder.py``), so the music does not
depend on where a table was built.

One request at a time: a newer request replaces a waiting one (the human played, the plan
moved on); ``take`` returns the table of exactly these inputs if it is built, waits for it if
it is being built, and otherwise returns None (the caller builds it itself).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from liveduet.core.harmony import Context, Harmonizer, Table, same_inputs, table_voice
from liveduet.core.model import Snapshot, StepModel
from liveduet.core.sampling import Sampler
from liveduet.live.slotworker import SlotWorker

log = logging.getLogger("liveduet.live.tablebuilder")
Request = tuple[Context, Snapshot, np.ndarray]
WAIT_S = 0.05  # longest wait in ``take`` for a table being built (a build takes a few ms)
QUIET_S = 0.001  # after the conductor looks up a table, the builder holds off this long


class TableBuilder(SlotWorker[Request, Table]):
    """Builds harmony tables for one model on a daemon thread; see the module docstring."""

    def __init__(self, model: StepModel, hv: int) -> None:
        self._hv = hv
        self._quiet_until = 0.0  # perf_counter time before which the builder holds off
        super().__init__(model, "liveduet-tables")

    @classmethod
    def for_model(cls, model: StepModel) -> TableBuilder | None:
        """A builder for ``model`` when its harmonize steps go through tables, else None."""
        hv = table_voice(model.codec)
        # a conditioned model's conditioning values live in the conductor's session only
        if hv is None or model.spec.conditioning:
            return None
        return cls(model, hv)

    @property
    def built(self) -> int:
        """Tables built so far."""
        return self.worked

    def request(self, ctx: Context, snap: Snapshot, logits0: np.ndarray) -> None:
        """Build the table of these inputs next (an older wish is dropped). ``snap`` is kept
        as given (``StepModel.snapshot`` returns fresh copies); ``logits0`` is copied."""
        self._request((ctx, snap, logits0.copy()))

    def take(self, ctx: Context, snap: Snapshot, logits0: np.ndarray) -> Table | None:
        """The table of these inputs: built, or being built (wait up to ``WAIT_S``), or None."""
        return self._take((ctx, snap, logits0), WAIT_S)

    def busy(self) -> None:
        """The conductor is answering the music: the builder pauses at its next phase boundary
        for ``QUIET_S`` instead of taking the GIL from it (a joint table spends milliseconds
        in numpy, which holds the GIL; the conductor's answer takes a fraction of one)."""
        self._quiet_until = time.perf_counter() + QUIET_S

    def _hold_off(self) -> None:
        """Sleep (releasing the GIL) while the conductor's quiet window lasts."""
        while not self._closed and (left := self._quiet_until - time.perf_counter()) > 0:
            time.sleep(left)

    def _same(self, a: Request, b: Request) -> bool:
        return _same(a, *b)

    def _worker(self, own: StepModel) -> Callable[[Request], Table]:
        harmony = Harmonizer(own, Sampler(own.codec), self._hv, pause=self._hold_off)
        return lambda job: harmony.build(*job)

    def _failure(self) -> None:
        if self.failed == 1:  # the conductor builds it itself; log the first failure
            log.exception("building a harmony table ahead failed; the conductor builds")


def _same(req: Request, ctx: Context, snap: Snapshot, logits0: np.ndarray) -> bool:
    rctx, rsnap, rlogits = req
    return same_inputs(rctx, rsnap.arrays, rlogits, ctx, snap, logits0)
