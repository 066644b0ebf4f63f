"""Turn policy and human quantisation."""

from __future__ import annotations

import pytest

from liveduet.core.metre import MetreMap, StepGrid, parse_metre
from liveduet.core.settings import Settings
from liveduet.core.turns import (
    ANSWERING,
    HELD_LIMIT_ONSETS,
    HELD_LIMIT_STEPS,
    LISTENING,
    HumanIn,
    HumanRecord,
    initial_turn,
    next_turn,
    parse_steps,
    response_steps,
)
from liveduet.errors import ConfigError


@pytest.mark.parametrize(("text", "steps"), [
    ("4", 4), (6, 6), ("3s", 3), ("1b", 4), ("2beats", 8), ("1bar", 16), ("0.5bar", 8),
    ("2 bars", 32)])
def test_parse_steps(text: str, steps: int) -> None:
    assert parse_steps(text) == steps


@pytest.mark.parametrize("text", ["", "x", "1.5", "0", "-1b", "2parsecs"])
def test_parse_steps_refuses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_steps(text)


GRID = StepGrid(MetreMap())  # 4/4


def test_response_length_follows_the_call_within_bounds() -> None:
    s = Settings(answer_at="gap")  # min 1 bar, max 4 bars, 16 steps a bar
    assert response_steps(s, 40, 16) == 40
    assert response_steps(s, 3, 16) == 16
    assert response_steps(s, 200, 16) == 64
    assert response_steps(s.with_value("response_bars", 2), 3, 16) == 32


def test_response_length_is_whole_bars_when_answers_enter_on_the_bar() -> None:
    s = Settings()  # answer_at bar
    assert response_steps(s, 40, 16) == 32  # 2.5 bars of call -> 2 bars
    assert response_steps(s, 26, 12) == 24  # 3/4: 2.17 bars -> 2 bars
    assert response_steps(s, 3, 16) == 16
    assert response_steps(s.with_value("response_max_bars", 2.5), 200, 16) == 32


def test_quantise_to_the_nearest_step_within_tolerance() -> None:
    rec = HumanRecord(0.5)
    assert [rec.step_of(x) for x in (3.0, 3.49, 3.5, 3.9)] == [3, 3, 4, 4]
    late = HumanRecord(0.7)  # a note up to 0.7 of a step late still belongs to the step
    assert [late.step_of(x) for x in (3.69, 3.71)] == [3, 4]


def test_human_record_onsets_holds_and_shortest_note() -> None:
    rec = HumanRecord()
    rec.note_on(4, 60, 90, 0)
    rec.note_on(4, 64, 90, 0)
    assert rec.note_off(4, 60, 0) == 5  # a note lasts at least one step
    assert rec.at(4) == HumanIn(64, True)
    assert rec.at(6) == HumanIn(None, True)  # 64 still held
    rec.note_off(8, 64, 0)
    assert rec.at(8) == HumanIn(None, False)


def test_call_turns_gap_answer_and_barge_in() -> None:
    s = Settings(mode="call", listen_gap=2, response_bars=0.25, answer_at="gap")  # 4 steps
    turn = initial_turn("call")
    sound, quiet = HumanIn(60, True), HumanIn(None, False)
    phases = []
    for step, hin in enumerate([sound, sound, quiet, quiet, quiet, quiet, sound, quiet]):
        turn = next_turn(turn, s, hin, step, False, GRID)
        phases.append(turn.phase)
    assert phases == [LISTENING, LISTENING, LISTENING, LISTENING, ANSWERING, ANSWERING,
                      LISTENING, LISTENING]


def test_end_call_answers_without_waiting_for_the_gap() -> None:
    s = Settings(mode="call", listen_gap=16, answer_at="gap")
    turn = next_turn(initial_turn("call"), s, HumanIn(60, True), 0, False, GRID)
    turn = next_turn(turn, s, HumanIn(None, False), 1, True, GRID)
    assert turn.phase == ANSWERING


