"""Sustained load: 1,000 note events per second into ``liveduet run`` over JACK.

Starts a private JACK dummy server (64 frames at 48 kHz), runs ``liveduet run --api jack`` in
harmonize mode with thru on as a subprocess, and plays note-on/note-off pairs into
``liveduet:in`` from a python-rtmidi client at the given rate while another client records
``liveduet:out``. Reports:

- events dropped, attributed: a second bare python-rtmidi receiver (``loadtap:in``) is wired to
  the same source port, so events the JACK side never delivered (sender or server) are told
  apart from events delivered to liveduet's port that the runtime did not count in (``--stats``);
  thru copies missing at the receiver;
- answer latency (note-on sent -> its thru copy received, and -> the first machine note-on
  after it) p50/p99 in the first and the last 10 s, and their ratio (drift);
- RSS of the liveduet process after 10 s and at the end (growth), and its CPU use.

    python benchmarks/bench_load.py                 # 60 s at 1000 events/s
    python benchmarks/bench_load.py --seconds 20    # shorter
    python benchmarks/bench_load.py --backend rtmidi --period 256   # python-rtmidi, 256 frames
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
from typing import Any
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from liveduet.core import catalog
from liveduet.core.codec import chorale_codec
from liveduet.testkit.factory import lstm_model
from liveduet.testkit.jack import JackServer, release, wait_for


def _model(tmp: Path) -> str:
    path = catalog.models_dir() / f"{catalog.DEFAULT_HARMONY}.onnx"
    if path.exists():
        return str(path)
    return str(lstm_model(tmp / "satb.onnx", chorale_codec(), hidden=128, embed=32))


class RealtimeJack(JackServer):
    """The test server started with ``-R`` (SCHED_FIFO process threads) instead of
    ``--no-realtime``, as a musician runs JACK; needs permission for real-time scheduling."""

    def _start_once(self) -> JackServer:
        real = subprocess.Popen

        def popen(cmd: list[str], *args: Any, **kw: Any) -> subprocess.Popen[bytes]:
            return real(["-R" if c == "--no-realtime" else c for c in cmd], *args, **kw)

        with mock.patch.object(subprocess, "Popen", popen):
            return super()._start_once()


def _proc_stats(pid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds user+system) of ``pid``."""
    with open(f"/proc/{pid}/status") as fh:
        rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss / 1024.0, (int(fields[11]) + int(fields[12])) / ticks


