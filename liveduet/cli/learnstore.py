"""MIDI-learn bindings that outlive the run: the ``[cc]`` table of a TOML file.

A learnt binding is written to the config file the run was started with (``--config``), else
to ``learn.toml`` in the user config folder, which a run without a ``[cc]`` table reads back.
Only the ``[cc]`` section of the file is rewritten; every other line stays as it was.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from liveduet.core import catalog
from liveduet.errors import ConfigError

_HEADER = re.compile(r"^\s*\[")
_CC_HEADER = re.compile(r"^\s*\[\s*cc\s*\]\s*(#.*)?$")


def user_learn_file() -> Path:
    """Where learnt bindings go when the run has no config file."""
    return catalog.user_dir("config") / "learn.toml"


def target(config: Path | None) -> Path:
    """The file that learnt bindings are saved to."""
    return config if config is not None else user_learn_file()


def load_user_cc() -> dict[str, Any] | None:
    """The ``[cc]`` table of the user's learn file, or None when there is none."""
    path = user_learn_file()
    if not path.is_file():
        return None
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the tomli backport, a dependency there
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("cc")
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read the saved MIDI-learn bindings {path} ({err}); fix or "
                          "delete that file") from err
    return table if isinstance(table, dict) else None


def replace_cc_section(text: str, cc_text: str) -> str:
    """``text`` with its ``[cc]`` section (if any) replaced by ``cc_text`` at the end."""
    kept: list[str] = []
    inside = False
    for line in text.splitlines():
        if _CC_HEADER.match(line):
            inside = True
            continue
        if inside and _HEADER.match(line):
            inside = False
        if not inside:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    head = "\n".join(kept)
    return (head + "\n\n" if head else "") + cc_text


def save(path: Path, cc_text: str) -> None:
    """Write ``cc_text`` (a ``[cc]`` section) into ``path``, atomically; ConfigError if not."""
    try:
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(replace_cc_section(old, cc_text), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        raise ConfigError(f"cannot save the MIDI-learn bindings to {path} ({err.strerror}); "
                          "they last until the run ends") from err
