"""Voice-leading analysis of four-part music on the grid (soprano, alto, tenor, bass).

Pure: notes in, a :class:`Report` out. The measures follow DESIGN.md §7; every fault carries
its grid step, so it can be located as bar and beat (:func:`liveduet.core.metre` metres).

Definitions (the grid is 16ths unless the caller says otherwise; a *chord* is the four sounding
pitches at one step, ``-1`` where a voice is silent):

* a **transition** is a pair of consecutive steps whose chords both have all four voices
  sounding and differ in at least one pitch (a repeated note of the same pitch is no move);
  a step where some voice is silent breaks the chain;
* **parallel fifths / octaves**: in a transition, two voices both move, in the same direction,
  and the interval between them (upper minus lower, mod 12) is 7 -> 7 (fifths) or 0 -> 0
  (octaves and unisons). Counted once per voice pair per transition, per 100 transitions;
* **consecutive fifths / octaves by contrary motion**: the same with the two voices moving in
  opposite directions (counted apart from the parallels above);
* **beat parallels**: the same parallels between the chords on consecutive beats (both with
  all four voices sounding, and different), per 100 such beat transitions: the measure that
  also catches fifths hidden by passing notes between the beats;
* **stepwise motion** of a voice: the share of its moves (each pair of consecutive notes,
  rests ignored; a repeated pitch is a move of 0) of 1 or 2 semitones;
* **beats** are the steps on a beat of the metre whose chord has all four voices sounding;
  a **semitone clash** beat holds two pitch classes a semitone apart; a **triad/V7** beat's
  pitch classes are exactly a major or minor triad, or a dominant seventh (complete, or
  without its fifth);
* **in key**: the share of alto, tenor and bass notes whose pitch class lies in the diatonic
  scale (in minor: natural minor plus the raised sixth and seventh) of the
  Krumhansl-Schmuckler key of the soprano's notes (weighted by duration);
* **same direction**: the share of transitions in which all four voices move the same way;
* **crossing**: a chord where a voice sounds below the voice under it (once per chord);
  **overlap**: in a transition a voice moves above the previous pitch of the voice over it
  (or below that of the voice under it); **spacing**: a chord with more than an octave
  between soprano and alto or alto and tenor;
* **out of range**: a note outside its voice's range (:data:`RANGES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from liveduet.core.codec import TimedNote
from liveduet.core.metre import Metre, MetreMap
from liveduet.core.sampling import estimate_key, scale_pcs

VOICES = ("soprano", "alto", "tenor", "bass")
RANGES: tuple[tuple[int, int], ...] = ((59, 81), (52, 74), (45, 69), (34, 62))
"""Inclusive MIDI ranges of S, A, T, B: the choral textbook ranges widened by a tone or two,
the compass Bach's chorales keep to."""
PAIRS = tuple((i, j) for i in range(4) for j in range(i + 1, 4))
PAIR_NAMES = tuple(f"{VOICES[i]}-{VOICES[j]}" for i, j in PAIRS)
SCALE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def _chord_sets() -> frozenset[frozenset[int]]:
    shapes = ((0, 4, 7), (0, 3, 7), (0, 4, 7, 10), (0, 4, 10))
    return frozenset(frozenset((r + s) % 12 for s in shape) for r in range(12) for shape in shapes)


CHORDS = _chord_sets()
"""Pitch-class sets of every major and minor triad and dominant seventh (with or without
its fifth)."""


@dataclass(frozen=True)
class Fault:
    """One voice-leading fault: its kind, grid step, bar/beat (1-based) and voices."""

    kind: str
    step: int
    bar: int
    beat: float
    voices: str
    detail: str = ""

    def line(self) -> str:
        """``bar 3 beat 2: parallel fifths (alto-bass) ...``."""
        extra = f" {self.detail}" if self.detail else ""
        return f"bar {self.bar} beat {self.beat:g}: {self.kind} ({self.voices}){extra}"


