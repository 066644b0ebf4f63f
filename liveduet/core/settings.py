"""Every live setting of liveduet, with its type, range and default, in one table.

The CLI, the TOML config, OSC and MIDI CC all validate through :func:`coerce`, so a value means
the same thing wherever it comes from. Commands that the conductor applies between steps are
:class:`Set` (change one setting) and :class:`Action` (do something once).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, fields, replace
from typing import Any, Final

from liveduet.core.clock import BPM_RANGE, DEFAULT_BPM
from liveduet.core.metre import METRES
from liveduet.errors import ConfigError

MODES = ("call", "continue", "harmonize", "off")
ANSWER_AT = ("bar", "beat", "gap")
SCALES: dict[str, tuple[int, ...]] = {
    "chromatic": tuple(range(12)),
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
}
KEYS = ("off", "auto", "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLATS = {"Cb": "B", "Db": "C#", "Eb": "D#", "Fb": "E", "Gb": "F#", "Ab": "G#", "Bb": "A#",
         "E#": "F", "B#": "C"}
"""Key names spelt another way -> the name in KEYS (a key named with a flat is the same tonic)."""
CHOICE_ALIASES: dict[str, dict[str, str]] = {
    "mode": {"harmonise": "harmonize", "harmony": "harmonize"},
    "key": {k.lower(): v for k, v in FLATS.items()},
}
"""Other spellings musicians use for a choice (British spelling, flats), per setting."""
VOICE_LEADING = ("off", "guided", "strict")


class Act:
    """The name of every :class:`Action`, written once here (``Act.PANIC == "panic"``): OSC
    addresses, CC targets, the TouchOSC buttons and the engine use these."""

    END_CALL: Final = "end_call"
    RESET: Final = "reset"
    PANIC: Final = "panic"
    PLAY: Final = "play"
    STOP: Final = "stop"
    STATE: Final = "state"
    LEARN: Final = "learn"
    MODEL: Final = "model"


ACTIONS: tuple[str, ...] = tuple(v for k, v in vars(Act).items() if k.isupper())


@dataclass(frozen=True)
class Field:
    """One setting: its kind (float, int, bool, choice; for run options also text, a non-empty
    string, and texts, one string or a list of them), range or choices, and help. A run option
    whose default is None may be left unset."""

    name: str
    kind: str
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""


FIELDS: tuple[Field, ...] = (
    Field("mode", "choice", "call", choices=MODES, help="call | continue | harmonize | off"),
    Field("temperature", "float", 0.9, 0.05, 2.0, help="sampling temperature"),
    Field("top_p", "float", 0.95, 0.05, 1.0, help="nucleus sampling mass"),
    Field("bpm", "float", DEFAULT_BPM, *BPM_RANGE,
          help="internal tempo, quarter notes per minute"),
    Field("meter", "choice", "4/4", choices=METRES,
          help="time signature (compound metres count dotted beats)"),
    Field("key", "choice", "off", choices=KEYS, help="tonic of the key mask, 'auto' or 'off'"),
    Field("scale", "choice", "major", choices=tuple(SCALES), help="scale of the key mask"),
    Field("low", "int", 36, 0, 127, help="lowest pitch the machine plays"),
    Field("high", "int", 96, 0, 127, help="highest pitch the machine plays"),
    Field("density", "float", 0.5, 0.0, 1.0, help="0 sparse .. 0.5 as trained .. 1 busy"),
    Field("listen_gap", "int", 4, 1, 64, help="silent steps that end a call"),
    Field("answer_at", "choice", "bar", choices=ANSWER_AT,
          help="where an answer enters: the next bar line, the next beat, or right after the gap"),
    Field("response_bars", "float", 0.0, 0.0, 16.0, help="answer length; 0 = the call's"),
    Field("response_min_bars", "float", 1.0, 0.25, 16.0, help="shortest answer"),
    Field("response_max_bars", "float", 4.0, 0.25, 16.0, help="longest answer"),
    Field("thru", "bool", True, help="pass the human's notes to the output"),
    Field("channel", "int", 2, 1, 16, help="first output channel of the machine's voices; the "
          "human keeps channel 1 (see the channel plan in the README)"),
    Field("velocity", "int", 0, 0, 127, help="machine velocity; 0 follows the human"),
    Field("seed", "int", 0, 0, 2**31 - 1, help="random seed of the sampler"),
    Field("candidates", "int", 16, 1, 64, help="phrases sampled per answer; the critic "
          "plays the best (1 = a single sample)"),
    Field("develop", "float", 0.7, 0.0, 1.0, help="how strongly answers build on the call"),
    Field("max_copy", "int", 12, 8, 64, help="longest verbatim training run (notes) a "
          "phrase may hold"),
    Field("voice_leading", "choice", "strict", choices=VOICE_LEADING,
          help="harmonize: part-writing rules for alto, tenor and bass (strict: hard "
          "rules, guided: weighted preferences)"),
)
FIELD_BY_NAME = {f.name: f for f in FIELDS}
DEFAULTS: dict[str, Any] = {f.name: f.default for f in FIELDS}
"""Each setting's default, as the table gives it (the :class:`Settings` fields read it here)."""
TABLE_SETTINGS: tuple[str, ...] = ("seed", "temperature", "top_p", "density", "low", "high",
                                   "voice_leading")
