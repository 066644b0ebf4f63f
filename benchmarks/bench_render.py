"""Offline render speed: grid steps per second and multiple of real time, variants interleaved.

The human part is a generated 3-minute melody at 120 bpm (360 beats = 1440 grid steps: notes of
1-4 steps with rests between phrases). Each variant renders the whole piece with a fresh Engine;
rounds run every variant once in a shuffled order so load drift hits all alike. Prints the
median and p99 render time, steps/s, x real time and the ratio of medians to the first variant.

Variants: mode (call / continue / harmonize), lookahead (0, 2, 6: the music is identical, the
lookahead only adds speculative steps that a human event rolls back), model (a factory LSTM with
hidden 256, a tiny factory LSTM, and the bundled models when built). ``render`` uses lookahead 0.

    python benchmarks/bench_render.py                 # default variant set, 7 rounds
    python benchmarks/bench_render.py --rounds 15 --model my_model.onnx
Target: a 3-minute melody at 120 bpm renders in < 2 s.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from liveduet.core import catalog
from liveduet.core.codec import TimedNote, chorale_codec, melody_codec
from liveduet.core.engine import Engine
from liveduet.core.model import StepModel
from liveduet.core.settings import Settings
from liveduet.offline.render import render
from liveduet.testkit.factory import lstm_model

BPM = 120.0
SECONDS = 180.0
BEATS = SECONDS * BPM / 60.0


def melody(seed: int = 0) -> list[TimedNote]:
    """A 3-minute D-major random-walk melody: 4-bar phrases ending in a one-beat rest."""
    rng = random.Random(seed)
    scale = [62, 64, 66, 67, 69, 71, 73, 74, 76, 78, 79]
    notes: list[TimedNote] = []
    t, i = 0.0, 4
    while t < BEATS:
        phrase_end = t + 15.0
        while t < phrase_end:
            dur = rng.choice([0.25, 0.5, 0.5, 1.0, 1.0])
            i = max(0, min(len(scale) - 1, i + rng.choice([-2, -1, -1, 1, 1, 2])))
            notes.append(TimedNote(t, scale[i], t + dur * 0.9, 0, rng.randint(70, 110)))
            t += dur
        t = phrase_end + 1.0
    return [n for n in notes if n.end <= BEATS]


def variants(tmp: Path, extra: list[str]) -> dict[str, tuple[StepModel, str, int]]:
    """name -> (model, mode, lookahead); ``extra`` models (paths or names) join at lookahead 0."""
    big = StepModel(lstm_model(tmp / "big.onnx", melody_codec(), hidden=256, embed=64))
    tiny = StepModel(lstm_model(tmp / "tiny.onnx", melody_codec(), hidden=16))
    satb = StepModel(lstm_model(tmp / "satb.onnx", chorale_codec(), hidden=256, embed=64))
    out = {
        "continue-la0-h256": (big, "continue", 0),
        "continue-la2-h256": (big, "continue", 2),
        "continue-la6-h256": (big, "continue", 6),
        "call-la0-h256": (big, "call", 0),
        "continue-la0-h16": (tiny, "continue", 0),
        "harmonize-la0-satb-h256": (satb, "harmonize", 0),
        "harmonize-la2-satb-h256": (satb, "harmonize", 2),
    }
    for name, mode in ((catalog.DEFAULT_MELODY, "continue"), (catalog.DEFAULT_MELODY, "call"),
                       (catalog.DEFAULT_HARMONY, "harmonize")):
        path = catalog.models_dir() / f"{name}.onnx"
        if path.exists():
            out[f"{mode}-la0-{name}"] = (StepModel(path), mode, 0)
    for ref in extra:
        model = StepModel(catalog.resolve(ref))
        mode = "harmonize" if model.codec.n_voices > 1 else "continue"
        out[f"{mode}-la0-{Path(ref).stem}"] = (model, mode, 0)
    return out


def once(model: StepModel, mode: str, lookahead: int, notes: list[TimedNote]) -> tuple[float,
                                                                                      int]:
    engine = Engine(model, Settings(mode=mode, seed=1, thru=False), lookahead=lookahead)
    t0 = time.perf_counter()
    duet = render(engine, notes, tail_bars=0)
    took = time.perf_counter() - t0
    return took, int(duet.status["counters"]["steps"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--model", action="append", default=[], help="also render with this model "
                    "(path or bundled name; repeat)")
    args = ap.parse_args()
    notes = melody()
    with tempfile.TemporaryDirectory() as d:
        vs = variants(Path(d), args.model)
        names = list(vs)
        times: dict[str, list[float]] = {n: [] for n in names}
        steps: dict[str, int] = {}
        for name in names:  # warm-up
            once(*vs[name], notes)
        order = list(names)
        for _ in range(args.rounds):
            random.shuffle(order)
            for name in order:
                took, steps[name] = once(*vs[name], notes)
                times[name].append(took)
    base = float(np.median(times[names[0]]))
    print(f"3-minute melody at {BPM:g} bpm: {len(notes)} notes, {BEATS:g} beats; "
          f"{args.rounds} interleaved rounds")
    print(f"{'variant':30s} {'median s':>9s} {'p99 s':>8s} {'steps/s':>9s} {'x realtime':>11s} "
          f"{'ratio':>6s}")
    for name in names:
        med = float(np.median(times[name]))
        p99 = float(np.percentile(times[name], 99))
        print(f"{name:30s} {med:9.3f} {p99:8.3f} {steps[name] / med:9.0f} "
              f"{SECONDS / med:11.0f} {med / base:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
