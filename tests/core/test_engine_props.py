"""Properties of the engine under hypothesis: random human input, settings and actions."""

from __future__ import annotations

from pathlib import Path

import mido
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liveduet.core.codec import chorale_codec, melody_codec
from liveduet.core.engine import Engine, Out
from liveduet.core.model import StepModel
from liveduet.core.settings import Action, Set, Settings
from liveduet.offline.render import drive
from liveduet.testkit.enginekit import sounding_after
from liveduet.testkit.factory import lstm_model

HUMAN_CH = 15
END = 48.0
PROPS = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp: Path = tmp_path_factory.mktemp("props")
    return {"melody": lstm_model(tmp / "m.onnx", melody_codec(), seed=3),
            "satb": lstm_model(tmp / "s.onnx", chorale_codec(), seed=4)}


@pytest.fixture(scope="module")
def models(model_paths: dict[str, Path]) -> dict[str, StepModel]:
    return {name: StepModel(path) for name, path in model_paths.items()}


@pytest.fixture(scope="module")
def twins(model_paths: dict[str, Path]) -> dict[str, StepModel]:
    """A second model of each kind, for two engines stepped in turn (a model holds state)."""
    return {name: StepModel(path) for name, path in model_paths.items()}


notes_st = st.lists(
    st.tuples(st.floats(0, END - 2, allow_nan=False), st.integers(40, 90),
              st.floats(0.05, 8, allow_nan=False), st.integers(1, 127)),
    max_size=14)
commands_st = st.lists(
    st.tuples(st.floats(0, END, allow_nan=False), st.sampled_from([
        Action("panic"), Action("reset"), Action("end_call"), Set("temperature", 1.5),
        Set("density", 0.9), Set("key", "auto"), Set("key", "D"), Set("thru", False),
        Set("thru", True), Set("channel", 3), Set("seed", 7), Set("low", 60),
        Set("mode", "continue"), Set("mode", "call"), Set("mode", "off"),
        Set("voice_leading", "guided")])),
    max_size=5)


def events(notes: list[tuple[float, int, float, int]], commands: list[tuple[float, object]]
           ) -> list[tuple[float, object]]:
    ev: list[tuple[float, int, object]] = []
    for start, pitch, dur, vel in notes:
        ev.append((round(start, 3), 1, (0x90 | HUMAN_CH, pitch, vel)))
        ev.append((round(min(start + dur, END - 1), 3), 0, (0x80 | HUMAN_CH, pitch, 0)))
    ev += [(round(t, 3), 2, c) for t, c in commands]
    ev.sort(key=lambda e: (e[0], e[1]))
    return [(t, x) for t, _, x in ev]


def run(engine: Engine, ev: list[tuple[float, object]]) -> list[Out]:
    """Drive like the runtime: MIDI and commands at their positions, advance in between."""
    outs: list[Out] = []
    for pos, item in ev:
        outs += drive_until(engine, pos)
        if isinstance(item, tuple):
            outs += engine.feed(pos, item)
        else:
            outs += engine.apply(item, pos)  # type: ignore[arg-type]
    outs += drive(engine, [], END)
    return outs


def drive_until(engine: Engine, pos: float) -> list[Out]:
    outs: list[Out] = []
    due = engine.next_due()
    while due is not None and due < pos:
        outs += engine.advance(due)
        due = engine.next_due()
    return outs


def check_common(outs: list[Out], ordered: bool = True) -> None:
    """Valid MIDI, ordered positions, <= 1 note per machine voice, nothing left sounding."""
    per_voice: dict[int, set[int]] = {}
    last = -1.0
    for out in outs:
        mido.Message.from_bytes(list(out.msg))  # raises on invalid bytes
        assert out.pos >= last - 1e-9 or not ordered
        last = max(last, out.pos)
        if out.voice is None:
            continue
        keys = per_voice.setdefault(out.voice, set())
        if out.msg[0] & 0xF0 == 0x90 and out.msg[2] > 0:
            keys.add(out.msg[1])
        else:
            keys.discard(out.msg[1])
        assert len(keys) <= 1
    assert sounding_after(outs) == set()


@PROPS
@given(notes=notes_st, commands=commands_st, seed=st.integers(0, 3),
       lookahead=st.integers(0, 4))
def test_melody_no_stuck_notes_one_per_voice_deterministic(
        models: dict[str, StepModel], notes: list, commands: list, seed: int,
        lookahead: int) -> None:
    ev = events(notes, commands)
    first = run(Engine(models["melody"], Settings(seed=seed, mode="continue"),
                       lookahead=lookahead), ev)
    check_common(first)
    again = run(Engine(models["melody"], Settings(seed=seed, mode="continue"),
                       lookahead=lookahead), ev)
    assert first == again


@PROPS
@given(notes=notes_st, commands=commands_st, seed=st.integers(0, 3),
       mode=st.sampled_from(["call", "continue", "harmonize"]), lookahead=st.integers(1, 5))
