"""Corpus loading: music21 collections or a MIDI folder -> tokenised frames, cached once.

Only the allowed music21 collections are read: ``essenFolksong``, ``ryansMammoth``, ``airdsAirs``,
``miscFolk`` (melody) and ``bach`` (chorales). Every piece goes through :mod:`liveduet.core.codec`
(the same codec the runtime uses), is split train/valid by a stable hash of its id, and exact
duplicate token streams are dropped (so a tune can never be both trained on and validated).

Every grid step also gets its ``metre-v1`` position id (:mod:`liveduet.core.metre`) from the piece's
own time signatures and music21's measures: a bar line is a measure's offset, except for a
pickup (a short measure that opens the piece, or that follows a short measure which was not
itself a pickup: a section ending mid-bar, then the next section's upbeat), whose steps are
counted back from its end so they get the positions of a bar's last steps. The cache keeps
these positions next to the frames and the corpus figures the model card quotes (note-ons per
beat of the metre, note lengths in beats).

Usage::

    python -m export.corpus melody            # -> export/runs/corpus/melody.{npz,json}
    python -m export.corpus chorale
    python -m export.corpus melody --midi-dir ~/my_tunes --name mine
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liveduet.core.codec import (
    HOLD,
    N_SPECIAL,
    EncodeReport,
    GridCodec,
    TimedNote,
    chorale_codec,
    melody_codec,
)
from liveduet.core.metre import MAX_SUB, Metre
from liveduet.errors import ConfigError

RUNS = Path(__file__).resolve().parent / "runs"
MELODY_COLLECTIONS = ("essenFolksong", "ryansMammoth", "airdsAirs", "miscFolk")
CHORALE_COLLECTIONS = ("bach",)
CHORALE_PARTS = ("soprano", "alto", "tenor", "bass")
VALID_PERMILLE = 80  # ~8% of pieces validate
MIN_NOTES = 8
DEFAULT_METRE = "4/4"  # music21's own default when a piece names no time signature
FIGURE_METRES = ("4/4", "3/4", "6/8", "2/2", "2/4")  # the melody metres the card reports


def codec_for(kind: str) -> GridCodec:
    """The codec of a corpus kind: ``melody`` or ``chorale``."""
    if kind == "melody":
        return melody_codec(48, 84)
    if kind == "chorale":
        return chorale_codec()
    raise ValueError(f"unknown corpus kind {kind!r}; use 'melody' or 'chorale'")


def is_valid_piece(piece_id: str) -> bool:
    """Stable split: sha1 of the piece id decides, ~8% of pieces are validation."""
    digest = hashlib.sha1(piece_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 1000 < VALID_PERMILLE


@dataclass(frozen=True)
class Task:
    """One piece to tokenise: an id, its collection and where its text/file is."""

    piece_id: str
    collection: str
    path: str
    text: str = ""  # an ABC tune's own text (one tune of a multi-tune file)


@dataclass
class Stats:
    """Per-collection counts of what happened to the pieces."""

    pieces: int = 0
    used: int = 0
    failed: int = 0
    too_short: int = 0
    wrong_parts: int = 0
    duplicates: int = 0
    steps: int = 0
    time_signatures: dict[str, int] = field(default_factory=dict)  # pieces naming each
    report: dict[str, int] = field(default_factory=lambda: asdict(EncodeReport()))


# -- finding pieces ---------------------------------------------------------------------------
def corpus_root() -> Path:
    """music21's bundled corpus folder."""
    import music21

    return Path(str(music21.common.getCorpusFilePath()))


def abc_tunes(path: Path) -> Iterator[tuple[str, str]]:
    """(tune number, ABC text) for each ``X:`` tune of a file, with the file header prepended."""
    text = path.read_text(encoding="latin-1")
    chunks = ("\n" + text).split("\nX:")
    header = "\n".join(ln for ln in chunks[0].splitlines() if not ln.startswith("%"))
    for i, chunk in enumerate(chunks[1:]):
        number = chunk.split("\n", 1)[0].strip() or str(i)
        yield f"{number}#{i}", f"{header}\nX:{chunk}"


