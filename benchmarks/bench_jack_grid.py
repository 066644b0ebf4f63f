"""Grid placement of ``liveduet run`` note-ons over JACK: JACK-native backend vs python-rtmidi.

Starts a private JACK dummy server per period (256 and 64 frames at 48 kHz) and a JACK-Client
recorder that stamps each note-on with its frame and maps that frame to ``perf_counter`` time by
the cycle it arrives in (what a sample-accurate synth renders it at). ``liveduet run --mode
continue`` with a scripted model (an eighth note at a time, 120 bpm, internal clock) plays into
it, alternately with ``--midi-backend jack`` and ``--midi-backend rtmidi`` (interleaved rounds,
so both see the same machine load). Reports, per period and backend, the note-ons' offsets from
the 16th-note grid (phase fitted per run) in frames, p50 and p99 of their absolute value, and for
the JACK-native runs how late its process callback started in each cycle (frames since the cycle
start at entry: wake-up plus the wait for the GIL, from ``--stats``), p50/p99, with the
messages it counted late. Cycles the dummy server ran late (jackd's log) are counted too: on a
loaded machine they throw the frame clock off for a few notes.

    python benchmarks/bench_jack_grid.py                      # 3 rounds, 24 note-ons a run
    python benchmarks/bench_jack_grid.py --rounds 5 --notes 40 --periods 256
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from liveduet.testkit.factory import eighths_model
from liveduet.testkit.jack import JackServer, stop_process, wait_for
from liveduet.testkit.jackrec import FrameClient, frame_grid_offsets, grid_offsets

ROOT = Path(__file__).resolve().parents[1]
RATE, BPM, ANSWER = 48000, 120.0, 72
BACKENDS = ("jack", "rtmidi")


def one_run(server: JackServer, rec: FrameClient, model: Path, backend: str, notes: int,
            stats: Path) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """Offsets (frames) of ``notes`` note-ons of one ``liveduet run`` from the grid in frames
    and from the wall-clock grid; its --stats ports part."""
    rec.got.clear()
    rec.times.clear()
    cmd = [sys.executable, "-m", "liveduet", "run", "--api", "jack", "--midi-backend", backend,
           "--model", str(model), "--quiet", "--no-osc", "--seed", "1", "--mode", "continue",
           "--bpm", str(BPM), "--out", "gridrec:in", "--stats", str(stats)]
    proc = subprocess.Popen(cmd, env=server.env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        # the first two notes are left out: the run starts while the process is still warming
        wait_for(lambda: len(rec.note_on_times()) >= notes + 2 or proc.poll() is not None,
                 notes * 0.25 + 60.0, what=f"{notes} note-ons ({backend})")
    finally:
        stop_process(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"liveduet run ({backend}) exited {proc.returncode}: "
                           f"{proc.stderr.read()[-1500:] if proc.stderr else ''}")
    step = 60.0 / BPM / 4
    in_frames = frame_grid_offsets(rec.note_on_frames()[2:notes + 2], step * RATE)
    in_time = grid_offsets(rec.note_on_times()[2:notes + 2], step, RATE)
    ports = json.loads(stats.read_text()).get("ports", {})
    return in_frames, in_time, ports


def pct(values: np.ndarray | list[float], q: float) -> float:
    """Percentile ``q`` (0 for no values)."""
    return float(np.percentile(values, q)) if len(values) else 0.0


def bench_period(period: int, rounds: int, notes: int, model: Path, tmp: Path,
                 backends: Sequence[str] = BACKENDS) -> None:
    """Interleaved rounds of both backends on one server with ``period`` frames."""
    offsets: dict[str, list[float]] = {b: [] for b in backends}
    walls: dict[str, list[float]] = {b: [] for b in backends}
    waits: list[int] = []
    late = 0
    with JackServer(rate=RATE, period=period) as server:
        rec = FrameClient("gridrec")
        try:
            for r in range(rounds):
                for backend in backends if r % 2 == 0 else backends[::-1]:
                    got, wall, ports = one_run(server, rec, model, backend, notes,
                                               tmp / f"stats-{period}-{backend}-{r}.json")
                    offsets[backend] += list(np.abs(got))
                    walls[backend] += list(np.abs(wall))
                    if backend == "jack":
                        waits += list(ports.get("callback_start_frames", []))  # type: ignore[call-overload]
                        late += int(ports.get("late", 0))  # type: ignore[call-overload]
            late_cycles = sum(server.late.values())
        finally:
            rec.close()
    print(f"\nperiod {period} frames ({period / RATE * 1e3:.2f} ms) at {RATE} Hz, {rounds} "
          f"interleaved rounds x {notes} note-ons a backend; dummy-server cycles run late: "
          f"{late_cycles}")
    for title, table in (("|offset| from the 16th grid in frames (local fit)", offsets),
                         ("|offset| from the 16th grid in wall time, in frames", walls)):
        print(f"  {title}:")
        for backend in backends:
            values = table[backend]
            print(f"    {backend:7s} n={len(values):4d}  p50 {pct(values, 50):7.2f}  "
                  f"p99 {pct(values, 99):7.2f}  max {max(values, default=0.0):7.2f}")
    print(f"  JACK-native process callback start (frames since cycle start): p50 "
          f"{pct(waits, 50):.0f}  p99 {pct(waits, 99):.0f}  max {max(waits, default=0)} "
          f"over {len(waits)} cycles; messages placed late: {late}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--notes", type=int, default=24, help="note-ons measured per run")
    ap.add_argument("--periods", type=int, nargs="+", default=[256, 64])
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    args = ap.parse_args(argv)
    if not JackServer.available():
        print("jackd2 is not installed: run 'bash scripts/test.sh' (it installs jackd2)")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-jack-grid-") as name:
        tmp = Path(name)
        model = eighths_model(tmp / "eighths.onnx")
        started = time.perf_counter()
        for period in args.periods:
            bench_period(period, args.rounds, args.notes, model, tmp, args.backends)
        print(f"\n({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
