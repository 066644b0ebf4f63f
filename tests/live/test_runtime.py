"""The live runtime over real JACK ports: model hot-swap mid-phrase, a broken swap, CC control.

``liveduet run --api jack`` runs as a subprocess on a private JACK server, from a working folder
holding scripted models (liveduet/testkit/factory.py), so OSC ``/liveduet/model <file name>``
resolves them the way ``catalog.resolve`` does: a file relative to the working directory, or a
bundled name. The test plays the keyboard, records the output port and listens to the OSC feedback.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rtmidi
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient

from liveduet.testkit.factory import broken_models, eighths_model
from liveduet.testkit.jack import JackServer, release, wait_for
from liveduet.testkit.midicheck import sounding_keys

ROOT = Path(__file__).resolve().parents[2]


def answer_model(path: Path, pitch: int) -> Path:
    """Whatever it hears, it answers ``pitch`` as eighth notes (NOTE_ON, HOLD, ...)."""
    return eighths_model(path, pitch)


class Live:
    """``liveduet run`` plus a keyboard port, a recording port and an OSC client + listener."""

    def __init__(self, jack: JackServer, folder: Path) -> None:
        self.osc_in = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.osc_in.bind(("127.0.0.1", 0))
        self.osc_in.settimeout(0.2)
        self.feedback: list[tuple[str, list[Any]]] = []
        self.halt = threading.Event()
        threading.Thread(target=self._listen, daemon=True).start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        cmd = [sys.executable, "-m", "liveduet", "run", "--api", "jack", "--model", "a72.onnx",
               "--quiet", "--bpm", "240", "--listen-gap", "2", "--no-thru",
               "--osc-port", str(port), "--osc-reply-port", str(self.osc_in.getsockname()[1])]
        env = {**jack.env(), "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(cmd, env=env, cwd=folder, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stderr or []),
                         daemon=True).start()
        self.got: list[tuple[float, tuple[int, ...]]] = []
        self.keys = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="rtkeys")
        self.keys.open_virtual_port("out")
        self.rec = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="rtrec")
        self.rec.open_virtual_port("in")
        self.rec.set_callback(lambda ev, _d: self.got.append((time.perf_counter(),
                                                              tuple(ev[0]))))
        wait_for(lambda: any("Ctrl-C" in ln for ln in self.lines) or self.proc.poll() is not None,
                 30.0, what="liveduet run to start")
        assert self.proc.poll() is None, "".join(self.lines)
        jack.connect("rtkeys:out", jack.find_port(":liveduet in"))
        jack.connect(jack.find_port(":liveduet out"), "rtrec:in")
        # JACK runs a connection from its next cycle on (a loaded dummy server starts it late):
        # the keys' first message must not go out before that
        time.sleep(0.1)
        self.osc = SimpleUDPClient("127.0.0.1", port)
        self.osc.send_message("/liveduet/state", [])
        wait_for(lambda: self.seen("/liveduet/model"), 10.0, what="the first state dump")

    def _listen(self) -> None:
        while not self.halt.is_set():
            try:
                msg = OscMessage(self.osc_in.recv(65536))
            except OSError:
                continue
            self.feedback.append((msg.address, list(msg.params)))

    def seen(self, path: str, since: int = 0) -> list[list[Any]]:
        return [a for p, a in self.feedback[since:] if p == path]

    def messages(self, since: int = 0) -> str:
        return " | ".join(str(a[0]) for a in self.seen("/liveduet/message", since) if a)

    def sounding(self) -> set[tuple[int, int]]:
        return sounding_keys(m for _, m in list(self.got))

    def notes_on(self, pitch: int, since: float = 0.0) -> int:
        return sum(1 for t, m in list(self.got)
                   if t >= since and m[0] & 0xF0 == 0x90 and m[1] == pitch and m[2] > 0)

    def call(self, pitches: list[int]) -> None:
        for p in pitches:
            self.keys.send_message([0x90, p, 100])
            time.sleep(0.05)
            self.keys.send_message([0x80, p, 0])
            time.sleep(0.01)

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(20)
        time.sleep(0.05)  # the last JACK periods reach our port
        self.halt.set()
        release(self.keys, self.rec)
        self.osc_in.close()
        return code


@pytest.fixture(scope="module")
def live(jack_server: JackServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("runtime")
    answer_model(folder / "a72.onnx", 72)
    answer_model(folder / "a74.onnx", 74)
    broken_models(folder)  # truncated.onnx, not_onnx.onnx, ... next to the good ones
    duet = Live(jack_server, folder)
    try:
        yield duet
    finally:
        duet.close()


def test_cc_from_the_midi_input_changes_a_setting(live: Live) -> None:
    since = len(live.feedback)
    live.keys.send_message([0xB0, 22, 0])  # default map: density on CC 22, channel 1
    wait_for(lambda: [0.0] in live.seen("/liveduet/density", since), 5.0,
             what="density 0.0 echoed after CC 22 = 0")
    since = len(live.feedback)
    live.keys.send_message([0xB0, 22, 127])
    wait_for(lambda: [1.0] in live.seen("/liveduet/density", since), 5.0,
             what="density 1.0 echoed after CC 22 = 127")


def test_midi_learn_from_osc_binds_the_next_cc_and_echoes_its_end(live: Live) -> None:
    since = len(live.feedback)
    live.osc.send_message("/liveduet/learn", ["temperature"])
    wait_for(lambda: ["temperature"] in live.seen("/liveduet/learn", since), 5.0,
             what="learn temperature echoed")
    since = len(live.feedback)
    live.keys.send_message([0xB0, 50, 10])  # an unbound CC: it becomes temperature's
    wait_for(lambda: [""] in live.seen("/liveduet/learn", since), 5.0,
             what='learn "" echoed when the CC was learnt')
    since = len(live.feedback)
    live.keys.send_message([0xB0, 50, 127])
    wait_for(lambda: [2.0] in live.seen("/liveduet/temperature", since), 5.0,
             what="the learnt CC 50 setting temperature to its top (2.0)")


def test_a_broken_model_leaves_the_old_one_playing_and_says_why(live: Live) -> None:
    since, t0 = len(live.feedback), time.perf_counter()
    live.osc.send_message("/liveduet/model", ["truncated.onnx"])  # a file cut in half
    wait_for(lambda: "old one plays on" in live.messages(since), 10.0,
             what="the reason the model was not loaded")
    assert "truncated.onnx" in live.messages(since)
    since = len(live.feedback)
    live.osc.send_message("/liveduet/model", ["vocab.onnx"])  # codec and vocabulary disagree
    wait_for(lambda: "vocab.onnx" in live.messages(since)
             and "old one plays on" in live.messages(since), 10.0,
             what="the reason the mismatched model was not loaded")
    live.call([60, 62])
    wait_for(lambda: live.notes_on(72, t0) >= 2, 10.0, what="the old model (72) answering")


def test_hot_swap_mid_phrase_leaves_no_stuck_note(live: Live) -> None:
    live.call([64, 65, 67])
    # liveduet plays on channel 2 (index 1): channel 1 is the caller's
    wait_for(lambda: (1, 72) in live.sounding(), 10.0, what="an answer note (72) sounding")
    since, t_swap = len(live.feedback), time.perf_counter()
    live.osc.send_message("/liveduet/model", ["a74.onnx"])
    wait_for(lambda: "a74.onnx playing" in live.messages(since), 10.0,
             what="the swap to a74.onnx to be reported")
    wait_for(lambda: (1, 72) not in live.sounding(), 2.0, what="the old model's note released")
    released = time.perf_counter()
    live.call([60, 62])
    wait_for(lambda: live.notes_on(74, t_swap) >= 2, 10.0, what="the new model (74) answering")
    assert live.notes_on(72, released) == 0, "the old model played after the swap"
    assert live.close() == 0, "".join(live.lines)
    assert not live.sounding(), f"stuck notes: {live.sounding()}"