@dataclass
class Report:
    """Counts and shares of :func:`analyse`; see the module docstring for the definitions."""

    metre: str
    key: str
    steps: int
    transitions: int
    beats: int
    parallel_fifths: int = 0
    parallel_octaves: int = 0
    contrary_fifths: int = 0
    contrary_octaves: int = 0
    beat_transitions: int = 0
    beat_parallels: int = 0
    stepwise: dict[str, float] = field(default_factory=dict)
    clash_beats: int = 0
    chord_beats: int = 0
    in_key: float = 0.0
    same_direction: int = 0
    crossings: int = 0
    overlaps: int = 0
    spacing: int = 0
    out_of_range: int = 0
    notes: int = 0
    faults: list[Fault] = field(default_factory=list)

    def per100(self, count: int) -> float:
        """``count`` per 100 transitions."""
        return 100.0 * count / self.transitions if self.transitions else 0.0

    def share(self, count: int, of: int) -> float:
        """``count / of`` in percent (0 when ``of`` is 0)."""
        return 100.0 * count / of if of else 0.0

    def summary(self) -> dict[str, float]:
        """The headline figures (percent or per 100 transitions)."""
        return {
            "parallel_fifths_per100": self.per100(self.parallel_fifths),
            "parallel_octaves_per100": self.per100(self.parallel_octaves),
            "contrary_consecutives_per100": self.per100(self.contrary_fifths
                                                        + self.contrary_octaves),
            "beat_parallels_per100": (100.0 * self.beat_parallels / self.beat_transitions
                                      if self.beat_transitions else 0.0),
            **{f"stepwise_{v}_pct": 100.0 * s for v, s in self.stepwise.items()},
            "clash_beats_pct": self.share(self.clash_beats, self.beats),
            "triad_v7_beats_pct": self.share(self.chord_beats, self.beats),
            "in_key_pct": 100.0 * self.in_key,
            "same_direction_pct": self.share(self.same_direction, self.transitions),
            "crossings": self.crossings, "overlaps": self.overlaps, "spacing": self.spacing,
            "out_of_range": self.out_of_range,
        }

    def as_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        out = asdict(self)
        out["summary"] = self.summary()
        return out


def to_grid(voices: Sequence[Sequence[TimedNote]], steps_per_beat: int = 4
            ) -> tuple[np.ndarray, np.ndarray]:
    """(pitch ``[steps, 4]`` with -1 for silence, onset ``[steps, 4]``) from notes in beats.

    Starts and ends are rounded to the grid; a note lasts at least one step; a later note in
    the same voice cuts an earlier one short.
    """
    ends = [round(n.end * steps_per_beat) for part in voices for n in part]
    steps = max(ends, default=0) + 1
    pitch = np.full((steps, len(voices)), -1, dtype=np.int64)
    onset = np.zeros((steps, len(voices)), dtype=bool)
    for v, part in enumerate(voices):
        for n in sorted(part):
            a = round(n.start * steps_per_beat)
            b = max(round(n.end * steps_per_beat), a + 1)
            pitch[a:b, v] = n.pitch
            onset[a, v] = True
    return pitch, onset


def analyse(voices: Sequence[Sequence[TimedNote]], metre: Metre | None = None,
            steps_per_beat: int = 4) -> Report:
    """The voice-leading report of four voices (highest first), notes in beats."""
    if len(voices) != 4:
        raise ValueError(f"four voices are needed, got {len(voices)}")
    metre = (metre or Metre()).with_grid(steps_per_beat)
    pitch, _ = to_grid(voices, steps_per_beat)
    where = MetreMap(metre)
    rep = Report(metre.label, _key_label(voices[0]), len(pitch), 0, 0)
    _transitions(rep, pitch, where)
    _beats(rep, pitch, where)
    _chords(rep, pitch, where)
    _notes(rep, voices, where, steps_per_beat)
    rep.faults.sort(key=lambda f: (f.step, f.kind, f.voices))
    return rep


