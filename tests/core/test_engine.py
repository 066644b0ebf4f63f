"""Engine behaviour per mode, in virtual time, with a scripted model (known output)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liveduet.core.codec import HOLD, REST, chorale_codec, melody_codec
from liveduet.core.engine import Engine
from liveduet.core.model import StepModel
from liveduet.core.settings import Action, Set, Settings
from liveduet.errors import ConfigError
from liveduet.offline.render import drive
from liveduet.testkit.enginekit import human, loop_model, notes_of, sounding_after, table_for
from liveduet.testkit.factory import lstm_model, scripted_model

# voice_leading off: the scripted harmoniser's chords (parallel by design) are what these
# timing tests expect to hear.
COLD = {"temperature": 0.05, "top_p": 0.05, "thru": False, "voice_leading": "off"}


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
    assert all(o.msg[0] & 0x0F == 1 for o in outs)  # channel 2: channel 1 is the human's


def test_continue_barge_in_releases_now_and_resumes(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="continue", answer_at="gap"))
    outs = drive(eng, human([(5.2, 72, 7.0)]), 12)
    # the machine's 60 started at 5 is cut at 5.2; the human holds steps 5-6; the machine
    # carries on after the human's HOLD (script: HOLD -> 64) at step 7
    assert (5, 60, 5.2) in notes_of(outs)
    assert next(n for n in notes_of(outs) if n[0] >= 5.2) == (7, 64, 8)
    assert eng.status()["counters"]["rollbacks"] >= 1


def test_call_answers_after_the_gap_for_the_clamped_length(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="call", listen_gap=4, answer_at="gap"))
    outs = drive(eng, human([(0, 67, 4)]), 40)
    notes = notes_of(outs)
    assert notes[0] == (8, 60, 10)  # call ends at 4, four silent steps, answer at 8
    assert notes[-1] == (22, 64, 23)  # one bar (16 steps, the minimum) of answer
    assert list(eng.turns) == [(0, "listening"), (8, "answering"), (24, "listening")]


def test_call_is_silent_while_the_human_plays(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="call", listen_gap=2, response_bars=1, answer_at="gap"))
    outs = drive(eng, human([(0, 67, 3), (10, 69, 11.5), (12, 71, 14)]), 48)
    # answer starts at 5, the human cuts in at 10: machine released at 10, listens
    assert notes_of(outs)[0][0] == 5
    assert max(end for _, _, end in notes_of(outs) if end <= 14) == 10
    assert eng.status()["counters"]["barge_ins"] == 1


def test_end_call_starts_the_answer_at_once(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="call", listen_gap=16, answer_at="gap"))
    outs = drive(eng, human([(0, 67, 2)]), 3)
    outs += eng.apply(Action("end_call"), 3.0)
    outs += drive(eng, [], 8)
    assert notes_of(outs)[0][0] == 4  # step 3 is emitted; the answer starts at step 3's end


def test_continue_resumes_on_the_next_beat_after_a_takeover(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="continue"))  # answer_at bar (the default)
    outs = drive(eng, human([(5.2, 72, 6.0)]), 16)
    after = [n for n in notes_of(outs) if n[0] >= 5.2]
    assert after[0][0] == 8  # the human stops at 6; the line comes back on beat 3 (step 8)


def test_call_answer_enters_on_the_bar_line_for_whole_bars(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="call", listen_gap=4))
    outs = drive(eng, human([(2, 67, 20), (20, 69, 22)]), 80)
    notes = notes_of(outs)
    # the call ends at 22 (mid-bar); the gap is over at 26; the answer waits for bar line 32
    assert notes[0][0] == 32
    # the call spans 2..32 with its silence: 1.9 bars, so the answer lasts two whole bars
    assert list(eng.turns) == [(0, "listening"), (32, "answering"), (64, "listening")]


def test_call_answer_enters_at_once_on_a_silent_bar_line(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="call", listen_gap=8))
    outs = drive(eng, human([(0, 67, 16), (16, 69, 32)]), 80)
    # the call fills two bars and stops on the bar line: the answer starts right there
    assert notes_of(outs)[0][0] == 32
    assert list(eng.turns) == [(0, "listening"), (32, "answering"), (64, "listening")]


def test_answer_at_beat_waits_for_the_next_beat(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="call", listen_gap=3, answer_at="beat"))
    outs = drive(eng, human([(0, 67, 6)]), 40)
    assert notes_of(outs)[0][0] == 12  # silent from 6, gap over at 9, next beat at 12


def test_meter_set_live_takes_over_at_the_next_bar_line(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="continue"))
    drive(eng, [], 5)
    eng.apply(Set("meter", "3/4"), 5.0)
    assert eng.grid.is_bar_line(16) and not eng.grid.is_bar_line(12)
    assert eng.grid.is_bar_line(28) and eng.grid.is_bar_line(40)
    assert eng.status()["meter"] == "4/4"


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


@pytest.fixture(scope="module")
def satb(tmp_path_factory: pytest.TempPathFactory) -> StepModel:
    """Chorale model: S 72 -> A 67 -> T 60 -> B 48; S 74 -> 69 -> 62 -> 50; HOLD/REST follow."""
    codec = chorale_codec()
    on = codec.note_on
    nxt = {on(72): on(67), on(67): on(60), on(60): on(48),
           on(74): on(69), on(69): on(62), on(62): on(50), HOLD: HOLD, REST: REST}
    path = tmp_path_factory.mktemp("satb") / "satb.onnx"
    return StepModel(scripted_model(path, table_for(codec, nxt), codec))


def test_harmonize_sends_the_chord_when_the_soprano_arrives(satb: StepModel) -> None:
    eng = Engine(satb, settings(mode="harmonize"))
    outs = []
    for p in range(0, 5):
        outs += eng.advance(float(p))
    late = eng.feed(4.2, (0x9F, 72, 100))  # late in step 4: re-decided and sent now
    assert sorted((o.pos, o.msg) for o in late) == [
        (4.2, (0x91, 67, 100)), (4.2, (0x92, 60, 100)), (4.2, (0x93, 48, 100))]
    held = []
    for p in range(5, 8):
        held += eng.advance(float(p))
    assert held == []  # the soprano holds: so does the harmony
    off = eng.feed(8.0, (0x8F, 72, 0)) + eng.advance(8.0)
    assert sorted(o.msg for o in off) == [(0x81, 67, 0), (0x82, 60, 0), (0x83, 48, 0)]
    early = eng.advance(11.0) + eng.feed(11.7, (0x9F, 74, 90))  # early for step 12: sent now
    assert sorted((o.pos, o.msg[1]) for o in early) == [(11.7, 50), (11.7, 62), (11.7, 69)]
    assert eng.advance(12.0) == []
    assert sounding_after(outs + late + held + off + early + eng.release_all(13.0)) == set()


def test_harmonize_legato_change_late_in_the_step(satb: StepModel) -> None:
    eng = Engine(satb, settings(mode="harmonize"))
    outs = eng.feed(0.0, (0x9F, 72, 100))
    for p in range(0, 5):
        outs += eng.advance(float(p))
    change = eng.feed(4.3, (0x8F, 72, 0)) + eng.feed(4.3, (0x9F, 74, 100))
    assert {o.msg[1] for o in change if o.msg[0] & 0xF0 == 0x80} == {67, 60, 48}
    assert {o.msg[1] for o in change if o.msg[0] & 0xF0 == 0x90} == {69, 62, 50}
    assert sorted(p for _, p in eng.status()["sounding"].items()) == [50, 62, 69]


def test_modes_release_machine_notes_on_change(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="continue"))
    outs = []
    for p in range(0, 3):
        outs += eng.advance(float(p))
    assert sounding_after(outs) == {(1, 60)}
    outs += eng.apply(Set("mode", "call"), 2.5)
    assert sounding_after(outs) == set()
    for p in range(3, 10):
        outs += eng.advance(float(p))
    assert sounding_after(outs) == set()  # call mode with nothing heard: silent


def test_panic_reset_stop_play_and_swap_close_notes(loop: StepModel, satb: StepModel) -> None:
    eng = Engine(loop, settings(mode="continue", thru=True))
    outs = eng.feed(0.5, (0x9F, 50, 80))
    for p in range(0, 4):
        outs += eng.advance(float(p))
    outs += eng.apply(Action("panic"), 4.0)
    assert sounding_after(outs) == set()
    assert (0xB1, 123, 0) in [o.msg for o in outs]
    for p in range(4, 9):
        outs += eng.advance(float(p))
    outs += eng.apply(Action("reset"), 9.0)
    assert not eng.status()["sounding"]
    outs += eng.apply(Action("stop"), 9.5)
    assert eng.next_due() is None and eng.advance(12.0) == []
    outs += eng.apply(Action("play"), 0.0)  # the DAW restarts at its bar 1
    for p in range(0, 4):
        outs += eng.advance(float(p))
    assert notes_of(outs)[-1][0] == 1.0  # the script restarted after reset, anchored at 0
    with pytest.raises(ConfigError):
        eng.apply(Set("mode", "harmonize"), 4.0)
    outs += eng.apply(Set("mode", "continue"), 4.0)
    outs += eng.swap_model(satb, 4.0)
    assert sounding_after(outs) == set()
    outs += eng.apply(Set("mode", "harmonize"), 4.0)
    assert eng.codec.n_voices == 4


def test_nan_logits_fall_back_to_silence_and_warn_once(tmp_path: Path) -> None:
    codec = melody_codec()
    table = np.full((codec.vocab_size, codec.vocab_size), np.nan, dtype=np.float32)
    model = StepModel(scripted_model(tmp_path / "nan.onnx", table, codec))
    eng = Engine(model, settings(mode="continue"))
    outs = drive(eng, [], 16)
    assert outs == []
    st = eng.status()
    assert st["counters"]["bad_logits"] == 17
    assert len(st["warnings"]) == 1 and "NaN" in st["warnings"][0]


def test_velocity_follows_the_human_or_is_fixed(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="continue"))
    ev = sorted([*human([(0.0, 80, 0.5)]), (0.1, (0x9F, 81, 40)), (0.2, (0x8F, 81, 0))])
    outs = drive(eng, ev, 6)
    assert {o.msg[2] for o in outs if o.msg[0] == 0x91} == {70}  # mean of 100 and 40
    eng = Engine(loop, settings(mode="continue", velocity=33, channel=5))
    outs = drive(eng, [], 6)
    assert {(o.msg[0], o.msg[2]) for o in outs if o.msg[0] & 0xF0 == 0x90} == {(0x94, 33)}


def test_lookahead_variants_play_the_same_notes(loop: StepModel) -> None:
    ev = human([(2.3, 70, 5.6), (9.0, 72, 10.0), (17.6, 71, 18.2)])
    runs = []
    for la in (0, 1, 2, 6):
        eng = Engine(loop, settings(mode="continue"), lookahead=la)
        runs.append(notes_of(drive(eng, ev, 32)))
    assert runs[0] == runs[1] == runs[2] == runs[3]


def test_other_channel_messages_pass_thru_only_when_thru_is_on(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="off", thru=True))
    assert [o.msg for o in eng.feed(0.0, (0xB3, 64, 127))] == [(0xB3, 64, 127)]
    assert [o.msg for o in eng.feed(0.0, (0xC3, 5))] == [(0xC3, 5)]
    assert eng.feed(0.0, (0xF8,)) == []
    eng.apply(Set("thru", False), 0.0)
    assert eng.feed(0.1, (0xB3, 64, 0)) == []


def test_status_reports_the_key_it_hears(loop: StepModel) -> None:
    eng = Engine(loop, settings(mode="call", key="auto"))
    assert eng.status()["key"] is None
    tune = [(i * 2.0, p, i * 2.0 + 1.5) for i, p in enumerate([62, 66, 69, 74, 73, 71, 69, 67])]
    drive(eng, human(tune), 20)
    st = eng.status()
    assert st["key"] == "D major"
    assert set(st) >= {"mode", "phase", "step", "model", "counters", "last_human_note"}
    assert Engine(loop, settings(key="G", scale="dorian")).status()["key"] == "G dorian"


def test_call_answers_again_after_a_lost_note_off_or_all_notes_off(loop: StepModel) -> None:
    """A key whose note-off never came stops counting after HELD_LIMIT_STEPS; CC 123 (All
    Notes Off) ends it at once. Either way call mode answers again."""
    from liveduet.core.turns import HELD_LIMIT_STEPS

    eng = Engine(loop, settings(mode="call", listen_gap=2, response_bars=1,
                                answer_at="gap"))
    lost = [(0.0, (0x9F, 70, 100))]               # never released
    outs = drive(eng, lost + human([(4, 67, 5)]), HELD_LIMIT_STEPS + 40)
    first = notes_of(outs)[0][0]
    assert HELD_LIMIT_STEPS <= first <= HELD_LIMIT_STEPS + 3, notes_of(outs)[:2]
    eng = Engine(loop, settings(mode="call", listen_gap=2, response_bars=1,
                                answer_at="gap"))
    outs = drive(eng, lost + human([(4, 67, 5)]) + [(10.0, (0xBF, 123, 0))], 40)
    assert notes_of(outs)[0][0] == 12            # CC 123 at 10, two silent steps, answer
