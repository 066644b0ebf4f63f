"""Models by name: the bundled ones, a user models folder and ``--models-dir`` folders.

A name is looked up in the folders given on the command line, then the user models folder
(:func:`user_models_dir`), then the bundled models; a path to an ``.onnx`` file is used as is.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from liveduet.errors import LiveduetError

DEFAULT_MELODY = "folk_melody"
DEFAULT_HARMONY = "chorale_satb"


@dataclass(frozen=True)
class Bundled:
    """A model shipped with the package: its stem, file and card (empty if unreadable)."""

    name: str
    path: Path
    card: dict[str, object]


def models_dir() -> Path:
    """The folder of bundled models (``models/`` in the repo, ``liveduet/data`` installed)."""
    return Path(str(resources.files("liveduet.data")))


def user_dir(kind: str, platform: str = sys.platform) -> Path:
    """The per-user folder of ``kind`` ('config' or 'data') for liveduet on ``platform``.

    Linux and others follow XDG (``$XDG_CONFIG_HOME``/``$XDG_DATA_HOME``, else ~/.config and
    ~/.local/share); macOS uses ~/Library/Application Support; Windows %APPDATA%.
    """
    home = Path.home()
    if platform == "darwin":
        return home / "Library" / "Application Support" / "liveduet"
    if platform.startswith(("win", "cygwin")):
        return Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming") / "liveduet"
    if kind == "config":
        base = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(home / ".local" / "share")
    return Path(base) / "liveduet"


def user_models_dir() -> Path:
    """The per-user models folder: ``.onnx`` files dropped there are found by name."""
    return user_dir("data") / "models"


def search_dirs(extra: Sequence[str | os.PathLike[str]] = ()) -> list[Path]:
    """Folders searched for a model named by stem, first match wins."""
    return [*(Path(d).expanduser() for d in extra), user_models_dir(), models_dir()]


def bundled() -> list[Bundled]:
    """Every bundled ``.onnx`` with its card read from its metadata."""
    return [Bundled(path.stem, path, _card(path)) for path in sorted(models_dir().glob("*.onnx"))]


def available(extra: Sequence[str | os.PathLike[str]] = ()) -> list[Bundled]:
    """Every model found by name: the ``extra`` folders, the user folder, then the bundled ones
    (a name found earlier hides a later one of the same name)."""
    seen: dict[str, Bundled] = {}
    for folder in search_dirs(extra):
        for path in sorted(folder.glob("*.onnx")) if folder.is_dir() else ():
            if path.stem not in seen:
                seen[path.stem] = Bundled(path.stem, path, _card(path))
    return list(seen.values())


def _card(path: Path) -> dict[str, object]:
    import onnxruntime as ort

    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return dict(json.loads(sess.get_modelmeta().custom_metadata_map.get("liveduet.card", "{}")))
    except Exception:  # a broken bundled file is reported by check-model, not here
        return {}


def resolve(name: str | os.PathLike[str],
            extra: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """A model named by path (``x.onnx``, ``./x.onnx``) or by stem (``folk_melody``), looked up
    in ``extra`` folders, the user models folder and the bundled models."""
    text = os.fspath(name)
    path = Path(text).expanduser()
    if path.exists() or text.endswith(".onnx") or os.sep in text:
        return path
    for folder in search_dirs(extra):
        candidate = folder / f"{text}.onnx"
        if candidate.exists():
            return candidate
    from liveduet.core.settings import did_you_mean

    known = [p.stem for d in search_dirs(extra) if d.is_dir() for p in d.glob("*.onnx")]
    names = ", ".join(sorted(set(known))) or "none installed"
    raise LiveduetError(
        f"no model named {text!r}{did_you_mean(text, known)}: not a file and not in "
        f"{', '.join(str(d) for d in search_dirs(extra)[:-1])} or the bundled models ({names}); "
        "give a path to an .onnx file or one of those names"
    )


def for_mode(mode: str) -> str:
    """The bundled model that plays ``mode``: the harmoniser for harmonize, else the melody."""
    return DEFAULT_HARMONY if mode == "harmonize" else DEFAULT_MELODY