def _fault(rep: Report, where: MetreMap, kind: str, step: int, voices: str,
           detail: str = "") -> None:
    metre = where.metre(step)
    k = where.step_in_bar(step)
    bar = (step - where.at(step).step) // metre.bar_steps + 1
    beat = 1 + k / metre.beat_steps
    rep.faults.append(Fault(kind, step, bar, round(beat, 3), voices, detail))


def _key_label(soprano: Sequence[TimedNote]) -> str:
    found = soprano_key(soprano)
    return "unknown" if found is None else f"{SCALE_NAMES[found[0]]} {found[1]}"


def soprano_key(soprano: Sequence[TimedNote]) -> tuple[int, str] | None:
    """Krumhansl-Schmuckler key of the soprano's notes, weighted by duration."""
    return estimate_key([n.pitch for n in soprano], [max(n.end - n.start, 0.25) for n in soprano])


def key_scale(tonic: int, mode: str) -> frozenset[int]:
    """Pitch classes in the key: the major scale, or natural minor with raised 6th and 7th."""
    pcs = scale_pcs(tonic, mode)
    return pcs | {(tonic + 9) % 12, (tonic + 11) % 12} if mode == "minor" else pcs


def _transitions(rep: Report, pitch: np.ndarray, where: MetreMap) -> None:
    full = (pitch >= 0).all(axis=1)
    for s in range(1, len(pitch)):
        prev, cur = pitch[s - 1], pitch[s]
        if not (full[s - 1] and full[s]) or (prev == cur).all():
            continue
        rep.transitions += 1
        move = np.sign(cur - prev)
        if (move > 0).all() or (move < 0).all():
            rep.same_direction += 1
        for (i, j), name in zip(PAIRS, PAIR_NAMES, strict=True):
            kind = consecutive(prev[i], prev[j], cur[i], cur[j])
            if kind is not None:
                setattr(rep, kind, getattr(rep, kind) + 1)
                _fault(rep, where, kind.replace("_", " "), s, name,
                       f"{_name(prev[i])}/{_name(prev[j])} -> {_name(cur[i])}/{_name(cur[j])}")
        _overlaps(rep, where, s, prev, cur)


def consecutive(a0: int, b0: int, a1: int, b1: int) -> str | None:
    """Which consecutive perfect interval voices a (upper) and b (lower) make, if any.

    Returns ``parallel_fifths``, ``parallel_octaves``, ``contrary_fifths``,
    ``contrary_octaves`` or None (both voices must move).
    """
    da, db = a1 - a0, b1 - b0
    if da == 0 or db == 0:
        return None
    i0, i1 = (a0 - b0) % 12, (a1 - b1) % 12
    if i0 != i1 or i0 not in (0, 7):
        return None
    how = "parallel" if (da > 0) == (db > 0) else "contrary"
    return f"{how}_{'fifths' if i0 == 7 else 'octaves'}"


def _overlaps(rep: Report, where: MetreMap, s: int, prev: np.ndarray, cur: np.ndarray) -> None:
    for i in range(3):
        j = i + 1
        over = (cur[j] != prev[j] and cur[j] > prev[i]) or (cur[i] != prev[i]
                                                            and cur[i] < prev[j])
        if over:
            rep.overlaps += 1
            _fault(rep, where, "overlap", s, f"{VOICES[i]}-{VOICES[j]}")


def _beats(rep: Report, pitch: np.ndarray, where: MetreMap) -> None:
    last: np.ndarray | None = None
    for s in range(len(pitch)):
        if not where.is_beat(s):
            continue
        if (pitch[s] < 0).any():
            last = None
            continue
        rep.beats += 1
        if last is not None and (last != pitch[s]).any():
            rep.beat_transitions += 1
            rep.beat_parallels += sum(consecutive(last[i], last[j], pitch[s][i], pitch[s][j])
                                      in ("parallel_fifths", "parallel_octaves")
                                      for i, j in PAIRS)
        last = pitch[s]
        pcs = frozenset(int(p) % 12 for p in pitch[s])
        if any((p + 1) % 12 in pcs for p in pcs):
            rep.clash_beats += 1
        if pcs in CHORDS:
            rep.chord_beats += 1


