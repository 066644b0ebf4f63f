"""StepModel: an ONNX step model whose recurrent state lives in buffers liveduet owns.

One token per row per :meth:`StepModel.step`, through a prepared onnxruntime IOBinding: the
token, logits and state arrays are allocated once per batch size and bound by pointer, and the
state ping-pongs between two buffer sets, so a step allocates nothing and copies nothing.
:meth:`prime` feeds many tokens in one call. :meth:`snapshot`/:meth:`restore` keep and bring
back the state exactly; :meth:`fork` tiles it to a batch (best-of-n), :meth:`select` keeps one
row. Snapshots are read-only, so a restore is lazy: the state is copied into the buffers only
when the model runs again, and a snapshot of a restored state is the restored snapshot itself
(the engine's rollbacks and harmony table rows restore states far more often than it steps).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from liveduet.core.codec import BOS, GridCodec
from liveduet.core.contract import ModelSpec, inspect_model, open_session
from liveduet.errors import LiveduetError


@dataclass(frozen=True)
class Snapshot:
    """An exact copy of the model state (and its batch size). Never write into its arrays:
    a model restored from it reads them later (``StepModel.snapshot`` makes them read-only)."""

    batch: int
    arrays: tuple[np.ndarray, ...]


class _Bound:
    """Pre-allocated arrays and two ping-pong IOBindings for one batch size."""

    def __init__(self, sess: ort.InferenceSession, spec: ModelSpec, batch: int,
                 cond: dict[str, np.ndarray]) -> None:
        self.tokens = np.zeros((batch, 1), dtype=np.int64)
        self.position = np.zeros((batch, 1), dtype=np.int64)
        self.logits = np.zeros((batch, 1, spec.vocab_size), dtype=np.float32)
        self.bufs = [
            [np.zeros(s.concrete_shape(batch), dtype=np.float32) for s in spec.states]
            for _ in range(2)
        ]
        self.cond = {c.name: np.broadcast_to(cond[c.name], (batch, c.size)).copy()
                     for c in spec.conditioning}
        self._keep: list[ort.OrtValue] = []
        self.bindings = [self._bind(sess, spec, src, 1 - src) for src in (0, 1)]
        self.cur = 0

    def _value(self, arr: np.ndarray) -> ort.OrtValue:
        val = ort.OrtValue.ortvalue_from_numpy(arr)
        self._keep.append(val)
        return val

    def _bind(self, sess: ort.InferenceSession, spec: ModelSpec, src: int, dst: int
              ) -> ort.IOBinding:
        b = sess.io_binding()
        b.bind_ortvalue_input("tokens", self._value(self.tokens))
        if spec.position is not None:
            b.bind_ortvalue_input(spec.position.name, self._value(self.position))
        b.bind_ortvalue_output("logits", self._value(self.logits))
        for i, s in enumerate(spec.states):
            b.bind_ortvalue_input(s.name, self._value(self.bufs[src][i]))
            b.bind_ortvalue_output(s.output, self._value(self.bufs[dst][i]))
        for name, arr in self.cond.items():
            b.bind_ortvalue_input(name, self._value(arr))
        return b

    @property
    def state(self) -> list[np.ndarray]:
        return self.bufs[self.cur]


class StepModel:
    """A contract-valid ONNX model stepped one token at a time with owned state."""

    def __init__(self, path: str | os.PathLike[str], threads: int = 1) -> None:
        self.path = os.fspath(path)
        self.threads = threads
        self.session = open_session(self.path, threads)
        self.spec = inspect_model(self.path, self.session)
        self.codec: GridCodec = self.spec.codec
        self._cond = {c.name: np.asarray(c.default, dtype=np.float32)
                      for c in self.spec.conditioning}
        self._position = 0
        self._bound: dict[int, _Bound] = {}
        self._b = self._binding(1)
        self._pending: Snapshot | None = None  # restored, not yet copied into the buffers
        self._check_runs()

    # -- setup ----------------------------------------------------------------------------
    def _binding(self, batch: int) -> _Bound:
        bound = self._bound.get(batch)
        if bound is None:
            bound = _Bound(self.session, self.spec, batch, self._cond)
            self._bound[batch] = bound
        return bound

    def _check_runs(self) -> None:
        from liveduet.errors import ModelError

        try:
            logits = self.step(BOS)
        except Exception as err:  # onnxruntime raises several unrelated types
            raise ModelError(self.path, "runs", f"a one-token step fails ({err})",
                             "check the exported graph with onnx.checker and a test step") from err
        if logits.shape[-1] != self.codec.vocab_size:
            raise ModelError(self.path, "vocab", f"logits have {logits.shape[-1]} entries, codec "
                             f"{self.codec.vocab_size}", "export with the training codec")
        self.reset()

    # -- properties -----------------------------------------------------------------------
    @property
    def batch(self) -> int:
        """Rows currently stepped together."""
        if self._pending is not None:
            return self._pending.batch
        return self._b.tokens.shape[0]

    @property
    def vocab_size(self) -> int:
        """Size of the logits' last axis."""
        return self.spec.vocab_size

    @property
    def has_position(self) -> bool:
        """True when the model takes metrical position ids (``liveduet.position``)."""
        return self.spec.position is not None

    @property
    def title(self) -> str:
        """The model card's title."""
        return str(self.spec.card.get("title", os.path.basename(self.path)))

    # -- stepping -------------------------------------------------------------------------
    def step(self, tokens: int | np.ndarray) -> np.ndarray:
        """Feed one token per row; return logits ``[batch, vocab]``.

        The returned array is a view valid until the next call; copy it to keep it.
        """
        b = self._live()
        b.tokens[:, 0] = tokens
        if b.position[0, 0] != self._position:
            b.position.fill(self._position)
        self.session.run_with_iobinding(b.bindings[b.cur])
        b.cur ^= 1
        return b.logits[:, 0, :]

    def set_position(self, position: int) -> None:
        """The metrical position id fed with the next steps (ignored by models without one)."""
        self._position = int(position)

    def prime(self, tokens: np.ndarray | list[int],
              positions: np.ndarray | list[int] | None = None) -> np.ndarray:
        """Feed ``T`` tokens per row in one call; return logits ``[batch, T, vocab]``.

        ``positions`` gives each token's position id (shaped like ``tokens``); without it every
        token gets the current :meth:`set_position` value.
        """
        self._live()
        arr = np.asarray(tokens, dtype=np.int64)
        if arr.ndim == 1:
            arr = np.broadcast_to(arr, (self.batch, arr.size))
        if arr.ndim != 2 or arr.shape[0] != self.batch:
            raise LiveduetError(f"prime takes [T] or [{self.batch}, T] tokens, got {arr.shape}")
        if arr.shape[1] == 0:
            return np.zeros((self.batch, 0, self.vocab_size), dtype=np.float32)
        b = self._b
        feeds = {"tokens": np.ascontiguousarray(arr), **b.cond}
        if self.spec.position is not None:
            pos = (np.full(arr.shape, self._position, dtype=np.int64) if positions is None
                   else np.broadcast_to(np.asarray(positions, dtype=np.int64), arr.shape))
            feeds[self.spec.position.name] = np.ascontiguousarray(pos)
        feeds.update({s.name: a for s, a in zip(self.spec.states, b.state, strict=True)})
        names = ["logits"] + [s.output for s in self.spec.states]
        outs = self.session.run(names, feeds)
        for dst, src in zip(b.state, outs[1:], strict=True):
            np.copyto(dst, src)
        return outs[0]

    # -- state ----------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """An exact, read-only copy of the current state (the restored snapshot itself while
        the model has not run since :meth:`restore`)."""
        if self._pending is not None:
            return self._pending
        arrays = tuple(a.copy() for a in self._b.state)
        for a in arrays:
            a.flags.writeable = False
        return Snapshot(self.batch, arrays)

    def restore(self, snap: Snapshot) -> None:
        """Make ``snap`` the current state (switching batch size if needed). Lazy: copied into
        the buffers when the model next runs, so ``snap`` must not change (see Snapshot)."""
        self._pending = snap

    def _live(self) -> _Bound:
        """The buffers holding the current state (a pending restore is copied in now)."""
        snap, self._pending = self._pending, None
        if snap is not None:
            self._b = self._binding(snap.batch)
            for dst, src in zip(self._b.state, snap.arrays, strict=True):
                np.copyto(dst, src)
        return self._b

    def reset(self) -> None:
        """Zero state, batch of one; feed BOS next to start a sequence."""
        self._pending = None
        self._b = self._binding(1)
        for a in self._b.state:
            a.fill(0.0)

    def fork(self, n: int) -> None:
        """Copy the (one-row) state into ``n`` identical rows."""
        if self.batch != 1:
            raise LiveduetError(f"fork needs a batch of 1, the model holds {self.batch}; select()")
        if n < 1:
            raise LiveduetError(f"fork({n}): n must be >= 1")
        old = self._live().state
        self._b = self._binding(n)
        for spec, dst, src in zip(self.spec.states, self._b.state, old, strict=True):
            np.copyto(dst, np.repeat(src, n, axis=spec.batch_axis))

    def select(self, row: int) -> None:
        """Keep only ``row`` of a forked batch, back to a batch of one."""
        if not 0 <= row < self.batch:
            raise LiveduetError(f"select({row}) but the batch has {self.batch} rows")
        old = self._live().state
        self._b = self._binding(1)
        for spec, dst, src in zip(self.spec.states, self._b.state, old, strict=True):
            np.copyto(dst, np.take(src, [row], axis=spec.batch_axis))

    def set_conditioning(self, name: str, values: np.ndarray | list[float]) -> None:
        """Set a declared conditioning input for every row from now on."""
        if name not in self._cond:
            raise LiveduetError(f"model has no conditioning input {name!r}; it has "
                                f"{sorted(self._cond)}")
        arr = np.asarray(values, dtype=np.float32)
        if arr.shape != self._cond[name].shape:
            raise LiveduetError(f"{name!r} takes {self._cond[name].shape[0]} values")
        self._cond[name] = arr
        for bound in self._bound.values():
            bound.cond[name][:] = arr
