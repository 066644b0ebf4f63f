"""A Link session between a peer (this process) and ``liveduet run --clock link``; prints JSON.

Run only inside a private network namespace that holds loopback alone (tests/live/test_link.py
starts it so: ``unshare -n sh -c 'ip link set lo up; ip route add 224.0.0.0/4 dev lo; ...'``):
Link discovers peers by multicast, which must never reach a real network. The script refuses
to run where any other interface exists.

The peer plays at 97 bpm, quantum 4. liveduet plays ``continue`` (a scripted model: an eighth
note every other 16th) to a recording JACK port. Each note-on's arrival, less the delay of one
JACK hop probed at that moment, is placed in Link time (the peer's clock) and its distance to
the peer's 16th grid is measured (``err97_ms``; ``raw_err97_ms`` without the hop; liveduet's own
send errors against the session's line, from ``--stats``, are ``send_err_ms``). Then the
peer changes tempo to 133, liveduet's OSC bpm goes to the session, ``/liveduet/state`` reports
the peers, and the peer stops the session. Arguments given to the script go to ``liveduet
run`` (e.g. ``--midi-backend jack``).
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from liveduet.testkit.factory import eighths_model  # noqa: E402
from liveduet.testkit.jack import JackServer, release, wait_for  # noqa: E402
from liveduet.testkit.midicheck import sounding_keys  # noqa: E402
from tests.live.test_clockout_run import Live, Probe, Recorder  # noqa: E402

ANSWER = 72


def only_loopback() -> bool:
    """True inside a network namespace whose only interface is loopback (asked of the kernel
    for this process's namespace: /sys/class/net shows the namespace sysfs was mounted in)."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def answer_model(folder: Path) -> Path:
    return eighths_model(folder / "answer.onnx", ANSWER)


class Peer:
    """The other Link peer, with its clock read against ``time.perf_counter``."""

    def __init__(self, bpm: float) -> None:
        import link

        self.link = link.Link(bpm)
        self.link.startStopSyncEnabled = True
        self.link.enabled = True

    def us(self, perf: float) -> int:
        """Link microseconds at perf_counter time ``perf``."""
        a = time.perf_counter()
        micros = self.link.clock().micros()
        b = time.perf_counter()
        return round(micros + (perf - (a + b) / 2) * 1e6)

    def state(self) -> Any:
        return self.link.captureAppSessionState()

    def play(self, playing: bool) -> float:
        now = time.perf_counter()
        st = self.state()
        if playing:
            st.setIsPlayingAndRequestBeatAtTime(True, self.us(now), 0.0, 4.0)
        else:
            st.setIsPlaying(False, self.us(now))
        self.link.commitAppSessionState(st)
        return now

    def tempo(self, bpm: float) -> float:
        now = time.perf_counter()
        st = self.state()
        st.setTempo(bpm, self.us(now))
        self.link.commitAppSessionState(st)
        return now

    def snapshot(self) -> tuple[float, float, float]:
        """(perf time, the session's beat then at quantum 4, its tempo)."""
        now = time.perf_counter()
        st = self.state()
        return now, float(st.beatAtTime(self.us(now), 4.0)), float(st.tempo())


def osc_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    return sock


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def osc_values(sock: socket.socket, seconds: float) -> dict[str, Any]:
    """Every /liveduet/... value received within ``seconds`` (the latest of each)."""
    from pythonosc.osc_message import OscMessage

    out: dict[str, Any] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        msg = OscMessage(data)
        out[msg.address] = msg.params[0] if msg.params else None
    return out


def session(folder: Path) -> dict[str, Any]:
    from pythonosc.udp_client import SimpleUDPClient

    model = answer_model(folder)
    res: dict[str, Any] = {}
    with JackServer() as jack:
        peer = Peer(97.0)
        peer.play(True)
        rec = Recorder("rec")
        probe = Probe(jack)
        replies = osc_socket()
        port = free_port()
        stats = folder / "stats.json"
        live = Live(jack, model, "--clock", "link", "--mode", "continue", "--out", "rec:in",
                    "--stats", str(stats), "--osc-port", str(port), "--osc-reply-port",
                    str(replies.getsockname()[1]), *sys.argv[1:], osc=True)
        osc = SimpleUDPClient("127.0.0.1", port)
        try:
            wait_for(lambda: len(rec.note_ons()) >= 16, 20.0, what="liveduet's notes at 97")
            time.sleep(6.0)
            snap97 = peer.snapshot()
            changed = peer.tempo(133.0)
            time.sleep(3.0)
            snap133 = peer.snapshot()
            osc.send_message("/liveduet/state", [])
            res["state"] = osc_values(replies, 1.0)
            osc.send_message("/liveduet/bpm", [110.0])
            asked = time.perf_counter()
            wait_for(lambda: abs(peer.state().tempo() - 110.0) < 0.01, 5.0,
                     what="the session to take liveduet's 110 bpm")
            res["bpm_to_session_s"] = time.perf_counter() - asked
            time.sleep(0.5)
            stopped = peer.play(False)
            time.sleep(1.0)
            res["sounding_after_stop"] = sorted(sounding_keys(m for _, m in list(rec.got)))
            probe.halt.set()
            res["stderr"] = live.finish()
        finally:
            probe.halt.set()
            if live.proc.poll() is None:
                live.proc.kill()
            time.sleep(0.02)
            release(rec.port, probe.out, probe.rec.port)
        hop = probe.delays()
        ons = rec.note_ons()
        res["hop_p95_ms"] = float(np.percentile([hop(t) for t in ons], 95) * 1e3)
        first = ons[ons < changed]
        res["notes_97"] = len(first)
        res["err97_ms"] = [grid_err(snap97, t - hop(t)) for t in first[2:]]
        res["raw_err97_ms"] = [grid_err(snap97, t) for t in first[2:]]
        after = ons[(ons > changed) & (ons < asked)]
        res["after_change_s"] = [float(t - changed) for t in after]
        res["err133_ms"] = [grid_err(snap133, t - hop(t)) for t in after]
        res["ons_after_stop"] = int(np.sum(ons > stopped + 0.05))
        # at the source: each grid note's send time minus its time on the session's line
        res["send_err_ms"] = [e * 1e3 for e in json.loads(stats.read_text())["wake_errors_s"]]
    return res


def grid_err(snap: tuple[float, float, float], t: float) -> float:
    """Distance (ms) of perf time ``t`` to the 16th grid of a timeline snapshot
    (perf time, beat then, bpm): Link's timeline is one line, so past notes are measured on
    the line in force when they played."""
    at, beat, bpm = snap
    x = (beat + (t - at) * bpm / 60.0) * 4
    return float((x - round(x)) * 60.0 / (bpm * 4) * 1e3)


def main() -> int:
    if not only_loopback():
        print("refusing: Link tests run only in a network namespace holding loopback alone",
              file=sys.stderr)
        return 3
    with tempfile.TemporaryDirectory() as folder:
        print(json.dumps(session(Path(folder))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
