"""Candidate search time per N against the time an answer's first step leaves to plan it.

In a listen gap the conductor plans one step further ahead than its lookahead (1), so it
plans an answer's first step from the middle of the step two before it: the search has a
step and a half, 93.75 ms at 240 bpm (16th-note steps; the default listen gap is one beat =
250 ms). For each N and answer length this runs the real search
(:meth:`liveduet.core.answers.Phrases.step`: fork, batch sampling, the critic with the copy index)
after a random call, and prints p50/p99 and how many searches would have been late without a
deadline (live, the deadline cuts them short and the best phrase so far plays).

    python benchmarks/bench_candidates.py [--model models/folk_melody.onnx] [--repeats 30]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from liveduet.core import catalog
from liveduet.core.answers import Phrases
from liveduet.core.codec import BOS, REST
from liveduet.core.model import StepModel
from liveduet.core.sampling import Sampler
from liveduet.core.settings import Settings
from liveduet.core.turns import ANSWERING, LISTENING, HumanRecord, Turn

BPM = 240.0
NS = (1, 4, 8, 16, 32)
LENGTHS = (16, 32, 64)  # answers of 1, 2 and 4 bars (the longest default answer)


def primed(model: StepModel, rng: random.Random, human: HumanRecord) -> np.ndarray:
    """Feed BOS and a random 8-note call (also recorded as the human's); return logits."""
    model.reset()
    logits = model.step(BOS)
    human.notes.clear()
    human.recent.clear()
    pitch = rng.randint(60, 72)
    for i in range(8):
        pitch = min(max(pitch + rng.choice((-4, -2, -1, 0, 1, 2, 3, 5)), 55), 79)
        human.note_on(2 * i, pitch, 80, 0)
        human.note_off(2 * i + 2, pitch, 0)
        logits = model.step(model.codec.note_on(pitch))
        logits = model.step(1)  # HOLD
    for _ in range(4):
        logits = model.step(REST)
    return logits[0].copy()


def measure(model: StepModel, n: int, length: int, repeats: int) -> list[float]:
    """Seconds per search, ``repeats`` calls of N candidates for a ``length``-step answer."""
    human = HumanRecord()
    phrases = Phrases(model, Sampler(model.codec), human, 16)
    rng = random.Random(n * 1000 + length)
    times = []
    for rep in range(repeats):
        logits = primed(model, rng, human)
        s = Settings(candidates=n, seed=rep)
        t0, t1 = Turn("call", LISTENING, 0, 16, 4), Turn("call", ANSWERING, answer_left=length - 1)
        phrases.clear()
        start = time.perf_counter()
        phrases.step(20, s, t0, t1, False, logits, (False,), lambda: None)
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    """Print the table of search times per N and answer length."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=catalog.DEFAULT_MELODY)
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args(argv)
    model = StepModel(catalog.resolve(args.model))
    window = 1.5 * 60.0 / (BPM * model.codec.steps_per_beat)
    print(f"window at {BPM:g} bpm: {window * 1e3:.2f} ms (1.5 steps); listen gap one beat "
          f"= {60e3 / BPM:.0f} ms")
    print("| N | answer steps | p50 ms | p99 ms | max ms | late (of runs) |")
    print("|---|---|---|---|---|---|")
    for n in NS:
        for length in LENGTHS:
            t = np.array(measure(model, n, length, args.repeats)) * 1e3
            late = int((t > window * 1e3).sum())
            print(f"| {n} | {length} | {np.percentile(t, 50):.2f} | {np.percentile(t, 99):.2f}"
                  f" | {t.max():.2f} | {late}/{t.size} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
