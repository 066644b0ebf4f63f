"""A worker thread with its own copy of the model that works one job at a time, ahead of the
conductor (harmony tables, candidate searches).

The model is loaded on the thread (a second onnxruntime session of the same file), so
starting a worker never stalls the caller. A newer request replaces a waiting one (the human
played, the plan moved on); the latest result is kept with the job that made it, and ``take``
returns it only for a job with exactly the same inputs, waiting for one under way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from liveduet.core.model import StepModel

J = TypeVar("J")
R = TypeVar("R")


class SlotWorker(Generic[J, R]):
    """One job slot on a daemon thread; subclasses say how jobs compare and how one is done."""

    def __init__(self, model: StepModel, name: str) -> None:
        self._source = (model.path, model.threads)
        self._cond = threading.Condition()
        self._want: J | None = None        # waiting
        self._busy: J | None = None        # under way
        self._done: tuple[J, R] | None = None  # the latest result and its job
        self._closed = False
        self.worked = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- what subclasses give -----------------------------------------------------------
    def _same(self, a: J, b: J) -> bool:
        """True when two jobs read exactly the same inputs."""
        raise NotImplementedError

    def _worker(self, own: StepModel) -> Callable[[J], R]:
        """The function that does a job, built once on the thread from its copy of the model."""
        raise NotImplementedError

    def _failure(self) -> None:
        """Log a failed job (the caller then does the work itself)."""

    # -- the slot -------------------------------------------------------------------------
    def _pending(self, job: J) -> bool:
        """``job`` is waiting or under way (call with the lock held)."""
        return any(j is not None and self._same(j, job) for j in (self._want, self._busy))

    def _result(self, job: J) -> R | None:
        """The kept result of ``job``, or None (call with the lock held)."""
        if self._done is not None and self._same(self._done[0], job):
            return self._done[1]
        return None

    def _request(self, job: J) -> None:
        """Do ``job`` next unless it is waiting, under way or done (a waiting job is dropped)."""
        with self._cond:
            if self._closed or self._pending(job) or self._result(job) is not None:
                return
            self._want = job
            self._cond.notify_all()

    def _take(self, job: J, wait: float | None) -> R | None:
        """The result of ``job``: done, or under way (wait up to ``wait`` s; None: until it is
        done), or None (the caller does the work itself)."""
        with self._cond:
            if self._result(job) is None and self._pending(job):
                self._cond.wait_for(lambda: self._closed or not self._pending(job),
                                    None if wait is None else max(wait, 0.0))
            return self._result(job)

    def close(self) -> None:
        """Stop the thread (a job under way finishes first)."""
        with self._cond:
            self._closed = True
            self._want = None
            self._cond.notify_all()
        self._thread.join(1.0)

    def _run(self) -> None:
        path, threads = self._source
        try:
            work = self._worker(StepModel(path, threads))
        except Exception:
            logging.getLogger(type(self).__module__).exception(
                "no worker copy of %s; the conductor does this work itself", path)
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            return
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._want is not None or self._closed)
                if self._closed:
                    return
                job, self._want = self._want, None
                self._busy = job
            assert job is not None
            result: R | None = None
            try:
                result = work(job)
                self.worked += 1
            except Exception:  # the caller does this job itself
                self.failed += 1
                self._failure()
            with self._cond:
                self._busy = None
                if result is not None:
                    self._done = (job, result)
                self._cond.notify_all()
