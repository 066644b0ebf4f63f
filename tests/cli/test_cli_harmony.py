"""``liveduet check-harmony``: the report of four-part MIDI files, tracks or channels."""

from __future__ import annotations

import json
from pathlib import Path

import mido
import pytest

from liveduet.cli import main
from liveduet.core.codec import TimedNote
from liveduet.offline.midifile import Part, write_parts
from tests.core.test_voiceleading import block

FIFTHS = [(76, 67, 60, 48), (77, 69, 60, 50)]  # one parallel fifth, alto-bass, bar 1 beat 2


def four_tracks(path: Path, voices: list[list[TimedNote]], order: tuple[int, ...] = (0, 1, 2, 3)
                ) -> Path:
    parts = [Part("SATB"[v], v, voices[v]) for v in order]
    write_parts(parts).save(str(path))
    return path


def test_text_report_names_the_fault_with_bar_and_beat(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = four_tracks(tmp_path / "f.mid", block(FIFTHS))
    assert main(["check-harmony", str(path)]) == 0
    out = capsys.readouterr().out
    assert "parallel fifths          1  (100.00 per 100 transitions)" in out
    assert "bar 1 beat 2: parallel fifths (alto-bass) G4/C3 -> A4/D3" in out


def test_json_report_and_voices_ordered_by_pitch(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = four_tracks(tmp_path / "f.mid", block(FIFTHS), order=(3, 1, 0, 2))  # bass first
    assert main(["check-harmony", str(path), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["transitions"] == 1 and rep["parallel_fifths"] == 1
    assert rep["summary"]["parallel_fifths_per100"] == 100.0
    assert [(f["kind"], f["bar"], f["beat"], f["voices"]) for f in rep["faults"]] == [
        ("parallel fifths", 1, 2.0, "alto-bass")]


def test_four_channels_of_one_track_and_the_time_signature(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    voices = block([(72, 64, 55, 48)] * 3 + [(72, 60, 64, 48)])  # crossing on bar 2 beat 1
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0))
    events = sorted((round(t * 480), kind, v, n.pitch) for v, part in enumerate(voices)
                    for n in part for t, kind in ((n.start, 1), (n.end, 0)))
    now = 0
    for tick, kind, v, pitch in events:
        msg = "note_on" if kind else "note_off"
        track.append(mido.Message(msg, channel=v, note=pitch, velocity=80 if kind else 0,
                                  time=tick - now))
        now = tick
    mid.tracks.append(track)
    mid.save(str(tmp_path / "ch.mid"))
    assert main(["check-harmony", str(tmp_path / "ch.mid")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{tmp_path / 'ch.mid'}: 3/4")
    assert "bar 2 beat 1: crossing (alto-tenor) C4 under E4" in out


@pytest.mark.parametrize("voices", [2, 5])
def test_not_four_voices_is_one_line_that_says_how_to_export(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], voices: int) -> None:
    parts = [Part(f"v{i}", i, [TimedNote(0, 60 + i, 1, 0)]) for i in range(voices)]
    path = tmp_path / "x.mid"
    write_parts(parts).save(str(path))
    assert main(["check-harmony", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"found {voices} tracks" in err and "four tracks" in err


def test_a_file_that_is_not_midi_exits_2(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("soprano alto tenor bass")
    assert main(["check-harmony", str(bad)]) == 2
    assert "not a readable Standard MIDI File" in capsys.readouterr().err
