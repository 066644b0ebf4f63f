"""Floods: 20,000 OSC messages/s while a call loop plays; 5,000 MIDI events/s in every mode.

Part 1 (``osc``): ``liveduet run --api jack --mode call --thru`` with OSC on; a keyboard client
plays a one-bar call every two bars on channel 16; a receiver on ``liveduet out`` stamps the
thru copies (channel 16) and the machine's answer notes (channel 1). After a quiet phase, a
separate process floods the OSC port for ``--flood-seconds`` with 20,000 messages/s: valid
settings (temperature, top_p, density and key at the values in force, velocity at random:
valid commands the runtime must take, that leave the answers' notes as they are), unknown
addresses, wrong types, garbage bytes, 400-message bundles and ``/liveduet/state`` requests.
Thru delay is measured on the call's notes and on a controller (CC 3, channel 16, passed thru,
not mapped) sent every 20 ms, so it has samples all the time without cutting into the answers.
Reported: each call's answer delay (end of call -> first answer note-on) before, during and
after the flood; the first answer after the flood started against the quiet median; thru delay
p50/p99 before and during the flood; RSS before, at the end of and 5 s after the flood; what
liveduet counted as dropped and coalesced.

Part 2 (``midi``): for each mode, 5,000 MIDI events/s for ``--midi-seconds`` into
``liveduet in`` (bench_load.py's sender, its own process); then, in call mode, one phrase on
channel 16 and whether it is answered; then SIGTERM and the notes still sounding at the
receiver after exit (stuck): two receivers record ``liveduet out``, and a note counts as stuck
when it sounds at both (one that sounds at only one was lost by that receiver). The sender may
stop between a note-on and its note-off, so once it ends the keyboard sends a note-off for each
of its 24 pitches (the human lets go); note-offs that JACK lost during the flood are left as
they are (the held-key limits deal with them).

    python benchmarks/bench_flood.py                     # both parts (about 3 minutes)
    python benchmarks/bench_flood.py --part osc
    python benchmarks/bench_flood.py --part midi --modes call
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_load import _proc_stats
from liveduet.testkit.jack import JackServer, release, wait_for
from liveduet.testkit.midicheck import Sounding

KEYS_CH = 15          # the human plays on channel 16: its thru copies are told from the machine
CALL = (60, 62, 64, 67)
OSC_RATE = 20_000

FLOOD = r"""
import random, socket, sys, time
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
def msg(path, *args):
    b = OscMessageBuilder(address=path)
    for a in args:
        b.add_arg(a)
    return b.build()
rnd = random.Random(1)
# valid settings that leave the music as it is (the values in force, or velocity, which only
# changes loudness): the answer timing then shows the runtime, not a sparser sampler
valid = [("/liveduet/temperature", lambda: 0.9), ("/liveduet/top_p", lambda: 0.95),
         ("/liveduet/density", lambda: 0.5), ("/liveduet/key", lambda: 0.0),
         ("/liveduet/velocity", lambda: float(rnd.randint(1, 127)))]
packets = []
for _ in range(600):
    path, value = rnd.choice(valid)
    packets.append(msg(path, value()).dgram)
packets += [msg("/liveduet/no_such", 1.0).dgram, msg("/other/app", 3).dgram,
            msg("/liveduet/density", "lots").dgram, msg("/liveduet/temperature").dgram,
            bytes(rnd.getrandbits(8) for _ in range(64)), b"#bundle\x00" + b"\xff" * 24,
            msg("/liveduet/state").dgram] * 20
bundle = OscBundleBuilder(IMMEDIATELY)
for i in range(400):
    bundle.add_content(msg("/liveduet/density", 0.5))
packets += [bundle.build().dgram] * 5
rnd.shuffle(packets)
port, rate, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
messages = 0
n = 0
start = time.perf_counter()
print(start, flush=True)
while (now := time.perf_counter()) - start < seconds:
    if messages > (now - start) * rate:
        time.sleep(0.002)
        continue
    for _ in range(50):
        p = packets[n % len(packets)]
        n += 1
        messages += 400 if len(p) > 4000 else 1
        try:
            sock.sendto(p, ("127.0.0.1", port))
        except OSError:
            pass
