"""Export a trained :class:`~export.model.LstmLM` to an ONNX file honouring the liveduet contract.

Inputs ``tokens`` int64 ``[batch, time]``, ``h``/``c`` float32 ``[layers, batch, hidden]``, and
for a model with a position embedding ``position`` int64 ``[batch, time]`` (declared in the
``liveduet.position`` metadata, scheme ``metre-v1``); outputs ``logits``
``[batch, time, vocab]``, ``h_out``, ``c_out``; every batch/time dim is symbolic. The metadata
comes from :func:`liveduet.core.contract.metadata_props`. :func:`verify` checks ONNX against PyTorch
over chained single steps; :func:`quantize` makes an int8 copy.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from export.model import LstmLM
from liveduet.core.codec import BOS, GridCodec
from liveduet.core.contract import metadata_props
from liveduet.core.metre import POSITION_SIZE

INPUTS = ["tokens", "h", "c"]
POSITION = "position"
OUTPUTS = ["logits", "h_out", "c_out"]
DYNAMIC = {"tokens": {0: "batch", 1: "time"}, "logits": {0: "batch", 1: "time"},
           "h": {1: "batch"}, "c": {1: "batch"}, "h_out": {1: "batch"}, "c_out": {1: "batch"},
           POSITION: {0: "batch", 1: "time"}}


def set_metadata(proto: onnx.ModelProto, codec: GridCodec, card: dict[str, Any]) -> None:
    """Replace ``proto``'s metadata_props with the contract's codec and card (and the
    position declaration when the graph has a ``position`` input)."""
    has_position = any(i.name == POSITION for i in proto.graph.input)
    del proto.metadata_props[:]
    for key, value in metadata_props(codec, card,
                                     position=POSITION if has_position else None).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def export_onnx(model: LstmLM, codec: GridCodec, card: dict[str, Any],
                path: str | os.PathLike[str]) -> None:
    """Write ``model`` as a contract-valid ONNX file at ``path``."""
    model = model.eval()
    h, c = model.zero_state(1)
    tokens = torch.full((1, 4), BOS, dtype=torch.long)
    args: tuple[torch.Tensor, ...] = (tokens, h, c)
    names = list(INPUTS)
    if model.has_position:
        args, names = (*args, torch.zeros_like(tokens)), [*names, POSITION]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, buf, input_names=names, output_names=OUTPUTS,
                          dynamic_axes={k: v for k, v in DYNAMIC.items()
                                        if k in names or k in OUTPUTS},
                          opset_version=17, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    set_metadata(proto, codec, card)
    onnx.checker.check_model(proto)
    onnx.save(proto, os.fspath(path))


def quantize(src: str | os.PathLike[str], dst: str | os.PathLike[str], codec: GridCodec,
             card: dict[str, Any]) -> None:
    """Dynamic int8 quantisation of ``src`` (weights int8, activations quantised per call)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(os.fspath(src), os.fspath(dst), weight_type=QuantType.QInt8)
    proto = onnx.load(os.fspath(dst))
    set_metadata(proto, codec, card)
    onnx.save(proto, os.fspath(dst))


@torch.no_grad()
def verify(model: LstmLM, path: str | os.PathLike[str], steps: int = 50, seed: int = 0
           ) -> float:
    """Max |ONNX - PyTorch| over logits and state across ``steps`` chained one-token steps
    (random position ids too, for a model with a position input)."""
    model = model.eval()
    sess = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    toks = np.concatenate([[BOS], rng.integers(1, model.cfg.vocab, steps - 1)])
    poss = rng.integers(0, POSITION_SIZE, steps)
    h, c = model.zero_state(1)
    oh, oc = h.numpy(), c.numpy()
    worst = 0.0
    for tok, p in zip(toks, poss, strict=True):
        t = torch.tensor([[int(tok)]])
        pos = torch.tensor([[int(p)]]) if model.has_position else None
        logits, h, c = model(t, h, c, pos)
        feeds = {"tokens": t.numpy(), "h": oh, "c": oc}
        if pos is not None:
            feeds[POSITION] = pos.numpy()
        ologits, oh, oc = sess.run(OUTPUTS, feeds)
        for a, b in ((logits, ologits), (h, oh), (c, oc)):
            worst = max(worst, float(np.abs(a.numpy() - b).max()))
    return worst
