"""Voice leading of ``harmonize`` against Bach on the validation-split chorales.

Every validation-split Bach chorale of the music21 corpus (``export.corpus.is_valid_piece``, the
pieces the shipped chorale model never trained on) gives its soprano to the real engine in
virtual time (``liveduet.offline.render``), in ``harmonize`` mode with the bundled
``chorale_satb``; the alto, tenor and bass it plays are measured with
:mod:`liveduet.core.voiceleading` (DESIGN.md §7 definitions), beside Bach's own parts. One
column per ``--voice-leading`` setting; the same seed gives the same table.

    python benchmarks/bench_voiceleading.py [--seed 1] [--pieces N] [--modes off,guided,strict]
        [--json FILE]

Needs music21 (the ``export`` extra).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from liveduet.core import catalog  # noqa: E402
from liveduet.core.codec import TimedNote  # noqa: E402
from liveduet.core.engine import Engine  # noqa: E402
from liveduet.core.metre import Metre, parse_metre  # noqa: E402
from liveduet.core.model import StepModel  # noqa: E402
from liveduet.core.settings import Settings, with_mode_defaults  # noqa: E402
from liveduet.core.voiceleading import VOICES, Report, analyse  # noqa: E402
from liveduet.offline.render import render  # noqa: E402

Piece = tuple[str, Metre, list[list[TimedNote]]]
ROWS = (
    ("parallel 5ths + 8ves per 100 transitions", "parallels"),
    ("  fifths / octaves", "fifths_octaves"),
    ("contrary-motion 5ths/8ves per 100", "contrary"),
    ("beat-to-beat 5ths+8ves per 100 beat moves", "beat_parallels"),
    ("stepwise alto / tenor / bass", "stepwise"),
    ("beats with a semitone clash", "clash"),
    ("A/T/B notes in the soprano's key", "in_key"),
    ("beats forming a triad or V7", "chords"),
    ("all four voices moving the same way", "same_way"),
    ("crossings / overlaps / spacing > 8ve", "crossings"),
    ("notes out of range", "out_of_range"),
)


def chorales(limit: int | None) -> list[Piece]:
    """(id, metre, [S, A, T, B] notes) of every validation-split chorale."""
    from export.corpus import _score_notes, is_valid_piece, music21_tasks

    out: list[Piece] = []
    for task in music21_tasks("chorale"):
        if not is_valid_piece(task.piece_id):
            continue
        found = _score_notes("chorale", task)
        if found is None:
            continue
        notes, spans, _ = found
        metre = parse_metre(spans[0][2] if spans else "4/4")
        # a pickup goes at the end of bar 0, as a DAW writes it: bar lines every bar from 0
        shift = (-spans[0][1] % metre.bar_steps) / metre.steps_per_quarter if spans else 0.0
        voices = [[TimedNote(n.start + shift, n.pitch, n.end + shift, n.voice, n.velocity)
                   for n in notes if n.voice == v] for v in range(4)]
        out.append((task.piece_id, metre, voices))
        if limit is not None and len(out) >= limit:
            break
    return out


def harmonise(model: StepModel, soprano: list[TimedNote], seed: int, mode: str
              ) -> list[list[TimedNote]]:
    """The engine's alto, tenor and bass against ``soprano`` (virtual time)."""
    values = with_mode_defaults({"mode": "harmonize", "seed": seed, "thru": False,
                                 "voice_leading": mode})
    engine = Engine(model, Settings.from_dict(values), lookahead=0)
    duet = render(engine, soprano)
    return [soprano, *(duet.machine.get(v, []) for v in (1, 2, 3))]


class Totals:
    """Sums of the counts of many reports (pooled over pieces, not averaged)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.moves = {v: [0, 0] for v in VOICES}
        self.keyed = [0.0, 0]

    def add(self, rep: Report, voices: Sequence[Sequence[TimedNote]]) -> None:
        for name in ("transitions", "beats", "parallel_fifths", "parallel_octaves",
                     "contrary_fifths", "contrary_octaves", "beat_transitions", "beat_parallels",
                     "clash_beats", "chord_beats", "same_direction", "crossings", "overlaps",
                     "spacing", "out_of_range"):
            self.sums[name] = self.sums.get(name, 0) + getattr(rep, name)
        for v, name in enumerate(VOICES):
            moves = max(len(voices[v]) - 1, 0)
            self.moves[name][0] += round(rep.stepwise[name] * moves)
            self.moves[name][1] += moves
        lower = sum(len(p) for p in voices[1:])
        self.keyed[0] += rep.in_key * lower
        self.keyed[1] += lower

    def row(self) -> dict[str, Any]:
        s = self.sums
        t, b = max(s["transitions"], 1), max(s["beats"], 1)
        step = {v: 100 * m / max(n, 1) for v, (m, n) in self.moves.items()}
        return {
            "parallels": 100 * (s["parallel_fifths"] + s["parallel_octaves"]) / t,
            "fifths_octaves": (100 * s["parallel_fifths"] / t, 100 * s["parallel_octaves"] / t),
            "contrary": 100 * (s["contrary_fifths"] + s["contrary_octaves"]) / t,
            "beat_parallels": 100 * s["beat_parallels"] / max(s["beat_transitions"], 1),
            "stepwise": (step["alto"], step["tenor"], step["bass"]),
            "clash": 100 * s["clash_beats"] / b,
            "in_key": 100 * self.keyed[0] / max(self.keyed[1], 1),
            "chords": 100 * s["chord_beats"] / b,
            "same_way": 100 * s["same_direction"] / t,
            "crossings": (int(s["crossings"]), int(s["overlaps"]), int(s["spacing"])),
            "out_of_range": int(s["out_of_range"]),
        }


def cell(value: Any, key: str) -> str:
    if key in ("crossings",):
        return " / ".join(str(x) for x in value)
    if key == "out_of_range":
        return str(value)
    if isinstance(value, tuple):
        return " / ".join(f"{x:.{0 if key == 'stepwise' else 2}f}" for x in value) + (
            "%" if key == "stepwise" else "")
    pct = key not in ("parallels", "contrary", "beat_parallels")
    return f"{value:.1f}%" if pct else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pieces", type=int, help="only the first N validation chorales")
    ap.add_argument("--modes", default="off,guided,strict")
    ap.add_argument("--json", type=Path, help="also write the table as JSON")
    args = ap.parse_args(argv)
    modes = args.modes.split(",")
    pieces = chorales(args.pieces)
    model = StepModel(catalog.resolve(catalog.DEFAULT_HARMONY))
    totals = {"Bach": Totals(), **{m: Totals() for m in modes}}
    t0 = time.perf_counter()
    for _pid, metre, voices in pieces:
        totals["Bach"].add(analyse(voices, metre), voices)
        for mode in modes:
            parts = harmonise(model, voices[0], args.seed, mode)
            totals[mode].add(analyse(parts, metre), parts)
    rows = {name: t.row() for name, t in totals.items()}
    print(f"{len(pieces)} validation-split chorales (music21 corpus), seed {args.seed}, model "
          f"{model.title}; {time.perf_counter() - t0:.0f} s")
    head = ["measure", *(n if n == "Bach" else f"liveduet {n}" for n in rows)]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for label, key in ROWS:
        print(f"| {label} | " + " | ".join(cell(r[key], key) for r in rows.values()) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
