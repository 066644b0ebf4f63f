"""The copy index and ``liveduet check-copy``: planted copies are found with their source."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import mido
import numpy as np
import pytest

from liveduet.cli import main
from liveduet.core.copyindex import CopyIndex, gram_hashes, index_path, tokens_of
from liveduet.core.motifs import PNote

ROOT = Path(__file__).resolve().parents[2]
MELODY = ROOT / "models" / "folk_melody.onnx"


def tune(seed: int, count: int = 40) -> list[PNote]:
    """A random melody on the grid (distinct per seed)."""
    rng = random.Random(seed)
    out, t, p = [], 0, 67
    for _ in range(count):
        d = rng.choice((2, 2, 4, 1, 3, 6))
        p = min(max(p + rng.choice((-5, -3, -2, -1, 1, 2, 3, 4, 7)), 55), 84)
        out.append(PNote(t, d, p))
        t += d
    return out


def shifted(notes: list[PNote], semis: int, onset: int) -> list[PNote]:
    """The same notes elsewhere in pitch and time."""
    t0 = notes[0].onset
    return [PNote(n.onset - t0 + onset, n.dur, n.pitch + semis) for n in notes]


TRAIN = [(f"tune{i}", tune(i)) for i in range(30)]


def test_tokens_and_hashes_are_free_of_transposition() -> None:
    a = tune(1)[:12]
    assert np.array_equal(tokens_of(a), tokens_of(shifted(a, 5, 100)))
    assert tokens_of(a[:1]).size == 0 and gram_hashes(tokens_of(a[:5])).size == 0
    assert gram_hashes(tokens_of(a)).size == len(a) - 8 + 1  # one per 8-note window


def test_runs_find_a_planted_copy_with_its_source(tmp_path: Path) -> None:
    index = CopyIndex.build(TRAIN)
    planted = tune(999, 10) + shifted(TRAIN[7][1][5:21], 3, 200) + shifted(tune(998, 10), 0, 300)
    runs = index.runs(planted)
    assert runs[0].source == "tune7" and runs[0].start == 10
    assert runs[0].length == 16
    assert index.longest(planted) == runs[0].length
    assert index.longest(tune(12345)) == 0
    index.save(tmp_path / "i.npz")
    again = CopyIndex.load(tmp_path / "i.npz")
    assert again.runs(planted) == runs and again.order == index.order


def write_midi(path: Path, notes: list[PNote]) -> Path:
    """A one-track MIDI file of grid notes (4 steps a beat, 480 ticks a beat)."""
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    events = sorted([(n.onset * 120, 1, n.pitch) for n in notes]
                    + [((n.onset + n.dur) * 120, 0, n.pitch) for n in notes])
    now = 0
    for tick, on, pitch in events:
        track.append(mido.Message("note_on" if on else "note_off", note=pitch,
                                  velocity=80 if on else 0, time=tick - now))
        now = tick
    mid.tracks.append(track)
    mid.save(path)
    return path


@pytest.fixture
def model_with_index(tmp_path: Path) -> Path:
    model = tmp_path / "m.onnx"
    shutil.copy(MELODY, model)
    CopyIndex.build(TRAIN).save(index_path(model))
    return model


def test_check_copy_reports_the_planted_copy(model_with_index: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    planted = tune(999, 10) + shifted(TRAIN[3][1][:16], -2, 100)
    mid = write_midi(tmp_path / "p.mid", planted)
    assert main(["check-copy", str(mid), "--model", str(model_with_index), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["runs"][0]["source"] == "tune3" and report["longest"] == 16
    assert report["runs"][0]["beat"] == 25.0
    clean = write_midi(tmp_path / "c.mid", tune(4242))
    assert main(["check-copy", str(clean), "--model", str(model_with_index)]) == 0
    assert "no run of 8 or more notes" in capsys.readouterr().out


def test_check_copy_bad_input_is_one_line_and_exit_2(model_with_index: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi")
    assert main(["check-copy", str(bad), "--model", str(model_with_index)]) == 2
    assert main(["check-copy", str(tmp_path / "none.mid")]) == 2
    good = write_midi(tmp_path / "g.mid", tune(1))
    lonely = tmp_path / "lonely.onnx"
    shutil.copy(MELODY, lonely)
    assert main(["check-copy", str(good), "--model", str(lonely)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("liveduet: error:") for e in errors)
    assert "export.copyindex" in errors[2]


# Notes 8..23 of a training tune (airdsAirs/book1.abc, tune 114), as (onset, duration, pitch).
AIRD_114 = [(0, 6, 74), (6, 2, 72), (8, 2, 69), (10, 2, 72), (12, 2, 71), (14, 2, 67),
            (16, 2, 71), (18, 2, 69), (20, 2, 66), (22, 2, 69), (24, 4, 67), (28, 2, 62),
            (30, 4, 67), (34, 2, 71), (36, 2, 74), (38, 2, 71)]


def test_shipped_index_finds_a_planted_training_tune(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    copy = [PNote(t + 64, d, p - 5) for t, d, p in AIRD_114]  # moved a fourth down
    planted = tune(77, 16) + copy + shifted(tune(78, 16), 0, copy[-1].onset + 4)
    mid = write_midi(tmp_path / "planted.mid", planted)
    assert main(["check-copy", str(mid), "--model", str(MELODY), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    top = report["runs"][0]
    assert top["source"] == "airdsAirs/book1.abc#0114#113" and top["notes"] >= 16
