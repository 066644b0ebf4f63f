"""export/: tiny corpus -> a few training steps -> ONNX -> contract check, parity with PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("music21")

from export import corpus as corpus_mod  # noqa: E402
from export.data import (  # noqa: E402
    ALL_SHIFTS,
    Batcher,
    feasible_shifts,
    input_positions,
    sequence,
    transpose,
)
from export.measure import validation_score  # noqa: E402
from export.model import LstmLM, ModelConfig  # noqa: E402
from export.onnx_export import export_onnx, quantize, verify  # noqa: E402
from export.train import load_checkpoint, nll_stats, parse_args, train  # noqa: E402
from liveduet.cli import main  # noqa: E402
from liveduet.core.codec import BOS, TimedNote, chorale_codec, melody_codec  # noqa: E402
from liveduet.core.contract import CARD_FIELDS  # noqa: E402
from liveduet.core.model import StepModel  # noqa: E402
from liveduet.offline import midifile  # noqa: E402

CARD = {"title": "tiny", "corpus": "synthetic", "licence": "CC0", "metrics": {"x": 1},
        "rebuild": "pytest"}


def _tune(rng: np.random.Generator) -> list[TimedNote]:
    notes, t, pitch = [], 0.0, 67
    for _ in range(24):
        pitch = int(np.clip(pitch + rng.choice([-2, -1, 0, 1, 2, 3]), 55, 80))
        dur = float(rng.choice([0.5, 1.0]))
        notes.append(TimedNote(t, pitch, t + dur))
        t += dur
    return notes


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MIDI folder of synthetic tunes with both train and validation pieces, tokenised."""
    root = tmp_path_factory.mktemp("tiny")
    midi_dir = root / "tunes"
    midi_dir.mkdir()
    rng = np.random.default_rng(0)
    n_valid = n_train = i = 0
    while n_valid < 2 or n_train < 6:
        name = f"tune{i}.mid"
        valid = corpus_mod.is_valid_piece(name)
        if (valid and n_valid < 2) or (not valid and n_train < 6):
            part = midifile.Part("melody", 0, _tune(rng))
            midifile.write_parts([part], 120).save(midi_dir / name)
            n_valid += valid
            n_train += not valid
        i += 1
    return corpus_mod.build("melody", "tiny", str(midi_dir), workers=1, out_dir=root)


def test_corpus_cache_records_split_and_report(tiny_corpus: Path) -> None:
    data = corpus_mod.load(str(tiny_corpus))
    assert len(data.split(True)) == 2 and len(data.split(False)) == 6
    stats = data.summary["collections"]["tunes"]
    assert stats["used"] == 8 and stats["report"]["notes_in"] == 8 * 24


def test_music21_tune_tokenises_through_the_codec() -> None:
    tasks = [t for t in corpus_mod.music21_tasks("melody")[:3]]
    out = corpus_mod.tokenise(("melody", tasks[0], False))
    assert out["status"] == "ok", out
    frames = out["frames"]
    assert frames.shape[1] == 1 and (frames >= 3).sum() >= corpus_mod.MIN_NOTES
    assert set(np.unique(frames)) <= set(range(1, melody_codec().vocab_size))


def _abc_positions(body: str, metre: str = "3/4") -> tuple[list[int], list[str]]:
    text = f"X:1\nT:t\nM:{metre}\nL:1/4\nK:C\n{body}\n"
    out = corpus_mod.tokenise(("melody", corpus_mod.Task("t#1", "test", "", text), False))
    assert out["status"] == "ok", out
    assert len(out["positions"]) == len(out["frames"])
    return out["positions"].tolist(), out["time_signatures"]


def test_pickups_get_the_positions_of_a_bar_end() -> None:
    positions, names = _abc_positions("C | E G c | d2 :: e | f g a | b3 |]")
    beat = [0, 1, 2, 3]
    bar = beat + [12 + k for k in beat] + [24 + k for k in beat]
    assert names == ["3/4"]
    assert positions[:4] == [24, 25, 26, 27]          # the opening upbeat: beat 3 of 3/4
    assert positions[4:16] == bar and positions[16:24] == bar[:8]   # a bar, then 2 beats
    assert positions[24:28] == [24, 25, 26, 27]       # the upbeat completing that bar
    assert positions[28:40] == bar


