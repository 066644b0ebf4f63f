"""Do answers listen? Call-mode answers and generated pieces, before and after candidates.

Virtual time, deterministic per seed, on the validation split of the melody corpus (pieces
the model never trained on; ``python -m export.corpus melody`` builds the cache). Each tune is
cut into 2-bar phrases and every other phrase is silenced; the engine answers the rest in
``call`` mode. Measures (DESIGN §7), once with ``candidates 1`` and once with the defaults:

* motif reuse: share of calls (>= 4 notes) whose answer holds an interval figure of the call
  (exact or transposed); chance = another tune's answer phrase against this call; human = the
  withheld answer phrase of the same tune;
* in key: share of answer notes in the scale of the Krumhansl-Schmuckler key of the calls;
* same instants: answers starting on other grid steps than with ``candidates 1``;
* late: searches that took longer than the time they have live at 240 bpm: from the engine's
  position when it ran to its phrase's first step (the engine plans a step further ahead in a
  listen gap, so a search has 1.5 steps = 94 ms), and for an answer that enters on the bar
  line right after the call, from the send of the step before it (the search worker starts
  there) to ``SEARCH_MARGIN`` before it (0.75 steps = 47 ms); live, a deadline cuts a search
  short there instead (the best phrase so far plays), so no answer starts late;
* ``generate --bars 16``: self-reuse (figures of the second half heard in the first), and
  generated pieces with a verbatim training run longer than ``max_copy``;
* how much validation tunes share with the training tunes (for the ``max_copy`` default).

    python benchmarks/bench_listen.py [--model models/folk_melody.onnx] [--tunes 80]
        [--pieces 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.copyindex import pieces
from export.corpus import load
from liveduet.cli.run import SEARCH_MARGIN
from liveduet.core import answers, catalog
from liveduet.core.codec import TimedNote
from liveduet.core.copyindex import CopyIndex, load_for
from liveduet.core.engine import Engine
from liveduet.core.model import StepModel
from liveduet.core.motifs import PNote, reuses_figure, self_reuse
from liveduet.core.sampling import estimate_key, scale_pcs
from liveduet.core.settings import Settings
from liveduet.offline.render import render

PHRASE = 32   # steps: 2 bars of 16ths
SPB = 4
STEP_S = 60.0 / (240.0 * SPB)


def split(notes: Sequence[PNote]) -> list[list[PNote]]:
    """2-bar phrases by onset."""
    count = (notes[-1].onset // PHRASE + 1) if notes else 0
    out: list[list[PNote]] = [[] for _ in range(count)]
    for n in notes:
        out[n.onset // PHRASE].append(n)
    return out


def human_part(phrases: list[list[PNote]]) -> list[TimedNote]:
    """Even phrases, each note cut at its phrase's end (the odd ones are silent)."""
    out = []
    for k in range(0, len(phrases), 2):
        end = (k + 1) * PHRASE
        out += [TimedNote(n.onset / SPB, n.pitch, min(n.onset + n.dur, end) / SPB)
                for n in phrases[k]]
    return out


def to_steps(notes: Sequence[TimedNote]) -> list[PNote]:
    """Machine notes in beats -> grid notes."""
    return [PNote(round(n.start * SPB), max(1, round((n.end - n.start) * SPB)), n.pitch)
            for n in sorted(notes)]


