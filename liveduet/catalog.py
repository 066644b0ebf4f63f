"""Bundled models: list them with their cards and resolve a model named by stem or path."""

from __future__ import annotations

import json
import os
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


def bundled() -> list[Bundled]:
    """Every bundled ``.onnx`` with its card read from its metadata."""
    out = []
    for path in sorted(models_dir().glob("*.onnx")):
        out.append(Bundled(path.stem, path, _card(path)))
    return out


def _card(path: Path) -> dict[str, object]:
    import onnxruntime as ort

    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return dict(json.loads(sess.get_modelmeta().custom_metadata_map.get("liveduet.card", "{}")))
    except Exception:  # a broken bundled file is reported by check-model, not here
        return {}


def resolve(name: str | os.PathLike[str]) -> Path:
    """A model named by path (``x.onnx``, ``./x.onnx``) or by bundled stem (``folk_melody``)."""
    text = os.fspath(name)
    path = Path(text).expanduser()
    if path.exists() or text.endswith(".onnx") or os.sep in text:
        return path
    candidate = models_dir() / f"{text}.onnx"
    if candidate.exists():
        return candidate
    names = ", ".join(b.name for b in bundled()) or "none installed"
    raise LiveduetError(
        f"no model named {text!r}: not a file and not a bundled model ({names}); "
        "give a path to an .onnx file or one of those names"
    )
