"""CcMap: scaling, defaults, buttons, MIDI learn and the [cc] TOML table (pure, no ports)."""

from __future__ import annotations

import sys

import pytest

from liveduet.core.ccmap import DEFAULT_CCS, CcMap, scale
from liveduet.core.oscmap import LEARN_TARGETS
from liveduet.core.settings import FIELD_BY_NAME, FIELDS, Action, Set, coerce
from liveduet.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_defaults_cover_every_target_once_and_avoid_the_pedals() -> None:
    assert set(DEFAULT_CCS) == set(LEARN_TARGETS)
    ccs = list(DEFAULT_CCS.values())
    assert len(set(ccs)) == len(ccs)
    assert not set(ccs) & set(range(64, 70)) and 7 not in ccs and 10 not in ccs and 11 not in ccs


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_scale_stays_in_range_and_reaches_both_ends(field: object) -> None:
    values = [scale(field, v) for v in range(128)]  # type: ignore[arg-type]
    for v in values:
        assert coerce(field.name, v) == v  # type: ignore[attr-defined]
    if field.kind == "choice":  # type: ignore[attr-defined]
        assert values[0] == field.choices[0] and values[127] == field.choices[-1]  # type: ignore
        assert set(values) == set(field.choices)  # type: ignore[attr-defined]
    elif field.kind == "bool":  # type: ignore[attr-defined]
        assert values[63] is False and values[64] is True
    elif field.high - field.low <= 127:  # type: ignore[attr-defined]
        assert values[0] == field.low and values[127] == field.high  # type: ignore[attr-defined]


def test_scale_examples() -> None:
    assert scale(FIELD_BY_NAME["temperature"], 127) == 2.0
    assert scale(FIELD_BY_NAME["density"], 64) == pytest.approx(0.5039, abs=1e-4)
    assert scale(FIELD_BY_NAME["mode"], 40) == "continue"  # bins of 32: 32..63 -> index 1
    assert scale(FIELD_BY_NAME["seed"], 99) == 99
    assert scale(FIELD_BY_NAME["channel"], 127) == 16


def test_settings_follow_a_knob_without_repeats() -> None:
    m = CcMap.default()
    assert m.cc_command(1, 1, 127) == Set("temperature", 2.0)
    assert m.cc_command(1, 1, 127) is None  # unchanged
    assert m.cc_command(1, 20, 0) == Set("mode", "call")
    assert m.cc_command(1, 20, 5) is None  # same bin, same mode
    assert m.cc_command(1, 20, 127) == Set("mode", "off")
    assert m.cc_command(2, 1, 10) is None  # other channel: not bound
    assert not m.handles(2, 1) and m.handles(1, 1) and not m.handles(1, 64)


def test_buttons_fire_on_the_press_only_and_model_cycles() -> None:
    m = CcMap.default(channel=16, models=("a", "b", "c"))
    assert m.cc_command(16, 106, 127) == Action("panic")
    assert m.cc_command(16, 106, 127) is None  # held
    assert m.cc_command(16, 106, 0) is None  # released
    assert m.cc_command(16, 106, 100) == Action("panic")
    got = []
    for _ in range(3):
        got.append(m.cc_command(16, 107, 127))
        assert m.cc_command(16, 107, 0) is None
    assert got == [Action("model", "b"), Action("model", "c"), Action("model", "a")]


def test_midi_learn_binds_the_next_cc_and_moves_the_old_binding() -> None:
    m = CcMap.default()
    m.learn("density")
    assert m.learning == "density" and m.handles(5, 70)
    assert m.cc_command(5, 70, 33) is None  # consumed by learning
    assert m.learning is None and m.learned == (5, 70, "density")
    assert m.bindings[(5, 70)] == "density" and (1, 22) not in m.bindings
    assert m.cc_command(5, 70, 34) == Set("density", scale(FIELD_BY_NAME["density"], 34))
    assert m.cc_command(1, 22, 100) is None  # the old default no longer drives it
    m.learn("end_call")
    m.learn(None)  # cancelled
    assert m.cc_command(3, 3, 127) is None and (3, 3) not in m.bindings
    with pytest.raises(ConfigError, match="cannot learn"):
        m.learn("volume")


def test_toml_round_trip_with_learnt_bindings() -> None:
    m = CcMap.default(channel=2)
    m.learn("seed")
    m.cc_command(9, 9, 0)
    text = m.to_toml_text()
    again = CcMap.from_toml(tomllib.loads(text)["cc"])
    assert again.bindings == m.bindings
    assert again.bindings[(9, 9)] == "seed"


def test_toml_table_forms() -> None:
    table = tomllib.loads("""
        [cc]
        cc_channel = 3
        temperature = 74
        channel = [16, 5]
        mode = [10, 14]
        panic = "off"
    """)["cc"]
    m = CcMap.from_toml(table)
    b = m.bindings
    assert b[(3, 74)] == "temperature" and b[(10, 14)] == "mode"
    assert "panic" not in b.values() and b[(3, 21)] == "top_p" and b[(16, 5)] == "channel"
    only = CcMap.from_toml({"defaults": False, "play": 60})
    assert only.bindings == {(1, 60): "play"}


@pytest.mark.parametrize("table, match", [
    ({"cc_channel": 0}, "cc_channel"),
    ({"volume": 7}, "unknown target"),
    ({"mode": "twenty"}, "give a CC number"),
    ({"mode": [1, 2, 3]}, "give a CC number"),
    ({"mode": 128}, "CC 0-127"),
    ({"mode": [17, 2]}, "channel is 1-16"),
])
def test_bad_toml_tables_name_the_key(table: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        CcMap.from_toml(table)


def test_out_of_range_midi_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        CcMap.default().cc_command(0, 1, 1)  # channels are 1-16 here
    with pytest.raises(ValueError):
        CcMap.default().cc_command(1, 1, 128)