class Recorder:
    """Receives liveduet:out; stamps every message on arrival."""

    def __init__(self, rtmidi: object, client: str = "loadrec") -> None:
        self.events: list[tuple[float, tuple[int, ...]]] = []
        self.port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=client,  # type: ignore[attr-defined]
                                  queue_size_limit=4096)
        self.port.ignore_types(sysex=True, timing=True, active_sense=True)
        self.port.set_callback(self._on)
        self.port.open_virtual_port("in")

    def _on(self, event: tuple[list[int], float], _data: object = None) -> None:
        self.events.append((time.perf_counter(), tuple(event[0])))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=1000.0, help="note events per second")
    ap.add_argument("--model", help="model (default: bundled chorale_satb or a factory LSTM)")
    ap.add_argument("--period", type=int, default=64, help="JACK period in frames at 48 kHz")
    ap.add_argument("--realtime", action="store_true", help="start jackd with -R (real-time "
                    "threads) instead of --no-realtime")
    ap.add_argument("--run-args", default="", help="extra 'liveduet run' arguments, e.g. "
                    "'--input-poll 0' (callback input)")
    ap.add_argument("--backend", choices=("auto", "jack", "rtmidi"), default="auto",
                    help="liveduet's MIDI backend on JACK (--midi-backend)")
    ap.add_argument("--send-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.send_only:
        return send_main(args.rate, args.seconds)
    import rtmidi

    tmp = Path(tempfile.mkdtemp(prefix="liveduet-load-"))
    stats_path = tmp / "stats.json"
    server = RealtimeJack if args.realtime else JackServer
    with server(period=args.period) as jack:
        cmd = [sys.executable, "-m", "liveduet", "run", "--api", "jack", "--mode", "harmonize",
               "--model", args.model or _model(tmp), "--thru", "--quiet", "--no-osc",
               "--stats", str(stats_path), "--bpm", "120", "--midi-backend", args.backend,
               *args.run_args.split()]
        proc = subprocess.Popen(cmd, env=jack.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            result = _drive(jack, proc, args.seconds, args.rate, rtmidi)
        except RuntimeError as err:
            proc.kill()
            print(f"{err}:\n{proc.communicate(timeout=20)[1][-3000:]}")
            return 1
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=20)
        if proc.returncode != 0:
            print(f"liveduet run exited {proc.returncode}:\n{err[-2000:]}")
            return 1
        counters = json.loads(stats_path.read_text())["counters"]
        _report(result, counters, args)
    return 0


def send_main(rate: float, seconds: float) -> int:
    """``--send-only``: the load source in its own process (no receiver shares its GIL).

    Prints ``ready``, waits for a line on stdin, sends, then prints the send log as JSON
    (``time.perf_counter`` is CLOCK_MONOTONIC on Linux: comparable across processes).
    """
    import rtmidi

    sender = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="loadsrc")
    sender.open_virtual_port("out")
    parent = os.getppid()
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1  # the benchmark went away before starting
    sent: list[tuple[float, tuple[int, ...]]] = []
    period = 1.0 / rate
    t0 = time.perf_counter()
    i = 0
    while (now := time.perf_counter()) - t0 < seconds:
        due = t0 + i * period
        if now < due:
            time.sleep(max(0.0, due - now - 0.0003))
            while time.perf_counter() < due:
                pass
        if i % 2 == 0:
            pitch = 60 + (i // 2) % 24
            msg: tuple[int, ...] = (0x90, pitch, 1 + (i // 2) % 126)
        else:
            msg = (0x80, pitch, 0)
        sender.send_message(list(msg))
        sent.append((time.perf_counter(), msg))
        i += 1
        if i % 1000 == 0 and os.getppid() != parent:
            return 1  # the benchmark died: stop loading the machine
    time.sleep(0.2)  # let JACK drain the ring buffer
    sender.delete()
    print(json.dumps({"t0": t0, "sent": sent}), flush=True)
    return 0


def _drive(jack: JackServer, proc: subprocess.Popen[str], seconds: float, rate: float,
           rtmidi: object) -> dict[str, object]:
    src = jack.find_port("liveduet in", 20)
    out_port = jack.find_port("liveduet out", 20)
    sender = subprocess.Popen([sys.executable, __file__, "--send-only", "--rate", str(rate),
                               "--seconds", str(seconds)], env=jack.env(), text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert sender.stdin is not None and sender.stdout is not None
    if sender.stdout.readline().strip() != "ready":
        raise RuntimeError("the load sender did not start")
    rec = Recorder(rtmidi)
    tap = Recorder(rtmidi, "loadtap")
    jack.connect("loadsrc:out", src)
    jack.connect("loadsrc:out", jack.find_port("loadtap:in"))
    jack.connect(out_port, jack.find_port("loadrec:in"))
    time.sleep(0.5)
    late_before = dict(jack.late)
    sender.stdin.write("go\n")
    sender.stdin.flush()
    t_go = time.perf_counter()
    time.sleep(min(10.0, seconds / 3))
    if proc.poll() is not None:
        raise RuntimeError(f"liveduet run exited early ({proc.returncode})")
    rss_early, cpu_early = _proc_stats(proc.pid)
    t_early = time.perf_counter()
    log = json.loads(sender.stdout.readline())
    sender.wait(20)
    time.sleep(1.0)
    rss_end, cpu_end = _proc_stats(proc.pid)
    t_end = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: proc.poll() is not None, 20, 0.05, "liveduet to exit")
    release(rec.port, tap.port)  # before the server stops: a client outliving jackd can crash
    late = {k: v - late_before.get(k, 0) for k, v in jack.late.items()
            if v > late_before.get(k, 0)}
    sent = [(float(t), tuple(m)) for t, m in log["sent"]]
    return {"sent": sent, "received": list(rec.events), "tapped": len(tap.events),
            "t0": float(log["t0"]), "seconds": seconds, "late": late, "start_delay": log["t0"]
            - t_go, "rss": (rss_early, rss_end), "cpu": (cpu_end - cpu_early) / (t_end - t_early)}


def _latencies(result: dict[str, object], lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    sent = [(t, m) for t, m in result["sent"] if m[0] == 0x90]  # type: ignore[union-attr]
    recv = result["received"]
    t0 = float(result["t0"])  # type: ignore[arg-type]
    thru, machine = [], []
    j = 0
    for t, msg in sent:
        if not lo <= t - t0 < hi:
            continue
        while j < len(recv) and recv[j][0] < t:  # type: ignore[arg-type]
            j += 1
        k, got_thru, got_machine = j, None, None
        while k < len(recv) and recv[k][0] < t + 0.05 and not (got_thru and got_machine):  # type: ignore[index]
            rt, rmsg = recv[k]  # type: ignore[index]
            if got_thru is None and rmsg == msg:
                got_thru = rt - t
            if got_machine is None and rmsg[0] & 0xF0 == 0x90 and rmsg[0] & 0x0F and rmsg[2]:
                got_machine = rt - t
            k += 1
        if got_thru is not None:
            thru.append(got_thru)
        if got_machine is not None:
            machine.append(got_machine)
    return np.array(thru) * 1e3, np.array(machine) * 1e3


def _report(result: dict[str, object], counters: dict[str, int], args: argparse.Namespace) -> None:
    sent = result["sent"]
    recv = result["received"]
    ons = sum(1 for _, m in sent if m[0] == 0x90)  # type: ignore[union-attr]
    thru_back = sum(1 for _, m in recv if m[0] == 0x90 and m[2] > 0)  # type: ignore[union-attr,index]
    mode = "-R (real-time)" if args.realtime else "--no-realtime"
    print(f"JACK dummy server: 48 kHz, {args.period} frames per period, {mode}; "
          f"MIDI backend {args.backend}; liveduet run extra args: {args.run_args or 'none'}")
    print(f"load: {len(sent)} events in {args.seconds:.0f} s ({len(sent) / args.seconds:.0f}/s)")  # type: ignore[arg-type]
    tapped, counted = int(result["tapped"]), int(counters.get("in", 0))  # type: ignore[call-overload]
    print(f"delivered by JACK to a bare receiver: {tapped} (lost before liveduet: "
          f"{len(sent) - tapped})")  # type: ignore[arg-type]
    print(f"runtime counted in: {counted}  dropped in total: {len(sent) - counted}; "  # type: ignore[arg-type]
          f"dropped by liveduet's input: {tapped - counted}")
    print(f"note-ons sent: {ons}; note-ons received (thru + machine): {thru_back}")
    first = _latencies(result, 0.0, 10.0)
    last = _latencies(result, args.seconds - 10.0, args.seconds)
    for label, a, b in (("thru", first[0], last[0]), ("machine", first[1], last[1])):
        if not len(a) or not len(b):
            print(f"{label}: no samples")
            continue
        pa, pb = np.percentile(a, [50, 99]), np.percentile(b, [50, 99])
        print(f"{label:<8} first 10 s p50 {pa[0]:.3f} ms p99 {pa[1]:.3f} ms (n={len(a)}); "
              f"last 10 s p50 {pb[0]:.3f} ms p99 {pb[1]:.3f} ms (n={len(b)}); "
              f"p99 last/first {pb[1] / pa[1]:.2f}")
    rss_a, rss_b = result["rss"]  # type: ignore[misc]
    print(f"RSS after 10 s {rss_a:.1f} MB, at end {rss_b:.1f} MB, growth {rss_b - rss_a:+.1f} MB")
    print(f"JACK cycles missed per client during the load: {result['late'] or 'none'}")
    print(f"CPU of liveduet run under load: {result['cpu'] * 100:.1f}% of one core")


if __name__ == "__main__":
    sys.exit(main())
