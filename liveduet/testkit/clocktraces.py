"""Generated MIDI clock traces for replaying the clock follower in virtual time: a DAW's true
tick times, the stamps they arrive with (JACK-period quantisation, a held client, lost ticks)
and a replay that queries the follower every millisecond. Shared by the tests and
``benchmarks/bench_clock.py``; seeds are fixed, nothing reads a clock."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from liveduet.core.clock import CLOCK, PPQN, START, MidiClockFollower

RATE = 48000
TPS = PPQN / 4   # ticks per grid step (16ths)
Msg = tuple[int, ...]


def period(bpm: float) -> float:
    return 60.0 / (bpm * PPQN)


def steady(bpm: float, n: int, start: float = 1.0) -> list[float]:
    """True times of ``n`` ticks at a steady tempo."""
    return [start + k * period(bpm) for k in range(n)]


def tempo_map(bpms: Sequence[float], start: float = 1.0) -> list[float]:
    """True times of ticks whose k-th period is at ``bpms[k]``."""
    times = [start]
    for bpm in bpms[:-1]:
        times.append(times[-1] + period(bpm))
    return times


def jack(times: Sequence[float], frames: int, seed: int) -> list[float]:
    """Arrival stamps: each tick waits for the end of its JACK period, plus up to 0.2 ms of
    scheduling noise."""
    q = frames / RATE
    rng = np.random.default_rng(seed)
    return [math.ceil(t / q) * q + float(rng.uniform(0, 0.0002)) for t in times]


def held(stamps: Sequence[float], since: float, seconds: float) -> list[float]:
    """The receiver cannot run from ``since`` for ``seconds``: what arrived meanwhile comes in
    one burst at its end, 20 µs apart, in order and all counted."""
    out, n = [], 0
    for s in stamps:
        if since <= s < since + seconds:
            out.append(since + seconds + 0.00002 * n)
            n += 1
        else:
            out.append(max(s, out[-1]) if out else s)
    return out


class Replay(NamedTuple):
    """A follower after a trace, and what it answered along the way."""

    follower: MidiClockFollower
    at_ticks: list[float]         # position(T_k) at each true tick time, in ticks
    bpm_at_ticks: list[float]     # bpm just after T_k
    queries: list[float]          # position(q) every millisecond, in steps
    late_queries: list[float]     # position(q - 20 ms) every millisecond, in steps


def replay(true: Sequence[float], stamps: Sequence[float | None],
           extra: Sequence[tuple[float, Msg]] = ()) -> Replay:
    """Start, then the delivered ticks (None: lost) and ``extra`` messages, in stamp order;
    queries every millisecond and at each true tick time see every message stamped up to them."""
    msgs = sorted([(true[0] - 0.1, (START,))] + list(extra)
                  + [(s, (CLOCK,)) for s in stamps if s is not None], key=lambda m: m[0])
    f = MidiClockFollower()
    end = max(true[-1], msgs[-1][0]) + 0.05
    grid = np.arange(true[0] - 0.05, end, 0.001)
    asks = sorted([(float(q), -1) for q in grid] + [(t, k) for k, t in enumerate(true)])
    at_ticks, bpms, queries, late = [0.0] * len(true), [0.0] * len(true), [], []
    i = 0
    for q, k in asks:
        while i < len(msgs) and msgs[i][0] <= q:
            f.on_message(msgs[i][1], msgs[i][0])
            i += 1
        if k >= 0:
            at_ticks[k] = f.position(q) * TPS
            bpms[k] = f.bpm
        elif f.running:
            queries.append(f.position(q))
            late.append(f.position(q - 0.02))
    return Replay(f, at_ticks, bpms, queries, late)
