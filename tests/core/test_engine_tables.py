"""Harmony tables: the table path plays exactly what the sequential path plays, and a soprano
note for a planned step runs no model step."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveduet.core.codec import HOLD, REST, chorale_codec
from liveduet.core.engine import Engine
from liveduet.core.harmony import candidates
from liveduet.core.model import StepModel
from liveduet.core.sampling import Sampler
from liveduet.core.settings import FIELD_BY_NAME, TABLE_SETTINGS, Settings
from liveduet.testkit.enginekit import sounding_after, table_for
from liveduet.testkit.factory import lstm_model, scripted_model
from tests.core.test_engine_props import PROPS, check_common, commands_st, events, notes_st, run


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, StepModel]:
    tmp: Path = tmp_path_factory.mktemp("tables")
    codec = chorale_codec()
    on = codec.note_on
    nxt = {on(72): on(67), on(67): on(60), on(60): on(48), on(74): on(69), on(69): on(62),
           on(62): on(50), HOLD: HOLD, REST: REST}
    return {"lstm": StepModel(lstm_model(tmp / "s.onnx", codec, hidden=32, seed=5)),
            "scripted": StepModel(scripted_model(tmp / "sc.onnx", table_for(codec, nxt), codec))}


def test_candidates_cover_every_soprano_token() -> None:
    codec = chorale_codec()
    cands = candidates(codec, 0)
    assert cands[:2] == [REST, HOLD]
    assert [codec.pitch_of(t) for t in cands[2:]] == list(range(55, 85))


def test_every_table_setting_is_in_the_table_key(models: dict[str, StepModel]) -> None:
    """Another value of any TABLE_SETTINGS setting gives another key, so a kept table is not
    reused; the key's other fields are the same step's."""
    base = Settings(mode="harmonize")
    plan = Engine(models["scripted"], base)._plan
    key = plan._context(0, plan.sounding)
    for name in TABLE_SETTINGS:
        f, now = FIELD_BY_NAME[name], getattr(base, name)
        other = (next(c for c in f.choices if c != now) if f.kind == "choice"
                 else f.low if now != f.low else f.high)
        plan.settings = replace(base, **{name: other})
        assert plan._context(0, plan.sounding) != key, name
    plan.settings = base
    assert plan._context(0, plan.sounding) == key


@PROPS
@given(notes=notes_st, commands=commands_st, seed=st.integers(0, 3),
       lookahead=st.integers(0, 4), kind=st.sampled_from(["lstm", "scripted"]))
def test_tables_play_what_the_sequential_path_plays(
        models: dict[str, StepModel], notes: list, commands: list, seed: int, lookahead: int,
        kind: str) -> None:
    """Same seed, same messages, with rollbacks, late notes and commands; nothing stuck.

    The sequential path samples each voice alone: it is the table path of voice_leading off.
    """
    cmds = [(t, c) for t, c in commands if getattr(c, "name", "") not in ("mode",
                                                                          "voice_leading")]
    ev = events(notes, cmds)
    settings = Settings(seed=seed, mode="harmonize", temperature=1.0, voice_leading="off")
    seq = run(Engine(models[kind], settings, lookahead=0, tables=False), ev)
    eng = Engine(models[kind], settings, lookahead=lookahead)
    tab = run(eng, ev)
    assert tab == seq
    check_common(tab)
    if notes:
        assert eng.counters["harmony_tables"] > 0


def test_a_note_for_a_planned_step_runs_no_model_step(models: dict[str, StepModel]) -> None:
    eng = Engine(models["scripted"], Settings(mode="harmonize", thru=False, voice_leading="off"),
                 lookahead=2)
    outs = []
    for p in range(0, 4):
        outs += eng.advance(p + 0.5)  # planning points: steps up to p + 2 are planned
    before = dict(eng.counters)
    early = eng.feed(4.8, (0x9F, 72, 100))  # early for step 5 (planned): a table lookup
    assert eng.counters["model_steps"] == before["model_steps"]
    assert eng.counters["harmony_hits"] > before["harmony_hits"]
    assert sorted(o.msg[1] for o in early if o.msg[0] & 0xF0 == 0x90) == [48, 60, 67]
    late = eng.advance(5.0) + eng.advance(5.5) + eng.feed(6.2, (0x8F, 72, 0))
    late += eng.feed(6.2, (0x9F, 74, 100))  # late in step 6 (emitted): re-decided from a table
    assert sorted(o.msg[1] for o in late if o.msg[0] & 0xF0 == 0x90) == [50, 62, 69]
    assert sounding_after(outs + early + late + eng.release_all(7.0)) == set()


def test_a_settings_change_rebuilds_the_table(models: dict[str, StepModel]) -> None:
    from liveduet.core.settings import Set

    runs: list[list] = []
    for lookahead, tables in ((2, True), (0, False)):  # one engine at a time: a shared model
        e = Engine(models["lstm"], Settings(mode="harmonize", seed=1, voice_leading="off"),
                   lookahead=lookahead, tables=tables)
        runs.append(o := [])
        o += e.advance(0.5) + e.feed(0.8, (0x90, 70, 90))
        o += e.apply(Set("temperature", 1.7), 1.2) + e.advance(2.0) + e.advance(2.5)
        o += e.feed(2.7, (0x80, 70, 0)) + e.advance(6.0) + e.release_all(6.0)
    assert runs[0] == runs[1]
    assert e.counters["harmony_tables"] == 0


@PROPS
@given(notes=notes_st, commands=commands_st, seed=st.integers(0, 3),
       lookahead=st.integers(1, 4), rules=st.sampled_from(["guided", "strict"]))
def test_voice_leading_plays_the_same_for_any_lookahead(
        models: dict[str, StepModel], notes: list, commands: list, seed: int, lookahead: int,
        rules: str) -> None:
    """With the rules on, rollbacks and planning ahead change nothing (the previous chord the
    rules read is restored with the plan)."""
    cmds = [(t, c) for t, c in commands if getattr(c, "name", "") != "mode"]
    ev = events(notes, cmds)
    settings = Settings(seed=seed, mode="harmonize", temperature=1.0, voice_leading=rules)
    now = run(Engine(models["lstm"], settings, lookahead=0), ev)
    ahead = run(Engine(models["lstm"], settings, lookahead=lookahead), ev)
    assert ahead == now
    check_common(ahead)


@pytest.mark.parametrize("top_p", [0.3, 0.95, 1.0])
def test_sample_rows_equals_sample_per_row(top_p: float) -> None:
    codec = chorale_codec()
    s = Sampler(codec)
    logits = np.random.default_rng(2).normal(0, 3, (40, codec.vocab_size)).astype(np.float32)
    logits[7, 9] = np.nan
    for allow_hold in (True, False):
        legal = s.legal(2, 40, 80, None, allow_hold)
        for u in (0.0, 0.2, 0.77, 0.999):
            opts = {"temperature": 0.6, "top_p": top_p, "density": 0.7, "u": u}
            rows = s.sample_rows(logits, legal, **opts)
            one = [s.sample(row, legal, **opts) for row in logits]
            assert [None if t < 0 else int(t) for t in rows] == one
            assert rows[7] == -1
