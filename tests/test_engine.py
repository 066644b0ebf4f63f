"""Engine behaviour per mode, in virtual time, with a scripted model (known output)."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveduet.codec import melody_codec
from liveduet.engine import Engine
from liveduet.errors import ConfigError
from liveduet.model import StepModel
from liveduet.render import drive
from liveduet.settings import Action, Set, Settings
from tests.enginekit import human, loop_model, notes_of, sounding_after
from tests.factory import lstm_model

COLD = {"temperature": 0.05, "top_p": 0.05, "thru": False}


def settings(**kw: object) -> Settings:
    return Settings.from_dict({**COLD, **kw})


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> StepModel:
    return loop_model(tmp_path_factory.mktemp("loop"))


def test_continue_plays_the_script_on_time(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="continue"))
    outs = drive(eng, [], 12)
    assert notes_of(outs) == [(1, 60, 3), (3, 64, 4), (5, 60, 7), (7, 64, 8), (9, 60, 11),
                              (11, 64, 12)]
    assert all(o.msg[0] & 0x0F == 0 for o in outs)


def test_continue_barge_in_releases_now_and_resumes(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="continue"))
    outs = drive(eng, human([(5.2, 72, 7.0)]), 12)
    # the machine's 60 started at 5 is cut at 5.2; the human holds steps 5-6; the machine
    # carries on after the human's HOLD (script: HOLD -> 64) at step 7
    assert (5, 60, 5.2) in notes_of(outs)
    assert next(n for n in notes_of(outs) if n[0] >= 5.2) == (7, 64, 8)
    assert eng.status()["counters"]["rollbacks"] >= 1


def test_call_answers_after_the_gap_for_the_clamped_length(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="call", listen_gap=4))
    outs = drive(eng, human([(0, 67, 4)]), 40)
    notes = notes_of(outs)
    assert notes[0] == (8, 60, 10)  # call ends at 4, four silent steps, answer at 8
    assert notes[-1] == (22, 64, 23)  # one bar (16 steps, the minimum) of answer
    assert list(eng.turns) == [(0, "listening"), (8, "answering"), (24, "listening")]


def test_call_is_silent_while_the_human_plays(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="call", listen_gap=2, response_bars=1))
    outs = drive(eng, human([(0, 67, 3), (10, 69, 11.5), (12, 71, 14)]), 48)
    # answer starts at 5, the human cuts in at 10: machine released at 10, listens
    assert notes_of(outs)[0][0] == 5
    assert max(end for _, _, end in notes_of(outs) if end <= 14) == 10
    assert eng.status()["counters"]["barge_ins"] == 1


def test_end_call_starts_the_answer_at_once(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="call", listen_gap=16))
    outs = drive(eng, human([(0, 67, 2)]), 3)
    outs += eng.apply(Action("end_call"), 3.0)
    outs += drive(eng, [], 8)
    assert notes_of(outs)[0][0] == 4  # step 3 is emitted; the answer starts at step 3's end


def test_harmonize_needs_a_multi_voice_model(loop: StepModel) -> None:
    with pytest.raises(ConfigError, match="chorale_satb"):
        Engine(loop, settings(mode="harmonize"))
    eng = Engine(loop, settings(mode="call"))
    with pytest.raises(ConfigError, match="chorale_satb"):
        eng.apply(Set("mode", "harmonize"), 0.0)
    assert eng.settings.mode == "call"


def test_off_is_silent_and_thru_passes(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="off", thru=True))
    outs = drive(eng, human([(1, 67, 3)]), 8)
    assert [o.voice for o in outs] == [None, None]
    assert [o.msg for o in outs] == [(0x9F, 67, 100), (0x8F, 67, 0)]


def test_release_all_closes_machine_and_thru(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="continue", thru=True))
    outs = eng.feed(0.0, (0x9F, 70, 90))
    for p in range(0, 6):
        outs += eng.advance(float(p))
    assert sounding_after(outs)
    outs += eng.release_all(6.0)
    assert sounding_after(outs) == set()


def test_random_lstm_deterministic_per_seed(tmp_path: Path) -> None:
    model = StepModel(lstm_model(tmp_path / "m.onnx", melody_codec()))
    ev = human([(0, 60, 4), (4, 62, 8), (8, 64, 12)])
    runs = []
    for seed in (1, 1, 2):
        eng = Engine(model, Settings(mode="call", seed=seed, thru=False))
        runs.append([(o.pos, o.msg) for o in drive(eng, ev, 64)])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
