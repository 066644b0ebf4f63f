"""``liveduet eval``: score MIDI files teacher-forced with a model (NLL per token and per note)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from liveduet.core import catalog
from liveduet.core.model import StepModel
from liveduet.offline.evaluate import evaluate_files


def register(sub: Any) -> None:
    """Add the ``eval`` subcommand to ``sub``."""
    p = sub.add_parser("eval", help="score MIDI files teacher-forced: NLL per token and per note")
    p.add_argument("files", nargs="+", metavar="FILE", help="MIDI files to score")
    p.add_argument("--model", default=catalog.DEFAULT_MELODY,
                   help=f"an .onnx path or a bundled model name (default {catalog.DEFAULT_MELODY})")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    """Score ``args.files``; print a table or JSON; 0 on success (errors exit 2 via the CLI)."""
    model = StepModel(catalog.resolve(args.model), threads=args.threads)
    result = evaluate_files(model, args.files)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    print(f"model   {result['title']} ({result['model']})")
    for f in result["files"]:
        print(f"  {f['nll_per_token']:7.4f} nats/token {f['nll_per_note']:8.4f} nats/note "
              f"{f['notes']:6d} notes  {f['file']}")
    print(f"total   {result['nll_per_token']:.4f} nats/token, {result['nll_per_note']:.4f} "
          f"nats/note over {result['notes']} notes, {result['tokens']} tokens")
    if len(result["nll_per_voice"]) > 1:
        print("voices  " + ", ".join(f"{k} {v:.4f}" for k, v in result["nll_per_voice"].items()))
    rep = result["report"]
    print("encode  " + ", ".join(f"{k} {v}" for k, v in rep.items()))
    return 0
