"""Pace and the hold limit: a machine line keeps near its corpus's note rate and never holds a
note longer than the corpus does (unless density is turned down)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liveduet.core.codec import BOS, HOLD, melody_codec
from liveduet.core.engine import Engine
from liveduet.core.metre import parse_metre
from liveduet.core.model import StepModel
from liveduet.core.pace import (
    DEFAULT_MAX_HOLD_BEATS,
    PACE_LIMIT,
    CorpusPace,
    next_rate,
    pace_bias,
    target_rate,
)
from liveduet.core.settings import Settings
from liveduet.offline.render import drive
from liveduet.testkit.enginekit import notes_of, table_for
from liveduet.testkit.factory import scripted_model


def test_target_follows_density() -> None:
    assert target_rate(0.4, 0.5) == pytest.approx(0.4)
    assert target_rate(0.4, 0.75) == pytest.approx(0.8)
    assert target_rate(0.4, 0.25) == pytest.approx(0.2)


def test_bias_pushes_a_slow_line_and_calms_a_racing_one() -> None:
    assert pace_bias(0.4, 0.4) == 0.0
    assert pace_bias(0.1, 0.4) > 0.0 > pace_bias(0.9, 0.4)
    assert pace_bias(0.0, 0.4) == PACE_LIMIT and pace_bias(1.0, 0.001) == -PACE_LIMIT


def test_rate_is_a_moving_average_of_onsets() -> None:
    rate = 0.0
    for _ in range(200):
        rate = next_rate(rate, True)
    assert rate == pytest.approx(1.0, abs=1e-2)
    for _ in range(200):
        rate = next_rate(rate, False)
    assert rate == pytest.approx(0.0, abs=1e-2)


@pytest.fixture(scope="module")
def holder(tmp_path_factory: pytest.TempPathFactory) -> StepModel:
    """A model that, once a note starts, wants to hold it for ever."""
    codec = melody_codec()
    table = table_for(codec, {BOS: codec.note_on(60), HOLD: HOLD}, default=HOLD)
    return StepModel(scripted_model(tmp_path_factory.mktemp("hold") / "h.onnx", table, codec))


def longest(model: StepModel, density: float) -> float:
    eng = Engine(model, Settings(mode="continue", thru=False, density=density))
    notes = notes_of(drive(eng, [], 200))
    return max(end - start for start, _, end in notes)


def test_no_note_outlasts_the_corpus_s_longest(holder: StepModel) -> None:
    limit = DEFAULT_MAX_HOLD_BEATS * 4  # this card records no corpus figure
    assert longest(holder, 0.5) == limit
    assert longest(holder, 1.0) == limit


def test_turning_density_down_lets_notes_ring(holder: StepModel) -> None:
    assert longest(holder, 0.25) == 2 * DEFAULT_MAX_HOLD_BEATS * 4
    assert longest(holder, 0.0) == 200


def test_pace_moves_a_sluggish_line_towards_the_target(tmp_path: Path) -> None:
    codec = melody_codec()
    table = np.zeros((codec.vocab_size, codec.vocab_size), dtype=np.float32)
    table[:, HOLD] = 6.0  # HOLD ten times likelier than every pitch together: long notes
    model = StepModel(scripted_model(tmp_path / "slow.onnx", table, codec))
    rates = []
    for density in (0.25, 0.5, 0.75):
        eng = Engine(model, Settings(mode="continue", thru=False, density=density, seed=3))
        rates.append(len(notes_of(drive(eng, [], 400))) / 400)
    assert rates[0] < rates[1] < rates[2]
    # left alone the line starts a note on 38 / (e^6 + 38) = 9% of its steps; pace pulls it
    # towards the default corpus pace of 1.5 notes a quarter (0.375 a step)
    assert 0.15 < rates[1] <= 1.5 / 4


def test_corpus_figures_come_from_the_card_per_metre() -> None:
    card = {"metrics": {"corpus": {"notes_per_beat": 1.5, "hold_beats_max": 6.0,
                                   "metres": {"6/8": {"notes_per_beat": 2.4,
                                                      "hold_beats_max": 4.0}}}}}
    pace = CorpusPace(card)
    jig, waltz = parse_metre("6/8"), parse_metre("3/4")
    assert pace.rate(jig) == pytest.approx(2.4 / 6)  # per dotted beat of six 16ths
    assert pace.hold_steps(jig) == 24
    rare = CorpusPace({"metrics": {"corpus": {"hold_beats_p999": 4.0, "hold_beats_max": 55.5}}})
    assert rare.hold_steps(parse_metre("4/4")) == 16  # the rarest 0.1% left out
    assert pace.rate(waltz) == pytest.approx(1.5 / 4)  # no 3/4 figure: the overall one
    assert pace.hold_steps(waltz) == 24
    silent = CorpusPace({"metrics": {}})
    assert silent.hold_steps(waltz) == DEFAULT_MAX_HOLD_BEATS * 4


def test_a_vanishing_density_means_no_hold_limit(holder: StepModel) -> None:
    assert longest(holder, 2.2e-309) == 200  # tiny but positive: no overflow, no limit
