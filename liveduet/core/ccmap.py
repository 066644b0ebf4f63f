"""MIDI CC -> Command: every setting and action can be bound to a (channel, CC) pair.

Pure (no ports, no clock): the runtime passes each incoming control change to
:meth:`CcMap.cc_command` when :meth:`CcMap.handles` says the pair is bound (or learning) and
submits the Command it returns. Values 0..127 are scaled to each setting's range, to a choice's
index or to a bool (>= 64 is on); actions fire when a button crosses 64 upwards.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from liveduet.core.catalog import DEFAULT_HARMONY, DEFAULT_MELODY
from liveduet.core.oscmap import LEARN_TARGETS
from liveduet.core.settings import (
    FIELD_BY_NAME,
    Act,
    Action,
    Command,
    Field,
    Set,
    coerce,
    did_you_mean,
)
from liveduet.errors import ConfigError

DEFAULT_CCS: dict[str, int] = {
    "temperature": 1,  # mod wheel
    "mode": 20, "top_p": 21, "density": 22, "bpm": 23, "key": 24, "scale": 25, "low": 26,
    "high": 27, "listen_gap": 28, "response_bars": 29, "response_min_bars": 30,
    "response_max_bars": 31, "thru": 85, "channel": 86, "velocity": 87, "seed": 88,
    "candidates": 89, "develop": 90,
    Act.END_CALL: 102, Act.PLAY: 103, Act.STOP: 104, Act.RESET: 105, Act.PANIC: 106,
    Act.MODEL: 107,
    "meter": 108, "answer_at": 109, "max_copy": 110, "voice_leading": 111,
}
"""Default CC per target on the default channel: only MIDI's undefined controllers besides the
mod wheel (20-31, 85-90, 102-111), so sustain (64) and friends stay with the instrument."""
ON = 64


def _check(channel: int, cc: int, value: int | None = None) -> None:
    if not 1 <= channel <= 16 or not 0 <= cc <= 127 or (value is not None
                                                         and not 0 <= value <= 127):
        raise ValueError(f"CC channel {channel} (1-16), number {cc} (0-127), value {value} "
                         "(0-127) out of range")


class CcMap:
    """Bindings (channel 1-16, CC 0-127) -> target, with MIDI learn.

    Args:
        bindings: ``{(channel, cc): target}``; targets are settings or actions (LEARN_TARGETS).
        models: bundled model names a ``model`` button cycles through.
    """

    def __init__(self, bindings: Mapping[tuple[int, int], str] | None = None, *,
                 models: Sequence[str] = (DEFAULT_MELODY, DEFAULT_HARMONY)) -> None:
        self._bindings: dict[tuple[int, int], str] = {}
        self.models = tuple(models)
        self._model_index = 0
        self._last: dict[tuple[int, int], Any] = {}
        self._learning: str | None = None
        self.learned: tuple[int, int, str] | None = None
        for (channel, cc), target in (bindings or {}).items():
            self.bind(channel, cc, target)

    @classmethod
    def default(cls, channel: int = 1, **kwargs: Any) -> CcMap:
        """The documented default map (:data:`DEFAULT_CCS`) on ``channel``."""
        return cls({(channel, cc): t for t, cc in DEFAULT_CCS.items()}, **kwargs)

    @property
    def bindings(self) -> dict[tuple[int, int], str]:
        """A copy of the current ``{(channel, cc): target}``."""
        return dict(self._bindings)

    @property
    def learning(self) -> str | None:
        """The target the next CC will be bound to, or None."""
        return self._learning

    def bind(self, channel: int, cc: int, target: str) -> None:
        """Bind (channel, cc) to target; the target's previous binding goes (one CC each)."""
        _check(channel, cc)
        if target not in LEARN_TARGETS:
            raise ConfigError(f"cannot map a CC to {target!r}; targets: {', '.join(LEARN_TARGETS)}")
        self.unbind(target)
        self._bindings[(channel, cc)] = target
        self._last.pop((channel, cc), None)

    def unbind(self, target: str) -> None:
        """Remove every binding of ``target``."""
        for key in [k for k, t in self._bindings.items() if t == target]:
            del self._bindings[key]

    def learn(self, target: str | None) -> None:
        """Bind the next incoming CC to ``target``; None cancels a pending learn."""
        if target is not None and target not in LEARN_TARGETS:
            raise ConfigError(f"cannot learn {target!r}; targets: {', '.join(LEARN_TARGETS)}")
        self._learning = target

    def handles(self, channel: int, cc: int) -> bool:
        """True when a CC on (channel, cc) is for liveduet (bound, or a learn is pending)."""
        return self._learning is not None or (channel, cc) in self._bindings

    def cc_command(self, channel: int, cc: int, value: int) -> Command | None:
        """The Command for one control change, or None (unbound, unchanged, release, learnt).

        While learning, the CC binds to the pending target, :attr:`learned` records
        ``(channel, cc, target)`` and nothing else happens.
        """
        _check(channel, cc, value)
        key = (channel, cc)
        if self._learning is not None:
            self.bind(channel, cc, self._learning)
            self.learned = (channel, cc, self._learning)
            self._learning = None
            self._last[key] = value
            return None
        target = self._bindings.get(key)
        if target is None:
            return None
        field = FIELD_BY_NAME.get(target)
        if field is None:
            return self._action(key, target, value)
        new = scale(field, value)
        if self._last.get(key) == new:
            return None
        self._last[key] = new
        return Set(target, coerce(target, new))  # in range by construction; the table decides

    def _action(self, key: tuple[int, int], target: str, value: int) -> Action | None:
        before = self._last.get(key, 0)
        self._last[key] = value
        if not (value >= ON > before):
            return None
        if target != Act.MODEL:
            return Action(target)
        if not self.models:
            return None
        self._model_index = (self._model_index + 1) % len(self.models)
        return Action(Act.MODEL, self.models[self._model_index])

    @classmethod
    def from_toml(cls, table: Mapping[str, Any], **kwargs: Any) -> CcMap:
        """A map from a ``[cc]`` TOML table (see :meth:`to_toml`); ConfigError names bad keys.

        Keys: ``cc_channel`` (default channel, 1), ``defaults`` (start from the default map,
        true), and per target ``N`` (CC N on the default channel), ``[channel, N]`` or
        ``"off"`` / ``false`` (unbind).
        """
        channel = table.get("cc_channel", 1)
        if not isinstance(channel, int) or isinstance(channel, bool) or not 1 <= channel <= 16:
            raise ConfigError(f"[cc] cc_channel = {channel!r}; give a MIDI channel from 1 to 16")
        base = cls.default(channel, **kwargs) if table.get("defaults", True) else cls(**kwargs)
        for target, spec in table.items():
            if target in ("cc_channel", "defaults"):
                continue
            if target not in LEARN_TARGETS:
                raise ConfigError(f"[cc] {target}: unknown target"
                                  f"{did_you_mean(target, LEARN_TARGETS)}; known: "
                                  f"{', '.join(LEARN_TARGETS)}")
            if spec is False or spec == "off":
                base.unbind(target)
                continue
            ch, cc = _spec(target, spec, channel)
            base.bind(ch, cc, target)
        return base

    def to_toml(self) -> dict[str, Any]:
        """The ``[cc]`` table that rebuilds exactly this map (learnt bindings included)."""
        table: dict[str, Any] = {"defaults": False}
        for (ch, cc), target in sorted(self._bindings.items(), key=lambda kv: kv[1]):
            table[target] = [ch, cc]
        return table

    def to_toml_text(self) -> str:
        """:meth:`to_toml` as TOML text, a ``[cc]`` section ready for the config file."""
        lines = ["[cc]"]
        for key, value in self.to_toml().items():
            text = "false" if value is False else f"[{value[0]}, {value[1]}]"
            lines.append(f"{key} = {text}")
        return "\n".join(lines) + "\n"


