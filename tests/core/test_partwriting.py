"""Part-writing rules at sampling time: penalties, the joint choice, its cache key, its music."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from liveduet.core import catalog
from liveduet.core.codec import BOS, REST, TimedNote, chorale_codec
from liveduet.core.engine import Engine
from liveduet.core.harmony import Context, Harmonizer
from liveduet.core.model import StepModel
from liveduet.core.partwriting import INF, WEIGHTS, Frame, dominant_seventh, penalties, voice_prior
from liveduet.core.planner import Planner
from liveduet.core.sampling import Sampler
from liveduet.core.settings import FIELDS, Field, Settings
from liveduet.core.turns import HumanRecord
from liveduet.core.voiceleading import analyse
from liveduet.errors import ConfigError
from liveduet.offline.render import render
from liveduet.testkit.factory import lstm_model

PREV = (72, 67, 64, 48)  # C major: C5 G4 E4 C3


def frame(mode: str, prev: tuple[int, ...] = PREV, **kw: Any) -> Frame:
    return Frame(prev, kw.pop("key", (0, "major")), kw.pop("on_beat", True), WEIGHTS[mode],
                 **kw)


def score(mode: str, *chords: tuple[int, ...], **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    """Penalties of ``chords``; a voice strikes a note where its pitch changed."""
    arr = np.array(chords, dtype=np.int64)
    prev = np.array(kw.get("prev", PREV))
    return penalties(arr, arr != prev, frame(mode, **kw))


def test_parallel_fifths_are_hard_in_strict_and_weighted_in_guided() -> None:
    clean = (74, 65, 62, 55)      # D F D G: no consecutive perfect intervals
    fifths = (74, 69, 62, 50)     # alto and bass G/C -> A/D: parallel fifths (and 8ves S-B)
    _, hard = score("strict", clean, fifths)
    assert hard[0] == 0 and hard[1] > 0
    gsoft, ghard = score("guided", clean, fifths)
    assert ghard[1] == 0 and gsoft[1] - gsoft[0] >= WEIGHTS["guided"].parallel


def test_contrary_octaves_overlap_and_spacing_are_hard_only_in_strict() -> None:
    contrary = (74, 67, 64, 38)   # soprano up, bass down, octave to octave
    overlap = (74, 72, 69, 48)    # tenor rises above the alto's previous G (no crossing)
    wide = (79, 64, 60, 48)       # a tenth and more: the soprano 15 semitones over the alto
    for chord in (contrary, overlap, wide):
        assert score("strict", chord)[1][0] > 0, chord
        assert score("guided", chord)[1][0] == 0, chord


def test_crossing_and_range_are_hard_in_every_mode() -> None:
    crossed = (72, 60, 64, 48)    # alto under the tenor
    low_bass = (72, 67, 64, 31)   # G1: below the bass's range
    for mode in ("guided", "strict"):
        _, hard = score(mode, crossed, low_bass)
        assert (hard > 0).all()


def test_doubled_leading_tone_and_its_resolution() -> None:
    doubled = (71, 67, 59, 43)    # B in soprano and tenor (G major chord, key of C)
    single = (71, 67, 62, 43)
    s, h = score("strict", doubled, single)
    assert h[0] > 0 and h[1] == 0
    after_lead = (74, 65, 59, 55)  # G7 with the leading tone B3 in the tenor
    resolved = (76, 67, 60, 48)    # B3 -> C4
    astray = (76, 67, 57, 48)      # B3 -> A3, otherwise as clean
    s, _ = score("guided", resolved, astray, prev=after_lead, on_beat=False)
    assert s[1] - s[0] == pytest.approx(WEIGHTS["guided"].tendency)


def test_the_seventh_of_a_dominant_seventh_falls_by_step() -> None:
    g7 = (71, 65, 62, 55)          # B4 F4 D4 G3: the alto holds the seventh, F
    falls = (72, 64, 60, 48)       # F -> E
    rises = (72, 67, 60, 48)       # F -> G, the rest as before
    s, _ = score("guided", falls, rises, prev=g7, on_beat=False)
    assert dominant_seventh(g7) == 5 and dominant_seventh(PREV) is None
    assert s[1] - s[0] == pytest.approx(WEIGHTS["guided"].tendency)


def test_harmony_and_key_preferences_on_the_beat() -> None:
    triad = (72, 67, 64, 48)      # held: no transition, no penalty
    clash = (72, 71, 64, 48)      # B against C on the beat
    out_of_key = (73, 68, 66, 49)  # Ab, F# and Db: three notes outside C major
    s, _ = score("guided", triad, clash, out_of_key)
    assert s[0] == 0.0 and s[1] > 0 and s[2] >= 3 * WEIGHTS["guided"].out_of_key


def test_beat_parallels_are_caught_across_passing_notes() -> None:
    # the previous beat had G/C in alto/bass; the alto moves to A first, then the bass to D:
    # no parallel from step to step, but fifths from beat to beat
    passing = (72, 69, 64, 47)
    on_beat = (74, 69, 65, 50)
    _, hard = score("strict", on_beat, prev=passing, beat_prev=PREV)
    _, plain = score("strict", on_beat, prev=passing)
    assert hard[0] > plain[0]


def test_voice_prior_prices_leaps_repeats_range_and_key() -> None:
    codec = chorale_codec()
    prior = voice_prior(1, frame("guided"), codec)   # alto after G4
    on = codec.note_on
    assert prior[on(69)] == 0.0                      # A4: a step, in key
    assert prior[on(72)] > prior[on(69)]             # C5: a leap
    assert prior[on(67)] == WEIGHTS["guided"].repeat  # G4 struck again
    assert prior[on(68)] >= WEIGHTS["guided"].out_of_key
    assert prior[on(50)] == INF or prior[on(51)] == INF  # below the alto's range
    assert prior[REST] == 0.0


@pytest.fixture(scope="module")
def lstm(tmp_path_factory: pytest.TempPathFactory) -> StepModel:
    path = lstm_model(tmp_path_factory.mktemp("pw") / "satb.onnx", chorale_codec(), hidden=32,
                      seed=3)
    return StepModel(path)


def test_joint_table_is_the_same_bytes_for_the_same_inputs(lstm: StepModel) -> None:
    lstm.reset()
    lstm.step(BOS)
    snap, logits0 = lstm.snapshot(), lstm.step(REST)[0].copy()
    ctx = Context(3, (True,) * 4, 9, 0.8, 0.95, 0.5, 36, 96, None, "strict", PREV, (0, "major"),
                  False, PREV)
    harmony = Harmonizer(lstm, Sampler(lstm.codec), 0)
    one, two = harmony.build(ctx, snap, logits0), harmony.build(ctx, snap, logits0)
    for name in ("fed", "bad", "logits"):
        assert np.array_equal(getattr(one, name), getattr(two, name)), name
    assert (one.fed[:, 0] == harmony.cands).all()
    off = harmony.build(ctx._replace(voice_leading="off"), snap, logits0)
    assert not np.array_equal(off.fed, one.fed)  # the rules change what is chosen


def test_a_build_pauses_between_phases_and_pausing_changes_nothing(lstm: StepModel) -> None:
    """The builder thread yields to the conductor at phase boundaries; the table is the same."""
    lstm.reset()
    lstm.step(BOS)
    snap, logits0 = lstm.snapshot(), lstm.step(REST)[0].copy()
    ctx = Context(2, (True,) * 4, 4, 0.8, 0.95, 0.5, 36, 96, None, "guided", PREV, None, True,
                  PREV)
    calls: list[int] = []
    paused = Harmonizer(lstm, Sampler(lstm.codec), 0, pause=lambda: calls.append(1))
    plain = Harmonizer(lstm, Sampler(lstm.codec), 0)
    for rules in ("guided", "off"):
        calls.clear()
        a = paused.build(ctx._replace(voice_leading=rules), snap, logits0)
        b = plain.build(ctx._replace(voice_leading=rules), snap, logits0)
        assert len(calls) >= 3
        assert np.array_equal(a.fed, b.fed) and np.array_equal(a.logits, b.logits)


def test_a_note_for_a_planned_step_needs_no_new_table_after_many_notes(lstm: StepModel) -> None:
    """The rules' key of step n ignores a note played at n, even when that note pushes the
    oldest out of the human's record: the note is a lookup in the table kept for n."""
    eng = Engine(lstm, Settings(mode="harmonize", thru=False, voice_leading="strict"),
                 lookahead=2)
    for i in range(40):
        start = 4.0 * i
        eng.advance(start - 0.5)             # steps up to start + 1 are planned
        before = eng.counters["model_steps"]
        eng.feed(start - 0.2, (0x90, 60 + (i * 5) % 17, 90))  # early for the planned step
        assert eng.counters["model_steps"] == before, f"note {i} rebuilt its table"
        eng.advance(start + 2.0)
        eng.feed(start + 2.5, (0x80, 60 + (i * 5) % 17, 0))
    assert eng.counters["harmony_hits"] >= 40


