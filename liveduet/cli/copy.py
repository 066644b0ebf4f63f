"""``liveduet check-copy FILE.mid``: the longest verbatim runs of a melody in a model's training
data, with the source piece (see :mod:`liveduet.core.copyindex`)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from liveduet.core import catalog
from liveduet.core.codec import TimedNote
from liveduet.core.copyindex import CopyIndex, Run, index_path
from liveduet.core.motifs import PNote, phrase_of
from liveduet.core.settings import FIELD_BY_NAME
from liveduet.errors import LiveduetError
from liveduet.offline import midifile
from liveduet.offline.render import pick_part

SHOWN = 5


def register(sub: Any) -> None:
    """Add ``check-copy``."""
    p = sub.add_parser("check-copy", help="find verbatim runs of a melody in the training data",
                       description="Report the longest runs of (interval, duration) notes of "
                       "FILE.mid's melody found verbatim in the model's training pieces. Exit 1 "
                       "when a run is longer than --max-copy.")
    p.add_argument("input", type=Path, metavar="FILE.mid")
    p.add_argument("--model", help=f"bundled model name or .onnx path (default: "
                   f"{catalog.DEFAULT_MELODY})")
    p.add_argument("--track", type=int, help="track index of the melody (default: every track "
                   "with notes, highest note on shared onsets)")
    p.add_argument("--max-copy", type=int, default=FIELD_BY_NAME["max_copy"].default,
                   metavar="NOTES", help="longest run that passes (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=check_copy_command)


def melody_of(notes: Sequence[TimedNote], steps_per_beat: int) -> list[PNote]:
    """A melody on the grid from notes in beats (highest pitch on a shared onset)."""
    return phrase_of((round(n.start * steps_per_beat),
                      max(1, round((n.end - n.start) * steps_per_beat)), n.pitch) for n in notes)


def load_index(model: str | None) -> tuple[Path, CopyIndex]:
    """The model path and its copy index (LiveduetError when the model ships none)."""
    path = catalog.resolve(model or catalog.DEFAULT_MELODY)
    idx = index_path(path)
    if not idx.exists():
        raise LiveduetError(f"{path.name} has no copy index ({idx} is missing); build it with "
                            f"python -m export.copyindex {path.stem}")
    return path, CopyIndex.load(idx)


def check_copy_command(args: argparse.Namespace) -> int:
    """Print the longest runs; 1 when one is longer than ``--max-copy``."""
    if args.max_copy < 1:
        raise LiveduetError(f"--max-copy {args.max_copy}; give a number of notes >= 1")
    mid = midifile.load(args.input)
    notes = pick_part(mid, args.track, None) if args.track is not None else _all_notes(mid)
    path, index = load_index(args.model)
    melody = melody_of(notes, index.steps_per_beat)
    runs = index.runs(melody)[:SHOWN]
    longest = runs[0].length if runs else 0
    report = {"file": str(args.input), "model": path.stem, "notes": len(melody),
              "order": index.order, "longest": longest, "max_copy": args.max_copy,
              "runs": [_run_json(r, melody, index.steps_per_beat) for r in runs]}
    print(json.dumps(report, indent=1) if args.json else _text(report))
    return 1 if longest > args.max_copy else 0


def _all_notes(mid: Any) -> list[TimedNote]:
    notes = midifile.read_notes(mid)
    if not notes:
        raise LiveduetError(f"{mid.filename}: no notes; give a MIDI file with a melody")
    return notes


def _run_json(run: Run, melody: Sequence[PNote], spb: int) -> dict[str, Any]:
    first = melody[run.start]
    return {"notes": run.length, "from_note": run.start, "beat": first.onset / spb,
            "source": run.source}


def _text(report: dict[str, Any]) -> str:
    lines = [f"{report['file']}: {report['notes']} notes against {report['model']}'s training "
             f"data; longest verbatim run {report['longest']} notes (max {report['max_copy']})"]
    if not report["runs"]:
        lines.append(f"  no run of {report['order']} or more notes")
    for r in report["runs"]:
        lines.append(f"  {r['notes']:3d} notes from note {r['from_note']} (beat {r['beat']:g}):"
                     f" {r['source']}")
    return "\n".join(lines)