def test_compound_metre_counts_dotted_beats() -> None:
    bar = [0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17]
    barred, _ = _abc_positions("C/2 D/2 E/2 F/2 G/2 A/2 | B/2 c/2 d/2 e/2 f/2 g/2 | C3 |]",
                               "6/8")
    assert barred == bar * 3
    unbarred, _ = _abc_positions("C/2 D/2 E/2 F/2 G/2 A/2 | B/2 c/2 d/2 e/2 f/2 g/2 |]", "6/8")
    assert unbarred == bar * 2                     # music21 makes no measures of two bars


def test_metre_change_inside_a_piece_restarts_the_bar() -> None:
    spans = [(0, 0, "4/4"), (16, 16, "3/4"), (28, 28, "3/4")]
    pos, which, labels = corpus_mod.positions_from_spans(spans, 40, 4)
    assert labels == ["4/4", "3/4"] and pos[15] == 39 and pos[16] == 0
    assert pos[28] == 0 and pos[27] == 27 and which[30] == 1


def test_figures_count_notes_per_beat_and_lengths_in_beats() -> None:
    codec = melody_codec()
    frames = np.full((24, 1), 1)                     # 6/8: two bars, 4 dotted beats
    frames[[0, 6, 8, 18], 0] = codec.note_on(60)     # lengths 6, 2, 10, 6 steps
    _, which, labels = corpus_mod.positions_from_spans([(0, 0, "6/8")], 24, 4)
    fig = corpus_mod.piece_figures(codec, frames, which, labels)["melody|6/8"]
    assert fig["notes"] == 4 and fig["beats"] == 4.0
    assert fig["hold_beats"].tolist() == pytest.approx([1.0, 2 / 6, 10 / 6, 1.0])


def test_input_positions_follow_the_predicted_step() -> None:
    codec = chorale_codec()
    ids = input_positions(codec, np.array([5, 6, 7]))
    # BOS and the first three voices of step 0 predict step 0's tokens; the last voice of a
    # step predicts the next step's first voice
    assert ids.tolist() == [5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 7]
    assert len(ids) == len(sequence(codec, np.full((3, 4), 2)))


def test_every_shift_takes_each_piece_in_every_feasible_key() -> None:
    codec = chorale_codec()
    frames = np.array([[codec.note_on(70), codec.note_on(62), codec.note_on(55),
                        codec.note_on(45)]] * 8)
    shifts = feasible_shifts(codec, frames, ALL_SHIFTS)
    assert shifts == list(range(-12, 14 + 1))  # A/T/B 12 above their floors, S 14 below its top
    batcher = Batcher(codec, [frames], cap_steps=64, batch_tokens=4096, max_shift=ALL_SHIFTS,
                      every_shift=True, positions=[np.arange(8)])
    keys = set()
    for inputs, _, mask, pos in batcher.epoch():
        assert pos is not None and pos.shape == inputs.shape
        keys |= {int(x) for x in inputs[:, 1][mask[:, 1]]}
    assert len(keys) == len(shifts)


def test_transposition_keeps_every_voice_in_range() -> None:
    codec = chorale_codec()
    frames = np.array([[codec.note_on(84), codec.note_on(60), codec.note_on(50),
                        codec.note_on(40)]])
    shifts = feasible_shifts(codec, frames, 6)
    assert max(shifts) == 0 and min(shifts) == -6  # soprano already at its top
    shifted = transpose(frames, -6)
    assert codec.pitch_of(int(shifted[0, 0])) == 78 and shifted[0, 3] == frames[0, 3] - 6
    assert sequence(codec, frames)[0] == BOS


def test_batches_are_padded_next_token_pairs() -> None:
    codec = melody_codec()
    pieces = [np.full((n, 1), codec.note_on(60)) for n in (10, 30, 50)]
    batcher = Batcher(codec, pieces, cap_steps=16, batch_tokens=64, max_shift=0)
    seen = 0
    for inputs, targets, mask, pos in batcher.epoch():
        assert inputs.shape == targets.shape == mask.shape and pos is None
        assert torch.equal(inputs[:, 1:][mask[:, 1:]], targets[:, :-1][mask[:, 1:]])
        seen += int(mask.sum())
    assert seen == sum(len(p) for p in pieces)