def _other_values(f: Field) -> list[Any]:
    if f.kind == "choice":
        return [c for c in f.choices if c != f.default]
    if f.kind == "bool":
        return [not f.default]
    lo, hi = float(f.low or 0), float(f.high or 0)
    mid = (lo + hi) / 2
    return [int(mid) if f.kind == "int" else mid, int(lo + 1) if f.kind == "int" else lo]


def _plan(model: StepModel, settings: Settings, human: HumanRecord,
          change: Settings | None = None) -> list[tuple[int, ...]]:
    """Fed tokens of steps 0..11; with ``change``: planned with ``settings`` first, then
    rolled back and re-planned with ``change`` (kept tables are reused when their key says
    nothing changed)."""
    plan = Planner(model, settings, human, Counter())
    plan.extend(12)
    if change is not None:
        plan.rollback(0)
        plan.settings = change
        plan.extend(12)
    return [plan.steps[n].fed for n in range(12)]


def test_every_setting_that_changes_a_table_is_in_its_cache_key(lstm: StepModel) -> None:
    """A kept table is reused only when its Context is equal: a setting that changes what the
    table holds but is missing from the Context would be played stale after a change."""
    human = HumanRecord()
    for step, pitch in ((0, 67), (3, 71), (5, 74), (8, 72), (10, 76)):
        human.note_on(step, pitch, 90, 0)
        human.note_off(step + 2, pitch, 0)
    base = Settings(mode="harmonize", temperature=1.0, key="auto")
    for f in FIELDS:
        if f.name == "mode":
            continue
        for value in _other_values(f):
            try:
                changed = base.with_value(f.name, value)
            except ConfigError:
                continue
            fresh = _plan(lstm, changed, human)
            assert _plan(lstm, base, human, changed) == fresh, (
                f"{f.name}={value!r} changes the harmony but not the table's Context")