def _chords(rep: Report, pitch: np.ndarray, where: MetreMap) -> None:
    """Crossing and spacing, once per distinct chord (a chord held over steps is one)."""
    for s in range(len(pitch)):
        cur = pitch[s]
        if (cur < 0).any() or (s > 0 and (pitch[s - 1] == cur).all()):
            continue
        for i in range(3):
            if cur[i] < cur[i + 1]:
                rep.crossings += 1
                _fault(rep, where, "crossing", s, f"{VOICES[i]}-{VOICES[i + 1]}",
                       f"{_name(cur[i])} under {_name(cur[i + 1])}")
        for i in range(2):
            if cur[i] - cur[i + 1] > 12:
                rep.spacing += 1
                _fault(rep, where, "spacing", s, f"{VOICES[i]}-{VOICES[i + 1]}",
                       f"{cur[i] - cur[i + 1]} semitones")


def _notes(rep: Report, voices: Sequence[Sequence[TimedNote]], where: MetreMap,
           steps_per_beat: int) -> None:
    """Stepwise share per voice, in-key share of the lower voices, out-of-range notes."""
    key = soprano_key(voices[0])
    scale = None if key is None else key_scale(*key)
    keyed = lower = 0
    for v, part in enumerate(voices):
        ordered = sorted(part)
        moves = [b.pitch - a.pitch for a, b in pairwise(ordered)]
        rep.stepwise[VOICES[v]] = (sum(1 for m in moves if 1 <= abs(m) <= 2) / len(moves)
                                   if moves else 0.0)
        low, high = RANGES[v]
        for n in ordered:
            rep.notes += 1
            if v > 0:
                lower += 1
                keyed += scale is None or n.pitch % 12 in scale
            if not low <= n.pitch <= high:
                rep.out_of_range += 1
                _fault(rep, where, "out of range", round(n.start * steps_per_beat), VOICES[v],
                       f"{_name(n.pitch)} outside {_name(low)}..{_name(high)}")
    rep.in_key = keyed / lower if lower else 0.0


def _name(pitch: int | np.integer) -> str:
    p = int(pitch)
    return f"{SCALE_NAMES[p % 12]}{p // 12 - 1}"


def format_report(rep: Report, title: str = "") -> str:
    """The report as text: headline figures, then every fault with its bar and beat."""
    s = rep.summary()
    step = ", ".join(f"{v} {100 * x:.0f}%" for v, x in rep.stepwise.items())
    lines = [
        f"{title + ': ' if title else ''}{rep.metre}, key of the soprano {rep.key}, "
        f"{rep.transitions} chord transitions, {rep.beats} beats, {rep.notes} notes",
        f"  parallel fifths       {rep.parallel_fifths:4d}  ({s['parallel_fifths_per100']:.2f} "
        "per 100 transitions)",
        f"  parallel octaves      {rep.parallel_octaves:4d}  "
        f"({s['parallel_octaves_per100']:.2f} per 100 transitions)",
        f"  contrary 5ths/8ves    {rep.contrary_fifths + rep.contrary_octaves:4d}  "
        f"({s['contrary_consecutives_per100']:.2f} per 100 transitions)",
        f"  beat-to-beat 5ths/8ves {rep.beat_parallels:3d}  "
        f"({s['beat_parallels_per100']:.2f} per 100 beat transitions)",
        f"  stepwise motion       {step}",
        f"  semitone-clash beats  {s['clash_beats_pct']:.1f}%",
        f"  triad/V7 beats        {s['triad_v7_beats_pct']:.1f}%",
        f"  lower voices in key   {s['in_key_pct']:.1f}%",
        f"  all four same way     {s['same_direction_pct']:.1f}% of transitions",
        f"  crossings {rep.crossings}, overlaps {rep.overlaps}, spacing {rep.spacing}, "
        f"out of range {rep.out_of_range}",
    ]
    lines += ["  " + f.line() for f in rep.faults]
    return "\n".join(lines)
