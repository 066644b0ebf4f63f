"""End-to-end latency of ``liveduet run`` over a JACK dummy server at 64 frames / 48 kHz.

Measures, in one run:
1. note-in -> harmony-note-out latency of ``liveduet run --mode harmonize`` against a bare
   python-rtmidi echo client in its own process (the floor), notes interleaved between the two;
2. the conductor's wake-up error (intended vs actual send time), from ``--stats``;
3. idle CPU of ``liveduet run`` (process CPU time over ~10 s idle / wall time).

Usage: python benchmarks/bench_e2e.py [--notes 200] [--idle 10]
Targets: harmony p50 <= floor p50 + 0.25 ms; p99 - floor p99 < one JACK period;
wake-up error p99 <= 100 us; idle CPU <= 3% of one core.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rtmidi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.jack import JackServer, wait_for  # noqa: E402

ECHO = """
import sys, time, rtmidi
o = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="echo"); o.open_virtual_port("out")
i = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="echoin"); i.open_virtual_port("in")
i.set_callback(lambda ev, _d: o.send_message(ev[0]))
print("ready", flush=True)
sys.stdin.read()
"""


def harmony_model(tmp: Path) -> tuple[Path, str]:
    """The bundled chorale_satb when present, else a factory multi-voice LSTM."""
    bundled = ROOT / "models" / "chorale_satb.onnx"
    if bundled.exists():
        return bundled, "bundled chorale_satb"
    from liveduet.codec import chorale_codec
    from tests.factory import lstm_model

    return lstm_model(tmp / "satb.onnx", chorale_codec(), hidden=64), "factory SATB LSTM (h=64)"


class Recorder:
    """A JACK input port recording (perf_counter, msg)."""

    def __init__(self, name: str) -> None:
        self.events: list[tuple[float, tuple[int, ...]]] = []
        self.port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=name)
        self.port.open_virtual_port("in")
        self.port.set_callback(lambda ev, _d: self.events.append((time.perf_counter(),
                                                                  tuple(ev[0]))))

    def first_on_after(self, t0: float, not_pitch: int | None = None) -> float | None:
        for t, m in list(self.events):
            if t >= t0 and m[0] & 0xF0 == 0x90 and m[2] > 0 and m[1] != not_pitch:
                return t - t0
        return None


def start_liveduet(jack: JackServer, args: list[str]) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "liveduet", "run", "--api", "jack", "--no-osc", "--quiet",
           *args]
    proc = subprocess.Popen(cmd, env=jack.env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if "Ctrl-C to stop" not in line:
        raise SystemExit(f"liveduet did not start: {line}{proc.stderr.read()}")
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)


def measure_latency(jack: JackServer, notes: int, model: Path, stats: Path
                    ) -> tuple[list[float], list[float], int]:
    echo = subprocess.Popen([sys.executable, "-c", ECHO], env=jack.env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert echo.stdout is not None and echo.stdout.readline().startswith("ready")
    ld = start_liveduet(jack, ["--mode", "harmonize", "--model", str(model), "--no-thru",
                               "--bpm", "120", "--stats", str(stats)])
    to_ld, to_echo = (rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=n) for n in ("keys", "keys2"))
    to_ld.open_virtual_port("out")
    to_echo.open_virtual_port("out")
    rec_ld, rec_echo = Recorder("rec_ld"), Recorder("rec_echo")
    jack.connect("keys:out", jack.find_port(":liveduet in"))
    jack.connect(jack.find_port(":liveduet out"), "rec_ld:in")
    jack.connect("keys2:out", "echoin:in")
    jack.connect("echo:out", "rec_echo:in")
    lat_ld: list[float] = []
    lat_echo: list[float] = []
    missed = 0
    rng = np.random.default_rng(0)
    try:
        for i in range(notes):
            pitch = int(rng.choice([60, 62, 64, 65, 67, 69, 71, 72]))
            order = [(to_echo, rec_echo, lat_echo, None), (to_ld, rec_ld, lat_ld, None)]
            for port, rec, out, _ in order if i % 2 else order[::-1]:
                t0 = time.perf_counter()
                port.send_message([0x90, pitch, 90])
                try:
                    wait_for(lambda rec=rec, t0=t0: rec.first_on_after(t0) is not None,
                             0.05, 0.0002)
                    out.append(rec.first_on_after(t0))  # type: ignore[arg-type]
                except TimeoutError:
                    missed += port is to_ld
                time.sleep(0.02 + rng.uniform(0, 0.04))
                port.send_message([0x80, pitch, 0])
                time.sleep(0.01)
    finally:
        stop(ld)
        echo.stdin.close()  # type: ignore[union-attr]
        echo.wait(10)
        for p in (to_ld, to_echo, rec_ld.port, rec_echo.port):
            p.delete()
    return lat_echo, lat_ld, missed


def idle_cpu(jack: JackServer, seconds: float) -> float:
    """CPU seconds per wall second of an idle ``liveduet run`` (call mode, internal clock)."""
    proc = start_liveduet(jack, ["--model", str(_melody()), "--bpm", "120"])
    try:
        time.sleep(2.0)
        c0, t0 = _cpu(proc.pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = _cpu(proc.pid), time.monotonic()
    finally:
        stop(proc)
    return (c1 - c0) / (t1 - t0)


def _melody() -> Path:
    bundled = ROOT / "models" / "folk_melody.onnx"
    if bundled.exists():
        return bundled
    from tests.factory import lstm_model

    path = Path(tempfile.mkdtemp()) / "melody.onnx"
    return lstm_model(path, hidden=64)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--notes", type=int, default=200)
    ap.add_argument("--idle", type=float, default=10.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, JackServer() as jack:
        model, what = harmony_model(Path(tmp))
        stats = Path(tmp) / "stats.json"
        echo, ld, missed = measure_latency(jack, args.notes, model, stats)
        wake = json.loads(stats.read_text())["wake_errors_s"]
        cpu = idle_cpu(jack, args.idle)
        report(jack, what, echo, ld, missed, wake, cpu, args.notes)
    return 0


def report(jack: JackServer, what: str, echo: list[float], ld: list[float], missed: int,
           wake: list[float], cpu: float, notes: int) -> None:
    period = jack.period_s * 1e3
    e50, e99, l50, l99 = (pct(v, q) * 1e3 for v, q in ((echo, 50), (echo, 99), (ld, 50),
                                                        (ld, 99)))
    print(f"JACK dummy {jack.rate} Hz, {jack.period} frames (period {period:.3f} ms); "
          f"{notes} notes interleaved; model: {what}")
    print(f"echo floor        n={len(echo):4d}  p50 {e50:7.3f} ms  p99 {e99:7.3f} ms")
    print(f"liveduet harmony  n={len(ld):4d}  p50 {l50:7.3f} ms  p99 {l99:7.3f} ms  "
          f"(no harmony note within 50 ms: {missed})")
    print(f"ratio liveduet/floor  p50 {l50 / e50:5.2f}x  p99 {l99 / e99:5.2f}x;  "
          f"extra p50 {l50 - e50:+.3f} ms (target <= +0.25), extra p99 {l99 - e99:+.3f} ms "
          f"(target < one period {period:.3f})")
    w50, w99 = pct(wake, 50) * 1e6, pct(wake, 99) * 1e6
    print(f"wake-up error     n={len(wake):4d}  p50 {w50:7.1f} us  p99 {w99:7.1f} us "
          "(target p99 <= 100)")
    print(f"idle CPU          {cpu * 100:.2f}% of one core (target <= 3%)")


if __name__ == "__main__":
    sys.exit(main())
