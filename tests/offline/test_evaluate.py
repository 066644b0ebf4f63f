"""liveduet eval: teacher-forced NLL of MIDI files, JSON keys, per-note definition, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from liveduet.cli import main
from liveduet.core.codec import BOS, N_SPECIAL, TimedNote, chorale_codec
from liveduet.core.metre import Metre, MetreMap, predicted_step
from liveduet.core.model import StepModel
from liveduet.offline import midifile
from liveduet.offline.evaluate import CHUNK, midi_metre, score_tokens
from liveduet.testkit.factory import lstm_model, position_model


def _melody_file(path: Path, pitches: list[int]) -> Path:
    notes = [TimedNote(i * 0.5, p, i * 0.5 + 0.5) for i, p in enumerate(pitches)]
    midifile.write_parts([midifile.Part("m", 0, notes)], 120).save(path)
    return path


def _step_by_step_nll(model: StepModel, tokens: np.ndarray) -> float:
    model.reset()
    total, prev = 0.0, BOS
    for tok in tokens:
        logits = model.step(prev)[0].astype(np.float64)
        logp = logits - logits.max() - np.log(np.exp(logits - logits.max()).sum())
        total -= logp[tok]
        prev = int(tok)
    return total


def test_score_equals_step_by_step_nll_across_chunks(tmp_path: Path) -> None:
    model = StepModel(lstm_model(tmp_path / "m.onnx"))
    rng = np.random.default_rng(1)
    tokens = rng.integers(1, model.vocab_size, CHUNK + 37)
    score = score_tokens(model, tokens)
    assert score.tokens == tokens.size
    assert score.notes == int((tokens >= N_SPECIAL).sum())
    assert score.nll == pytest.approx(_step_by_step_nll(model, tokens), rel=1e-5)
    assert score.nll_per_note == pytest.approx(score.nll / score.notes)


def test_position_model_is_scored_with_the_predicted_step_positions(tmp_path: Path) -> None:
    codec = chorale_codec()
    model = StepModel(position_model(tmp_path / "p.onnx", codec, hidden=12))
    rng = np.random.default_rng(2)
    tokens = rng.integers(1, model.vocab_size, 4 * 30)
    metre = MetreMap(Metre(3, 4))
    model.reset()
    total, prev = 0.0, BOS
    for i, tok in enumerate(tokens):   # input i is BOS or token i-1 and predicts token i
        model.set_position(metre.position_id(predicted_step(i, codec.n_voices)))
        logits = model.step(prev)[0].astype(np.float64)
        total -= logits[tok] - logits.max() - np.log(np.exp(logits - logits.max()).sum())
        prev = int(tok)
    assert score_tokens(model, tokens, metre=metre).nll == pytest.approx(total, rel=1e-5)
    ids = metre.position_ids(0, 30)
    assert score_tokens(model, tokens, positions=ids).nll == pytest.approx(total, rel=1e-5)
    assert score_tokens(model, tokens).nll != pytest.approx(total, rel=1e-5)  # 4/4 differs


def test_midi_time_signature_sets_the_metre(tmp_path: Path) -> None:
    mid = midifile.load(_melody_file(tmp_path / "a.mid", [60, 62, 64]))
    assert midi_metre(mid, chorale_codec()).metre(0).label == "4/4"
    for track in mid.tracks:
        for i, msg in enumerate(track):
            if msg.type == "time_signature":
                track[i] = msg.copy(numerator=6, denominator=8)
    assert midi_metre(mid, chorale_codec()).metre(0).label == "6/8"


def test_eval_json_keys_and_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = lstm_model(tmp_path / "m.onnx")
    a = _melody_file(tmp_path / "a.mid", [60, 62, 64, 65, 67, 100])  # 100 folds into range
    b = _melody_file(tmp_path / "b.mid", [72, 71, 69, 67])
    assert main(["eval", "--model", str(model), str(a), str(b), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"nll_per_token", "nll_per_note", "notes", "tokens"} <= set(out)
    assert out["notes"] == 10 and out["tokens"] == 2 * (6 + 4)  # two 16th steps per note
    assert out["report"]["folded"] == 1 and out["report"]["notes_in"] == 10
    assert out["nll_per_note"] == pytest.approx(out["nll_per_token"] * out["tokens"] / 10)
    assert [f["notes"] for f in out["files"]] == [6, 4]


def test_eval_text_output_and_multi_voice(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    codec = chorale_codec()
    model = lstm_model(tmp_path / "satb.onnx", codec=codec)
    parts = [midifile.Part(v.name, i, [TimedNote(b, p, b + 1.0) for b in range(4)])
             for i, (v, p) in enumerate(zip(codec.voices, (72, 64, 55, 48), strict=True))]
    midifile.write_parts(parts, 100).save(tmp_path / "c.mid")
    assert main(["eval", "--model", str(model), str(tmp_path / "c.mid")]) == 0
    text = capsys.readouterr().out
    assert "nats/note over 16 notes, 64 tokens" in text and "bass" in text


@pytest.mark.parametrize("content", [b"", b"not midi at all", None])
def test_bad_files_exit_2_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture,
                                               content: bytes | None) -> None:
    model = lstm_model(tmp_path / "m.onnx")
    bad = tmp_path / "bad.mid"
    if content is not None:
        bad.write_bytes(content)
    assert main(["eval", "--model", str(model), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "liveduet: error:" in err and "bad.mid" in err


def test_file_without_notes_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = lstm_model(tmp_path / "m.onnx")
    midifile.write_parts([midifile.Part("empty", 0, [])], 120).save(tmp_path / "e.mid")
    assert main(["eval", "--model", str(model), str(tmp_path / "e.mid")]) == 2
    assert "no notes" in capsys.readouterr().err


def test_multi_voice_model_needs_one_track_per_voice(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    model = lstm_model(tmp_path / "satb.onnx", codec=chorale_codec())
    path = _melody_file(tmp_path / "one.mid", [72, 74, 76])
    assert main(["eval", "--model", str(model), str(path)]) == 2
    assert "one track per voice in the order soprano, alto, tenor, bass" in capsys.readouterr().err
