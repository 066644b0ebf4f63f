"""MIDI file <-> tokens round trips and clear errors for unreadable files."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest

from liveduet.core.codec import Note, TimedNote, chorale_codec, melody_codec
from liveduet.errors import LiveduetError
from liveduet.offline import midifile


def test_melody_file_round_trip_through_tokens(tmp_path: Path) -> None:
    codec = melody_codec()
    notes = [Note(0, 60, 2), Note(2, 64, 4), Note(6, 67, 14), Note(14, 72, 15)]
    frames, _ = codec.encode(notes)
    path = tmp_path / "m.mid"
    midifile.frames_to_midi(codec, frames, bpm=96).save(path)
    mid = midifile.load(path)
    assert midifile.tempo_bpm(mid) == pytest.approx(96)
    again, report = midifile.midi_to_frames(codec, mid)
    np.testing.assert_array_equal(again, frames)
    assert report.notes_in == 4 and report.off_grid == 0 and report.dropped == 0


def test_four_voices_round_trip(tmp_path: Path) -> None:
    codec = chorale_codec()
    notes = [Note(0, 72, 4, 0), Note(0, 67, 4, 1), Note(0, 64, 2, 2), Note(2, 60, 4, 2),
             Note(0, 48, 4, 3)]
    frames, _ = codec.encode(notes)
    path = tmp_path / "satb.mid"
    midifile.frames_to_midi(codec, frames).save(path)
    again, _ = midifile.midi_to_frames(codec, midifile.load(path))
    np.testing.assert_array_equal(again, frames)


def test_off_grid_and_chords_are_counted(tmp_path: Path) -> None:
    parts = [midifile.Part("h", 0, [TimedNote(0.1, 60, 1.0), TimedNote(0.1, 67, 1.0),
                                    TimedNote(1.0, 62, 2.0)])]
    path = tmp_path / "c.mid"
    midifile.write_parts(parts).save(path)
    frames, report = midifile.midi_to_frames(melody_codec(), midifile.load(path))
    assert report.notes_in == 3 and report.off_grid == 2 and report.dropped_chord == 1
    assert [n.pitch for n in melody_codec().decode(frames)] == [67, 62]


def test_read_notes_by_track_and_channel(tmp_path: Path) -> None:
    parts = [midifile.Part("a", 0, [TimedNote(0, 60, 1)]),
             midifile.Part("b", 3, [TimedNote(0, 50, 2)])]
    path = tmp_path / "two.mid"
    midifile.write_parts(parts).save(path)
    mid = midifile.load(path)
    assert [n.pitch for n in midifile.read_notes(mid, track=2)] == [50]
    assert [n.pitch for n in midifile.read_notes(mid, channel=0)] == [60]
    with pytest.raises(LiveduetError, match="track 7 does not exist"):
        midifile.read_notes(mid, track=7)


def test_velocity_zero_note_on_ends_a_note(tmp_path: Path) -> None:
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    trk = mido.MidiTrack([mido.Message("note_on", note=60, velocity=90, time=0),
                          mido.Message("note_on", note=60, velocity=0, time=480)])
    mid.tracks.append(trk)
    assert midifile.read_notes(mid) == [TimedNote(0.0, 60, 1.0, 0, 90)]


@pytest.mark.parametrize(("content", "match"), [
    (None, "no such MIDI file"),
    (b"", "not a readable Standard MIDI File"),
    (b"MThd\x00\x00\x00\x06\x00", "not a readable Standard MIDI File"),
    (b"hello world, not midi", "not a readable Standard MIDI File"),
])
def test_unreadable_files_are_refused_clearly(tmp_path: Path, content: bytes | None,
                                              match: str) -> None:
    path = tmp_path / "bad.mid"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(LiveduetError, match=match):
        midifile.load(path)


def test_multi_voice_needs_enough_tracks(tmp_path: Path) -> None:
    path = tmp_path / "one.mid"
    midifile.write_parts([midifile.Part("s", 0, [TimedNote(0, 72, 1)])]).save(path)
    with pytest.raises(LiveduetError, match="needs 4"):
        midifile.midi_to_frames(chorale_codec(), midifile.load(path))