print(f"{n} {messages}", flush=True)
"""


class Recorder:
    """Receives ``liveduet out`` by polling rtmidi's queue (64k deep) from a thread: a Python
    callback on the JACK thread waits for the GIL, misses JACK cycles and loses events under
    a flood, which would show up as stuck notes that liveduet never left sounding."""

    def __init__(self, rtmidi: Any, client: str) -> None:
        self.events: list[tuple[float, tuple[int, ...]]] = []
        self.port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=client, queue_size_limit=1 << 16)
        self.port.ignore_types(sysex=True, timing=True, active_sense=True)
        self.port.open_virtual_port("in")
        self._run = threading.Event()
        self._run.set()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        get, perf = self.port.get_message, time.perf_counter
        while self._run.is_set():
            got = False
            while (event := get()) is not None:
                self.events.append((perf(), tuple(event[0])))
                got = True
            if not got:
                time.sleep(0.0002)

    def close(self) -> None:
        """Stop polling (call before releasing the port)."""
        self._run.clear()
        self._thread.join(2)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(jack: JackServer, args: list[str], stats: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "liveduet", "run", "--api", "jack", "--quiet", "--stats",
           str(stats), *args]
    return subprocess.Popen(cmd, env=jack.env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


class Keys:
    """The human: a JACK MIDI output wired to ``liveduet in``; ``probe`` sends CC 3 on channel
    16 every 20 ms from a thread (their thru copies time the thru path)."""

    def __init__(self, rtmidi: Any, jack: JackServer) -> None:
        self.port = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="floodkeys")
        self.port.open_virtual_port("out")
        jack.connect("floodkeys:out", jack.find_port(":liveduet in", 20))
        self.sent: list[tuple[float, int]] = []
        self.probes: list[tuple[float, int]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def probe(self) -> None:
        """Until :attr:`stop`: a CC 3 every 20 ms, its value counting 0..127."""
        i = 0
        while not self.stop.wait(0.02):
            with self.lock:
                self.probes.append((time.perf_counter(), i % 128))
                self.port.send_message([0xB0 | KEYS_CH, 3, i % 128])
            i += 1

    def send(self, msg: list[int]) -> None:
        with self.lock:
            self.port.send_message(msg)

    def phrase(self, step: float) -> float:
        """Play the call (one note per beat); return when its last note ended."""
        for pitch in CALL:
            self.sent.append((time.perf_counter(), pitch))
            self.send([0x90 | KEYS_CH, pitch, 90])
            time.sleep(step * 0.9)
            self.send([0x80 | KEYS_CH, pitch, 0])
            time.sleep(step * 0.1)
        return time.perf_counter()


def _machine_ons(rec: Recorder, since: float, until: float = float("inf")) -> list[float]:
    return [t for t, m in list(rec.events) if since <= t < until and m[0] & 0xF0 == 0x90
            and m[0] & 0x0F != KEYS_CH and m[2] > 0]


def _thru_delays(keys: Keys, rec: Recorder, lo: float, hi: float) -> list[float]:
    """Input -> thru copy delays of the call notes and the CC probes sent in [lo, hi)."""
    copies: dict[tuple[int, ...], list[float]] = {}
    for rt, m in list(rec.events):
        if m[0] == 0x90 | KEYS_CH and m[2] > 0:
            copies.setdefault(m[:2], []).append(rt)
        elif m[0] == 0xB0 | KEYS_CH:  # a probe's value tells it from the others
            copies.setdefault(m, []).append(rt)
    sent = [(t, (0x90 | KEYS_CH, p)) for t, p in keys.sent]
    sent += [(t, (0xB0 | KEYS_CH, 3, v)) for t, v in keys.probes]
    out = []
    for t, key in sent:
        if lo <= t < hi:
            hit = next((rt for rt in copies.get(key, []) if rt >= t), None)
            if hit is not None and hit - t < 1.0:
                out.append(hit - t)
    return out


def osc_part(args: argparse.Namespace, rtmidi: Any, tmp: Path) -> dict[str, Any]:
    port = _free_port()
    beat = 60.0 / args.bpm
    with JackServer() as jack:
        proc = _start(jack, ["--mode", "call", "--thru", "--bpm", str(args.bpm),
                             "--listen-gap", "2", "--response-bars", "1", "--osc-port",
                             str(port), "--osc-reply-port", str(_free_port()), "--seed", "1"],
                      tmp / "osc.json")
        rec = Recorder(rtmidi, "floodrec")
        keys: Keys | None = None
        try:
            jack.connect(jack.find_port(":liveduet out", 20), "floodrec:in")
            keys = Keys(rtmidi, jack)
            prober = threading.Thread(target=keys.probe, daemon=True)
            prober.start()
            time.sleep(1.0)
            calls: list[tuple[float, float | None]] = []   # (call end, answer delay)
            flood: dict[str, Any] = {}
            t0 = time.perf_counter()
            quiet_s, flood_s = args.quiet_seconds, args.flood_seconds
            sender: subprocess.Popen[str] | None = None
            rss: dict[str, float] = {}
            while time.perf_counter() - t0 < quiet_s + flood_s + args.after_seconds:
                now = time.perf_counter()
                if sender is None and now - t0 >= quiet_s:
                    rss["before"] = _proc_stats(proc.pid)[0]
                    sender = subprocess.Popen([sys.executable, "-c", FLOOD, str(port),
                                               str(OSC_RATE), str(flood_s)],
                                              stdout=subprocess.PIPE, text=True)
                    assert sender.stdout is not None
                    flood["start"] = float(sender.stdout.readline())
                end = keys.phrase(beat)
                time.sleep(beat * 4)  # one bar for the answer
                answers = _machine_ons(rec, end, end + beat * 4)
                calls.append((end, answers[0] - end if answers else None))
                if sender is not None and "end" not in flood and sender.poll() is not None:
                    out = sender.communicate()[0].split()
                    flood.update(end=time.perf_counter(), datagrams=int(out[0]),
                                 messages=int(out[1]))
                    rss["flood end"] = _proc_stats(proc.pid)[0]
            time.sleep(5.0)
            rss["5 s later"] = _proc_stats(proc.pid)[0]
        finally:
            if keys is not None:
                keys.stop.set()
                time.sleep(0.05)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
            time.sleep(0.3)
            track = Sounding()
            track.take_all(m for _, m in list(rec.events))
            rec.close()
            release(rec.port, keys.port if keys else None)
    assert keys is not None
    stats = json.loads((tmp / "osc.json").read_text())["counters"]
    return {"calls": calls, "flood": flood, "rss": rss, "code": proc.returncode, "err": err,
            "stuck": sorted(track.keys),
            "thru_flood": _thru_delays(keys, rec, flood["start"], flood.get("end", 1e18)),
            "thru_quiet": _thru_delays(keys, rec, 0.0, flood["start"]), "counters": stats}


def report_osc(r: dict[str, Any], args: argparse.Namespace) -> None:
    start, end = r["flood"]["start"], r["flood"].get("end", float("inf"))
    quiet = [d for t, d in r["calls"] if t < start and d is not None]
    during = [(t, d) for t, d in r["calls"] if start <= t < end]
    after = [(t, d) for t, d in r["calls"] if t >= end]
    base = float(np.median(quiet)) if quiet else float("nan")
    print(f"OSC flood: {r['flood'].get('messages', 0):,} messages in "
          f"{r['flood'].get('datagrams', 0):,} datagrams over {args.flood_seconds:.0f} s "
          f"({r['flood'].get('messages', 0) / args.flood_seconds:,.0f} messages/s), call mode "
          f"at {args.bpm:.0f} bpm, one-bar calls every two bars")
    print(f"answer delay (end of call -> first answer note), quiet: median {base * 1e3:.0f} ms "
          f"(n={len(quiet)})")
    fmt = lambda xs: ", ".join("none" if d is None else f"{d * 1e3:.0f}" for _, d in xs)  # noqa: E731
    print(f"answer delays during the flood (ms): {fmt(during)}")
    print(f"answer delays after the flood (ms): {fmt(after)}")
    first = next((d for _, d in during if d is not None), None)
    if first is not None:
        print(f"first answer after the flood started: {first * 1e3:.0f} ms, "
              f"{(first - base) * 1e3:+.0f} ms against the quiet median (target: within 1 s)")
    else:
        print("first answer after the flood started: none during the flood")
    for label, xs in (("quiet", r["thru_quiet"]), ("flood", r["thru_flood"])):
        if xs:
            p50, p99 = np.percentile(np.array(xs) * 1e3, [50, 99])
            print(f"thru delay {label}: p50 {p50:.2f} ms p99 {p99:.2f} ms (n={len(xs)})")
    rss = r["rss"]
    print("RSS: " + ", ".join(f"{k} {v:.1f} MB" for k, v in rss.items()) +
          f"; growth {rss.get('5 s later', 0) - rss.get('before', 0):+.1f} MB")
    c = r["counters"]
    print(f"liveduet counted: dropped {c.get('dropped')}, coalesced {c.get('coalesced')}, "
          f"commands applied {c.get('commands')}, notes in {c.get('in')}, skipped as stale "
          f"{c.get('skipped')}; exit {r['code']}; stuck after exit: {len(r['stuck'])}")
    lines = [ln for ln in r["err"].splitlines() if "connected" not in ln]
    print("liveduet printed: " + " / ".join(lines[-6:]))


def midi_part(args: argparse.Namespace, rtmidi: Any, tmp: Path, mode: str) -> dict[str, Any]:
    beat = 60.0 / args.bpm
    extra = {"call": ["--listen-gap", "2", "--response-bars", "1"]}.get(mode, [])
    with JackServer() as jack:
        proc = _start(jack, ["--mode", mode, "--thru", "--no-osc", "--bpm", str(args.bpm),
                             "--seed", "1", *args.run_args.split(), *extra],
                      tmp / f"midi-{mode}.json")
        rec = Recorder(rtmidi, "floodrec")
        tap = Recorder(rtmidi, "floodtap")  # a second receiver: a note stuck at both is real
        keys: Keys | None = None
        log: dict[str, Any] = {"sent": []}
        try:
            src = jack.find_port(":liveduet in", 20)
            jack.connect(jack.find_port(":liveduet out", 20), "floodrec:in")
            jack.connect(jack.find_port(":liveduet out", 20), "floodtap:in")
            sender = subprocess.Popen([sys.executable, str(Path(__file__).with_name(
                "bench_load.py")), "--send-only", "--rate", str(args.midi_rate), "--seconds",
                str(args.midi_seconds)], env=jack.env(), text=True, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE)
            assert sender.stdin is not None and sender.stdout is not None
            if sender.stdout.readline().strip() != "ready":
                raise RuntimeError("the MIDI sender did not start")
            jack.connect("loadsrc:out", src)
            keys = Keys(rtmidi, jack)
            sender.stdin.write("go\n")
            sender.stdin.flush()
            log = json.loads(sender.stdout.readline())
            sender.wait(20)
            for pitch in range(60, 84):  # the sender may stop between a note-on and its off
                keys.send([0x80, pitch, 0])
            time.sleep(1.0)
            end = keys.phrase(beat)
            answered = wait_for(lambda: _machine_ons(rec, end), 10.0, 0.02, "an answer") \
                if mode == "call" else None
        except TimeoutError:
            answered = None
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
            time.sleep(0.3)
            track, track2 = Sounding(), Sounding()
            track.take_all(m for _, m in list(rec.events))
            track2.take_all(m for _, m in list(tap.events))
            rec.close()
            tap.close()
            release(rec.port, tap.port, keys.port if keys else None)
    counters = json.loads((tmp / f"midi-{mode}.json").read_text())["counters"]
    return {"mode": mode, "sent": len(log["sent"]), "counted": counters.get("in", 0),
            "dropped": counters.get("dropped", 0), "code": proc.returncode, "err": err,
            "stuck": sorted(track.keys & track2.keys),
            "stuck_one": sorted(track.keys ^ track2.keys),
            "answer": None if not answered else answered[0] - end}


def report_midi(r: dict[str, Any], args: argparse.Namespace) -> None:
    answer = ("-" if r["mode"] != "call" else
              "none" if r["answer"] is None else f"{r['answer'] * 1e3:.0f} ms")
    print(f"{r['mode']:<10} sent {r['sent']:>6}  counted in {r['counted']:>6}  "
          f"dropped by liveduet {r['dropped']:>5}  exit {r['code']}  stuck after SIGTERM "
          f"{len(r['stuck'])}{' ' + str(r['stuck']) if r['stuck'] else ''} (at one receiver "
          f"only, lost there: {len(r['stuck_one'])})  next phrase answered: {answer}")
    if r["code"] != 0:
        print(r["err"][-1500:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("osc", "midi", "both"), default="both")
    ap.add_argument("--bpm", type=float, default=120.0)
    ap.add_argument("--quiet-seconds", type=float, default=10.0)
    ap.add_argument("--flood-seconds", type=float, default=10.0)
    ap.add_argument("--after-seconds", type=float, default=8.0)
    ap.add_argument("--midi-rate", type=float, default=5000.0)
    ap.add_argument("--midi-seconds", type=float, default=20.0)
    ap.add_argument("--modes", default="call,continue,harmonize,off")
    ap.add_argument("--run-args", default="", help="extra 'liveduet run' arguments (MIDI part)")
    args = ap.parse_args(argv)
    import rtmidi

    tmp = Path(tempfile.mkdtemp(prefix="liveduet-flood-"))
    print("JACK dummy server: 48 kHz, 64 frames per period, --no-realtime")
    if args.part in ("osc", "both"):
        report_osc(osc_part(args, rtmidi, tmp), args)
    if args.part in ("midi", "both"):
        print(f"MIDI flood: {args.midi_rate:,.0f} events/s for {args.midi_seconds:.0f} s per mode"
              f"{'; run args ' + args.run_args if args.run_args else ''}")
        for mode in args.modes.split(","):
            report_midi(midi_part(args, rtmidi, tmp, mode), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
