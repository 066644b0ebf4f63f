"""One command per model: corpus -> n-gram baseline -> train -> export -> evaluate -> card.

    python -m export.build folk_melody
    python -m export.build chorale_satb
    python -m export.build folk_melody --midi-dir ~/my_tunes --name my_tunes   # your own MIDI

Every stage is resumable: a cached corpus, a finished run (``summary.json``) or a partly
trained run (``last.pt``, continued with ``--resume``) is reused. Quality figures are measured
on the validation split only, through the exported ONNX file and :mod:`liveduet.offline.evaluate`
(the same code as ``liveduet eval``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from export import copyindex
from export import corpus as corpus_mod
from export.card import write_card
from export.measure import measure_candidates
from export.ngram import evaluate_orders
from export.presets import PRESETS, Preset
from export.train import parse_args, train

ROOT = Path(__file__).resolve().parent.parent


def rebuild_command(preset: Preset, name: str, midi_dir: str | None) -> str:
    """The exact command that rebuilds this model."""
    cmd = f"python -m export.build {preset.name}"
    if midi_dir:
        cmd += f" --midi-dir {midi_dir} --name {name}"
    return cmd


def stage_corpus(preset: Preset, name: str, midi_dir: str | None) -> str:
    """Cache name of the tokenised corpus, building it if missing."""
    cache = name if midi_dir else preset.kind
    if not (corpus_mod.RUNS / "corpus" / f"{cache}.npz").exists():
        corpus_mod.build(preset.kind, cache, midi_dir)
    return cache


def stage_baseline(preset: Preset, cache: str, run_root: Path) -> dict[str, Any]:
    """N-gram scores per order (fit on train, scored on valid) and the best order."""
    path = run_root / "baseline.json"
    if path.exists():
        return json.loads(path.read_text())
    t0 = time.time()
    orders = evaluate_orders(cache, preset.ngram_orders)
    best = min(orders, key=lambda k: orders[k]["nll_per_note"])
    result = {"orders": orders, "best_order": int(best), "best": orders[best],
              "seconds": round(time.time() - t0, 1)}
    path.write_text(json.dumps(result, indent=1))
    return result


def stage_train(cache: str, run: Path, argv: list[str], minutes: float | None
                ) -> dict[str, Any]:
    """Train one variant (or reuse its finished run)."""
    summary = run / "summary.json"
    if summary.exists():
        return json.loads(summary.read_text())
    args = parse_args(["--corpus", cache, "--run", str(run), "--resume", *argv])
    if minutes is not None:
        args.minutes = minutes
    return train(args)


def build(name: str, midi_dir: str | None, out: Path, minutes: float | None) -> Path:
    """Run every stage for preset ``name``; return the written model path."""
    preset = PRESETS[name]
    model_name = out.stem if midi_dir else name
    run_root = corpus_mod.RUNS / model_name
    run_root.mkdir(parents=True, exist_ok=True)
    cache = stage_corpus(preset, model_name, midi_dir)
    baseline = stage_baseline(preset, cache, run_root)
    runs = {}
    for variant, argv in preset.runs.items():
        run = corpus_mod.RUNS / f"{model_name}_{variant}"
        args = [a.format(run_prefix=corpus_mod.RUNS / f"{model_name}_") for a in argv]
        runs[variant] = (run, stage_train(cache, run, args, minutes))
    shipped = {v: runs[v] for v in preset.ship}
    table, choice = measure_candidates(preset, cache, shipped, run_root)
    rebuild = rebuild_command(preset, model_name, midi_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_card(preset, cache, choice, table, baseline, runs, rebuild, out,
               user_corpus=midi_dir)
    if preset.kind == "melody" and not midi_dir:
        copyindex.build(name, out=out.parent)  # the copy guard's index, beside the model
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(prog="python -m export.build", description=__doc__.split("\n")[0])
    p.add_argument("model", choices=sorted(PRESETS), help="which preset to build")
    p.add_argument("--midi-dir", help="train on this MIDI folder instead of the music21 corpus")
    p.add_argument("--name", help="name of the model built from --midi-dir")
    p.add_argument("--out", help="output .onnx (default models/<model>.onnx, or "
                                 "export/runs/<name>/<name>.onnx with --midi-dir)")
    p.add_argument("--minutes", type=float, help="override each variant's training budget")
    args = p.parse_args(argv)
    if args.midi_dir and not args.name:
        p.error("--midi-dir needs --name (the new model's name)")
    if args.out:
        out = Path(args.out)
    elif args.midi_dir:
        out = corpus_mod.RUNS / args.name / f"{args.name}.onnx"
    else:
        out = ROOT / "models" / f"{args.model}.onnx"
    path = build(args.model, args.midi_dir, out, args.minutes)
    print(f"wrote {path} and {path.with_suffix('.md')}")
    if shutil.which("liveduet"):
        print(f"check it: liveduet check-model {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