def _spec(target: str, spec: Any, channel: int) -> tuple[int, int]:
    if isinstance(spec, int) and not isinstance(spec, bool):
        ch, cc = channel, spec
    elif (isinstance(spec, (list, tuple)) and len(spec) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in spec)):
        ch, cc = spec
    else:
        raise ConfigError(f"[cc] {target} = {spec!r}; give a CC number, [channel, cc] or 'off'")
    if not 1 <= ch <= 16 or not 0 <= cc <= 127:
        raise ConfigError(f"[cc] {target} = {spec!r}; channel is 1-16 and CC 0-127")
    return ch, cc


def scale(f: Field, value: int) -> Any:
    """A CC value 0..127 as a value of setting ``f`` (always inside its range).

    Floats scale linearly over the range; ints too, except ranges wider than 0..127 (seed),
    which take the CC value itself; choices split 0..127 into equal bins; bools are >= 64.
    """
    if f.kind == "bool":
        return value >= ON
    if f.kind == "choice":
        return f.choices[min(value * len(f.choices) // 128, len(f.choices) - 1)]
    low, high = float(f.low or 0.0), float(f.high or 0.0)
    if f.kind == "int":
        if high - low > 127:
            return int(min(max(value, low), high))
        return math.floor(low + value / 127 * (high - low) + 0.5)
    return round(low + value / 127 * (high - low), 4)
