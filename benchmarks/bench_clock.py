"""MIDI clock follower: error against the true grid on the replayed traces, and its cost.

    python benchmarks/bench_clock.py [--seeds 10]

For each trace of tests/core/test_clock_traces.py (over ``--seeds`` seeds) it prints the error of
``position(T_k)`` at the true tick times after the first beat, in ms (negative: behind), as
p1 / median / p99 and the worst, and the worst tempo error at the end. Then the cost of
``on_message`` per tick and of ``position`` for now and for now - 20 ms, as the median and p99
of batches, the three interleaved.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from liveduet.core.clock import CLOCK, MAX_LOST, PPQN, START, MidiClockFollower
from liveduet.testkit.clocktraces import held, jack, period, replay, steady, tempo_map

Trace = tuple[list[float], list[float | None], Callable[[int], float]]


def jitter(seed: int, frames: int = 256, bpm: float = 120.0) -> Trace:
    true = steady(bpm, 8 * PPQN)
    return true, list(jack(true, frames, seed)), lambda _k: bpm


def preempted(seed: int) -> Trace:
    rng = np.random.default_rng(seed)
    true = steady(120.0, 8 * PPQN)
    stamps = jack(true, 64, seed)
    for k in (40, 80, 120, 160):
        stamps = held(stamps, true[k] + float(rng.uniform(-0.005, 0.005)),
                      float(rng.uniform(0.010, 0.030)))
    return true, list(stamps), lambda _k: 120.0


def stall(seed: int) -> Trace:
    true = steady(120.0, 8 * PPQN)
    return true, list(held(jack(true, 64, seed), true[77] + 0.001, 0.25)), lambda _k: 120.0


def lost(seed: int) -> Trace:
    true = steady(120.0, 8 * PPQN)
    stamps: list[float | None] = list(jack(true, 64, seed))
    stamps[100:100 + MAX_LOST] = [None] * MAX_LOST
    return true, stamps, lambda _k: 120.0


def accelerando(seed: int) -> Trace:
    bpms = [100.0 + 40.0 * k / (32 * PPQN) for k in range(32 * PPQN)] + [140.0] * (2 * PPQN)
    true = tempo_map(bpms)
    return true, list(jack(true, 64, seed)), lambda k: bpms[k - 1]


def jump(seed: int) -> Trace:
    bpms = [120.0] * (8 * PPQN) + [90.0] * (4 * PPQN)
    true = tempo_map(bpms)
    return true, list(jack(true, 64, seed)), lambda k: bpms[k - 1]


TRACES = {"jitter 64 frames": lambda s: jitter(s, 64), "jitter 256 frames": jitter,
          "preempted 10-30 ms": preempted, "stall 250 ms + burst": stall,
          f"{MAX_LOST} ticks lost": lost, "accelerando 100->140": accelerando,
          "jump 120->90": jump}


def accuracy(seeds: int) -> None:
    print(f"{'trace':24} {'p1 ms':>8} {'p50 ms':>8} {'p99 ms':>8} {'worst ms':>9} {'bpm err':>8}")
    for name, make in TRACES.items():
        errs, tempo = [], 0.0
        for seed in range(seeds):
            true, stamps, bpm_at = make(seed)
            r = replay(true, stamps)
            errs += [(r.at_ticks[k] - k) * period(bpm_at(k)) * 1e3 for k in range(PPQN, len(true))]
            tempo = max(tempo, abs(r.follower.bpm / bpm_at(len(true) - 1) - 1))
        e = np.array(errs)
        worst = e[np.argmax(np.abs(e))]
        print(f"{name:24} {np.percentile(e, 1):8.2f} {np.median(e):8.2f} "
              f"{np.percentile(e, 99):8.2f} {worst:9.2f} {tempo * 100:7.2f}%")


def cost(batches: int = 200, per_batch: int = 96) -> None:
    stamps = jack(steady(120.0, batches * per_batch + 1), 64, 1)
    f = MidiClockFollower()
    f.on_message([START], 0.5)
    f.on_message([CLOCK], stamps[0])
    times: dict[str, list[float]] = {"on_message": [], "position(now)": [],
                                     "position(now - 20 ms)": []}
    clock = time.perf_counter
    for b in range(batches):
        chunk = stamps[1 + b * per_batch:1 + (b + 1) * per_batch]
        t0 = clock()
        for s in chunk:
            f.on_message([CLOCK], s)
        t1 = clock()
        for s in chunk:
            f.position(s + 0.001)
        t2 = clock()
        for s in chunk:
            f.position(s - 0.019)
        t3 = clock()
        for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            times[key].append(dt / len(chunk) * 1e6)
    for key, v in times.items():
        print(f"{key:24} median {np.median(v):6.2f} µs  p99 {np.percentile(v, 99):6.2f} µs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10, help="seeds per trace")
    args = ap.parse_args()
    accuracy(args.seeds)
    cost()


if __name__ == "__main__":
    main()
