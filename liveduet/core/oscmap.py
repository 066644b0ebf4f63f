"""The OSC address map: every ``/liveduet/...`` address, what it takes and the Command it makes.

One table (:data:`ADDRESSES`) is derived from :data:`liveduet.core.settings.FIELDS` plus the
actions and the feedback-only addresses; the server (:mod:`liveduet.live.control`), the
TouchOSC layout (:mod:`liveduet.live.touchosc`) and ``docs/osc.md`` all follow it.
Pure: no sockets, no threads.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from liveduet.core.settings import (
    FIELD_BY_NAME,
    FIELDS,
    Act,
    Action,
    Command,
    Field,
    Set,
    Settings,
    coerce,
    did_you_mean,
)
from liveduet.errors import ConfigError

PREFIX = "/liveduet"
TRIGGERS = (Act.END_CALL, Act.PLAY, Act.STOP, Act.RESET, Act.PANIC, Act.STATE)
"""Actions taken by a bare message or a positive number (a button press); 0 is a release."""
FEEDBACK = {
    "phase": ("s", "listening | answering | accompanying | idle"),
    "beat": ("i", "beat in the bar (0 = the bar line; beats of the metre), sent on every beat"),
    "message": ("s", "last problem or notice, e.g. why a model failed to load"),
    "dropped": ("i", "messages dropped under a flood (OSC past the rate limit, MIDI past the "
                     "queue bound), since start"),
}
REASONS = ("denied", "malformed", "unknown", "readonly", "type", "range", "internal", "send_failed",
           "flood")
"""Keys of ``OscControl.counters``: why a message was refused (or a reply could not be sent)."""
ALIASES = {"tempo": "bpm"}
_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_REL_EPS = 1e-6


class Refused(Exception):
    """A message liveduet will not act on: ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class Address:
    """One OSC address: its target, argument spec, whether it is accepted and echoed."""

    path: str
    target: str
    kind: str  # 'setting' | 'trigger' | 'learn' | 'model' | 'feedback'
    args: str  # OSC argument form as documented, e.g. 'f 0.05..2.0'
    help: str
    accepts: bool = True
    echoed: bool = True


def _field_args(f: Field) -> str:
    if f.kind == "choice":
        return f"i 0..{len(f.choices) - 1} or s ({' | '.join(f.choices)})"
    if f.kind == "bool":
        return "i/f 0|1 (or T/F, s on/off)"
    if f.kind == "int":
        return f"i {int(f.low or 0)}..{int(f.high or 0)} (f rounded)"
    return f"f {f.low:g}..{f.high:g}"


def _build() -> dict[str, Address]:
    table: dict[str, Address] = {}
    for f in FIELDS:
        table[f"{PREFIX}/{f.name}"] = Address(f"{PREFIX}/{f.name}", f.name, "setting",
                                              _field_args(f), f.help)
    for alias, name in ALIASES.items():
        f = FIELD_BY_NAME[name]
        table[f"{PREFIX}/{alias}"] = Address(f"{PREFIX}/{alias}", name, "setting",
                                             _field_args(f), f"same as {PREFIX}/{name}")
    for name in TRIGGERS:
        table[f"{PREFIX}/{name}"] = Address(f"{PREFIX}/{name}", name, "trigger",
                                            "none, or f >0 (0 = button release, ignored)",
                                            _TRIGGER_HELP[name], echoed=False)
    table[f"{PREFIX}/{Act.LEARN}"] = Address(
        f"{PREFIX}/{Act.LEARN}", Act.LEARN, "learn", "s target [f >0]",
        "MIDI-learn: the next CC binds to target (a setting or action); 'cancel' stops")
    table[f"{PREFIX}/{Act.MODEL}"] = Address(
        f"{PREFIX}/{Act.MODEL}", Act.MODEL, "model", "s name [f >0]",
        "load a bundled model by name (hot-swap); echoed as the loaded model's title")
    for name, (args, text) in FEEDBACK.items():
        table[f"{PREFIX}/{name}"] = Address(f"{PREFIX}/{name}", name, "feedback", args, text,
                                            accepts=False)
    return table


