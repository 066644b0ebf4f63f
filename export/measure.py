"""Export every trained variant as fp32 and int8 ONNX, score them on validation, time them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from export.corpus import load
from export.onnx_export import export_onnx, quantize, verify
from export.presets import Preset
from export.train import load_checkpoint
from liveduet.cli.model import step_latency_us
from liveduet.core.model import StepModel
from liveduet.offline.evaluate import Score, score_tokens

DRAFT_CARD = {"title": "draft", "corpus": "", "licence": "", "metrics": {}, "rebuild": ""}
ROUNDS = 9
STEPS = 3000


def validation_score(path: Path, pieces: list[np.ndarray],
                     positions: list[np.ndarray] | None = None) -> Score:
    """Teacher-forced validation score of an ONNX file (the ``liveduet eval`` code path); a
    model with a position input gets each piece's own position ids, as in training."""
    model = StepModel(path)
    total = Score()
    for i, frames in enumerate(pieces):
        pos = None if positions is None else positions[i]
        total.add(score_tokens(model, model.codec.interleave(frames), positions=pos))
    return total


def latency(paths: list[Path]) -> dict[str, dict[str, float]]:
    """Per file over ROUNDS interleaved rounds of check-model's timing: median p50 and p99, and
    the least-disturbed round's p99 (other processes' preemptions dominate a shared machine's
    tail, so the minimum over rounds estimates the model's own)."""
    models = {p.name: StepModel(p, threads=1) for p in paths}
    rounds: dict[str, list[dict[str, float]]] = {k: [] for k in models}
    for _ in range(ROUNDS):
        for name, model in models.items():
            rounds[name].append(step_latency_us(model, STEPS))
    return {k: {"p50": float(np.median([r["p50"] for r in v])),
                "p99": float(np.median([r["p99"] for r in v])),
                "p99_min": float(min(r["p99"] for r in v))} for k, v in rounds.items()}


def _export_variant(run: Path, codec: Any, root: Path, variant: str) -> tuple[Path, Path, float]:
    model, _ = load_checkpoint(run / "best.pt")
    fp32 = root / f"{variant}_fp32.onnx"
    int8 = root / f"{variant}_int8.onnx"
    export_onnx(model, codec, DRAFT_CARD, fp32)
    quantize(fp32, int8, codec, DRAFT_CARD)
    return fp32, int8, verify(model, fp32, steps=50)


def measure_candidates(preset: Preset, cache: str, runs: dict[str, tuple[Path, dict[str, Any]]],
                       root: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Table of every candidate and the chosen one: the fastest (median p50, then p99) whose
    validation NLL/token is within 1% of the best fp32 candidate's."""
    corpus = load(cache)
    valid = corpus.split(True)
    valid_pos = corpus.split_positions(True) if corpus.positions is not None else None
    rows: list[dict[str, Any]] = []
    for variant, (run, summary) in runs.items():
        fp32, int8, err = _export_variant(run, corpus.codec, root, variant)
        for kind, path in (("fp32", fp32), ("int8", int8)):
            s = validation_score(path, valid, valid_pos)
            rows.append({"variant": variant, "weights": kind, "path": str(path),
                         "hidden": summary["config"]["hidden"],
                         "layers": summary["config"]["layers"],
                         "nll_per_token": s.nll_per_token, "nll_per_note": s.nll_per_note,
                         "tokens": s.tokens, "notes": s.notes,
                         "nll_per_voice": {v.name: s.voice_nll[i] / max(s.voice_tokens[i], 1)
                                           for i, v in enumerate(corpus.codec.voices)},
                         "bytes": os.path.getsize(path),
                         "onnx_vs_torch_max_abs": err if kind == "fp32" else None})
    lat = latency([Path(r["path"]) for r in rows])
    for r in rows:
        r.update({f"{q}_us": lat[Path(r["path"]).name][q] for q in ("p50", "p99", "p99_min")})
    best = min(r["nll_per_token"] for r in rows if r["weights"] == "fp32")
    eligible = [r for r in rows if r["nll_per_token"] <= best * 1.01]
    choice = min(eligible, key=lambda r: (r["p50_us"], r["p99_us"]))
    (root / "candidates.json").write_text(json.dumps({"rows": rows, "choice": choice}, indent=1))
    return rows, choice
