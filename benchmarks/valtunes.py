"""Validation-split folk tunes with their metre, for the musical benchmarks.

Tunes come from music21's bundled ABC collections (the melody model's corpus) and are taken only
from the validation split (``export.corpus.is_valid_piece``), so no figure is measured on a
tune the model trained on. A tune's own time signature (its ``M:`` line) is kept, and a pickup
bar is placed at the end of bar 0, so bar lines fall on multiples of the bar length as in a
MIDI file exported from a DAW. Parsed tunes are cached in ``export/runs/bench/``.

Needs the ``train`` extra (music21).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from liveduet.core.codec import TimedNote
from liveduet.core.metre import Metre, parse_metre

CACHE = Path(__file__).resolve().parents[1] / "export" / "runs" / "bench"
METRE_LINE = re.compile(r"^M:\s*(\S+)", re.MULTILINE)
MAX_BARS = 16


@dataclass(frozen=True)
class Tune:
    """A validation tune: id, metre, notes in quarter beats (bar 0 starts at 0) and bars."""

    piece_id: str
    metre: str
    notes: tuple[TimedNote, ...]
    bars: int

    @property
    def meter(self) -> Metre:
        """The tune's metre."""
        return parse_metre(self.metre)


def _header_metre(text: str) -> str | None:
    found = METRE_LINE.findall(text)
    if len(set(found)) != 1:  # no metre, or a change inside the tune
        return None
    label = found[0].replace("C|", "2/2").replace("C", "4/4")
    return label if re.fullmatch(r"\d+/\d+", label) else None


def _parse(text: str, metre: Metre) -> tuple[list[TimedNote], int] | None:
    from music21 import converter

    part = converter.parse(text, format="abc").parts[0]
    measures = list(part.getElementsByClass("Measure"))
    if not measures:
        return None
    bar_q = metre.quarters_per_bar
    first = float(measures[0].duration.quarterLength)
    shift = bar_q - first if 0 < first < bar_q - 1e-6 else 0.0
    notes = []
    for n in part.stripTies().flatten().notes:
        ql = float(n.quarterLength)
        if ql <= 0:
            continue
        start = float(n.offset) + shift
        notes.append(TimedNote(start, max(p.midi for p in n.pitches), start + ql))
    if len(notes) < 16:
        return None
    end_bar = int(max(n.end for n in notes) // bar_q)
    bars = min(MAX_BARS, end_bar)
    kept = [n for n in notes if n.start < bars * bar_q]
    return [TimedNote(n.start, n.pitch, min(n.end, bars * bar_q)) for n in kept], bars


def load_tunes(metres: tuple[str, ...] = ("4/4", "3/4", "6/8"), per_metre: int = 20
               ) -> list[Tune]:
    """Up to ``per_metre`` validation tunes of each metre, in a fixed order (cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"tunes_{'_'.join(m.replace('/', '-') for m in metres)}_{per_metre}.json"
    if path.exists():
        rows = json.loads(path.read_text())
        return [Tune(r["id"], r["metre"], tuple(TimedNote(*n) for n in r["notes"]), r["bars"])
                for r in rows]
    from export.corpus import is_valid_piece, music21_tasks

    found: dict[str, list[Tune]] = {m: [] for m in metres}
    tasks = sorted(music21_tasks("melody"),  # a fixed order that mixes the collections
                   key=lambda t: hashlib.sha1(t.piece_id.encode()).digest())
    for task in tasks:
        if not is_valid_piece(task.piece_id):
            continue
        label = _header_metre(task.text)
        if label not in found or len(found[label]) >= per_metre:
            continue
        try:
            parsed = _parse(task.text, parse_metre(label))
        except Exception:  # music21 raises many types on odd ABC; such tunes are skipped
            continue
        if parsed is not None:
            notes, bars = parsed
            found[label].append(Tune(task.piece_id, label, tuple(notes), bars))
        if all(len(v) >= per_metre for v in found.values()):
            break
    tunes = [t for m in metres for t in found[m]]
    path.write_text(json.dumps([{"id": t.piece_id, "metre": t.metre, "bars": t.bars,
                                 "notes": [[n.start, n.pitch, n.end] for n in t.notes]}
                                for t in tunes]))
    return tunes