def test_end_call_with_answer_at_bar_waits_for_the_bar_line() -> None:
    s = Settings(mode="call", listen_gap=16)
    turn = next_turn(initial_turn("call"), s, HumanIn(60, True), 0, False, GRID)
    phases = [next_turn(turn, s, HumanIn(None, False), 1, True, GRID).phase]
    turn = next_turn(turn, s, HumanIn(None, False), 1, True, GRID)
    for step in range(2, 17):
        turn = next_turn(turn, s, HumanIn(None, False), step, False, GRID)
        phases.append(turn.phase)
    assert phases == [LISTENING] * 15 + [ANSWERING]


@pytest.mark.parametrize(("metre", "entry"), [("6/8", 12), ("3/4", 12), ("2/2", 16),
                                              ("7/8", 14)])
def test_call_answer_enters_on_the_metre_s_bar_line(metre: str, entry: int) -> None:
    s = Settings(mode="call", meter=metre, listen_gap=2)
    grid = StepGrid(MetreMap(parse_metre(metre)))
    turn = initial_turn("call")
    entered = None
    for step in range(40):
        hin = HumanIn(60 if step == 0 else None, step < 7)
        turn = next_turn(turn, s, hin, step, False, grid)
        if turn.phase == ANSWERING:
            entered = step
            break
    assert entered == entry


def test_key_notes_never_see_a_note_off_from_after_the_step() -> None:
    rec = HumanRecord()
    rec.note_on(8, 40, 90, 0)
    rec.note_on(8, 46, 90, 0)
    rec.note_off(15, 40, 0)
    before = rec.key_notes(15)
    rec.note_off(20, 46, 0)  # a later note-off must not change what step 15 heard
    assert rec.key_notes(15) == before == [(40, 7.0), (46, 7.0)]
    assert rec.key_notes(30) == [(40, 7.0), (46, 12.0)]
def test_a_key_held_past_the_limit_stops_counting_and_its_late_off_changes_nothing() -> None:
    rec = HumanRecord()
    rec.note_on(10, 60, 90, 0)                     # its note-off is lost
    assert rec.at(10 + HELD_LIMIT_STEPS - 1).sounding
    assert rec.held(10 + HELD_LIMIT_STEPS - 1)
    assert not rec.at(10 + HELD_LIMIT_STEPS).sounding
    assert not rec.held(10 + HELD_LIMIT_STEPS)
    assert rec.note_off(10 + 2 * HELD_LIMIT_STEPS, 60, 0) is None  # no step to re-decide
    rec.note_on(500, 62, 90, 1)                    # another lost one, then pruned away
    rec.prune(500 + HELD_LIMIT_STEPS + 1)
    assert rec.notes == []


def test_a_key_held_under_many_later_notes_stops_counting() -> None:
    rec = HumanRecord()
    rec.note_on(0, 36, 90, 0)                      # a pedal note (or a lost note-off)
    for i in range(HELD_LIMIT_ONSETS - 1):
        rec.note_on(1 + i, 60 + i % 12, 90, 0)
        rec.note_off(2 + i, 60 + i % 12, 0)
    assert rec.at(40).sounding                     # 15 notes over it: still the human's turn
    last = HELD_LIMIT_ONSETS + 2
    rec.note_on(last, 72, 90, 0)
    rec.note_off(last + 1, 72, 0)
    assert rec.at(last - 1).sounding and rec.at(last).sounding
    assert not rec.at(last + 1).sounding           # the 16th later note ended: nothing held


def test_all_notes_off_closes_the_held_keys_of_its_channel() -> None:
    rec = HumanRecord()
    rec.note_on(0, 60, 90, 0)
    rec.note_on(0, 64, 90, 0)
    rec.note_on(1, 67, 90, 5)
    assert rec.all_off(3, 0) == 3
    assert rec.at(3) == HumanIn(None, True)        # channel 5's key is still down
    assert rec.all_off(4, 5) == 4 and not rec.at(4).sounding
    assert rec.all_off(5, 0) is None


def test_a_duplicated_note_on_counts_once() -> None:
    rec = HumanRecord()
    rec.note_on(0, 60, 90, 0)
    rec.note_on(1, 60, 90, 0)                      # the same key again (a doubled event)
    assert sum(n.end is None for n in rec.notes) == 1
    rec.note_off(2, 60, 0)                         # one note-off ends it
    assert not rec.held() and not rec.at(2).sounding