def music21_tasks(kind: str) -> list[Task]:
    """Every piece of the allowed collections for ``kind``."""
    root = corpus_root()
    tasks: list[Task] = []
    if kind == "melody":
        for coll in MELODY_COLLECTIONS:
            for path in sorted((root / coll).glob("*.abc")):
                rel = path.relative_to(root).as_posix()
                tasks.extend(Task(f"{rel}#{num}", coll, str(path), text)
                             for num, text in abc_tunes(path))
    else:
        for path in sorted((root / "bach").iterdir()):
            if path.suffix in (".mxl", ".xml", ".krn"):
                tasks.append(Task(path.relative_to(root).as_posix(), "bach", str(path)))
    return tasks


def midi_tasks(folder: str | os.PathLike[str]) -> list[Task]:
    """Every ``.mid``/``.midi`` file under ``folder`` (recursively)."""
    root = Path(folder).expanduser()
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    return [Task(p.relative_to(root).as_posix(), root.name, str(p)) for p in files]


# -- tokenising one piece -----------------------------------------------------------------------
def _part_notes(part: Any, voice: int) -> list[TimedNote]:
    """Notes of one music21 part in beats; ties merged, grace notes skipped, chords -> top."""
    out = []
    for n in part.stripTies().flatten().notes:
        ql = float(n.quarterLength)
        if ql <= 0:
            continue
        start = float(n.offset)
        pitch = max(p.midi for p in n.pitches)
        out.append(TimedNote(start, pitch, start + ql, voice))
    return out


def _chorale_parts(score: Any) -> list[Any] | None:
    by_name = {}
    for p in score.parts:
        name = str(p.partName or p.id or "").strip().lower()
        by_name.setdefault(name, p)
    parts = [by_name.get(n) for n in CHORALE_PARTS]
    if all(p is not None for p in parts):
        return parts
    return list(score.parts) if len(score.parts) == 4 else None


def _measure_spans(part: Any, spq: int) -> list[tuple[int, int, str]]:
    """``(start step, bar-line step, time signature)`` of every measure of a part.

    The bar-line step is the measure's own start, or for a pickup (a short measure opening the
    piece, or one right after a short measure that was not itself a pickup) its end minus one
    bar.
    """
    measures = list(part.getElementsByClass("Measure"))
    spans: list[tuple[int, int, str]] = []
    ts_label = ""
    after_short = True  # the opening counts as following a short measure
    for i, m in enumerate(measures):
        ts = m.timeSignature
        if ts is not None:
            ts_label = f"{ts.numerator}/{ts.denominator}"
        label = ts_label or DEFAULT_METRE
        start_q = float(m.offset)
        end_q = float(measures[i + 1].offset) if i + 1 < len(measures) else (
            start_q + float(m.duration.quarterLength))
        start, end = round(start_q * spq), round(end_q * spq)
        bar = _metre(label, spq).bar_steps
        short = 0 < end - start < bar
        # a pickup: a short first measure, or a short one right after a short measure that
        # was not itself a pickup (a section ending mid-bar, then the next one's upbeat)
        pickup = short and after_short
        anchor = end - bar if pickup else start
        after_short = short and not pickup
        spans.append((start, anchor, label))
    if not spans:  # music21 leaves very short ABC tunes unbarred: bars from the first note
        first = next(iter(part.recurse().getElementsByClass("TimeSignature")), None)
        if first is not None:
            spans.append((0, 0, f"{first.numerator}/{first.denominator}"))
    return spans


def _metre(label: str, spq: int) -> Metre:
    """The Metre of a time-signature label; labels the grid cannot hold fall back to 4/4."""
    num, _, den = label.partition("/")
    try:
        return Metre(int(num), int(den), spq)
    except (ValueError, ConfigError):
        return Metre(4, 4, spq)


