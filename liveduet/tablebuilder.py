"""Harmony tables built ahead on a worker thread, so the conductor never waits for one.

A harmony table (:mod:`liveduet.harmony`) takes milliseconds: four model steps over a batch of
every token the human's voice could take. Built on the conductor, it delays any note that
arrives meanwhile. :class:`TableBuilder` builds the *next* step's table on its own thread with
its own copy of the model (a second onnxruntime session of the same file, same options), while
the conductor goes on: onnxruntime releases the GIL while it runs, and the sampling between
steps holds it for well under the 0.2 ms switch interval. The table it hands back is, bit for
bit, the one the conductor would build (``tests/test_tablebuilder.py``), so the music does not
depend on where a table was built.

One request at a time: a newer request replaces a waiting one (the human played, the plan
moved on); ``take`` returns the table of exactly these inputs if it is built, waits for it if
it is being built, and otherwise returns None (the caller builds it itself).
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from liveduet.harmony import Context, Harmonizer, Table, same_inputs
from liveduet.model import Snapshot, StepModel
from liveduet.sampling import Sampler

log = logging.getLogger("liveduet.tablebuilder")
Request = tuple[Context, Snapshot, np.ndarray]
WAIT_S = 0.05  # longest wait in ``take`` for a table being built (a build takes a few ms)
QUIET_S = 0.001  # after the conductor looks up a table, the builder holds off this long


class TableBuilder:
    """Builds harmony tables for one model on a daemon thread; see the module docstring."""

    def __init__(self, model: StepModel, hv: int) -> None:
        self._source = (model.path, model.threads, hv)  # loaded on the thread: no stall here
        self._cond = threading.Condition()
        self._want: Request | None = None      # waiting to be built
        self._busy: Request | None = None      # being built
        self._done: Table | None = None        # the latest table built
        self._closed = False
        self._quiet_until = 0.0  # perf_counter time before which the builder holds off
        self.built = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="liveduet-tables", daemon=True)
        self._thread.start()

    @classmethod
    def for_model(cls, model: StepModel) -> TableBuilder | None:
        """A builder for ``model`` when its harmonize steps go through tables, else None."""
        roles = [v.role for v in model.codec.voices]
        if roles.count("given") != 1 or roles.count("sampled") != len(roles) - 1:
            return None
        if model.spec.conditioning:
            return None  # its conditioning values live in the conductor's session only
        return cls(model, roles.index("given"))

    def request(self, ctx: Context, snap: Snapshot, logits0: np.ndarray) -> None:
        """Build the table of these inputs next (an older wish is dropped). ``snap`` is kept
        as given (``StepModel.snapshot`` returns fresh copies); ``logits0`` is copied."""
        with self._cond:
            if self._closed or self._pending(ctx, snap, logits0) or self._ready(ctx, snap, logits0):
                return
            self._want = (ctx, snap, logits0.copy())
            self._cond.notify_all()

    def take(self, ctx: Context, snap: Snapshot, logits0: np.ndarray) -> Table | None:
        """The table of these inputs: built, or being built (wait up to ``WAIT_S``), or None."""
        with self._cond:
            if not self._ready(ctx, snap, logits0):
                if not self._pending(ctx, snap, logits0):
                    return None
                self._cond.wait_for(lambda: self._closed or not self._pending(ctx, snap, logits0),
                                    WAIT_S)
                if not self._ready(ctx, snap, logits0):
                    return None
            return self._done

    def busy(self) -> None:
        """The conductor is answering the music: the builder pauses at its next phase boundary
        for ``QUIET_S`` instead of taking the GIL from it (a joint table spends milliseconds
        in numpy, which holds the GIL; the conductor's answer takes a fraction of one)."""
        self._quiet_until = time.perf_counter() + QUIET_S

    def _hold_off(self) -> None:
        """Sleep (releasing the GIL) while the conductor's quiet window lasts."""
        while not self._closed and (left := self._quiet_until - time.perf_counter()) > 0:
            time.sleep(left)

    def _ready(self, ctx: Context, snap: Snapshot, logits0: np.ndarray) -> bool:
        """The latest table built is the one of these inputs (call with the lock held)."""
        return self._done is not None and self._done.matches(ctx, snap, logits0)

    def _pending(self, ctx: Context, snap: Snapshot, logits0: np.ndarray) -> bool:
        """These inputs are waiting or being built (call with the lock held)."""
        return any(r is not None and _same(r, ctx, snap, logits0)
                   for r in (self._want, self._busy))

    def close(self) -> None:
        """Stop the thread (a build under way finishes first, at most a few ms)."""
        with self._cond:
            self._closed = True
            self._want = None
            self._cond.notify_all()
        self._thread.join(1.0)

    def _run(self) -> None:
        path, threads, hv = self._source
        try:
            own = StepModel(path, threads)
        except Exception:
            log.exception("no worker copy of %s; harmony tables are built on the conductor", path)
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            return
        harmony = Harmonizer(own, Sampler(own.codec), hv, pause=self._hold_off)
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._want is not None or self._closed)
                if self._closed:
                    return
                job, self._want = self._want, None
                self._busy = job
            assert job is not None
            table: Table | None = None
            try:
                table = harmony.build(*job)
                self.built += 1
            except Exception:  # the conductor builds it itself; log the first failure
                self.failed += 1
                if self.failed == 1:
                    log.exception("building a harmony table ahead failed; the conductor builds")
            with self._cond:
                self._busy = None
                if table is not None:
                    self._done = table
                self._cond.notify_all()


def _same(req: Request, ctx: Context, snap: Snapshot, logits0: np.ndarray) -> bool:
    rctx, rsnap, rlogits = req
    return same_inputs(rctx, rsnap.arrays, rlogits, ctx, snap, logits0)