BUNDLED = Path(catalog.resolve(catalog.DEFAULT_HARMONY))
OLD_HUNDREDTH = [67, 67, 66, 64, 62, 67, 69, 71, 71, 71, 69, 67, 72, 71, 69, 67]
DURS = [2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 2]


@pytest.mark.skipif(not BUNDLED.exists(), reason="bundled chorale_satb missing")
@pytest.mark.parametrize("seed", [0, 1])
def test_strict_harmony_of_a_hymn_tune_keeps_the_rules(seed: int) -> None:
    """The bundled harmoniser under strict rules: no parallels, crossings or range faults."""
    start, soprano = 0.0, []
    for pitch, dur in zip(OLD_HUNDREDTH, DURS, strict=True):
        soprano.append(TimedNote(start, pitch + 5, start + dur, 0))  # in C
        start += dur
    settings = Settings(mode="harmonize", temperature=0.7, seed=seed, thru=False)
    assert settings.voice_leading == "strict"
    duet = render(Engine(StepModel(BUNDLED), settings), soprano)
    rep = analyse([soprano, *(duet.machine.get(v, []) for v in (1, 2, 3))])
    assert rep.transitions > 10
    assert rep.parallel_fifths + rep.parallel_octaves + rep.contrary_fifths == 0
    assert rep.beat_parallels == 0
    assert rep.crossings == rep.out_of_range == 0