_TRIGGER_HELP = {
    Act.END_CALL: "end the human's call now; the machine answers",
    Act.PLAY: "start / re-anchor the internal transport",
    Act.STOP: "stop the transport; the machine's notes are released",
    Act.RESET: "reset the model's recurrent state",
    Act.PANIC: "release every note liveduet sounds (all notes off)",
    Act.STATE: "ask for a full dump of every echoed address",
}
ADDRESSES: dict[str, Address] = _build()
LEARN_TARGETS: tuple[str, ...] = (*(f.name for f in FIELDS), Act.END_CALL, Act.PLAY, Act.STOP,
                                  Act.RESET, Act.PANIC, Act.MODEL)
"""Everything a MIDI CC can be bound to (see :mod:`liveduet.core.ccmap`)."""


def parse(path: str, args: Sequence[Any]) -> Command | None:
    """The Command for one OSC message, or None when it asks for nothing (a button release).

    Raises:
        Refused: unknown or read-only address, wrong argument type or count, out of range.
    """
    entry = ADDRESSES.get(path)
    if entry is None:
        hint = did_you_mean(path, ADDRESSES)
        raise Refused("unknown", f"no address {path!r}{hint}; see docs/osc.md for the address map")
    if not entry.accepts:
        raise Refused("readonly", f"{path} is feedback only; liveduet sends it, never reads it")
    if entry.kind == "setting":
        return Set(entry.target, setting_value(FIELD_BY_NAME[entry.target], args))
    if entry.kind == "trigger":
        return Action(entry.target) if _pressed(path, args) else None
    return _named_action(entry, args)


def setting_value(f: Field, args: Sequence[Any]) -> Any:
    """Validate the one OSC argument of setting ``f`` in the forms TouchOSC sends."""
    if len(args) != 1:
        raise Refused("type", f"{PREFIX}/{f.name} takes one argument ({_field_args(f)}), "
                              f"got {len(args)}")
    value = args[0]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = _number(f, float(value))
    elif isinstance(value, bool):
        if f.kind != "bool":
            raise Refused("type", f"{PREFIX}/{f.name} takes {_field_args(f)}, got {value!r}")
    elif not (isinstance(value, str) and f.kind in ("choice", "bool")):
        raise Refused("type", f"{PREFIX}/{f.name} takes {_field_args(f)}, got {value!r}")
    try:
        return coerce(f.name, value)
    except ConfigError as err:
        raise Refused("range", str(err)) from err


def _number(f: Field, num: float) -> Any:
    """A float as TouchOSC sends it -> the field's natural value (index, bool, rounded int)."""
    if not math.isfinite(num):
        raise Refused("range", f"{PREFIX}/{f.name}={num!r}; give a finite number")
    if f.kind == "choice":
        index = math.floor(num + 0.5)
        if not 0 <= index < len(f.choices):
            last = len(f.choices) - 1
            raise Refused("range", f"{PREFIX}/{f.name} index {num:g} is not in 0..{last} "
                                   f"({' | '.join(f.choices)})")
        return f.choices[index]
    if f.kind == "bool":
        if not 0.0 <= num <= 1.0:
            raise Refused("range", f"{PREFIX}/{f.name}={num:g}; give 0 (off) or 1 (on)")
        return num >= 0.5
    low, high = float(f.low or 0.0), float(f.high or 0.0)
    eps = (high - low) * _REL_EPS  # float32 faders land a hair outside their scale
    if low - eps <= num < low:
        num = low
    elif high < num <= high + eps:
        num = high
    if f.kind == "int":
        return math.floor(num + 0.5)
    return round(num, 6)


def _pressed(path: str, args: Sequence[Any]) -> bool:
    """True for a bare message or a positive first number; False for a release (0)."""
    if not args:
        return True
    if len(args) > 1:
        raise Refused("type", f"{path} takes no argument or one number, got {len(args)}")
    value = args[0]
    if not isinstance(value, (int, float)):
        raise Refused("type", f"{path} takes no argument or one number, got {value!r}")
    return value > 0


