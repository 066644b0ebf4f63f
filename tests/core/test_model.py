"""StepModel: prime equals stepping, snapshots are exact, forks are identical rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liveduet.core.codec import BOS, melody_codec
from liveduet.core.model import StepModel
from liveduet.errors import LiveduetError
from liveduet.testkit.factory import lstm_model, position_model, scripted_model


@pytest.fixture
def model(tmp_path: Path) -> StepModel:
    return StepModel(lstm_model(tmp_path / "m.onnx", hidden=24, seed=3))


def _tokens(n: int, seed: int = 1) -> list[int]:
    rng = np.random.default_rng(seed)
    return [BOS, *rng.integers(1, melody_codec().vocab_size, n - 1).tolist()]


def test_prime_equals_single_steps(model: StepModel) -> None:
    toks = _tokens(40)
    stepped = np.stack([model.step(t).copy() for t in toks], axis=1)
    state_after_steps = model.snapshot()
    model.reset()
    primed = model.prime(toks)
    assert primed.shape == (1, 40, model.vocab_size)
    np.testing.assert_allclose(primed, stepped, rtol=0, atol=1e-5)
    for a, b in zip(model.snapshot().arrays, state_after_steps.arrays, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_state_is_carried_between_calls(model: StepModel) -> None:
    first = model.step(BOS).copy()
    second = model.step(BOS).copy()
    assert not np.array_equal(first, second), "the LSTM state must change the next logits"
    model.reset()
    np.testing.assert_array_equal(model.step(BOS), first)


def test_restore_reproduces_logits_bit_for_bit(model: StepModel) -> None:
    for t in _tokens(10):
        model.step(t)
    snap = model.snapshot()
    later = [model.step(t).copy() for t in _tokens(8, seed=7)]
    for t in _tokens(5, seed=9):  # wander off
        model.step(t)
    model.restore(snap)
    again = [model.step(t).copy() for t in _tokens(8, seed=7)]
    for a, b in zip(later, again, strict=True):
        assert a.tobytes() == b.tobytes()


def test_snapshot_is_a_copy_not_a_view(model: StepModel) -> None:
    model.step(BOS)
    snap = model.snapshot()
    frozen = [a.copy() for a in snap.arrays]
    model.step(5)
    for a, b in zip(snap.arrays, frozen, strict=True):
        np.testing.assert_array_equal(a, b)


def test_fork_rows_are_identical_and_select_returns(model: StepModel) -> None:
    for t in _tokens(6):
        model.step(t)
    single = model.snapshot()
    model.fork(4)
    assert model.batch == 4
    rows = model.step(np.full(4, 7)).copy()
    for r in range(1, 4):
        assert rows[r].tobytes() == rows[0].tobytes()
    model.step(np.array([3, 4, 5, 6]))
    after_row2 = model.snapshot()
    model.select(2)
    assert model.batch == 1
    for spec, a, b in zip(model.spec.states, model.snapshot().arrays, after_row2.arrays,
                          strict=True):
        np.testing.assert_array_equal(a, np.take(b, [2], axis=spec.batch_axis))
    # the selected row continues exactly as a single-row run with the same tokens would
    model.restore(single)
    model.step(7)
    model.step(5)
    np.testing.assert_array_equal(model.snapshot().arrays[0],
                                  np.take(after_row2.arrays[0], [2], axis=1))


def test_fork_and_select_misuse_is_refused(model: StepModel) -> None:
    with pytest.raises(LiveduetError, match="n must be"):
        model.fork(0)
    model.fork(2)
    with pytest.raises(LiveduetError, match="select"):
        model.fork(2)
    with pytest.raises(LiveduetError, match="rows"):
        model.select(5)


def test_prime_batch_and_shape_errors(model: StepModel) -> None:
    model.fork(3)
    out = model.prime([BOS, 4, 5])
    assert out.shape == (3, 3, model.vocab_size)
    with pytest.raises(LiveduetError, match="prime takes"):
        model.prime(np.zeros((2, 3), dtype=np.int64))
    assert model.prime([]).shape == (3, 0, model.vocab_size)


def test_scripted_model_emits_its_table(tmp_path: Path) -> None:
    codec = melody_codec()
    table = np.zeros((codec.vocab_size, codec.vocab_size), dtype=np.float32)
    table[BOS, codec.note_on(60)] = 9.0
    table[codec.note_on(60), codec.note_on(64)] = 9.0
    m = StepModel(scripted_model(tmp_path / "s.onnx", table))
    assert int(np.argmax(m.step(BOS))) == codec.note_on(60)
    assert int(np.argmax(m.step(codec.note_on(60)))) == codec.note_on(64)
    assert m.title.startswith("test LSTM")


def test_position_input_changes_logits_and_prime_matches_steps(tmp_path: Path) -> None:
    model = StepModel(position_model(tmp_path / "p.onnx", hidden=16, seed=2))
    assert model.has_position
    toks = _tokens(12)
    positions = [(4 * i) % 48 for i in range(12)]
    stepped = []
    for tok, pos in zip(toks, positions, strict=True):
        model.set_position(pos)
        stepped.append(model.step(tok).copy())
    model.reset()
    primed = model.prime(toks, positions=positions)[0]
    np.testing.assert_allclose(primed, np.stack(stepped)[:, 0], rtol=0, atol=1e-5)
    model.reset()
    at_zero = model.prime(toks, positions=[0] * 12)[0]
    assert np.abs(at_zero - primed).max() > 1e-3


def test_model_without_position_ignores_set_position(model: StepModel) -> None:
    assert not model.has_position
    first = model.step(BOS).copy()
    model.reset()
    model.set_position(37)
    np.testing.assert_array_equal(model.step(BOS), first)
