"""The contract loader accepts valid models and refuses each broken variant by its rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveduet.core.codec import chorale_codec, melody_codec
from liveduet.core.contract import CARD_FIELDS, inspect_model
from liveduet.core.model import StepModel
from liveduet.errors import ModelError
from liveduet.testkit.factory import broken_models, lstm_model, position_model

BROKEN = ["empty", "not_onnx", "truncated", "missing", "no_state_out", "tokens_int32",
          "no_metadata", "vocab_mismatch", "card_incomplete", "bad_codec", "position_undeclared",
          "position_scheme"]


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    return broken_models(tmp_path_factory.mktemp("broken"))


def test_every_broken_variant_is_built(broken: dict[str, tuple[Path, str]]) -> None:
    assert sorted(broken) == sorted(BROKEN)


@pytest.mark.parametrize("name", BROKEN)
def test_refusal_names_file_rule_and_fix(broken: dict[str, tuple[Path, str]], name: str) -> None:
    path, rule = broken[name]
    with pytest.raises(ModelError) as info:
        StepModel(path)
    err = info.value
    assert err.rule == rule, f"{name}: refused for {err.rule!r}, expected {rule!r}"
    text = str(err)
    assert str(path) in text
    assert f"rule '{rule}'" in text
    assert "Fix:" in text and err.fix


def test_valid_model_spec(tmp_path: Path) -> None:
    path = lstm_model(tmp_path / "m.onnx", hidden=12)
    spec = inspect_model(path)
    assert spec.codec == melody_codec()
    assert spec.vocab_size == melody_codec().vocab_size
    assert {s.name for s in spec.states} == {"h", "c"}
    assert all(s.output == s.name + "_out" for s in spec.states)
    assert all(s.batch_axis == 1 for s in spec.states)
    assert set(CARD_FIELDS) <= set(spec.card)


def test_multivoice_codec_survives_metadata(tmp_path: Path) -> None:
    path = lstm_model(tmp_path / "satb.onnx", codec=chorale_codec())
    model = StepModel(path)
    assert model.codec == chorale_codec()
    assert model.codec.roles("sampled") == [1, 2, 3]


def test_declared_position_input_is_bound(tmp_path: Path) -> None:
    spec = inspect_model(position_model(tmp_path / "p.onnx", hidden=12))
    assert spec.position is not None
    assert (spec.position.name, spec.position.scheme, spec.position.size) == (
        "position", "metre-v1", 96)
    assert {s.name for s in spec.states} == {"h", "c"}
    assert inspect_model(lstm_model(tmp_path / "m.onnx", hidden=12)).position is None
