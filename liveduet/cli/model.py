"""Subcommands about models (``check-model``, ``models``) and the model loader of every command
that plays one (``run``, ``render``, ``generate``)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from liveduet.core import catalog
from liveduet.core.codec import REST
from liveduet.core.copyindex import load_for
from liveduet.core.model import StepModel
from liveduet.errors import LiveduetError, ModelError


def load_model(name: str | None, mode: str = "call", dirs: Sequence[str] = ()) -> StepModel:
    """A StepModel by name or path (looked up in ``dirs``, the user's and the bundled models);
    the bundled default for ``mode`` when ``name`` is None. Its copy index, which the planner
    reads, is loaded here too, so a live run loads it before the conductor starts."""
    path = catalog.resolve(name or catalog.for_mode(mode), dirs)
    if not path.exists():
        raise LiveduetError(f"model file {path} does not exist; give --model a bundled name "
                            "('liveduet models') or a path to an .onnx file")
    model = StepModel(path)
    load_for(path)
    return model


def register(sub: Any) -> None:
    """Add the model subcommands to ``sub``."""
    p = sub.add_parser("check-model", help="validate a model against the contract and time it")
    p.add_argument("model", help="an .onnx path or a bundled model name")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--steps", type=int, default=2000, help="steps to time (default 2000)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    p.set_defaults(func=check_model)
    p = sub.add_parser("models", help="list the models with their metrics and licence notes",
                       description="List the models found by name (--models-dir folders, the "
                       "user models folder, the bundled ones): title, corpus, validation "
                       "metrics and a one-line licence note.")
    p.add_argument("--json", action="store_true", help="print one JSON list (full cards)")
    p.add_argument("--licence", "--license", action="store_true",
                   help="print each model's full licence notes")
    p.add_argument("--models-dir", action="append", metavar="DIR",
                   help="also list the models in DIR (repeat)")
    p.set_defaults(func=list_models)


def step_latency_us(model: StepModel, steps: int) -> dict[str, float]:
    """Per-step latency p50/p99 in microseconds over ``steps`` timed single steps."""
    model.reset()
    warm = min(200, steps)
    times = np.empty(steps)
    tok = REST
    for i in range(warm + steps):
        t0 = time.perf_counter()
        model.step(tok)
        t1 = time.perf_counter()
        if i >= warm:
            times[i - warm] = (t1 - t0) * 1e6
    model.reset()
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}


def check_model(args: argparse.Namespace) -> int:
    """``liveduet check-model FILE``: 0 for a valid model, 2 with the broken rule otherwise."""
    report: dict[str, Any] = {"model": str(args.model), "ok": False, "errors": []}
    try:
        model = StepModel(catalog.resolve(args.model), threads=args.threads)
    except ModelError as err:
        report["errors"].append({"rule": err.rule, "problem": err.problem, "fix": err.fix,
                                 "message": str(err)})
        _emit(report, args.json, err)
        return 2
    spec = model.spec
    report.update(
        ok=True, path=spec.path, codec=model.codec.to_json(), card=spec.card,
        states=[{"name": s.name, "shape": list(s.shape), "batch_axis": s.batch_axis}
                for s in spec.states],
        conditioning=[{"name": c.name, "size": c.size} for c in spec.conditioning],
        position=None if spec.position is None else {
            "input": spec.position.name, "scheme": spec.position.scheme,
            "size": spec.position.size},
        step_latency_us=step_latency_us(model, max(args.steps, 10)),
        threads=args.threads,
    )
    _emit(report, args.json, None)
    return 0


def _emit(report: dict[str, Any], as_json: bool, err: ModelError | None) -> None:
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return
    if err is not None:
        print(f"INVALID  {err}")
        return
    card, codec, lat = report["card"], report["codec"], report["step_latency_us"]
    print(f"VALID    {report['path']}  (liveduet model contract v1)")
    print(f"title    {card.get('title')}")
    print(f"codec    {codec['name']}: {len(codec['voices'])} voice(s), {codec['steps_per_beat']} "
          f"steps/beat, vocab {codec['vocab_size']}")
    for v in codec["voices"]:
        print(f"  voice  {v['name']:<8} {v['role']:<8} pitches {v['low']}..{v['high']}")
    for s in report["states"]:
        print(f"state    {s['name']} {s['shape']} (batch axis {s['batch_axis']})")
    pos = report["position"]
    print("position " + (f"{pos['input']} ({pos['scheme']}, {pos['size']} ids, fed by liveduet)"
                         if pos else "none"))
    for key in ("corpus", "licence", "metrics", "rebuild"):
        print(f"{key:<8} {card.get(key)}")
    print(f"step     p50 {lat['p50']:.1f} us, p99 {lat['p99']:.1f} us "
          f"({report['threads']} thread(s))")


def list_models(args: argparse.Namespace) -> int:
    """``liveduet models``: the models found by name, with metrics and licence notes."""
    items = catalog.available(args.models_dir or ())
    if args.json:
        print(json.dumps([{"name": b.name, "path": str(b.path), "card": b.card} for b in items],
                         indent=2, sort_keys=True))
        return 0
    if not items:
        folders = catalog.search_dirs(args.models_dir or ())
        print(f"no models in {', '.join(str(d) for d in folders)}")
        return 0
    for b in items:
        card = b.card
        where = "" if b.path.parent == catalog.models_dir() else f"  ({b.path})"
        print(f"{b.name:<16} {card.get('title', '(no card)')}{where}")
        print(f"{'':<16} corpus:  {card.get('corpus', '?')}")
        print(f"{'':<16} metrics: {metrics_line(card.get('metrics'))}")
        licence = str(card.get("licence", "?"))
        print(f"{'':<16} licence: {licence if args.licence else licence_line(licence)}")
    if not args.licence:
        print("full licence notes: liveduet models --licence (or --json)")
    return 0


def metrics_line(metrics: Any) -> str:
    """Validation NLL per note against the n-gram baseline, and the step latency."""
    if not isinstance(metrics, dict):
        return "none recorded"
    parts = []
    nll, base = metrics.get("valid_nll_per_note"), metrics.get("baseline_nll_per_note")
    if isinstance(nll, (int, float)):
        text = f"validation NLL/note {nll:.3f}"
        if isinstance(base, (int, float)) and base:
            text += f" (n-gram baseline {base:.3f}, {100 * (nll - base) / base:+.1f}%)"
        parts.append(text)
    p50, p99 = metrics.get("step_p50_us"), metrics.get("step_p99_us")
    if isinstance(p50, (int, float)) and isinstance(p99, (int, float)):
        parts.append(f"step p50 {p50:.0f} us, p99 {p99:.0f} us")
    return "; ".join(parts) or "none recorded"


def licence_line(text: str, width: int = 100) -> str:
    """The licence notes in one line: a non-commercial restriction first, else the opening."""
    if "non-commercial" in text.lower():
        return ("part of the training data is for NON-COMMERCIAL use only; check before any "
                "commercial use")
    if "restrictions on commercial use" in text.lower():
        return ("music out of copyright, in music21's encodings; music21 notes there may be "
                "restrictions on commercial use")
    first = text.split(";")[0].strip()
    return first if len(first) <= width else first[: width - 3].rstrip() + "..."
