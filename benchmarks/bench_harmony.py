"""Harmony note latency inside the engine: ``Engine.feed(note-on)`` -> its harmony Outs.

Two engines run side by side on one soprano line in ``harmonize`` mode with the bundled
``chorale_satb`` (or a factory SATB LSTM when it is missing), driven like the runtime drives
them (``advance`` at every ``next_due``):
- ``sequential``: ``Engine(tables=False)``: the note's step runs on the critical path (one
  model step per voice, one sampling call per machine voice);
- ``tables``: each planned step was run for every soprano token as one batch, so the note is
  a table lookup; one engine per ``--voice-leading`` setting (``off`` samples each voice
  alone, ``strict`` -- the default -- and ``guided`` choose alto, tenor and bass jointly under
  part-writing rules, a bigger build).
Per note the engines are fed in a shuffled order (interleaved, so load drift hits all alike).
Prints p50/p99 of the feed time and the ratio, the time to build one harmony table (p50/p99),
and the planning cost: time of ``advance`` calls per grid step (p50/p99), and the CPU share
planning takes at 120 and 300 bpm.

    python benchmarks/bench_harmony.py [--notes 400] [--lookahead 1] [--model PATH] [--gap MS]
        [--voice-leading off,strict]

``--gap MS`` sleeps that long before each timed note-on, as a live conductor sleeps between
notes: its caches are cold then, and the same call takes ~2x longer than in a tight loop.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from liveduet.core.engine import Engine, Out  # noqa: E402
from liveduet.core.model import StepModel  # noqa: E402
from liveduet.core.settings import Settings  # noqa: E402


def model_path(arg: str | None, tmp: Path) -> tuple[Path, str]:
    """The model to time: ``--model``, the bundled chorale_satb, or a factory SATB LSTM."""
    if arg:
        return Path(arg), arg
    bundled = ROOT / "models" / "chorale_satb.onnx"
    if bundled.exists():
        return bundled, "bundled chorale_satb"
    from liveduet.core.codec import chorale_codec
    from liveduet.testkit.factory import lstm_model

    return lstm_model(tmp / "satb.onnx", chorale_codec(), hidden=256), "factory SATB LSTM h256"


def soprano(n: int, seed: int = 0) -> list[tuple[float, int, float]]:
    """(start, pitch, end) in steps: notes of 1-4 steps, played up to 0.3 step early/late."""
    rng = random.Random(seed)
    notes, step, pitch = [], 4, 67
    for _ in range(n):
        dur = rng.choice([1, 2, 2, 4])
        pitch = max(60, min(79, pitch + rng.choice([-4, -2, -1, 1, 2, 3])))
        start = step + rng.uniform(-0.3, 0.3)
        notes.append((start, pitch, step + dur - 0.15))
        step += dur
    return notes


class Driven:
    """One engine driven in virtual time; records feed and advance timings."""

    def __init__(self, model: StepModel, tables: bool, lookahead: int, rules: str = "off"
                 ) -> None:
        settings = Settings(mode="harmonize", temperature=0.7, thru=False, voice_leading=rules)
        self.engine = Engine(model, settings, lookahead=lookahead, tables=tables)
        self.model = model
        self.feeds: list[float] = []
        self.advances: list[float] = []
        self.builds: list[float] = []
        self.harmony = 0
        harmony = self.engine._plan.harmony  # time every table build of this engine
        if harmony is not None:
            build = harmony._build

            def timed(*args: object) -> object:
                t = time.perf_counter()
                try:
                    return build(*args)  # type: ignore[arg-type]
                finally:
                    self.builds.append(time.perf_counter() - t)

            harmony._build = timed  # type: ignore[method-assign]

    def until(self, pos: float) -> None:
        """Advance at every due point before ``pos`` (planning happens here)."""
        due = self.engine.next_due()
        while due is not None and due < pos:
            t = time.perf_counter()
            self.engine.advance(due)
            self.advances.append(time.perf_counter() - t)
            due = self.engine.next_due()

    def feed(self, pos: float, msg: tuple[int, ...], timed: bool, gap: float = 0.0
             ) -> list[Out]:
        if gap > 0:
            time.sleep(gap)
        t = time.perf_counter()
        outs = self.engine.feed(pos, msg)
        if timed:
            self.feeds.append(time.perf_counter() - t)
            self.harmony += sum(1 for o in outs if o.voice is not None and o.msg[0] >= 0x90)
        return outs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=400)
    ap.add_argument("--lookahead", type=int, default=1)
    ap.add_argument("--model")
    ap.add_argument("--gap", type=float, default=0.0, help="ms of sleep before each note-on")
    ap.add_argument("--voice-leading", default="off,strict",
                    help="comma-separated settings, one table engine each")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path, label = model_path(args.model, Path(tmp))
        runs = {"sequential": Driven(StepModel(path), False, args.lookahead)}
        for rules in args.voice_leading.split(","):
            runs[f"tables {rules}"] = Driven(StepModel(path), True, args.lookahead, rules)
        order = random.Random(1)
        notes = soprano(args.notes)
        for start, pitch, end in notes:
            names = list(runs)
            order.shuffle(names)
            for name in names:
                run = runs[name]
                run.until(start)
                run.feed(start, (0x90, pitch, 90), timed=True, gap=args.gap / 1000.0)
                run.until(end)
                run.feed(end, (0x80, pitch, 0), timed=False)
        steps = notes[-1][2]
    if args.gap:
        label += f"; {args.gap:g} ms asleep before each note-on"
    report(runs, label, args.lookahead, steps)
    return 0


def report(runs: dict[str, Driven], label: str, lookahead: int, steps: float) -> None:
    """Print p50/p99 of feed and per-step planning cost, and ratios to ``sequential``."""
    print(f"model: {label}; harmonize, lookahead {lookahead}, "
          f"{len(runs['sequential'].feeds)} notes")
    base = np.percentile(runs["sequential"].feeds, [50, 99])
    for name, run in runs.items():
        p50, p99 = np.percentile(run.feeds, [50, 99])
        plan = np.sum(run.advances) / steps
        c = run.engine.counters
        print(f"  {name:14s} feed(note-on)->harmony p50 {p50 * 1e3:6.3f} ms p99 {p99 * 1e3:6.3f} ms"
              f"  (x{p50 / base[0]:.2f} / x{p99 / base[1]:.2f} of sequential);"
              f" harmony note-ons {run.harmony}")
        a50, a99 = np.percentile(run.advances, [50, 99])
        if run.builds:
            b50, b99 = np.percentile(run.builds, [50, 99])
            print(f"  {name:14s} table build p50 {b50 * 1e3:6.3f} ms p99 {b99 * 1e3:6.3f} ms"
                  f" ({len(run.builds)} tables)")
        print(f"  {name:14s} advance p50 {a50 * 1e3:6.3f} ms p99 {a99 * 1e3:6.3f} ms;"
              f" planning per grid step {plan * 1e3:.3f} ms = {plan * 8 * 100:.2f}% of a core"
              f" at 120 bpm, {plan * 20 * 100:.2f}% at 300 bpm; tables built"
              f" {c['harmony_tables']}, reused {c['harmony_hits']}")


if __name__ == "__main__":
    sys.exit(main())