def _named_action(entry: Address, args: Sequence[Any]) -> Action | None:
    """learn / model: ``s name`` with an optional press value (0 = release, ignored)."""
    if not args or not isinstance(args[0], str):
        raise Refused("type", f"{entry.path} takes {entry.args}, got {list(args)!r}")
    if not _pressed(entry.path, args[1:]):
        return None
    name = args[0].strip()
    if entry.kind == "learn":
        if name.lower() in ("", "cancel", "off", "none"):
            return Action(Act.LEARN, None)
        if name not in LEARN_TARGETS:
            raise Refused("range", f"cannot learn {name!r}{did_you_mean(name, LEARN_TARGETS)}; "
                                   f"targets: {', '.join(LEARN_TARGETS)}")
        return Action(Act.LEARN, name)
    if not _MODEL_NAME.fullmatch(name):
        raise Refused("range", f"model name {name!r}: give a bundled model's name (letters, "
                               "digits, _ . -), not a path")
    return Action(Act.MODEL, name)


def encode(name: str, value: Any) -> list[tuple[str, list[Any]]]:
    """The feedback messages for one named value: ``[(address, [arg])]`` (empty for None).

    Choices go out as their index (what a TouchOSC radio shows), bools as 0/1, ``learn`` None as
    ''; ``bpm`` is echoed on ``/liveduet/tempo`` too. Names outside the map go out as they are.
    """
    if value is None and name != Act.LEARN:
        return []
    f = FIELD_BY_NAME.get(name)
    if f is not None:
        if f.kind == "choice":
            arg: Any = f.choices.index(value) if value in f.choices else str(value)
        elif f.kind == "bool":
            arg = int(bool(value))
        elif f.kind == "int":
            arg = int(value)
        else:
            arg = float(value)
        paths = [f"{PREFIX}/{name}"] + [f"{PREFIX}/{a}" for a, n in ALIASES.items() if n == name]
        return [(p, [arg]) for p in paths]
    if name == Act.LEARN:
        return [(f"{PREFIX}/{Act.LEARN}", ["" if value is None else str(value)])]
    if isinstance(value, bool):
        return [(f"{PREFIX}/{name}", [int(value)])]
    if isinstance(value, (int, float, str)):
        return [(f"{PREFIX}/{name}", [value])]
    return [(f"{PREFIX}/{name}", [str(value)])]


def state_values(settings: Settings, status: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything a full ``/liveduet/state`` dump publishes: settings plus the engine status.

    From ``status`` (e.g. ``Engine.status()`` plus runtime extras) it takes ``phase``, ``beat``
    (or derives it from ``step`` and ``steps_per_beat``, default 4, as the beat in a 4/4 bar),
    the model title (``model`` or ``title``), ``learn`` (target being learnt or None),
    ``message``, ``dropped`` and ``peers`` (Link peers, when the clock is Link).
    """
    values: dict[str, Any] = settings.as_dict()
    status = status or {}
    if "phase" in status:
        values["phase"] = str(status["phase"])
    if "beat" in status:
        values["beat"] = int(status["beat"])
    elif isinstance(status.get("step"), (int, float)) and status["step"] >= 0:
        per_beat = int(status.get("steps_per_beat", 4)) or 4
        values["beat"] = int(status["step"] // per_beat) % 4
    title = status.get("title", status.get("model"))
    if title is not None:
        values[Act.MODEL] = str(title)
    if "learn" in status:
        values[Act.LEARN] = status["learn"]
    if status.get("message") is not None:
        values["message"] = str(status["message"])
    if "dropped" in status:
        values["dropped"] = int(status["dropped"])
    if status.get("peers") is not None:
        values["peers"] = int(status["peers"])
    return values


def changed_values(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``after`` that are new or differ from ``before`` (what to echo)."""
    return {k: v for k, v in after.items() if k not in before or before[k] != v}


def addresses(*, accepted: bool | None = None, echoed: bool | None = None) -> list[str]:
    """Sorted address paths, optionally only those accepted from clients and/or echoed."""
    return sorted(a.path for a in ADDRESSES.values()
                  if (accepted is None or a.accepts == accepted)
                  and (echoed is None or a.echoed == echoed))
