"""The live run's helper threads: a harmony-table builder and a candidate search worker.

They belong to the runtime, not to the engine: the engine is given :meth:`Workers.tables` and
:meth:`Workers.search` as factories and asks them for the helpers of each model it plays; a
new model's helpers replace (and end) the previous model's, and :meth:`Workers.close` ends them
all when the run ends. Offline, an engine has no helpers and does the same work itself.
"""

from __future__ import annotations

from liveduet.core.model import StepModel
from liveduet.live.searchworker import SearchWorker
from liveduet.live.tablebuilder import TableBuilder


class Workers:
    """The helper threads of the model playing now."""

    def __init__(self) -> None:
        self.builder: TableBuilder | None = None
        self.searcher: SearchWorker | None = None

    def tables(self, model: StepModel) -> TableBuilder | None:
        """A table builder for ``model`` (None when its steps do not use tables)."""
        if self.builder is not None:
            self.builder.close()
        self.builder = TableBuilder.for_model(model)
        return self.builder

    def search(self, model: StepModel) -> SearchWorker | None:
        """A candidate search worker for ``model`` (None when it cannot have one)."""
        if self.searcher is not None:
            self.searcher.close()
        self.searcher = SearchWorker.for_model(model)
        return self.searcher

    def close(self) -> None:
        """End every helper thread (safe to call twice)."""
        for worker in (self.builder, self.searcher):
            if worker is not None:
                worker.close()
        self.builder = self.searcher = None
