"""Voice-leading analysis on hand-written four-part fragments whose faults are known."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from liveduet.core.codec import TimedNote
from liveduet.core.metre import Metre
from liveduet.core.voiceleading import analyse, consecutive, format_report

Chord = tuple[int, int, int, int]


def block(chords: Sequence[Chord], beats: float = 1.0) -> list[list[TimedNote]]:
    """Four voices from block chords of ``beats`` each; a pitch repeated in a voice is held."""
    voices: list[list[TimedNote]] = [[] for _ in range(4)]
    for i, chord in enumerate(chords):
        for v, pitch in enumerate(chord):
            part = voices[v]
            if part and part[-1].pitch == pitch and part[-1].end == i * beats:
                last = part.pop()
                part.append(TimedNote(last.start, pitch, (i + 1) * beats, v))
            else:
                part.append(TimedNote(i * beats, pitch, (i + 1) * beats, v))
    return voices


def test_consecutive_names_the_motion() -> None:
    assert consecutive(67, 48, 69, 50) == "parallel_fifths"
    assert consecutive(72, 48, 74, 50) == "parallel_octaves"
    assert consecutive(72, 48, 74, 38) == "contrary_octaves"
    assert consecutive(67, 60, 62, 55) == "parallel_fifths"
    assert consecutive(67, 60, 67, 55) is None  # the upper voice holds: oblique
    assert consecutive(67, 60, 69, 62) == "parallel_fifths"
    assert consecutive(64, 60, 65, 62) is None


def test_one_parallel_fifth_between_alto_and_bass_is_found_and_located() -> None:
    # C major to D minor with the alto and the bass rising a step in fifths (G/C -> A/D);
    # the tenor holds its C, so no other pair moves in parallel.
    rep = analyse(block([(76, 67, 60, 48), (77, 69, 60, 50)]))
    assert (rep.transitions, rep.parallel_fifths, rep.parallel_octaves) == (1, 1, 0)
    assert rep.contrary_fifths == rep.contrary_octaves == 0
    (fault,) = [f for f in rep.faults if f.kind == "parallel fifths"]
    assert (fault.bar, fault.beat, fault.voices) == (1, 2.0, "alto-bass")
    assert "G4/C3 -> A4/D3" in fault.detail


def test_octaves_by_contrary_motion_are_counted_apart_from_parallels() -> None:
    rep = analyse(block([(72, 67, 64, 48), (74, 65, 62, 38)]))
    assert rep.contrary_octaves == 1
    assert rep.parallel_octaves == rep.parallel_fifths == 0


def test_a_clean_cadence_has_no_faults_and_every_beat_is_a_chord() -> None:
    # I - IV - V - I in C, textbook voicing: contrary outer voices, common tones held.
    rep = analyse(block([(72, 67, 64, 48), (72, 69, 65, 53), (71, 67, 62, 55),
                         (72, 67, 64, 48)]))
    assert rep.transitions == 3
    assert rep.parallel_fifths + rep.parallel_octaves + rep.contrary_fifths == 0
    assert rep.beats == rep.chord_beats == 4
    assert rep.clash_beats == 0 and rep.faults == []
    assert rep.in_key == 1.0


def test_crossing_spacing_and_range_faults_carry_bar_and_beat_in_three_four() -> None:
    chords = [(72, 64, 55, 48), (72, 64, 55, 48), (72, 64, 55, 48),
              (72, 60, 64, 48),   # bar 2 beat 1: the tenor sounds above the alto
              (84, 67, 60, 48),   # bar 2 beat 2: soprano a 17th over the alto, C6 too high
              (72, 64, 55, 30)]   # bar 2 beat 3: the bass is below its range
    rep = analyse(block(chords), Metre(3, 4))
    where = {(f.kind, f.bar, f.beat) for f in rep.faults}
    assert ("crossing", 2, 1.0) in where
    assert ("spacing", 2, 2.0) in where
    assert ("out of range", 2, 2.0) in where and ("out of range", 2, 3.0) in where
    assert rep.crossings == 1 and rep.spacing == 1 and rep.out_of_range == 2


def test_overlap_a_voice_moving_past_the_previous_note_of_its_neighbour() -> None:
    rep = analyse(block([(72, 64, 60, 48), (74, 65, 67, 43)]))
    assert rep.overlaps == 1
    assert [f.voices for f in rep.faults if f.kind == "overlap"] == ["alto-tenor"]


def test_stepwise_share_counts_each_move_and_a_repeat_is_no_step() -> None:
    alto = [TimedNote(i, p, i + 1, 1) for i, p in enumerate([67, 69, 71, 71, 64])]
    voices = [[TimedNote(0, 72, 5, 0)], alto, [TimedNote(0, 60, 5, 2)], [TimedNote(0, 48, 5, 3)]]
    rep = analyse(voices)
    assert rep.stepwise["alto"] == pytest.approx(2 / 4)
    assert rep.stepwise["soprano"] == 0.0


def test_clash_beats_chords_and_in_key_share() -> None:
    # beat 1: C E G C (triad); beat 2: C B G C (B against C: a clash, no triad);
    # beat 3: G7 (V7); beat 4: C with F# in the tenor (out of C major).
    rep = analyse(block([(72, 67, 64, 48), (72, 71, 67, 48), (71, 65, 62, 55),
                         (72, 67, 66, 48), (76, 72, 67, 48), (77, 72, 69, 53),
                         (79, 74, 71, 55), (72, 67, 64, 48)]))
    assert rep.beats == 8
    assert rep.clash_beats == 2  # C/B, and F#/G
    assert rep.chord_beats == 6
    assert rep.key == "C major"
    assert 0.9 < rep.in_key < 1.0  # one F# among the lower voices' notes


def test_all_voices_the_same_way_and_the_text_report_lists_faults() -> None:
    rep = analyse(block([(72, 64, 55, 48), (74, 65, 57, 50)]))
    assert rep.same_direction == 1
    text = format_report(rep, "frag.mid")
    assert text.startswith("frag.mid: 4/4, key of the soprano")
    assert "bar 1 beat 2: parallel fifths (tenor-bass)" in text


def test_analyse_needs_four_voices() -> None:
    with pytest.raises(ValueError, match="four voices"):
        analyse([[TimedNote(0, 60, 1, 0)]])
