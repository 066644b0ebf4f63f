"""Where ``liveduet run``'s settings come from: the defaults, then ``--config FILE.toml`` (the
Settings names, the run options with underscores, and a ``[cc]`` table), then the command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from liveduet.core.settings import (
    FIELDS,
    OPTION_FIELDS,
    Settings,
    check_option,
    coerce,
    did_you_mean,
    with_mode_defaults,
)
from liveduet.core.turns import parse_steps
from liveduet.errors import ConfigError

RUN_OPTIONS: dict[str, Any] = {f.name: list(f.default) if f.kind == "texts" else f.default
                               for f in OPTION_FIELDS}
CONFIG_ALIASES = {"in": "inputs", "out": "output", "out_channel": "channel"}
"""Config keys that name a setting or run option another way (the command line's words)."""


def load_config(path: Path | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(flat settings/run options, [cc] table or None) from a TOML file."""
    if path is None:
        return {}, None
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read config {path} ({err.strerror}); check the path") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config {path} is not valid TOML ({err}); fix that line") from err
    cc = data.pop("cc", None)
    if cc is not None and not isinstance(cc, dict):
        raise ConfigError(f"config {path}: 'cc' must be a [cc] table")
    known = {f.name for f in FIELDS} | set(RUN_OPTIONS) | set(CONFIG_ALIASES)
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"config {path}: unknown key {key!r}{did_you_mean(key, known)}; "
                              f"known: {', '.join(sorted(known))}")
        name = CONFIG_ALIASES.get(key, key)
        listed = name in ("inputs", "models_dir") and isinstance(value, str)
        value = [value] if listed else value
        try:  # a config file has real booleans and numbers: "false" is a mistake there
            if name == "clock_out":
                pass  # a port name, or true for the output port: checked in resolve
            elif name in RUN_OPTIONS:
                value = check_option(name, value, strict=True)
            elif name != "listen_gap" or not isinstance(value, str):
                coerce(name, value, strict=True)
        except ConfigError as err:
            raise ConfigError(f"config {path}: {err}") from err
        flat[name] = value
    return flat, cc


def resolve(args: argparse.Namespace) -> tuple[Settings, dict[str, Any], dict[str, Any] | None]:
    """Settings and run options: defaults < config file < command line."""
    flat, cc = load_config(args.config)
    cli = {k: v for k, v in vars(args).items() if v is not None and k not in ("func", "command",
                                                                             "config")}
    merged = with_mode_defaults({**RUN_OPTIONS, **flat, **cli})
    gap = merged.get("listen_gap")
    if isinstance(gap, str):   # '1b', '2bar': checked now, counted in the model's steps later
        parse_steps(gap)
        merged["listen_gap_text"] = merged.pop("listen_gap")
    settings = Settings()
    for f in FIELDS:
        if f.name in merged:
            settings = settings.with_value(f.name, merged.pop(f.name))
    opts = {k: merged[k] for k in (*RUN_OPTIONS, "listen_gap_text") if k in merged}
    clock_out = opts.get("clock_out")
    for name in RUN_OPTIONS:  # the one table: finite numbers in range, real booleans
        if name == "clock_out":  # a port name, '' or true (the output port), checked below
            continue
        try:
            opts[name] = check_option(name, opts[name])
        except ConfigError as err:
            raise ConfigError(f"--{name.replace('_', '-')}: {err}") from err
    if clock_out is True:   # clock_out = true in a config file: on the output port
        clock_out = ""
    elif clock_out is False:
        clock_out = None
    elif clock_out is not None and not isinstance(clock_out, str):
        raise ConfigError(f"--clock-out {clock_out!r}: give a port name, or true for the "
                          "output port")
    opts["clock_out"] = clock_out
    return settings, opts, cc
