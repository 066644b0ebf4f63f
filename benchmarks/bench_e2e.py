"""End-to-end latency of ``liveduet run`` over a JACK dummy server at 64 frames / 48 kHz.

Measures, in one run, for each runtime variant (``liveduet run`` processes side by side on one
server, each with its own keyboard and recorder port):
1. note-in -> harmony-note-out latency in ``--mode harmonize`` against a bare python-rtmidi echo
   client in its own process (the floor); the notes go to the echo and every variant in a
   shuffled order, note by note (interleaved);
2. the conductor's wake-up error (actual minus intended time of the first message of each
   send; every message of a chord is also reported) and its reaction time (input callback ->
   answer sent, inside the process), from ``--stats``;
3. idle CPU of each variant (process CPU time over ~10 s idle / wall time), side by side;
   then the wake-up error again with each variant playing alone (``--mode continue``, 5 s
   slices, the variants taking turns), without the latency stage's clients on the two cores;
4. JACK cycles each client did not finish in time (jackd's "was not finished" reports).

Variants patch the defaults of :class:`liveduet.live.rtthread.Tuning` (how the conductor thread
waits) and :class:`liveduet.core.conductor.Options` before ``liveduet run`` starts;
``tuned`` is the shipped default, the others switch one tuning off each.

Usage: python benchmarks/bench_e2e.py [--notes 200] [--idle 10] [--variants tuned,untuned]
Targets (for ``tuned``): harmony p50 <= floor p50 + 0.25 ms; p99 - floor p99 < one JACK
period; wake-up error p99 <= 100 us; idle CPU <= 3% of one core.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rtmidi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from liveduet.testkit.jack import JackServer, release, wait_for  # noqa: E402

ECHO = """
import sys, time, rtmidi
o = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="echo"); o.open_virtual_port("out")
i = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="echoin"); i.open_virtual_port("in")
i.set_callback(lambda ev, _d: o.send_message(ev[0]))
print("ready", flush=True)
sys.stdin.read()
"""
PRELUDE = ("import dataclasses, functools, sys; import liveduet.cli.run as c; "
           "kw = {kw!r}; own = {{f.name for f in dataclasses.fields(c.Tuning)}}; "
           "c.Tuning = functools.partial(c.Tuning, **{{k: v for k, v in kw.items() if k in own}}); "
           "c.Options = functools.partial(c.Options, "
           "**{{k: v for k, v in kw.items() if k not in own}}); "
           "from liveduet.cli import main; sys.exit(main(sys.argv[1:]))")
VARIANTS: dict[str, dict[str, Any]] = {
    "tuned": {},
    "untuned": {"switch_interval": None, "yield_spin": False},
    "rt": {},
    "no-switch": {"switch_interval": None},
    "hold-spin": {"yield_spin": False},
    "fixed-spin": {"adaptive_spin": False},
    "prefetch-now": {"prefetch_after": 0.0},
    "vl-off": {},
    "vl-guided": {},
}
VARIANT_ARGS: dict[str, list[str]] = {
    "rt": ["--realtime"],
    "vl-off": ["--voice-leading", "off"],
    "vl-guided": ["--voice-leading", "guided"],
}
"""Variants that differ in a setting: ``tuned`` with these extra ``liveduet run`` arguments
(``tuned`` harmonises with the default ``--voice-leading strict``)."""


def harmony_model(tmp: Path) -> tuple[Path, str]:
    """The bundled chorale_satb when present, else a factory multi-voice LSTM."""
    bundled = ROOT / "models" / "chorale_satb.onnx"
    if bundled.exists():
        return bundled, "bundled chorale_satb"
    from liveduet.core.codec import chorale_codec
    from liveduet.testkit.factory import lstm_model

    return lstm_model(tmp / "satb.onnx", chorale_codec(), hidden=64), "factory SATB LSTM (h=64)"


class Recorder:
    """A JACK input port recording (perf_counter, msg); wakes a waiter on each note-on (no
    polling: a polling benchmark would load the two cores it measures)."""

    def __init__(self, name: str) -> None:
        self.events: list[tuple[float, tuple[int, ...]]] = []
        self.note_on = threading.Event()
        self.port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=name)
        self.port.open_virtual_port("in")
        self.port.set_callback(self._on)

    def _on(self, ev: tuple[list[int], float], _data: object = None) -> None:
        msg = tuple(ev[0])
        self.events.append((time.perf_counter(), msg))
        if msg[0] & 0xF0 == 0x90 and msg[2] > 0:
            self.note_on.set()

    def first_on_after(self, t0: float, start: int = 0) -> float | None:
        for t, m in self.events[start:]:
            if t >= t0 and m[0] & 0xF0 == 0x90 and m[2] > 0:
                return t - t0
        return None


@dataclass
class Target:
    """One thing the keyboard plays into: the echo floor or a liveduet variant."""

    name: str
    keys: Any
    rec: Recorder
    proc: subprocess.Popen[str] | None = None
    stats: Path | None = None
    lat: list[float] = field(default_factory=list)
    missed: int = 0
    stderr: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    clients: tuple[str, ...] = ()


def start_liveduet(jack: JackServer, kw: dict[str, Any], args: list[str]
                   ) -> tuple[subprocess.Popen[str], list[str], tuple[str, str]]:
    """Start one variant; return it, its stderr lines and its (in, out) JACK port names."""
    before = set(jack.ports())
    cmd = [sys.executable, "-c", PRELUDE.format(kw=kw), "run", "--api", "jack", "--no-osc",
           "--quiet", *args]
    env = {**jack.env(), "PYTHONFAULTHANDLER": "1"}   # a crash prints its stack
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    wait_for(lambda: any("Ctrl-C to stop" in ln for ln in lines) or proc.poll() is not None,
             60.0, what="liveduet to start")
    if proc.poll() is not None:
        raise SystemExit(f"liveduet did not start: {''.join(lines)}")
    new = wait_for(lambda: [p for p in jack.ports() if p not in before and "liveduet" in p]
                   if len([p for p in jack.ports() if p not in before]) >= 2 else None, 10.0)
    inp = next(p for p in new if p.endswith("liveduet in"))
    out = next(p for p in new if p.endswith("liveduet out"))
    return proc, lines, (inp, out)


def stop(proc: subprocess.Popen[str], lines: list[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired as err:
        proc.kill()
        proc.wait(10)
        raise SystemExit("liveduet did not exit within 30 s of SIGTERM:\n"
                         + "".join(lines)) from err
    if proc.returncode != 0:  # its figures are missing then: say why
        print(f"warning: liveduet exited with {proc.returncode}:\n" + "".join(lines[-40:]),
              file=sys.stderr)


def open_targets(jack: JackServer, variants: list[str], model: Path, tmp: Path) -> list[Target]:
    targets = []
    for i, name in enumerate(["echo", *variants]):
        keys = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=f"keys{i}")
        keys.open_virtual_port("out")
        rec = Recorder(f"rec{i}")
        t = Target(name, keys, rec)
        if name == "echo":
            jack.connect(f"keys{i}:out", "echoin:in")
            jack.connect("echo:out", f"rec{i}:in")
        else:
            t.stats = tmp / f"stats-{name}.json"
            t.proc, t.stderr, (inp, out) = start_liveduet(
                jack, VARIANTS[name], ["--mode", "harmonize", "--model", str(model),
                                       "--no-thru", "--bpm", "120", "--stats", str(t.stats),
                                       *VARIANT_ARGS.get(name, [])])
            t.clients = (inp.split(":")[0], out.split(":")[0])
            jack.connect(f"keys{i}:out", inp)
            jack.connect(out, f"rec{i}:in")
        targets.append(t)
    return targets


def measure_latency(jack: JackServer, notes: int, model: Path, variants: list[str],
                    tmp: Path) -> list[Target]:
    echo = subprocess.Popen([sys.executable, "-c", ECHO], env=jack.env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert echo.stdout is not None and echo.stdout.readline().startswith("ready")
    targets = open_targets(jack, variants, model, tmp)
    rng = np.random.default_rng(0)
    try:
        time.sleep(1.0)
        for _ in range(notes):
            pitch = int(rng.choice([60, 62, 64, 65, 67, 69, 71, 72]))
            for k in rng.permutation(len(targets)):
                play(targets[k], pitch, rng)
    finally:
        for t in targets:
            if t.proc is not None:
                stop(t.proc, t.stderr)
            if t.stats is not None and t.stats.exists():
                t.result = json.loads(t.stats.read_text())
        echo.stdin.close()  # type: ignore[union-attr]
        echo.wait(10)
        for t in targets:
            release(t.keys, t.rec.port)
    return targets


def play(t: Target, pitch: int, rng: np.random.Generator) -> None:
    start = len(t.rec.events)
    t.rec.note_on.clear()
    t0 = time.perf_counter()
    t.keys.send_message([0x90, pitch, 90])
    end = t0 + 0.05
    while ((lat := t.rec.first_on_after(t0, start)) is None
           and (left := end - time.perf_counter()) > 0):
        t.rec.note_on.wait(left)
        t.rec.note_on.clear()
    if lat is None:
        t.missed += 1
    else:
        t.lat.append(lat)
    time.sleep(0.02 + rng.uniform(0, 0.04))
    t.keys.send_message([0x80, pitch, 0])
    time.sleep(0.01)


BARE = """
import sys, rtmidi
i = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="bare"); i.open_virtual_port("in")
o = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="bareout"); o.open_virtual_port("out")
i.set_callback(lambda ev, d: None)
print("ready", flush=True)
sys.stdin.read()
"""


def idle_cpu(jack: JackServer, variants: list[str], seconds: float, model: Path,
             harmony: Path) -> dict[str, float]:
    """CPU seconds per wall second of idle processes side by side: each variant in call mode,
    the first variant in harmonize mode too, and a bare python-rtmidi client with the same two
    JACK ports (what any Python MIDI program pays)."""
    procs = {v: start_liveduet(jack, VARIANTS[v], ["--model", str(model), "--bpm", "120"])[0]
             for v in variants}
    procs[f"{variants[0]} harmonize"] = start_liveduet(
        jack, VARIANTS[variants[0]], ["--model", str(harmony), "--mode", "harmonize",
                                      "--bpm", "120"])[0]
    bare = subprocess.Popen([sys.executable, "-c", BARE], env=jack.env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert bare.stdout is not None and bare.stdout.readline().startswith("ready")
    procs["bare rtmidi"] = bare  # type: ignore[assignment]
    try:
        time.sleep(2.0)
        c0, t0 = {v: _cpu(p.pid) for v, p in procs.items()}, time.monotonic()
        time.sleep(seconds)
        c1, t1 = {v: _cpu(p.pid) for v, p in procs.items()}, time.monotonic()
    finally:
        for proc in procs.values():
            if proc is bare:
                bare.stdin.close()  # type: ignore[union-attr]
                bare.wait(10)
            else:
                stop(proc, [])
    return {v: (c1[v] - c0[v]) / (t1 - t0) for v in procs}


def timing(jack: JackServer, variants: list[str], seconds: float, model: Path, tmp: Path
           ) -> dict[str, tuple[list[float], list[float], list[float]]]:
    """Wake-up errors (first message of each send) and send errors (every message) of
    ``liveduet run --mode continue`` (it plays on the grid by itself), each variant truly
    alone: 5 s slices, the variants in turn in a shuffled order per round (side by side,
    processes on the same tempo grid wake at the same instants and fight for the two cores
    exactly when they should send)."""
    rng = np.random.default_rng(1)
    wakes: dict[str, tuple[list[float], list[float], list[float]]] = {
        v: ([], [], []) for v in variants}   # first, every, worst first error of each slice
    for r in range(max(1, round(seconds / 5))):
        for v in rng.permutation(variants):
            stats = tmp / f"timing-{v}-{r}.json"
            proc, lines, _ = start_liveduet(jack, VARIANTS[v], [
                "--model", str(model), "--bpm", "240", "--mode", "continue", "--stats",
                str(stats)])
            try:
                time.sleep(5.0)
            finally:
                stop(proc, lines)
            if stats.exists():
                got = json.loads(stats.read_text())
                wakes[v][0].extend(got.get("wake_first_s", []))
                wakes[v][1].extend(got.get("wake_errors_s", []))
                wakes[v][2].append(max(got.get("wake_first_s", []), default=float("nan")))
    return wakes


def melody_model(tmp: Path) -> Path:
    bundled = ROOT / "models" / "folk_melody.onnx"
    if bundled.exists():
        return bundled
    from liveduet.testkit.factory import lstm_model

    return lstm_model(tmp / "melody.onnx", hidden=64)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--notes", type=int, default=200)
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--timing", type=float, default=30.0, help="seconds of the wake-up stage")
    ap.add_argument("--dump", type=Path, help="write every latency and --stats figure as JSON")
    ap.add_argument("--stages", default="latency,idle,timing",
                    help="comma-separated stages to run (default: all three)")
    ap.add_argument("--variants", default="tuned,untuned",
                    help=f"comma-separated, from: {', '.join(VARIANTS)}")
    args = ap.parse_args()
    stages = set(args.stages.split(","))
    if not stages <= {"latency", "idle", "timing"}:
        ap.error(f"unknown stages {sorted(stages - {'latency', 'idle', 'timing'})}")
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        ap.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    with tempfile.TemporaryDirectory() as tmp, JackServer(name="liveduet-bench-e2e") as jack:
        model, what = harmony_model(Path(tmp))
        cpu = {v: float("nan") for v in variants}
        if "latency" in stages:
            targets = measure_latency(jack, args.notes, model, variants, Path(tmp))
        if "idle" in stages:
            cpu = idle_cpu(jack, variants, args.idle, melody_model(Path(tmp)), model)
        if "timing" in stages:
            wakes = timing(jack, variants, args.timing, melody_model(Path(tmp)), Path(tmp))
    if "latency" in stages:
        report(jack, what, targets, cpu, args.notes)
        if args.dump:
            args.dump.write_text(json.dumps({t.name: {"lat": t.lat, **t.result} for t in targets}))
    if "idle" in stages:
        print("idle CPU side by side: " + ", ".join(f"{k} {v * 100:.2f}%" for k, v in cpu.items()))
    if "timing" in stages:
        if args.dump:
            old = json.loads(args.dump.read_text()) if args.dump.exists() else {}
            args.dump.write_text(json.dumps({**old, "timing": wakes}))
        print(f"wake-up error playing alone (--mode continue at 240 bpm, {args.timing:.0f} s "
              "each, in 5 s slices taking turns):")
        for v, (first, every, worst) in wakes.items():
            print(f"{v:<18} n={len(first):5d}  p50 {pct(first, 50) * 1e6:6.1f} us  p90 "
                  f"{pct(first, 90) * 1e6:6.1f} us  p99 {pct(first, 99) * 1e6:7.1f} us")
            print(f"{'':<18} every message of each instant (n={len(every)}): p50 "
                  f"{pct(every, 50) * 1e6:6.1f} us  p99 {pct(every, 99) * 1e6:7.1f} us")
            print(f"{'':<18} worst wake-up of each 5 s slice, in time order (us): "
                  + " ".join(f"{w * 1e6:.0f}" for w in worst))
        print("(slices taken at the same time by every variant show the machine, not liveduet)")
    return 0


def report(jack: JackServer, what: str, targets: list[Target], cpu: dict[str, float],
           notes: int) -> None:
    period = jack.period_s * 1e3
    echo = targets[0]
    e50, e99 = pct(echo.lat, 50) * 1e3, pct(echo.lat, 99) * 1e3
    print(f"JACK dummy {jack.rate} Hz, {jack.period} frames (period {period:.3f} ms); "
          f"{notes} notes to each target, interleaved; model: {what}")
    print(f"{'echo floor':<18} n={len(echo.lat):4d}  p50 {e50:7.3f} ms  p99 {e99:7.3f} ms")
    base: dict[str, float] = {}
    for t in targets[1:]:
        l50, l99 = pct(t.lat, 50) * 1e3, pct(t.lat, 99) * 1e3
        wake = t.result.get("wake_first_s", [])
        react = t.result.get("reactions_s", [])
        delay = t.result.get("queue_delays_s", [])
        feed = t.result.get("step_times_s", [])
        w99, r50, r99 = pct(wake, 99) * 1e6, pct(react, 50) * 1e6, pct(react, 99) * 1e6
        print(f"{t.name:<18} n={len(t.lat):4d}  p50 {l50:7.3f} ms  p99 {l99:7.3f} ms  "
              f"(missed {t.missed}); extra over floor p50 {l50 - e50:+.3f} ms, "
              f"p99 {l99 - e99:+.3f} ms")
        print(f"{'':<18} wake-up error n={len(wake)} p50 {pct(wake, 50) * 1e6:6.1f} us "
              f"p99 {w99:7.1f} us; reaction p50 {r50:6.1f} us p99 {r99:7.1f} us; "
              f"idle CPU {cpu[t.name] * 100:.2f}%")
        print(f"{'':<18} of which input queue p50 {pct(delay, 50) * 1e6:6.1f} us p99 "
              f"{pct(delay, 99) * 1e6:7.1f} us; engine calls p50 {pct(feed, 50) * 1e6:6.1f} us "
              f"p99 {pct(feed, 99) * 1e6:7.1f} us")
        parts = np.array(t.result.get("reaction_parts_s", [])).reshape(-1, 3) * 1e6
        if len(parts):
            q, f, s = (np.median(parts[:, k]) for k in range(3))
            print(f"{'':<18} answered notes: callback -> conductor p50 {q:6.1f} us, engine p50 "
                  f"{f:6.1f} us p99 {np.percentile(parts[:, 1], 99):7.1f} us, send p50 {s:6.1f} us")
        now = {"p50": l50, "p99": l99, "wake99": w99, "cpu": cpu[t.name]}
        if base:
            print(f"{'':<18} ratio to {targets[1].name}: " + ", ".join(
                f"{k} {now[k] / base[k]:.2f}x" for k in now if base[k]))
        else:
            base = now
    names = {c: f"{t.name} {'in' if k == 0 else 'out'}" for t in targets
             for k, c in enumerate(t.clients)}
    late = ", ".join(f"{names.get(c, c)} {n}" for c, n in jack.late.most_common(10)) or "none"
    print(f"JACK cycles not finished in time, by client: {late}")
    print(f"targets (first variant): extra p50 <= +0.25 ms, extra p99 < {period:.3f} ms, "
          "wake-up p99 <= 100 us, idle CPU <= 3%")


if __name__ == "__main__":
    sys.exit(main())