def test_train_resume_export_check_model(tiny_corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = ["--corpus", str(tiny_corpus), "--run", str(run), "--hidden", "16", "--embed", "8",
            "--epochs", "2", "--batch-tokens", "256", "--minutes", "1"]
    first = train(parse_args(argv))
    assert first["epochs"] == 2 and (run / "best.pt").exists()
    again = train(parse_args([*argv[:-4], "--epochs", "3", "--resume"]))
    assert again["epochs"] == 3 and len(again["history"]) == 3
    model, _ = load_checkpoint(run / "best.pt")
    path = tmp_path / "tiny.onnx"
    export_onnx(model, melody_codec(), CARD, path)
    assert verify(model, path, steps=50) <= 1e-4
    assert main(["check-model", str(path), "--steps", "20"]) == 0
    assert set(CARD_FIELDS) <= set(StepModel(path).spec.card)


def test_position_model_trains_exports_and_scores_like_training(tiny_corpus: Path,
                                                               tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(parse_args(["--corpus", str(tiny_corpus), "--run", str(run), "--hidden", "16",
                      "--embed", "8", "--position", "4", "--epochs", "1",
                      "--batch-tokens", "256", "--minutes", "1"]))
    model, _ = load_checkpoint(run / "best.pt")
    assert model.has_position
    path = tmp_path / "pos.onnx"
    export_onnx(model, melody_codec(), CARD, path)
    assert verify(model, path, steps=50) <= 1e-4
    assert StepModel(path).has_position
    data = corpus_mod.load(str(tiny_corpus))
    valid, pos = data.split(True), data.split_positions(True)
    torch_nll = nll_stats(model, melody_codec(), valid, positions=pos)
    onnx_nll = validation_score(path, valid, pos)
    assert onnx_nll.nll_per_token == pytest.approx(torch_nll["nll_per_token"], rel=1e-4)
    shuffled = validation_score(path, valid, [np.roll(p, 3) for p in pos])
    assert shuffled.nll_per_token != pytest.approx(onnx_nll.nll_per_token, rel=1e-6)


def test_onnx_matches_torch_over_50_chained_steps_two_layers(tmp_path: Path) -> None:
    codec = chorale_codec()
    model = LstmLM(ModelConfig(codec.vocab_size, 16, 24, 2, 0.2))
    path = tmp_path / "two.onnx"
    export_onnx(model, codec, CARD, path)
    assert verify(model, path, steps=50) <= 1e-4
    step = StepModel(path)
    assert step.codec == codec and [s.shape for s in step.spec.states] == [
        (2, "batch", 24), (2, "batch", 24)]


def test_int8_copy_keeps_the_contract_and_card(tmp_path: Path, capsys: pytest.CaptureFixture
                                               ) -> None:
    model = LstmLM(ModelConfig(melody_codec().vocab_size, 16, 32, 1))
    fp32, int8 = tmp_path / "a.onnx", tmp_path / "a_int8.onnx"
    export_onnx(model, melody_codec(), CARD, fp32)
    quantize(fp32, int8, melody_codec(), CARD)
    assert main(["check-model", str(int8), "--json", "--steps", "20"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["card"]["title"] == "tiny"


@pytest.mark.parametrize("name", ["folk_melody", "chorale_satb"])
def test_bundled_model_card_and_acceptance(name: str) -> None:
    path = Path(__file__).resolve().parents[2] / "models" / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"{path} is not built yet (python -m export.build {name})")
    model = StepModel(path)
    card = model.spec.card
    assert set(CARD_FIELDS) <= set(card) and card["rebuild"] == f"python -m export.build {name}"
    metrics = card["metrics"]
    assert metrics["valid_nll_per_note"] <= 0.9 * metrics["baseline_nll_per_note"]
    assert path.stat().st_size <= 8 * 2**20
    assert (path.with_suffix(".md")).exists()
    assert model.has_position  # both bundled models take metre-v1 position ids
    corpus = metrics["corpus"]
    assert 0.5 < corpus["notes_per_beat"] < 4 and corpus["hold_beats_p99"] <= corpus[
        "hold_beats_max"]