"""Settings a harmony table's sampling reads as they are: each is a field of the table's key
(:class:`liveduet.core.harmony.Context`, built from this tuple), so no table is reused across a
change of one."""
TABLE_DERIVED: tuple[str, ...] = ("key", "scale", "meter")
"""Settings a harmony table reads through a value derived from them, which is in its key: the
key mask's pitch classes (key, scale) and the position ids and beats of the step (meter)."""
NOT_TABLE: tuple[str, ...] = (
    "mode",  # whether tables are used at all (harmonize), not what one holds
    "bpm", "channel", "velocity", "thru",  # timing and output of what was sampled
    "listen_gap", "answer_at", "response_bars", "response_min_bars", "response_max_bars",
    "candidates", "develop", "max_copy",  # turn taking and the answers of call/continue
)
"""Settings no harmony table reads. A new setting belongs to one of these three tuples
(``tests/core/test_settings.py`` fails until it is placed)."""
# Defaults that depend on the starting mode: the chorale harmoniser's voices agree with the
# soprano far more often at 0.7 than at 0.9 (export/listen.py, models/chorale_satb.md).
MODE_DEFAULTS: dict[str, dict[str, Any]] = {"harmonize": {"temperature": 0.7}}


def with_mode_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` plus the defaults of its ``mode`` for every setting it does not give."""
    mode = str(values.get("mode", "")).strip().lower()
    extra = MODE_DEFAULTS.get(CHOICE_ALIASES["mode"].get(mode, mode), {})
    return {**extra, **values}


@dataclass(frozen=True)
class Settings:
    """The live settings; build changed copies with :meth:`with_value`. One field per entry of
    :data:`FIELDS`, in its order, with the table's default."""

    mode: str = DEFAULTS["mode"]
    temperature: float = DEFAULTS["temperature"]
    top_p: float = DEFAULTS["top_p"]
    bpm: float = DEFAULTS["bpm"]
    meter: str = DEFAULTS["meter"]
    key: str = DEFAULTS["key"]
    scale: str = DEFAULTS["scale"]
    low: int = DEFAULTS["low"]
    high: int = DEFAULTS["high"]
    density: float = DEFAULTS["density"]
    listen_gap: int = DEFAULTS["listen_gap"]
    answer_at: str = DEFAULTS["answer_at"]
    response_bars: float = DEFAULTS["response_bars"]
    response_min_bars: float = DEFAULTS["response_min_bars"]
    response_max_bars: float = DEFAULTS["response_max_bars"]
    thru: bool = DEFAULTS["thru"]
    channel: int = DEFAULTS["channel"]
    velocity: int = DEFAULTS["velocity"]
    seed: int = DEFAULTS["seed"]
    candidates: int = DEFAULTS["candidates"]
    develop: float = DEFAULTS["develop"]
    max_copy: int = DEFAULTS["max_copy"]
    voice_leading: str = DEFAULTS["voice_leading"]

    def with_value(self, name: str, value: Any) -> Settings:
        """A copy with ``name`` set to ``value`` after validation (raises ConfigError)."""
        new = replace(self, **{name: coerce(name, value)})
        if new.low > new.high:
            raise ConfigError(f"low={new.low} is above high={new.high}; keep low <= high")
        if new.response_min_bars > new.response_max_bars:
            raise ConfigError("response_min_bars is above response_max_bars; swap them")
        return new

    def as_dict(self) -> dict[str, Any]:
        """Every setting by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Settings:
        """Settings from a mapping (e.g. a TOML table); unknown names are an error."""
        s = cls()
        for name, value in values.items():
            s = s.with_value(name, value)
        return s


def coerce(name: str, value: Any, *, strict: bool = False) -> Any:
    """Validate and convert ``value`` for setting ``name``; ConfigError says what is allowed.

    ``strict`` (a config file, whose format has real booleans): a bool setting takes only
    true/false, not the words and 0/1 that OSC, MIDI CC and the command line send.
    """
    f = FIELD_BY_NAME.get(name)
    if f is None:
        raise ConfigError(f"unknown setting {name!r}{did_you_mean(name, FIELD_BY_NAME)}; "
                          f"known: {', '.join(FIELD_BY_NAME)}")
    return _check(f, value, strict)


def check_option(name: str, value: Any, *, strict: bool = False) -> Any:
    """Validate run option ``name`` (:data:`OPTION_FIELDS`) like a setting; None stays None
    where the option may be unset."""
    f = OPTION_BY_NAME.get(name)
    if f is None:
        raise ConfigError(f"unknown run option {name!r}{did_you_mean(name, OPTION_BY_NAME)}; "
                          f"known: {', '.join(OPTION_BY_NAME)}")
    if value is None and f.default is None:
        return None
    return _check(f, value, strict)


def _check(f: Field, value: Any, strict: bool) -> Any:
    name = f.name
    if f.kind == "text":
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{name}={value!r}; give a non-empty text (a name or a path)")
        return value
    if f.kind == "texts":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(
                isinstance(v, str) and v.strip() for v in items):
            raise ConfigError(f"{name}={value!r}; give a name or a list of names")
        return list(items)
    if f.kind == "choice":
        text = str(value).strip().replace("\u266d", "b").replace("\u266f", "#")
        text = CHOICE_ALIASES.get(name, {}).get(text.lower(), text)
        match = next((c for c in f.choices if c.lower() == text.lower()), None)
        if match is None:
            raise ConfigError(f"{name}={value!r}{did_you_mean(text, f.choices)}; choose one "
                              f"of {', '.join(f.choices)}")
        return match
    if f.kind == "bool":
        return _bool(name, value, strict)
    return _number(f, value)


def did_you_mean(word: str, known: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` to ``word``, else ''."""
    names = [str(k) for k in known]
    lowered = {n.lower(): n for n in names}
    close = difflib.get_close_matches(str(word).lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean {lowered[close[0]]!r}?)" if close else ""


def _bool(name: str, value: Any, strict: bool = False) -> bool:
    if isinstance(value, bool):
        return value
    if strict:
        raise ConfigError(f"{name}={value!r}; give true or false (without quotes)")
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("1", "true", "on", "yes", "0", "false",
                                                    "off", "no"):
        return value.lower() in ("1", "true", "on", "yes")
    raise ConfigError(f"{name}={value!r}; use on/off, true/false or 1/0")


def _number(f: Field, value: Any) -> int | float:
    if isinstance(value, bool):
        raise ConfigError(f"{f.name}={value!r}; give a number from {f.low} to {f.high}")
    try:
        num = float(value)
    except (TypeError, ValueError, OverflowError) as err:
        raise ConfigError(f"{f.name}={value!r} is not a number; give one from {f.low} to "
                          f"{f.high}") from err
    if not math.isfinite(num):
        raise ConfigError(f"{f.name}={value!r} is out of range (not a finite number); give one "
                          f"from {f.low} to {f.high}")
    assert f.low is not None and f.high is not None  # every numeric field has a range
    if not f.low <= num <= f.high:
        raise ConfigError(f"{f.name}={value!r} is out of range; give one from {f.low} to {f.high}")
    if f.kind == "int":
        if num != int(num):
            raise ConfigError(f"{f.name}={value!r}; give a whole number from {f.low} to {f.high}")
        return int(num)
    return num


OPTION_FIELDS: tuple[Field, ...] = (
    Field("model", "text", None, help="bundled model name or .onnx path"),
    Field("clock", "choice", "internal", choices=("internal", "midi", "link", "jack"),
          help="tempo source"),
    Field("inputs", "texts", (), help="input ports by name or unique substring"),
    Field("output", "text", None, help="output port name or substring"),
    Field("api", "text", "auto", help="MIDI system"),
    Field("latency_offset", "float", 0.0, -1000.0, 1000.0, help="ms added to timed output"),
    Field("metronome", "int", None, 1, 16, help="MIDI channel of the click notes"),
    Field("quiet", "bool", False, help="no status line"),
    Field("stats", "text", None, help="file for timing stats at exit"),
    Field("osc", "bool", True, help="start the OSC control server"),
    Field("osc_port", "int", None, 0, 65535, help="OSC listen port (0 = any free)"),
    Field("osc_host", "text", "127.0.0.1", help="OSC bind address"),
    Field("osc_reply_port", "int", 9000, 1, 65535, help="client port for feedback"),
    Field("osc_allow", "texts", (), help="hosts allowed to send OSC"),
    Field("cc", "bool", True, help="map incoming MIDI CC to controls"),
    Field("cc_channel", "int", None, 1, 16, help="channel of the default CC map"),
    Field("input_poll", "float", 0.5, 0.0, 10.0, help="ms between input polls; 0 = callback"),
    Field("realtime", "bool", False, help="real-time priority for the conductor"),
    Field("osc_announce", "bool", True, help="advertise the OSC server over zeroconf"),
    Field("in_channel", "int", None, 1, 16, help="only listen to this MIDI channel"),
    Field("octave_names", "choice", "c4", choices=("c4", "c3"), help="middle C shows as"),
    Field("models_dir", "texts", (), help="folders searched for models by name"),
    Field("clock_out", "text", None, help="MIDI clock out: a port name ('' or true: the output)"),
    Field("midi_backend", "choice", "rtmidi", choices=("rtmidi", "jack", "auto"),
          help="MIDI on JACK: JACK-Client (frame-accurate) or python-rtmidi"),
)
"""Options of ``liveduet run`` that are not musical settings (CLI and config file), checked by
:func:`check_option` with the same rules as the settings."""
OPTION_BY_NAME = {f.name: f for f in OPTION_FIELDS}


@dataclass(frozen=True)
class Set:
    """Command: change setting ``name`` to an already validated ``value``."""

    name: str
    value: Any


@dataclass(frozen=True)
class Action:
    """Command: do ``name`` once (one of ACTIONS); ``arg`` e.g. the model for 'model'."""

    name: str
    arg: Any = None

    def __post_init__(self) -> None:
        if self.name not in ACTIONS:
            raise ConfigError(f"unknown action {self.name!r}; known: {', '.join(ACTIONS)}")


Command = Set | Action