class Timer:
    """Records each candidate search's seconds and the time it had: from the position the
    engine was advanced to (as live, lookahead 1) to its phrase's first step, at 240 bpm."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.windows: list[float] = []
        self.pos = 0.0
        self._orig = (answers.Phrases._begin, Engine.advance)

    def __enter__(self) -> Timer:
        begin, advance = self._orig

        def timed(phrases: answers.Phrases, n: int, *args: Any) -> None:
            """The search, timed, with the time it had."""
            t0 = time.perf_counter()
            begin(phrases, n, *args)
            self.times.append(time.perf_counter() - t0)
            # live, the search worker starts an answer that enters on the bar line right
            # after the call at the send of the step before it, and the conductor takes its
            # phrase up to SEARCH_MARGIN before the answer is due: that is its least time
            self.windows.append(max(n - self.pos, 1.0 - SEARCH_MARGIN) * STEP_S)

        def advancing(engine: Engine, pos: float) -> Any:
            """Engine.advance, remembering the position."""
            self.pos = pos  # renders start at position 0 = step 0
            return advance(engine, pos)
        answers.Phrases._begin = timed  # type: ignore[method-assign]
        Engine.advance = advancing  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        answers.Phrases._begin, Engine.advance = self._orig  # type: ignore[method-assign]


def call_run(model: StepModel, tunes: list[list[PNote]], settings: Settings) -> dict[str, Any]:
    """Render every tune in call mode; reuse, chance, human, in-key and answer instants."""
    counts = dict.fromkeys(("calls", "reuse", "chance", "human", "in_key", "notes"), 0)
    starts: list[list[float]] = []
    with Timer() as timer:
        for i, tune in enumerate(tunes):
            part = human_part(split(tune))
            engine = Engine(model, Settings(**{**settings.as_dict(), "seed": i}))
            duet = render(engine, part, tail_bars=2)
            starts.append([pos for pos, phase in duet.turns if phase == "answering"])
            score_answers(tune, tunes[(i + 1) % len(tunes)], part,
                          to_steps(duet.machine.get(0, [])), counts)
    t = np.array(timer.times or [0.0])
    window = np.array(timer.windows or [1.0])
    calls = counts["calls"]
    return {"calls": calls, "reuse": counts["reuse"] / calls, "chance": counts["chance"] / calls,
            "human": counts["human"] / calls, "in_key": counts["in_key"] / max(counts["notes"], 1),
            "starts": starts, "searches": len(timer.times), "over": int((t > window).sum()),
            "window": float(window.min()),
            "p50": float(np.percentile(t, 50)), "p99": float(np.percentile(t, 99))}


def score_answers(tune: list[PNote], other_tune: list[PNote], part: Sequence[TimedNote],
                  mach: list[PNote], counts: dict[str, int]) -> None:
    """Add one tune's calls, figure reuse (machine, human, chance) and in-key notes."""
    phrases, other = split(tune), split(other_tune)
    pcs = _key_pcs(part)
    for k in range(0, len(phrases) - 1, 2):
        call = phrases[k]
        if len(call) < 4:
            continue
        lo, hi = call[-1].onset + call[-1].dur, (k + 2) * PHRASE
        answer = [n for n in mach if lo <= n.onset < hi]
        odd = [p for j, p in enumerate(other) if j % 2][: k // 2 + 1]
        counts["calls"] += 1
        counts["reuse"] += reuses_figure(call, answer)
        counts["human"] += reuses_figure(call, phrases[k + 1])
        counts["chance"] += bool(odd) and reuses_figure(call, odd[-1])
        counts["in_key"] += sum(n.pitch % 12 in pcs for n in answer)
        counts["notes"] += len(answer)


def _key_pcs(part: Sequence[TimedNote]) -> frozenset[int]:
    found = estimate_key([n.pitch for n in part], [n.end - n.start for n in part])
    return scale_pcs(*(found or (0, "major")))


def generate_run(model: StepModel, settings: Settings, count: int, index: CopyIndex | None
                 ) -> dict[str, Any]:
    """``generate --bars 16`` for seeds 0..count-1: self-reuse and copies over max_copy."""
    shares, copies, longest = [], 0, 0
    for seed in range(count):
        engine = Engine(model, Settings(**{**settings.as_dict(), "mode": "continue",
                                            "seed": seed}))
        notes = to_steps(render(engine, [], tail_bars=16).machine.get(0, []))
        share = self_reuse(notes, 8 * 16)
        if share is not None:
            shares.append(share)
        run = index.longest(notes) if index is not None else 0
        longest = max(longest, run)
        copies += run > settings.max_copy
    return {"self_reuse": float(np.mean(shares)), "copies": copies, "longest": longest}


def sharing(index: CopyIndex, tunes: list[list[PNote]]) -> str:
    """Share of validation tunes whose longest verbatim training run exceeds L notes."""
    runs = np.array([index.longest(t) for t in tunes])
    cells = [f"> {n}: {np.mean(runs > n):.1%}" for n in (8, 10, 12, 14, 16, 20, 24, 32)]
    return (f"validation tunes ({len(runs)}) with a verbatim training run longer than L notes: "
            + ", ".join(cells) + f"; median longest {np.median(runs):g}")


def main(argv: list[str] | None = None) -> int:
    """Print the before/after table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=catalog.DEFAULT_MELODY)
    p.add_argument("--tunes", type=int, default=80, help="validation tunes answered")
    p.add_argument("--pieces", type=int, default=100, help="pieces generated")
    p.add_argument("--candidates", type=int, help="N after (default: the setting's)")
    p.add_argument("--develop", type=float, help="develop after (default: the setting's)")
    args = p.parse_args(argv)
    path = catalog.resolve(args.model)
    model, index = StepModel(path), load_for(path)
    valid = [notes for _, notes in pieces(load("melody"), valid=True) if len(notes) >= 16]
    if index is not None:
        print(sharing(index, valid))
    tunes = valid[:: max(1, len(valid) // args.tunes)][: args.tunes]
    after = Settings(mode="call", thru=False)
    for name, value in (("candidates", args.candidates), ("develop", args.develop)):
        after = after if value is None else after.with_value(name, value)
    rows = {"before (candidates 1)": after.with_value("candidates", 1),
            f"after (candidates {after.candidates}, develop {after.develop:g})": after}
    results = {k: (call_run(model, tunes, s), generate_run(model, s, args.pieces, index))
               for k, s in rows.items()}
    _print(results, after.max_copy, args.pieces)
    return 0


def _moved(before: list[float], after: list[float]) -> int:
    """Answers that start elsewhere (or exist in one run only)."""
    common = min(len(before), len(after))
    return sum(a != b for a, b in zip(before[:common], after[:common], strict=True)) + abs(
        len(before) - len(after))


def _print(results: dict[str, tuple[dict[str, Any], dict[str, Any]]], max_copy: int,
           pieces_n: int) -> None:
    base = next(iter(results.values()))[0]["starts"]
    print("| run | calls | answers reuse a call figure | chance | human | in key | "
          "answers on other instants | searches late at 240 bpm (p50/p99 ms, least time ms) | "
          f"generate self-reuse | pieces with a run > {max_copy} (of {pieces_n}) | "
          "longest run |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, (c, g) in results.items():
        moved = sum(_moved(x, y) for x, y in zip(base, c["starts"], strict=True))
        print(f"| {name} | {c['calls']} | {c['reuse']:.1%} | {c['chance']:.1%} | "
              f"{c['human']:.1%} | {c['in_key']:.1%} | {moved} | {c['over']}/{c['searches']} "
              f"({c['p50'] * 1e3:.1f}/{c['p99'] * 1e3:.1f}, {c['window'] * 1e3:.0f}) | "
              f"{g['self_reuse']:.1%} | "
              f"{g['copies']} | {g['longest']} |")


if __name__ == "__main__":
    raise SystemExit(main())
