"""Round-trip tables and lossy-decision counts of the grid codec."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveduet.core.codec import (
    BOS,
    HOLD,
    REST,
    GridCodec,
    Note,
    TimedNote,
    Voice,
    chorale_codec,
    codec_from_json,
    melody_codec,
)
from liveduet.errors import CodecError

MEL = melody_codec()
ON = MEL.note_on

# (notes, frames) pairs: encode(notes) == frames and decode(frames) == notes, exactly.
ROUND_TRIPS = [
    ([], np.zeros((0, 1), dtype=np.int64)),
    ([Note(0, 60, 1)], [[ON(60)]]),
    ([Note(0, 60, 4)], [[ON(60)], [HOLD], [HOLD], [HOLD]]),
    ([Note(1, 48, 2)], [[REST], [ON(48)]]),
    ([Note(0, 84, 2), Note(2, 84, 3)], [[ON(84)], [HOLD], [ON(84)]]),
    ([Note(0, 60, 1), Note(3, 62, 5)], [[ON(60)], [REST], [REST], [ON(62)], [HOLD]]),
]


@pytest.mark.parametrize(("notes", "frames"), ROUND_TRIPS)
def test_melody_round_trip_table(notes: list[Note], frames: list[list[int]]) -> None:
    expected = np.asarray(frames, dtype=np.int64).reshape(-1, 1)
    encoded, report = MEL.encode(notes)
    np.testing.assert_array_equal(encoded, expected)
    assert report.dropped == 0 and report.folded == 0 and report.truncated == 0
    assert MEL.decode(encoded) == sorted(notes)


def test_token_table_is_exact_inverse() -> None:
    assert MEL.vocab_size == 3 + 84 - 48 + 1
    names = {MEL.token_name(t) for t in range(MEL.vocab_size)}
    assert len(names) == MEL.vocab_size
    for pitch in range(48, 85):
        assert MEL.pitch_of(MEL.note_on(pitch)) == pitch
    assert [MEL.token_name(t) for t in (BOS, HOLD, REST)] == ["BOS", "HOLD", "REST"]
    with pytest.raises(CodecError, match="outside the vocabulary"):
        MEL.note_on(47)
    with pytest.raises(CodecError, match="outside the vocabulary"):
        MEL.pitch_of(MEL.vocab_size)


@pytest.mark.parametrize(
    ("note", "field", "pitch"),
    [
        (Note(0, 36, 2), "folded", 48),  # two octaves up into range
        (Note(0, 96, 2), "folded", 84),
        (Note(0, 47, 2), "folded", 59),
    ],
)
def test_out_of_range_folds_by_octave_and_counts(note: Note, field: str, pitch: int) -> None:
    frames, report = MEL.encode([note])
    assert getattr(report, field) == 1
    assert MEL.decode(frames) == [Note(0, pitch, 2)]


def test_unfoldable_pitch_is_dropped_and_counted() -> None:
    narrow = GridCodec((Voice("v", 60, 64),))
    frames, report = narrow.encode([Note(0, 66, 2), Note(2, 62, 3)])
    assert report.dropped_range == 1 and report.dropped == 1
    assert narrow.decode(frames) == [Note(2, 62, 3)]


def test_chord_keeps_highest_and_counts_the_rest() -> None:
    frames, report = MEL.encode([Note(0, 60, 4), Note(0, 64, 4), Note(0, 67, 2)])
    assert report.dropped_chord == 2
    assert MEL.decode(frames) == [Note(0, 67, 2)]


def test_overlap_truncates_earlier_note_and_counts() -> None:
    frames, report = MEL.encode([Note(0, 60, 4), Note(2, 62, 6)])
    assert report.truncated == 1
    assert MEL.decode(frames) == [Note(0, 60, 2), Note(2, 62, 6)]


def test_off_grid_rounds_to_nearest_step_and_counts() -> None:
    notes, report = MEL.quantize([TimedNote(0.0, 60, 0.5), TimedNote(0.52, 62, 0.99)])
    assert report.off_grid == 1
    assert notes == [Note(0, 60, 2), Note(2, 62, 4)]
    assert MEL.to_beats(notes) == [TimedNote(0.0, 60, 0.5), TimedNote(0.5, 62, 1.0)]


def test_chorale_interleaves_voices_in_order() -> None:
    ch = chorale_codec()
    notes = [Note(0, 72, 2, 0), Note(0, 67, 2, 1), Note(0, 60, 2, 2), Note(0, 48, 2, 3)]
    frames, _ = ch.encode(notes)
    flat = ch.interleave(frames)
    assert flat.tolist() == [ch.note_on(72), ch.note_on(67), ch.note_on(60), ch.note_on(48),
                             HOLD, HOLD, HOLD, HOLD]
    np.testing.assert_array_equal(ch.deinterleave(flat), frames)
    assert ch.decode(frames) == sorted(notes)
    assert ch.roles("given") == [0] and ch.roles("sampled") == [1, 2, 3]
    with pytest.raises(CodecError, match="whole number of steps"):
        ch.deinterleave(flat[:-1])


def test_voice_masks_follow_ranges() -> None:
    ch = chorale_codec()
    bass = ch.voice_tokens(3)
    assert bass[HOLD] and bass[REST] and not bass[BOS]
    assert bass[ch.note_on(33)] and bass[ch.note_on(64)] and not bass[ch.note_on(65)]


@pytest.mark.parametrize("codec", [melody_codec(), melody_codec(40, 90, 2), chorale_codec()])
def test_json_round_trip(codec: GridCodec) -> None:
    again = codec_from_json(codec.dumps())
    assert again == codec and again.vocab_size == codec.vocab_size


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("not json", "not JSON"),
        ('{"name": "perf"}', "unknown"),
        ('{"name": "grid", "voices": []}', "at least one voice"),
        ('{"name": "grid", "voices": [{"name": "m", "low": 48}]}', "lacks or mistypes"),
        ('{"name": "grid", "version": 9, "voices": []}', "version"),
        ('{"name": "grid", "vocab_size": 5, "voices": [{"name": "m", "low": 48, "high": 84}]}',
         "vocab_size"),
    ],
)
def test_bad_codec_json_is_refused_with_reason(text: str, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        codec_from_json(text)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Voice("", 0, 1), "empty"),
        (lambda: Voice("v", 70, 60), "low <= high"),
        (lambda: Voice("v", 0, 1, "boss"), "role"),
        (lambda: GridCodec((Voice("v", 0, 1),), 5), "steps_per_beat"),
        (lambda: GridCodec((Voice("v", 0, 1), Voice("v", 0, 1, "given"))), "repeat"),
        (lambda: GridCodec((Voice("a", 0, 1), Voice("b", 0, 1, "given"))), "shared"),
        (lambda: Note(3, 60, 3), "start < end"),
        (lambda: Note(0, 60, 1, velocity=0), "velocity"),
    ],
)
def test_value_objects_name_the_bad_value(build: object, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        build()  # type: ignore[operator]


melodies = st.lists(
    st.tuples(st.integers(0, 3), st.integers(1, 6), st.integers(48, 84)), max_size=20
).map(lambda gaps: _sequential(gaps))


def _sequential(gaps: list[tuple[int, int, int]]) -> list[Note]:
    notes, t = [], 0
    for rest, length, pitch in gaps:
        t += rest
        notes.append(Note(t, pitch, t + length))
        t += length
    return notes


@settings(max_examples=150, deadline=None)
@given(melodies)
def test_monophonic_in_range_melodies_round_trip_exactly(notes: list[Note]) -> None:
    frames, report = MEL.encode(notes)
    assert report.notes_in == len(notes) and report.dropped == 0 and report.truncated == 0
    assert MEL.decode(frames) == notes
    flat = MEL.interleave(frames)
    np.testing.assert_array_equal(MEL.encode(MEL.decode(MEL.deinterleave(flat)))[0], frames)