def positions_from_spans(spans: list[tuple[int, int, str]], n_steps: int, spq: int
                         ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per-step ``metre-v1`` position ids and metre indices (into the returned labels)."""
    labels: list[str] = []
    pos = np.zeros(n_steps, dtype=np.int64)
    which = np.zeros(n_steps, dtype=np.int64)
    if not spans:
        spans = [(0, 0, DEFAULT_METRE)]
    for i, (start, anchor, label) in enumerate(spans):
        a = 0 if i == 0 else start  # steps before the first measure belong to it
        b = spans[i + 1][0] if i + 1 < len(spans) else n_steps
        if b <= a or a >= n_steps:
            continue
        b = min(b, n_steps)
        metre = _metre(label, spq)
        k = (np.arange(a, b) - anchor) % metre.bar_steps
        beat, sub = np.divmod(k, metre.beat_steps)
        pos[a:b] = np.minimum(beat, 7) * MAX_SUB + np.minimum(sub, MAX_SUB - 1)
        if metre.label not in labels:
            labels.append(metre.label)
        which[a:b] = labels.index(metre.label)
    return pos, which, labels


def piece_figures(codec: GridCodec, frames: np.ndarray, which: np.ndarray, labels: list[str]
                  ) -> dict[str, dict[str, Any]]:
    """Per ``voice|metre``: note-ons, beats of that metre, and every note's length in beats."""
    spq = codec.steps_per_beat
    beat_steps = np.array([_metre(lb, spq).beat_steps for lb in labels] or [spq], dtype=float)
    step_beats = 1.0 / beat_steps[which]
    out: dict[str, dict[str, Any]] = {}
    for v, voice in enumerate(codec.voices):
        col = frames[:, v]
        onsets = np.flatnonzero(col >= N_SPECIAL)
        held = np.append(col == HOLD, False)
        lengths = np.ones(onsets.size, dtype=np.int64)
        for j, s in enumerate(onsets.tolist()):  # a note lasts its onset plus its HOLDs
            e = s + 1
            while held[e]:
                e += 1
            lengths[j] = e - s
        for m, label in enumerate(labels):
            in_m = which == m
            sel = in_m[onsets]
            out[f"{voice.name}|{label}"] = {
                "notes": int(sel.sum()), "beats": float(step_beats[in_m].sum()),
                "hold_beats": (lengths[sel] / beat_steps[m]).astype(np.float32),
            }
    return out


def _score_notes(kind: str, task: Task) -> tuple[list[TimedNote], list[tuple[int, int, str]],
                                                  list[str]] | None:
    from music21 import converter

    source = (task.text, "abc") if task.text else (task.path, None)
    score = converter.parse(source[0], format=source[1])
    spq = codec_for(kind).steps_per_beat
    if kind == "melody":
        if not score.parts:
            return [], [], []
        parts = [score.parts[0]]
    else:
        found = _chorale_parts(score)
        if found is None:
            return None
        parts = found
    spans = _measure_spans(parts[0], spq)
    named = sorted({ts.ratioString for ts in parts[0].recurse().getElementsByClass(
        "TimeSignature")})
    return [n for v, p in enumerate(parts) for n in _part_notes(p, v)], spans, named


def _midi_notes(codec: GridCodec, task: Task) -> tuple[np.ndarray, EncodeReport]:
    from liveduet.offline import midifile

    return midifile.midi_to_frames(codec, midifile.load(task.path))


def tokenise(args: tuple[str, Task, bool]) -> dict[str, Any]:
    """Worker: one task -> ``{"id", "status", "frames", "positions", "report", ...}``.

    Never raises. MIDI files carry no measures here, so their positions assume 4/4 from step 0.
    """
    kind, task, is_midi = args
    codec = codec_for(kind)
    result: dict[str, Any] = {"id": task.piece_id, "collection": task.collection}
    spans: list[tuple[int, int, str]] = []
    named: list[str] = []
    try:
        if is_midi:
            frames, report = _midi_notes(codec, task)
        else:
            parsed = _score_notes(kind, task)
            if parsed is None:
                return {**result, "status": "wrong_parts"}
            timed, spans, named = parsed
            notes, report = codec.quantize(timed)
            frames, enc = codec.encode(notes)
            report.merge(enc)
            report.notes_in = len(timed)
        positions, which, labels = positions_from_spans(spans, len(frames), codec.steps_per_beat)
        figures = piece_figures(codec, frames, which, labels)
    except Exception as err:  # music21/mido raise many unrelated types on bad input
        return {**result, "status": "failed", "error": f"{type(err).__name__}: {err}"[:200]}
    n_notes = int((frames >= 3).sum())
    if n_notes < MIN_NOTES * codec.n_voices:
        return {**result, "status": "too_short"}
    return {**result, "status": "ok", "frames": frames.astype(np.int8),
            "positions": positions.astype(np.int8), "report": asdict(report),
            "time_signatures": named or ["none"], "figures": figures}


# -- the cache ----------------------------------------------------------------------------------
@dataclass
class Corpus:
    """Tokenised pieces of one corpus: frames per piece, ids, split flags and the summary."""

    kind: str
    pieces: list[np.ndarray]
    ids: list[str]
    valid: np.ndarray
    summary: dict[str, Any]
    positions: list[np.ndarray] | None = None  # metre-v1 id per step; None in an old cache

    @property
    def codec(self) -> GridCodec:
        """The codec the frames are in."""
        return codec_for(self.kind)

    def split(self, valid: bool) -> list[np.ndarray]:
        """Frames of the training (``valid=False``) or validation pieces."""
        return [p for p, v in zip(self.pieces, self.valid, strict=True) if bool(v) == valid]

    def split_positions(self, valid: bool) -> list[np.ndarray]:
        """Position ids per step of the pieces :meth:`split` returns (same order)."""
        if self.positions is None:
            raise FileNotFoundError(f"the {self.kind} cache has no positions; rebuild it: "
                                    f"python -m export.corpus {self.kind}")
        return [p for p, v in zip(self.positions, self.valid, strict=True) if bool(v) == valid]


class _Serial:
    """A one-process stand-in for ``multiprocessing.Pool`` (``workers=1``)."""

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def imap(self, fn: Any, jobs: list[Any], chunksize: int = 1) -> Iterator[Any]:
        return map(fn, jobs)


def _collect(kind: str, tasks: list[Task], is_midi: bool, workers: int
             ) -> tuple[list[dict[str, Any]], dict[str, Stats]]:
    from tqdm import tqdm

    stats: dict[str, Stats] = {}
    results = []
    jobs = [(kind, t, is_midi) for t in tasks]
    with mp.get_context("fork").Pool(workers) if workers > 1 else _Serial() as pool:
        it = pool.imap(tokenise, jobs, chunksize=8)
        for res in tqdm(it, total=len(jobs), desc=f"tokenise {kind}", mininterval=5):
            st = stats.setdefault(res["collection"], Stats())
            st.pieces += 1
            status = res["status"]
            if status == "ok":
                results.append(res)
            elif status == "failed":
                st.failed += 1
            elif status == "too_short":
                st.too_short += 1
            else:
                st.wrong_parts += 1
    return results, stats


def build(kind: str, name: str | None = None, midi_dir: str | None = None, workers: int = 2,
          limit: int | None = None, out_dir: Path | None = None) -> Path:
    """Tokenise a corpus and write ``<out_dir>/<name>.{npz,json}``; return the npz path.

    ``out_dir`` defaults to ``export/runs/corpus``.
    """
    t0 = time.time()
    name = name or kind
    tasks = midi_tasks(midi_dir) if midi_dir else music21_tasks(kind)
    if limit:
        tasks = tasks[:: max(1, len(tasks) // limit)][:limit]
    results, stats = _collect(kind, tasks, bool(midi_dir), workers)
    seen: set[bytes] = set()
    kept = []
    for res in sorted(results, key=lambda r: r["id"]):
        st = stats[res["collection"]]
        key = hashlib.sha1(res["frames"].tobytes()).digest()
        if key in seen:
            st.duplicates += 1
            continue
        seen.add(key)
        st.used += 1
        st.steps += len(res["frames"])
        for k, v in res["report"].items():
            st.report[k] += v
        for ts in res["time_signatures"]:
            st.time_signatures[ts] = st.time_signatures.get(ts, 0) + 1
        kept.append(res)
    return _write(kind, name, kept, stats, time.time() - t0, midi_dir, out_dir or RUNS / "corpus")


def _figure(rows: list[dict[str, Any]]) -> dict[str, Any]:
    notes = sum(r["notes"] for r in rows)
    beats = sum(r["beats"] for r in rows)
    holds = np.concatenate([r["hold_beats"] for r in rows]) if rows else np.zeros(0)
    if not holds.size:
        return {"notes": 0, "beats": round(beats, 1)}
    return {"notes": notes, "beats": round(beats, 1),
            "notes_per_beat": round(notes / beats, 3) if beats else None,
            "hold_beats_p99": round(float(np.percentile(holds, 99)), 3),
            "hold_beats_p999": round(float(np.percentile(holds, 99.9)), 3),
            "hold_beats_max": round(float(holds.max()), 3)}


def corpus_figures(codec: GridCodec, kept: list[dict[str, Any]]
                   ) -> dict[str, Any]:
    """The card's corpus figures: note-ons per beat of the metre and note lengths in beats.

    Overall, per voice (several voices) and per metre (one voice: 4/4, 3/4, 6/8, 2/2, 2/4).
    Beats are the metre's own (dotted in compound metres). All pieces count (both splits).
    """
    rows = [(k, r) for res in kept for k, r in res["figures"].items()]
    out: dict[str, Any] = {"all": _figure([r for _, r in rows])}
    if codec.n_voices > 1:
        out["voices"] = {v.name: _figure([r for k, r in rows if k.split("|")[0] == v.name])
                         for v in codec.voices}
    else:
        out["metres"] = {m: _figure([r for k, r in rows if k.split("|")[1] == m])
                         for m in FIGURE_METRES}
    return out


def _write(kind: str, name: str, kept: list[dict[str, Any]], stats: dict[str, Stats],
           seconds: float, midi_dir: str | None, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    frames = [r["frames"] for r in kept]
    offsets = np.cumsum([0] + [len(f) for f in frames])
    ids = [r["id"] for r in kept]
    valid = np.array([is_valid_piece(i) for i in ids], dtype=bool)
    positions = [r["positions"] for r in kept]
    np.savez_compressed(out / f"{name}.npz", offsets=offsets, valid=valid,
                        frames=np.concatenate(frames) if frames else np.zeros((0, 1), np.int8),
                        positions=np.concatenate(positions) if positions else np.zeros(0, np.int8))
    summary = {
        "kind": kind, "source": midi_dir or "music21", "codec": codec_for(kind).to_json(),
        "seconds": round(seconds, 1), "pieces": len(kept), "valid_pieces": int(valid.sum()),
        "collections": {c: asdict(s) for c, s in sorted(stats.items())},
        "valid_rule": f"sha1(piece id) first 4 bytes % 1000 < {VALID_PERMILLE}",
        "position_scheme": "metre-v1",
        "figures": corpus_figures(codec_for(kind), kept),
    }
    (out / f"{name}.json").write_text(json.dumps({"summary": summary, "ids": ids}, indent=1))
    return out / f"{name}.npz"


def load(name: str) -> Corpus:
    """Read a cached corpus written by :func:`build`: a cache name or a path to its ``.npz``."""
    base = Path(name).with_suffix("") if name.endswith(".npz") else RUNS / "corpus" / name
    if not base.with_suffix(".npz").exists():
        raise FileNotFoundError(f"{base}.npz is missing; run: python -m export.corpus {name}")
    data = np.load(base.with_suffix(".npz"))
    meta = json.loads(base.with_suffix(".json").read_text())
    offs = data["offsets"]
    frames = data["frames"].astype(np.int64)
    pieces = [frames[a:b] for a, b in itertools.pairwise(offs)]
    summary = meta["summary"]
    positions = None
    if "positions" in data.files:
        pos = data["positions"].astype(np.int64)
        positions = [pos[a:b] for a, b in itertools.pairwise(offs)]
    return Corpus(summary["kind"], pieces, meta["ids"], data["valid"], summary, positions)


def main(argv: list[str] | None = None) -> int:
    """``python -m export.corpus KIND [--midi-dir DIR] [--name NAME]``."""
    p = argparse.ArgumentParser(prog="python -m export.corpus", description=__doc__.split("\n")[0])
    p.add_argument("kind", choices=("melody", "chorale"))
    p.add_argument("--name", help="cache name (default: the kind)")
    p.add_argument("--midi-dir", help="tokenise this MIDI folder instead of the music21 corpus")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, help="only this many pieces (smoke test)")
    args = p.parse_args(argv)
    path = build(args.kind, args.name, args.midi_dir, args.workers, args.limit)
    meta = json.loads(path.with_suffix(".json").read_text())["summary"]
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
