"""Metre: beats and bars of each time signature, position ids, metre maps and changes."""

from __future__ import annotations

import pytest

from liveduet.core.metre import (
    METRES,
    POSITION_SIZE,
    Metre,
    MetreChange,
    MetreMap,
    StepGrid,
    parse_metre,
    predicted_step,
)
from liveduet.core.schedule import Metronome
from liveduet.errors import ConfigError


@pytest.mark.parametrize(("label", "beats", "beat_steps", "bar_steps", "compound"), [
    ("4/4", 4, 4, 16, False), ("3/4", 3, 4, 12, False), ("2/4", 2, 4, 8, False),
    ("2/2", 2, 8, 16, False), ("6/8", 2, 6, 12, True), ("9/8", 3, 6, 18, True),
    ("12/8", 4, 6, 24, True), ("5/4", 5, 4, 20, False), ("7/8", 7, 2, 14, False),
    ("3/8", 3, 2, 6, False), ("6/4", 2, 12, 24, True)])
def test_beats_and_bars_of_each_metre(label: str, beats: int, beat_steps: int, bar_steps: int,
                                      compound: bool) -> None:
    m = parse_metre(label)
    assert (m.beats, m.beat_steps, m.bar_steps, m.compound) == (beats, beat_steps, bar_steps,
                                                                compound)
    assert m.label == label
    assert m.quarters_per_bar * 4 == bar_steps


def test_every_offered_metre_parses() -> None:
    assert [parse_metre(m).label for m in METRES] == list(METRES)


@pytest.mark.parametrize("text", ["", "4", "4/3", "0/4", "x/8", "4/32", "33/4", "6//8"])
def test_bad_metres_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(ConfigError, match=r"use one of 4/4, 3/4, .* 7/8"):
        parse_metre(text)


def test_position_ids_mark_bar_lines_beats_and_subdivisions() -> None:
    jig = parse_metre("6/8")
    ids = [jig.position_id(s) for s in range(jig.bar_steps + 1)]
    assert ids == [0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17, 0]
    assert all(0 <= parse_metre(m).position_id(s) < POSITION_SIZE
               for m in METRES for s in range(48))
    assert parse_metre("4/4").position_id(4) == parse_metre("3/4").position_id(4) == 12


def test_predicted_step_of_each_input_token() -> None:
    # one voice: BOS predicts step 0, the token of step n predicts step n + 1
    assert [predicted_step(i, 1) for i in range(4)] == [0, 1, 2, 3]
    # four voices: BOS and voices 0-2 of step 0 predict step 0; voice 3 predicts step 1
    assert [predicted_step(i, 4) for i in range(9)] == [0, 0, 0, 0, 1, 1, 1, 1, 2]


def test_map_with_a_pickup_counts_bars_from_its_origin() -> None:
    mm = MetreMap(parse_metre("6/8"), origin=2)
    assert mm.position_ids(0, 3) == [16, 17, 0]  # the pickup ends a bar
    assert mm.bar_lines(0, 40) == [2, 14, 26, 38]
    assert mm.next_bar_line(3) == 14 and mm.next_bar_line(14) == 14
    assert mm.is_beat(8) and not mm.is_beat(9)


def test_a_change_takes_over_at_the_next_bar_line() -> None:
    mm = MetreMap().change_at_next_bar(5, parse_metre("3/4"))
    assert [c.step for c in mm.changes] == [0, 16]
    assert mm.bar_lines(0, 60) == [0, 16, 28, 40, 52]
    assert mm.labels() == [(0, "4/4"), (16, "3/4")]
    assert mm.metre(15).label == "4/4" and mm.metre(16).label == "3/4"


def test_map_of_several_changes_from_a_file() -> None:
    mm = MetreMap([MetreChange(0, parse_metre("2/4")), MetreChange(16, parse_metre("6/8"))])
    assert mm.bar_lines(0, 40) == [0, 8, 16, 28]
    assert mm.next_beat(17) == 22


def test_step_grid_follows_the_transport_offset() -> None:
    grid = StepGrid(MetreMap(parse_metre("3/4")))
    assert grid.is_bar_line(12)
    grid.offset = 4  # step 8 is grid position 12
    assert grid.is_bar_line(8) and not grid.is_bar_line(12)
    assert grid.bar_steps(0) == 12 and grid.beat_steps(0) == 4


def test_metronome_clicks_the_beats_of_the_metre() -> None:
    clicks = Metronome(10, lambda: MetreMap(parse_metre("6/8")))
    ons = []
    pos = 0.0
    while pos < 22:
        ons += [(at, msg[1]) for at, msg, _ in clicks.due(pos) if msg[0] & 0xF0 == 0x90]
        pos += 0.5
    assert ons == [(0.0, 76), (6.0, 77), (12.0, 76), (18.0, 77)]


def test_metre_validates_its_grid() -> None:
    with pytest.raises(ConfigError):
        Metre(7, 16, 2)  # a 16th unit on an 8th grid
