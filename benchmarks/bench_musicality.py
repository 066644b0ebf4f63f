"""Musical timing and density, measured as a musician hears it (virtual time, deterministic).

On validation-split folk tunes (benchmarks/valtunes.py: never trained on) of each metre:

* **call**: a tune cut into 2-bar phrases from its first full bar, every other phrase silenced,
  rendered in ``call`` mode. Per answer: its first note on a beat / on a bar line of the tune's
  metre, beats from the end of the call to the first note, and how many the next call cut
  (a human note while the answer still had steps to play: the engine's barge-ins). The
  human reference is the silenced phrase.
* **continue**: the tune's first two full bars (and pickup) are played, then the machine
  continues alone for four bars: share of its bar lines carrying a note onset, notes per beat
  and whether it holds one note for 3 beats or more. The human reference is the tune's own
  bars 3-6.
* **generate**: ``--seeds`` pieces of 16 bars from nothing (4/4): notes per beat against the
  corpus, and how many pieces reach 0.6x the corpus density.

The corpus figure (notes per beat of each metre) is the model card's where it records one
(``metrics.corpus.metres``), else the validation tunes' own. Runs against any
version of liveduet (settings it lacks, such as ``meter``, are left out), so the same script
prints the before and after figures::

    python benchmarks/bench_musicality.py                   # 20 tunes per metre, 50 seeds
    python benchmarks/bench_musicality.py --tunes 10 --seeds 20 --answer-at beat
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from valtunes import Tune, load_tunes  # noqa: E402

from liveduet.core import catalog  # noqa: E402
from liveduet.core.codec import TimedNote  # noqa: E402
from liveduet.core.engine import Engine  # noqa: E402
from liveduet.core.metre import Metre, MetreMap, parse_metre  # noqa: E402
from liveduet.core.model import StepModel  # noqa: E402
from liveduet.core.settings import FIELD_BY_NAME, Settings  # noqa: E402
from liveduet.offline.render import render  # noqa: E402

PHRASE_BARS = 2
CONTINUE_BARS = 4
LONG_HOLD_BEATS = 3.0


@dataclass
class Tally:
    """Counts of one (metre, mode) cell."""

    answers: int = 0
    on_beat: int = 0
    on_bar: int = 0
    delays: list[float] = field(default_factory=list)
    cut: int = 0
    bar_lines: int = 0
    bars_hit: int = 0
    notes: int = 0
    beats: float = 0.0
    passages: int = 0
    long_holds: int = 0

    def share(self, part: int, whole: int) -> str:
        """``part/whole`` as a percentage with the counts."""
        return f"{100.0 * part / whole:5.1f}% ({part}/{whole})" if whole else "   -"


def settings_for(mode: str, metre: Metre, seed: int, extra: dict[str, Any]) -> Settings:
    """Default settings of ``mode`` plus the metre (where this liveduet has the setting)."""
    values: dict[str, Any] = {"mode": mode, "seed": seed, "thru": False}
    if "meter" in FIELD_BY_NAME:
        values["meter"] = metre.label
    values.update({k: v for k, v in extra.items() if k in FIELD_BY_NAME})
    return Settings.from_dict(values)


def first_full_bar(tune: Tune) -> int:
    """Index of the first bar that starts on a note or after a pickup."""
    bar_q = tune.meter.quarters_per_bar
    return 1 if tune.notes and tune.notes[0].start > 1e-6 and tune.notes[0].start < bar_q else 0


def call_human(tune: Tune) -> tuple[list[TimedNote], list[tuple[float, float]]]:
    """The notes kept (calls) and the (start, end) beats of each silenced phrase."""
    bar_q = tune.meter.quarters_per_bar
    b0 = first_full_bar(tune)
    kept, gaps = [], []
    k = 0
    while (b0 + PHRASE_BARS * k) < tune.bars:
        lo = (b0 + PHRASE_BARS * k) * bar_q
        hi = lo + PHRASE_BARS * bar_q
        if k % 2:
            gaps.append((lo, hi))
        k += 1
    for n in tune.notes:
        if not any(lo <= n.start < hi for lo, hi in gaps):
            kept.append(n)
    return kept, gaps


def measure_answers(tally: Tally, tune: Tune, machine: Sequence[TimedNote],
                    turns: Sequence[tuple[float, str]], human: Sequence[TimedNote]) -> None:
    """Add each answer of a call-mode render to ``tally``."""
    spq = 4
    mm = MetreMap(tune.meter)  # bar 0 starts at step 0
    bounds = [(pos, phase) for pos, phase in turns]
    for i, (pos, phase) in enumerate(bounds):
        if phase != "answering":
            continue
        end = bounds[i + 1][0] if i + 1 < len(bounds) else float("inf")
        notes = [n for n in machine if pos - 1e-9 <= n.start < end]
        if not notes:
            continue
        tally.answers += 1
        step = round(notes[0].start * spq)
        tally.on_beat += mm.is_beat(step)
        tally.on_bar += mm.is_bar_line(step)
        call_end = max((n.end for n in human if n.end <= pos + 1e-9), default=0.0)
        tally.delays.append(notes[0].start - call_end)


def measure_passage(tally: Tally, metre: Metre, notes: Sequence[TimedNote], lo: float,
                    hi: float) -> None:
    """Bar lines hit, density and long holds of ``notes`` inside ``[lo, hi)`` beats."""
    mm = MetreMap(metre)
    spq = 4
    inside = [n for n in notes if lo - 1e-9 <= n.start < hi]
    starts = {round(n.start * spq) for n in inside}
    lines = mm.bar_lines(round(lo * spq), round(hi * spq))
    tally.bar_lines += len(lines)
    tally.bars_hit += sum(s in starts for s in lines)
    tally.notes += len(inside)
    beat_q = metre.beat_steps / spq
    tally.beats += (hi - lo) / beat_q
    tally.passages += 1
    tally.long_holds += any((min(n.end, hi) - n.start) / beat_q >= LONG_HOLD_BEATS
                            for n in inside)


def run_call(model: StepModel, tunes: Sequence[Tune], seed: int, extra: dict[str, Any]
             ) -> tuple[dict[str, Tally], dict[str, Tally]]:
    """Machine and human tallies per metre for the call protocol."""
    mach: dict[str, Tally] = {}
    human: dict[str, Tally] = {}
    for i, tune in enumerate(tunes):
        kept, gaps = call_human(tune)
        engine = Engine(model, settings_for("call", tune.meter, seed + i, extra), lookahead=0)
        duet = render(engine, kept, tail_bars=PHRASE_BARS)  # room for a last answer
        machine = duet.machine.get(0, [])
        tally = mach.setdefault(tune.metre, Tally())
        measure_answers(tally, tune, machine, duet.turns, kept)
        tally.cut += duet.status["counters"]["barge_ins"]
        h = human.setdefault(tune.metre, Tally())
        mm = MetreMap(tune.meter)  # bar 0 starts at step 0
        for lo, hi in gaps:
            notes = [n for n in tune.notes if lo <= n.start < hi]
            if notes:
                h.answers += 1
                step = round(notes[0].start * 4)
                h.on_beat += mm.is_beat(step)
                h.on_bar += mm.is_bar_line(step)
                h.delays.append(notes[0].start - lo)
    return mach, human


def run_continue(model: StepModel, tunes: Sequence[Tune], seed: int, extra: dict[str, Any]
                 ) -> tuple[dict[str, Tally], dict[str, Tally]]:
    """Machine and human tallies per metre for the continuation protocol."""
    mach: dict[str, Tally] = {}
    human: dict[str, Tally] = {}
    for i, tune in enumerate(tunes):
        bar_q = tune.meter.quarters_per_bar
        cut = (first_full_bar(tune) + 2) * bar_q
        if cut + CONTINUE_BARS * bar_q > tune.bars * bar_q + 1e-9:
            continue
        primer = [n for n in tune.notes if n.start < cut]
        primer = [TimedNote(n.start, n.pitch, min(n.end, cut)) for n in primer]
        engine = Engine(model, settings_for("continue", tune.meter, seed + i, extra),
                        lookahead=0)
        duet = render(engine, primer, tail_bars=CONTINUE_BARS)
        notes = duet.machine.get(0, [])
        end = cut + CONTINUE_BARS * bar_q
        measure_passage(mach.setdefault(tune.metre, Tally()), tune.meter, notes, cut, end)
        measure_passage(human.setdefault(tune.metre, Tally()), tune.meter, tune.notes, cut, end)
    return mach, human


def run_generate(model: StepModel, seeds: int, extra: dict[str, Any]) -> list[float]:
    """Notes per beat of ``seeds`` 16-bar pieces generated from nothing in 4/4."""
    out = []
    metre = parse_metre("4/4")
    for seed in range(seeds):
        engine = Engine(model, settings_for("continue", metre, seed, extra), lookahead=0)
        duet = render(engine, [], tail_bars=16)
        notes = [n for n in duet.machine.get(0, []) if n.start < 64.0]
        out.append(len(notes) / 64.0)
    return out


def corpus_figures(model: StepModel, tunes: Sequence[Tune]) -> tuple[dict[str, float], str]:
    """Notes per beat per metre of the training corpus (model card) or else of the tunes."""
    metrics = model.spec.card.get("metrics")
    corpus = metrics.get("corpus") if isinstance(metrics, dict) else None
    metres = corpus.get("metres") if isinstance(corpus, dict) else None
    wanted = {t.metre for t in tunes} | {"4/4"}
    if isinstance(metres, dict) and all(m in metres for m in wanted):
        return ({m: float(metres[m]["notes_per_beat"]) for m in sorted(wanted)},
                "model card (training corpus)")
    out = {}
    for metre in sorted({t.metre for t in tunes} | {"4/4"}):
        some = [t for t in tunes if t.metre == metre]
        beats = sum(t.bars * t.meter.beats for t in some)
        out[metre] = sum(len(t.notes) for t in some) / beats if beats else 1.0
    return out, "validation tunes (the model card records none)"


def print_call(mach: dict[str, Tally], human: dict[str, Tally]) -> None:
    """The call table."""
    print("\n## call: answers (2-bar phrases, every other one silenced)")
    print("| metre | who | answers | first note on a beat | on the bar line | delay p50 "
          "(beats) | cut by the next call |")
    print("|---|---|---|---|---|---|---|")
    for metre in mach:
        for who, t in (("liveduet", mach[metre]), ("human", human.get(metre, Tally()))):
            delay = f"{statistics.median(t.delays):.2f}" if t.delays else "-"
            cut = t.share(t.cut, t.answers) if who == "liveduet" else "-"
            print(f"| {metre} | {who} | {t.answers} | {t.share(t.on_beat, t.answers)} | "
                  f"{t.share(t.on_bar, t.answers)} | {delay} | {cut} |")


def print_continue(mach: dict[str, Tally], human: dict[str, Tally], corpus: dict[str, float]
                   ) -> None:
    """The continuation table."""
    print(f"\n## continue: {CONTINUE_BARS} bars after a 2-bar primer")
    print("| metre | who | passages | bar lines hit | notes per beat (x corpus) | holds >= 3 "
          "beats |")
    print("|---|---|---|---|---|---|")
    for metre in mach:
        for who, t in (("liveduet", mach[metre]), ("human", human.get(metre, Tally()))):
            npb = t.notes / t.beats if t.beats else 0.0
            print(f"| {metre} | {who} | {t.passages} | {t.share(t.bars_hit, t.bar_lines)} | "
                  f"{npb:.2f} ({npb / corpus[metre]:.2f}x) | "
                  f"{t.share(t.long_holds, t.passages)} |")


def main(argv: list[str] | None = None) -> int:
    """Print the tables."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tunes", type=int, default=20, help="validation tunes per metre")
    p.add_argument("--seeds", type=int, default=50, help="generated pieces")
    p.add_argument("--seed", type=int, default=1, help="first seed of the renders")
    p.add_argument("--model", default=catalog.DEFAULT_MELODY)
    p.add_argument("--answer-at", help="bar | beat | gap (where this liveduet has it)")
    p.add_argument("--density", type=float, help="density setting (default: the default)")
    args = p.parse_args(argv)
    extra: dict[str, Any] = {}
    if args.answer_at:
        extra["answer_at"] = args.answer_at
    if args.density is not None:
        extra["density"] = args.density
    tunes = load_tunes(per_metre=args.tunes)
    model = StepModel(catalog.resolve(args.model))
    corpus, source = corpus_figures(model, tunes)
    print(f"# bench_musicality: {len(tunes)} validation tunes, model {args.model}, seed "
          f"{args.seed}, settings {extra or 'defaults'}")
    print("corpus notes per beat: " + ", ".join(f"{k} {v:.2f}" for k, v in corpus.items())
          + f" ({source})")
    print_call(*run_call(model, tunes, args.seed, extra))
    print_continue(*run_continue(model, tunes, args.seed, extra), corpus)
    gen = run_generate(model, args.seeds, extra)
    ref = corpus["4/4"]
    ok = sum(g >= 0.6 * ref for g in gen)
    med = statistics.median(gen)
    print(f"\n## generate --bars 16 ({len(gen)} seeds, 4/4)")
    print(f"notes per beat: median {med:.2f} ({med / ref:.2f}x corpus), min {min(gen):.2f} "
          f"({min(gen) / ref:.2f}x), max {max(gen):.2f}; pieces >= 0.6x corpus: "
          f"{ok}/{len(gen)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
