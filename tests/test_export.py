"""export/: tiny corpus -> a few training steps -> ONNX -> contract check, parity with PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("music21")

from export import corpus as corpus_mod  # noqa: E402
from export.data import Batcher, feasible_shifts, sequence, transpose  # noqa: E402
from export.model import LstmLM, ModelConfig  # noqa: E402
from export.onnx_export import export_onnx, quantize, verify  # noqa: E402
from export.train import load_checkpoint, parse_args, train  # noqa: E402
from liveduet import midifile  # noqa: E402
from liveduet.cli import main  # noqa: E402
from liveduet.codec import BOS, TimedNote, chorale_codec, melody_codec  # noqa: E402
from liveduet.contract import CARD_FIELDS  # noqa: E402
from liveduet.model import StepModel  # noqa: E402

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
    for inputs, targets, mask in batcher.epoch():
        assert inputs.shape == targets.shape == mask.shape
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
    path = Path(__file__).resolve().parent.parent / "models" / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"{path} is not built yet (python -m export.build {name})")
    model = StepModel(path)
    card = model.spec.card
    assert set(CARD_FIELDS) <= set(card) and card["rebuild"] == f"python -m export.build {name}"
    metrics = card["metrics"]
    assert metrics["valid_nll_per_note"] <= 0.9 * metrics["baseline_nll_per_note"]
    assert path.stat().st_size <= 8 * 2**20
    assert (path.with_suffix(".md")).exists()
