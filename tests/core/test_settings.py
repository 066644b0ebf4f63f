"""One settings table validates every source of values the same way."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest

from liveduet.core.harmony import Context
from liveduet.core.oscmap import ADDRESSES, PREFIX
from liveduet.core.settings import (
    ACTIONS,
    FIELDS,
    NOT_TABLE,
    TABLE_DERIVED,
    TABLE_SETTINGS,
    Action,
    Settings,
    coerce,
)
from liveduet.errors import ConfigError


def test_defaults_match_the_table() -> None:
    s = Settings()
    for f in FIELDS:
        assert getattr(s, f.name) == f.default, f.name
    assert list(s.as_dict()) == [f.name for f in FIELDS]


@pytest.mark.parametrize(("name", "raw", "value"), [
    ("mode", "Harmonize", "harmonize"),
    ("temperature", "0.5", 0.5),
    ("bpm", 140, 140.0),
    ("key", "f#", "F#"),
    ("thru", "off", False),
    ("thru", 1, True),
    ("channel", 16.0, 16),
    ("scale", "dorian", "dorian"),
])
def test_coerce_accepts_natural_forms(name: str, raw: object, value: object) -> None:
    assert coerce(name, raw) == value


@pytest.mark.parametrize(("name", "raw", "match"), [
    ("mode", "jazz", "choose one of"),
    ("temperature", 0.0, "out of range"),
    ("temperature", math.nan, "out of range"),
    ("bpm", "fast", "not a number"),
    ("bpm", 301, "out of range"),
    ("channel", 2.5, "whole number"),
    ("thru", "maybe", "on/off"),
    ("seed", True, "give a number"),
    ("volume", 1, "unknown setting"),
])
def test_coerce_refuses_with_what_is_allowed(name: str, raw: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        coerce(name, raw)


def test_cross_field_rules() -> None:
    with pytest.raises(ConfigError, match="low=90 is above high"):
        Settings().with_value("low", 90).with_value("high", 80)
    with pytest.raises(ConfigError, match="swap"):
        Settings().with_value("response_min_bars", 8)


def test_from_dict_round_trip() -> None:
    s = Settings.from_dict({"mode": "continue", "temperature": 1.2, "key": "D"})
    assert Settings.from_dict(s.as_dict()) == s
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.from_dict({"tempo_bpm": 1})


def test_unknown_action_is_refused() -> None:
    assert Action("panic").name == "panic"
    with pytest.raises(ConfigError, match="unknown action"):
        Action("explode")


def test_mode_defaults_fill_only_what_is_not_given() -> None:
    from liveduet.core.settings import with_mode_defaults

    assert Settings.from_dict(with_mode_defaults({"mode": "harmonize"})).temperature == 0.7
    given = with_mode_defaults({"mode": "harmonize", "temperature": 1.1})
    assert given["temperature"] == 1.1
    assert with_mode_defaults({"mode": "call"}) == {"mode": "call"}


def test_every_action_is_reachable_over_osc() -> None:
    assert ACTIONS == ("end_call", "reset", "panic", "play", "stop", "state", "learn", "model")
    assert [a for a in ACTIONS if f"{PREFIX}/{a}" not in ADDRESSES] == []


def test_every_setting_is_placed_for_the_harmony_table_key() -> None:
    """A new setting fails here until it is put in the table key, derived into it, or declared
    unread by tables: a setting the sampler reads but the key lacks would reuse stale tables."""
    placed = [*TABLE_SETTINGS, *TABLE_DERIVED, *NOT_TABLE]
    assert sorted(placed) == sorted(f.name for f in fields(Settings))
    assert [n for n in TABLE_SETTINGS if n not in Context._fields] == []
