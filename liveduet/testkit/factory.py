"""Build tiny contract models with the onnx helper API (no torch): valid and broken variants.

``lstm_model`` is embedding -> 1-layer LSTM -> linear with random weights (``position_model``
adds an int64 ``position`` input whose embedding joins the token embedding). ``scripted_model``
ignores its input history and emits fixed logits per token (for engine tests with known
output). Each ``broken_*`` breaks exactly one contract rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from liveduet.core.codec import GridCodec, melody_codec
from liveduet.core.contract import metadata_props

OPSET = 17
CARD = {
    "title": "test LSTM (random weights)",
    "corpus": "none: random weights built by liveduet/testkit/factory.py",
    "licence": "CC0",
    "metrics": {},
    "rebuild": "python -c 'import liveduet.testkit.factory'",
}


def _init(name: str, arr: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(arr), name)


def lstm_graph(codec: GridCodec, hidden: int = 16, embed: int = 8, seed: int = 0,
               tokens_type: int = TensorProto.INT64, batch: str = "batch",
               state_out: str = "h_out", position: int = 0) -> onnx.ModelProto:
    """A 1-layer LSTM step model honouring the contract (unless a knob breaks it);
    ``position > 0`` adds a ``position`` input with an embedding of that many dims."""
    rng = np.random.default_rng(seed)
    vocab = codec.vocab_size
    width = embed + position
    inits = [
        _init("emb", rng.normal(0, 1, (vocab, embed)).astype(np.float32)),
        _init("W", rng.normal(0, 0.4, (1, 4 * hidden, width)).astype(np.float32)),
        _init("R", rng.normal(0, 0.4, (1, 4 * hidden, hidden)).astype(np.float32)),
        _init("B", rng.normal(0, 0.1, (1, 8 * hidden)).astype(np.float32)),
        _init("Wo", rng.normal(0, 1, (hidden, vocab)).astype(np.float32)),
        _init("bo", rng.normal(0, 0.1, (vocab,)).astype(np.float32)),
        _init("axis1", np.array([1], dtype=np.int64)),
    ]
    nodes = [
        helper.make_node("Cast", ["tokens"], ["tok64"], to=TensorProto.INT64),
        helper.make_node("Gather", ["emb", "tok64"], ["x_tok" if position else "x_bte"]),
        helper.make_node("Transpose", ["x_bte"], ["x_tbe"], perm=[1, 0, 2]),
        helper.make_node("LSTM", ["x_tbe", "W", "R", "B", "", "h", "c"], ["y", state_out, "c_out"],
                         hidden_size=hidden),
        helper.make_node("Squeeze", ["y", "axis1"], ["y_tbh"]),
        helper.make_node("Transpose", ["y_tbh"], ["y_bth"], perm=[1, 0, 2]),
        helper.make_node("MatMul", ["y_bth", "Wo"], ["mm"]),
        helper.make_node("Add", ["mm", "bo"], ["logits"]),
    ]
    f = TensorProto.FLOAT
    extra_inputs = []
    if position:
        from liveduet.core.metre import POSITION_SIZE

        inits.append(_init("pos_emb", rng.normal(0, 1, (POSITION_SIZE, position))
                           .astype(np.float32)))
        nodes[2:2] = [helper.make_node("Gather", ["pos_emb", "position"], ["x_pos"]),
                      helper.make_node("Concat", ["x_tok", "x_pos"], ["x_bte"], axis=2)]
        extra_inputs = [helper.make_tensor_value_info("position", TensorProto.INT64,
                                                      [batch, "time"])]
    graph = helper.make_graph(
        nodes, "tiny_lstm",
        [helper.make_tensor_value_info("tokens", tokens_type, [batch, "time"]),
         helper.make_tensor_value_info("h", f, [1, batch, hidden]),
         helper.make_tensor_value_info("c", f, [1, batch, hidden]), *extra_inputs],
        [helper.make_tensor_value_info("logits", f, [batch, "time", vocab]),
         helper.make_tensor_value_info(state_out, f, [1, batch, hidden]),
         helper.make_tensor_value_info("c_out", f, [1, batch, hidden])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def scripted_graph(codec: GridCodec, table: np.ndarray) -> onnx.ModelProto:
    """logits[b, t] = table[tokens[b, t]]; a dummy state counts the steps fed."""
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("Gather", ["table", "tokens"], ["logits"]),
        helper.make_node("Add", ["n", "one"], ["n_out"]),
    ]
    graph = helper.make_graph(
        nodes, "scripted",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "time"]),
         helper.make_tensor_value_info("n", f, ["batch", 1])],
        [helper.make_tensor_value_info("logits", f, ["batch", "time", codec.vocab_size]),
         helper.make_tensor_value_info("n_out", f, ["batch", 1])],
        [_init("table", table.astype(np.float32)), _init("one", np.ones((1,), np.float32))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def finish(model: onnx.ModelProto, codec: GridCodec | None, card: dict[str, Any] | None,
           path: Path, extra: dict[str, str] | None = None) -> Path:
    """Attach contract metadata (unless ``codec`` is None) and save to ``path``."""
    if codec is not None:
        props = metadata_props(codec, card if card is not None else CARD)
        props.update(extra or {})
        helper.set_model_props(model, props)
    onnx.save(model, str(path))
    return path


def lstm_model(path: Path, codec: GridCodec | None = None, **kw: Any) -> Path:
    """Save a valid tiny LSTM model to ``path``."""
    codec = codec or melody_codec()
    return finish(lstm_graph(codec, **kw), codec, CARD, path)


def position_model(path: Path, codec: GridCodec | None = None, declare: bool = True,
                   extra: dict[str, str] | None = None, **kw: Any) -> Path:
    """Save a tiny LSTM with a ``position`` input (declared as metre-v1 unless ``declare`` is
    False; ``extra`` overrides metadata, e.g. a wrong scheme)."""
    codec = codec or melody_codec()
    model = lstm_graph(codec, position=kw.pop("position", 4), **kw)
    props = metadata_props(codec, CARD, position="position" if declare else None)
    props.update(extra or {})
    helper.set_model_props(model, props)
    onnx.save(model, str(path))
    return path


def scripted_model(path: Path, table: np.ndarray, codec: GridCodec | None = None) -> Path:
    """Save a model whose logits depend only on the last token, via ``table[token]``."""
    codec = codec or melody_codec()
    return finish(scripted_graph(codec, table), codec, CARD, path)


def broken_models(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each broken variant: name -> (file, the contract rule it must be refused for)."""
    codec = melody_codec()
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[Path, str]] = {}
    valid = lstm_model(folder / "valid.onnx", codec)
    data = valid.read_bytes()

    (folder / "empty.onnx").write_bytes(b"")
    out["empty"] = (folder / "empty.onnx", "file")
    (folder / "not_onnx.onnx").write_text("MThd this is not an onnx file\n")
    out["not_onnx"] = (folder / "not_onnx.onnx", "file")
    (folder / "truncated.onnx").write_bytes(data[: len(data) // 2])
    out["truncated"] = (folder / "truncated.onnx", "file")
    out["missing"] = (folder / "does_not_exist.onnx", "file")

    out["no_state_out"] = (finish(lstm_graph(codec, state_out="h_next"), codec, CARD,
                                  folder / "no_state_out.onnx"), "state-pairs")
    out["tokens_int32"] = (finish(lstm_graph(codec, tokens_type=TensorProto.INT32), codec, CARD,
                                  folder / "tokens_int32.onnx"), "tokens")
    out["no_metadata"] = (finish(lstm_graph(codec), None, None, folder / "no_metadata.onnx"),
                          "metadata")
    other = melody_codec(40, 90)
    out["vocab_mismatch"] = (finish(lstm_graph(codec), other, CARD, folder / "vocab.onnx"),
                             "vocab")
    card = {k: v for k, v in CARD.items() if k != "licence"}
    out["card_incomplete"] = (finish(lstm_graph(codec), codec, card, folder / "card.onnx"),
                              "card")
    out["bad_codec"] = (finish(lstm_graph(codec), codec, CARD, folder / "bad_codec.onnx",
                               {"liveduet.codec": json.dumps({"name": "perf"})}), "metadata")
    out["position_undeclared"] = (position_model(folder / "pos_undeclared.onnx", codec,
                                                 declare=False), "position")
    out["position_scheme"] = (position_model(
        folder / "pos_scheme.onnx", codec,
        extra={"liveduet.position": json.dumps({"input": "position", "scheme": "beats-v0"})}),
        "position")
    return out


def eighths_model(path: Path, pitch: int = 72) -> Path:
    """Whatever it hears, it answers ``pitch`` as eighth notes (NOTE_ON, HOLD, NOTE_ON, ...)."""
    codec = melody_codec()
    table = np.full((codec.vocab_size, codec.vocab_size), -50.0, np.float32)
    on = codec.note_on(pitch)
    table[:, on] = 50.0
    table[on, :] = -50.0
    table[on, 1] = 50.0
    return scripted_model(path, table, codec)
