"""Turn policy and human quantisation."""

from __future__ import annotations

import pytest

from liveduet.errors import ConfigError
from liveduet.metre import MetreMap, StepGrid, parse_metre
from liveduet.settings import Settings
from liveduet.turns import (
    ANSWERING,
    LISTENING,
    HumanIn,
    HumanRecord,
    initial_turn,
    next_turn,
    parse_steps,
    response_steps,
)


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