def test_lookahead_changes_timing_work_not_the_music(
        models: dict[str, StepModel], notes: list, commands: list, seed: int, mode: str,
        lookahead: int) -> None:
    """Rollback re-decides exactly: any lookahead gives the messages of lookahead 0."""
    model = models["satb" if mode == "harmonize" else "melody"]
    cmds = [(t, c) for t, c in commands if not (isinstance(c, Set) and c.name == "mode")]
    ev = events(notes, cmds)
    base = run(Engine(model, Settings(seed=seed, mode=mode), lookahead=0), ev)
    ahead = run(Engine(model, Settings(seed=seed, mode=mode), lookahead=lookahead), ev)
    assert ahead == base


@PROPS
@given(notes=notes_st, commands=commands_st, seed=st.integers(0, 3))
def test_harmonize_no_stuck_notes_one_per_voice(
        models: dict[str, StepModel], notes: list, commands: list, seed: int) -> None:
    cmds = [(t, Set("mode", "harmonize") if c == Set("mode", "call") else c)
            for t, c in commands]
    outs = run(Engine(models["satb"], Settings(seed=seed, mode="harmonize")), events(notes, cmds))
    check_common(outs)


@PROPS
@given(notes=notes_st, seed=st.integers(0, 3), gap=st.integers(1, 8),
       ends=st.lists(st.floats(0, END, allow_nan=False), max_size=3))
def test_call_machine_silent_while_the_human_sounds(
        models: dict[str, StepModel], notes: list, seed: int, gap: int, ends: list) -> None:
    ev = events(notes, [(t, Action("end_call")) for t in ends])
    outs = run(Engine(models["melody"], Settings(seed=seed, mode="call", listen_gap=gap)), ev)
    check_common(outs)
    human = _intervals([o for o in outs if o.voice is None])
    machine = _intervals([o for o in outs if o.voice is not None])
    for ms, me in machine:
        for hs, he in human:
            assert min(me, he) - max(ms, hs) <= 1e-9, (ms, me, hs, he)


def _intervals(outs: list[Out]) -> list[tuple[float, float]]:
    """Sounding intervals of any key (thru or machine) from an Out stream."""
    open_: dict[tuple[int, int], float] = {}
    spans = []
    for out in outs:
        key = (out.msg[0] & 0x0F, out.msg[1])
        if key in open_ and out.msg[0] & 0xF0 in (0x80, 0x90):
            spans.append((open_.pop(key), out.pos))
        if out.msg[0] & 0xF0 == 0x90 and out.msg[2] > 0:
            open_[key] = out.pos
    return spans


def _bursts(ev: list[tuple[float, object]], width: float) -> list[list[tuple[float, object]]]:
    """Consecutive MIDI events within ``width`` steps of the first of their group; a command is
    a group of its own (what a busy conductor drains from its queue at once)."""
    groups: list[list[tuple[float, object]]] = []
    for pos, item in ev:
        last = groups[-1] if groups else None
        if (last is not None and isinstance(item, tuple) and isinstance(last[0][1], tuple)
                and pos - last[0][0] <= width):
            last.append((pos, item))
        else:
            groups.append([(pos, item)])
    return groups


@PROPS
@given(notes=notes_st, commands=commands_st, seed=st.integers(0, 3),
       mode=st.sampled_from(["call", "continue", "harmonize"]), width=st.sampled_from([0.3, 1.5]))
def test_feed_many_sounds_like_feeding_one_by_one(
        models: dict[str, StepModel], twins: dict[str, StepModel], notes: list, commands: list,
        seed: int, mode: str, width: float) -> None:
    """After each burst the same notes sound, and from there on both play the same."""
    kind = "satb" if mode == "harmonize" else "melody"
    cmds = [(t, c) for t, c in commands if not (isinstance(c, Set) and c.name == "mode")]
    one = Engine(models[kind], Settings(seed=seed, mode=mode))
    many = Engine(twins[kind], Settings(seed=seed, mode=mode))
    outs_one: list[Out] = []
    outs_many: list[Out] = []
    for group in _bursts(events(notes, cmds), width):
        at = group[0][0]
        step_one, step_many = drive_until(one, at), drive_until(many, at)
        assert step_one == step_many
        outs_one += step_one
        outs_many += step_many
        if isinstance(group[0][1], tuple):
            for pos, msg in group:
                outs_one += one.feed(pos, msg)  # type: ignore[arg-type]
            outs_many += many.feed_many(group)  # type: ignore[arg-type]
        else:
            outs_one += one.apply(group[0][1], at)  # type: ignore[arg-type]
            outs_many += many.apply(group[0][1], at)  # type: ignore[arg-type]
        assert sounding_after(outs_many) == sounding_after(outs_one)
    tail_one, tail_many = drive(one, [], END), drive(many, [], END)
    assert tail_many == tail_one
    check_common(outs_many + tail_many, ordered=False)  # a burst is answered at its last event
