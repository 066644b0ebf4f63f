"""The liveduet model contract (v1): validate an ONNX file and describe what it carries.

See ``docs/model-contract.md``. :func:`inspect_model` opens a file with onnxruntime and returns
a :class:`ModelSpec`, or raises :class:`~liveduet.errors.ModelError` naming the file, the rule
broken and the fix. Rules, by the name each error carries:

``file``          the path exists, is not empty, and onnxruntime can parse it
``tokens``        input ``tokens``: int64 ``[batch, time]``, both dims symbolic
``logits``        output ``logits``: float32 ``[batch, time, vocab]``
``state-pairs``   every other float input ``X`` has an output ``X_out`` of the same shape
``batch-dim``     each state tensor has exactly one dim named like the tokens' batch dim
``metadata``      metadata_props ``liveduet.contract`` = "1", ``liveduet.codec``, ``liveduet.card``
``card``          the card (JSON) has title, corpus, licence, metrics and rebuild
``vocab``         the logits' vocab size equals the codec's
``conditioning``  extra inputs without ``_out`` are declared in ``liveduet.conditioning``
``position``      an optional int64 ``[batch, time]`` input declared in ``liveduet.position``
                  (scheme ``metre-v1``: the metrical position id of each token's grid step,
                  fed by the engine; see :mod:`liveduet.core.metre`)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import onnxruntime as ort

from liveduet.core.codec import GridCodec, codec_from_json
from liveduet.errors import CodecError, ModelError

CONTRACT_VERSION = "1"
KEY_CONTRACT = "liveduet.contract"
KEY_CODEC = "liveduet.codec"
KEY_CARD = "liveduet.card"
KEY_CONDITIONING = "liveduet.conditioning"
KEY_POSITION = "liveduet.position"
CARD_FIELDS = ("title", "corpus", "licence", "metrics", "rebuild")
STATE_SUFFIX = "_out"


@dataclass(frozen=True)
class StateSpec:
    """One recurrent state tensor: input ``name`` feeds back from output ``name + '_out'``."""

    name: str
    shape: tuple[int | str, ...]
    batch_axis: int

    @property
    def output(self) -> str:
        """Name of the paired output."""
        return self.name + STATE_SUFFIX

    def concrete_shape(self, batch: int) -> tuple[int, ...]:
        """The shape for a batch of ``batch`` rows."""
        return tuple(batch if i == self.batch_axis else int(d) for i, d in enumerate(self.shape))


@dataclass(frozen=True)
class ConditioningSpec:
    """An optional conditioning input ``[batch, size]`` with a default value."""

    name: str
    size: int
    default: tuple[float, ...]


@dataclass(frozen=True)
class PositionSpec:
    """An int64 ``[batch, time]`` input of metrical position ids (``liveduet.position``)."""

    name: str
    scheme: str
    size: int


@dataclass(frozen=True)
class ModelSpec:
    """What a valid model file carries."""

    path: str
    codec: GridCodec
    card: dict[str, Any]
    states: tuple[StateSpec, ...]
    conditioning: tuple[ConditioningSpec, ...] = ()
    vocab_size: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    position: PositionSpec | None = None


def open_session(path: str, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime session tuned for one-token steps (see benchmarks/bench_step.py)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    _check_file(path)
    try:
        return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises several unrelated types here
        raise ModelError(
            path, "file", f"onnxruntime cannot load it ({str(err).splitlines()[0][:200]})",
            "export the model again as a complete .onnx file "
            "(the file may be truncated or not ONNX)",
        ) from err


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise ModelError(path, "file", "no such file", "check the path or run 'liveduet models'")
    if os.path.isdir(path):
        raise ModelError(path, "file", "is a folder", "name the .onnx file inside it")
    if os.path.getsize(path) == 0:
        raise ModelError(path, "file", "the file is empty", "export the model again")


def inspect_model(path: str | os.PathLike[str], session: ort.InferenceSession | None = None
                  ) -> ModelSpec:
    """Validate ``path`` against the contract and describe it; raise ModelError otherwise."""
    path = os.fspath(path)
    sess = session if session is not None else open_session(path)
    inputs = {i.name: i for i in sess.get_inputs()}
    outputs = {o.name: o for o in sess.get_outputs()}
    batch_sym = _check_tokens(path, inputs)
    vocab = _check_logits(path, outputs, batch_sym)
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    codec, card, cond_decl = _check_metadata(path, meta)
    position = _check_position(path, inputs, meta, batch_sym)
    if vocab is not None and vocab != codec.vocab_size:
        raise ModelError(
            path, "vocab", f"logits have {vocab} entries but the codec's vocabulary has "
            f"{codec.vocab_size}", "export with the same codec that built the training tokens",
        )
    others = {k: v for k, v in inputs.items() if position is None or k != position.name}
    states, conds = _check_states(path, others, outputs, batch_sym, cond_decl)
    return ModelSpec(path, codec, card, states, conds, vocab or codec.vocab_size, meta,
                     position)


def _check_position(path: str, inputs: dict[str, Any], meta: dict[str, str], batch_sym: str
                    ) -> PositionSpec | None:
    """The declared position input, or None for a model without one."""
    if KEY_POSITION not in meta:
        return None
    from liveduet.core.metre import POSITION_SCHEME, POSITION_SIZE

    decl = _json(path, meta, KEY_POSITION, "position")
    name, scheme = str(decl.get("input", "position")), decl.get("scheme")
    if scheme != POSITION_SCHEME:
        raise ModelError(path, "position", f"position scheme {scheme!r} is unknown",
                         f"declare {{\"scheme\": \"{POSITION_SCHEME}\"}} (liveduet.core.metre)")
    arg = inputs.get(name)
    if arg is None:
        raise ModelError(path, "position", f"'{KEY_POSITION}' names input {name!r}, which the "
                         "graph lacks", "export the position ids as that input or drop the key")
    dims = _dims(arg)
    if arg.type != "tensor(int64)" or len(dims) != 2 or dims[0] != batch_sym:
        raise ModelError(path, "position", f"input {name!r} is {arg.type}{dims}",
                         f"export it as int64 [{batch_sym}, time] like 'tokens'")
    size = int(decl.get("size", POSITION_SIZE))
    if size != POSITION_SIZE:
        raise ModelError(path, "position", f"{name!r} declares {size} ids, {scheme} has "
                         f"{POSITION_SIZE}", "train with the ids of liveduet.core.metre")
    return PositionSpec(name, scheme, size)


def _dims(arg: Any) -> list[int | str]:
    return [d if isinstance(d, (int, str)) else "?" for d in (arg.shape or [])]


def _check_tokens(path: str, inputs: dict[str, Any]) -> str:
    tok = inputs.get("tokens")
    if tok is None:
        raise ModelError(path, "tokens", f"no input named 'tokens' (inputs: {sorted(inputs)})",
                         "name the token-id input 'tokens' when exporting")
    dims = _dims(tok)
    if tok.type != "tensor(int64)":
        raise ModelError(path, "tokens", f"input 'tokens' is {tok.type}, not tensor(int64)",
                         "cast token ids to int64 before export")
    if len(dims) != 2 or not all(isinstance(d, str) for d in dims):
        raise ModelError(path, "tokens", f"input 'tokens' has shape {dims}",
                         "export 'tokens' as [batch, time] with both dims dynamic")
    return str(dims[0])


def _check_logits(path: str, outputs: dict[str, Any], batch_sym: str) -> int | None:
    out = outputs.get("logits")
    if out is None:
        raise ModelError(path, "logits", f"no output named 'logits' (outputs: {sorted(outputs)})",
                         "name the unnormalised scores output 'logits'")
    dims = _dims(out)
    if out.type != "tensor(float)":
        raise ModelError(path, "logits", f"output 'logits' is {out.type}, not tensor(float)",
                         "export logits as float32")
    if len(dims) != 3:
        raise ModelError(path, "logits", f"output 'logits' has shape {dims}",
                         "export logits as [batch, time, vocab]")
    if isinstance(dims[0], int):
        raise ModelError(path, "batch-dim", f"logits batch dim is fixed at {dims[0]}",
                         f"make it the symbolic dim '{batch_sym}' of 'tokens'")
    return dims[2] if isinstance(dims[2], int) else None


def _check_metadata(path: str, meta: dict[str, str]
                    ) -> tuple[GridCodec, dict[str, Any], dict[str, Any]]:
    if meta.get(KEY_CONTRACT) != CONTRACT_VERSION:
        found = meta.get(KEY_CONTRACT, "nothing")
        raise ModelError(path, "metadata", f"'{KEY_CONTRACT}' is {found!r}, not '1'",
                         "write the contract metadata with export/onnx_export.py or "
                         "liveduet.core.contract.metadata_props()")
    try:
        codec = codec_from_json(meta.get(KEY_CODEC, ""))
    except CodecError as err:
        raise ModelError(path, "metadata", f"'{KEY_CODEC}' is invalid: {err}",
                         "store GridCodec.dumps() of the training codec") from err
    card = _json(path, meta, KEY_CARD, "card")
    missing = [f for f in CARD_FIELDS if f not in card]
    if missing:
        raise ModelError(path, "card", f"the model card lacks {missing}",
                         f"give the card all of {list(CARD_FIELDS)}")
    cond = _json(path, meta, KEY_CONDITIONING, "conditioning") if KEY_CONDITIONING in meta else {}
    return codec, card, cond


def _json(path: str, meta: dict[str, str], key: str, rule: str) -> dict[str, Any]:
    try:
        value = json.loads(meta.get(key, ""))
    except json.JSONDecodeError as err:
        raise ModelError(path, rule, f"metadata '{key}' is missing or not JSON",
                         f"store a JSON object under '{key}'") from err
    if not isinstance(value, dict):
        raise ModelError(path, rule, f"metadata '{key}' is not a JSON object",
                         f"store a JSON object under '{key}'")
    return value


def _check_states(path: str, inputs: dict[str, Any], outputs: dict[str, Any], batch_sym: str,
                  cond_decl: dict[str, Any]
                  ) -> tuple[tuple[StateSpec, ...], tuple[ConditioningSpec, ...]]:
    states: list[StateSpec] = []
    conds: list[ConditioningSpec] = []
    for name, arg in inputs.items():
        if name == "tokens":
            continue
        if arg.type == "tensor(int64)":  # most likely a position input left undeclared
            raise ModelError(path, "position", f"int64 input {name!r} is not declared",
                             f"declare it in '{KEY_POSITION}' (scheme metre-v1) if it takes "
                             "metrical position ids, or remove it")
        if arg.type != "tensor(float)":
            raise ModelError(path, "state-pairs", f"input {name!r} is {arg.type}",
                             "make recurrent state and conditioning inputs float32")
        if name in cond_decl:
            conds.append(_conditioning(path, name, arg, cond_decl[name]))
            continue
        out = outputs.get(name + STATE_SUFFIX)
        if out is None:
            raise ModelError(path, "state-pairs", f"state input {name!r} has no output "
                             f"'{name}{STATE_SUFFIX}'", f"export the new state as "
                             f"'{name}{STATE_SUFFIX}', or declare {name!r} in "
                             f"'{KEY_CONDITIONING}' if it is a conditioning input")
        states.append(_state(path, name, arg, out, batch_sym))
    for name in outputs:
        if name.endswith(STATE_SUFFIX) and name[: -len(STATE_SUFFIX)] not in inputs:
            raise ModelError(path, "state-pairs", f"output {name!r} has no input "
                             f"{name[: -len(STATE_SUFFIX)]!r}", "feed every state output back "
                             "through an input of the same name without '_out'")
    return tuple(states), tuple(conds)


def _state(path: str, name: str, arg: Any, out: Any, batch_sym: str) -> StateSpec:
    dims, odims = _dims(arg), _dims(out)
    if out.type != arg.type or len(dims) != len(odims):
        raise ModelError(path, "state-pairs", f"{name!r} {arg.type}{dims} and its output "
                         f"{out.type}{odims} differ", "give state in and out one dtype and shape")
    batch_axes = [i for i, d in enumerate(dims) if d == batch_sym]
    if len(batch_axes) != 1:
        raise ModelError(path, "batch-dim", f"state {name!r} has shape {dims}: {len(batch_axes)} "
                         f"dims named '{batch_sym}'", f"give it exactly one dim named "
                         f"'{batch_sym}' (the batch dim of 'tokens')")
    others = [d for i, d in enumerate(dims) if i != batch_axes[0]]
    if not all(isinstance(d, int) for d in others):
        raise ModelError(path, "state-pairs", f"state {name!r} has shape {dims}",
                         "fix every state dim except batch to a number")
    return StateSpec(name, tuple(dims), batch_axes[0])


def _conditioning(path: str, name: str, arg: Any, decl: Any) -> ConditioningSpec:
    dims = _dims(arg)
    try:
        default = tuple(float(x) for x in decl["default"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(path, "conditioning", f"declaration of {name!r} lacks a numeric "
                         "'default' list", "declare {\"default\": [..]} per input") from err
    if len(dims) != 2 or dims[1] != len(default):
        raise ModelError(path, "conditioning", f"{name!r} has shape {dims} but its default has "
                         f"{len(default)} values", "declare [batch, size] and a default of size")
    return ConditioningSpec(name, len(default), default)


def metadata_props(codec: GridCodec, card: dict[str, Any],
                   conditioning: dict[str, Any] | None = None,
                   position: str | None = None) -> dict[str, str]:
    """The metadata_props an exporter writes for ``codec`` and ``card`` (``position``: the
    name of a ``metre-v1`` position input, if the graph has one)."""
    props = {KEY_CONTRACT: CONTRACT_VERSION, KEY_CODEC: codec.dumps(),
             KEY_CARD: json.dumps(card, sort_keys=True)}
    if conditioning:
        props[KEY_CONDITIONING] = json.dumps(conditioning, sort_keys=True)
    if position:
        from liveduet.core.metre import POSITION_SCHEME, POSITION_SIZE

        props[KEY_POSITION] = json.dumps({"input": position, "scheme": POSITION_SCHEME,
                                          "size": POSITION_SIZE}, sort_keys=True)
    return props
