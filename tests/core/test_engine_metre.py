"""The engine feeds every model that declares a position input the metrical position of the
step each token predicts, in every metre and on the harmony-table path too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from liveduet.core.codec import HOLD, GridCodec, chorale_codec, melody_codec
from liveduet.core.engine import Engine
from liveduet.core.metre import POSITION_SIZE, parse_metre
from liveduet.core.model import StepModel
from liveduet.core.settings import Settings
from liveduet.offline.render import drive
from liveduet.testkit.enginekit import BIG, human, notes_of
from liveduet.testkit.factory import CARD, OPSET, _init, finish

BAR, BEAT = 60, 62  # the pitch the model plays on a bar line, on another beat


def position_model(path: Path, codec: GridCodec) -> Path:
    """logits = table[position]: NOTE_ON(60) on a bar line, NOTE_ON(62) on other beats, HOLD
    elsewhere; the token history is ignored (a dummy state counts the steps)."""
    table = np.zeros((POSITION_SIZE, codec.vocab_size), dtype=np.float32)
    for pid in range(POSITION_SIZE):
        beat, sub = divmod(pid, 12)
        target = HOLD if sub else codec.note_on(BAR if beat == 0 else BEAT)
        table[pid, target] = BIG
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "position"], ["logits"]),
         helper.make_node("Add", ["n", "one"], ["n_out"]),
         helper.make_node("Identity", ["tokens"], ["unused"])],
        "positional",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "time"]),
         helper.make_tensor_value_info("position", TensorProto.INT64, ["batch", "time"]),
         helper.make_tensor_value_info("n", f, ["batch", 1])],
        [helper.make_tensor_value_info("logits", f, ["batch", "time", codec.vocab_size]),
         helper.make_tensor_value_info("n_out", f, ["batch", 1])],
        [_init("table", table), _init("one", np.ones((1,), np.float32))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    props = {"liveduet.position": '{"input": "position", "scheme": "metre-v1", "size": 96}'}
    return finish(model, codec, CARD, path, props)


@pytest.mark.parametrize("meter", ["4/4", "3/4", "6/8", "7/8"])
def test_continue_plays_what_the_model_says_of_each_position(tmp_path: Path, meter: str
                                                              ) -> None:
    model = StepModel(position_model(tmp_path / "pos.onnx", melody_codec()))
    assert model.has_position
    eng = Engine(model, Settings(mode="continue", meter=meter, thru=False, density=0.0))
    m = parse_metre(meter)
    end = 3 * m.bar_steps
    onsets = [(int(s), p) for s, p, _ in notes_of(drive(eng, [], end)) if s < end]
    want = [(s, BAR if s % m.bar_steps == 0 else BEAT)
            for s in range(0, 3 * m.bar_steps, m.beat_steps)]
    assert onsets == want


def test_harmony_tables_feed_positions_to_every_voice(tmp_path: Path) -> None:
    model = StepModel(position_model(tmp_path / "satb.onnx", chorale_codec()))
    # voice_leading off: each voice plays the model's own choice, so the positions show
    eng = Engine(model, Settings(mode="harmonize", meter="3/4", thru=False, density=0.0,
                                 voice_leading="off"))
    outs = drive(eng, human([(0, 72, 24)]), 24)
    for voice in (1, 2, 3):
        assert [(int(s), p) for s, p, _ in notes_of(outs, voice) if s < 24] == [
            (0, BAR), (4, BEAT), (8, BEAT), (12, BAR), (16, BEAT), (20, BEAT)]
