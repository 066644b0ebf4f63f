"""A musician's first live session: ``liveduet run`` on a private JACK server, steered over OSC.

Real MIDI ports (a keyboard port into ``liveduet in``, a recorder on ``liveduet out``) and real
UDP on 127.0.0.1: the input-channel filter, a MIDI-learnt binding saved to the config file, a
model from ``--models-dir``, the sustain pedal holding the call, and OSC ``mode harmonise``
with the one-voice default model (the harmoniser is loaded, no traceback) with the harmony on
channels 2-4.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rtmidi
from pythonosc.udp_client import SimpleUDPClient

from liveduet.testkit.factory import lstm_model
from liveduet.testkit.jack import JackServer, release, wait_for
from tests.live.test_osc_run import Listener, _free_port

ROOT = Path(__file__).resolve().parents[2]


class Session:
    """The running liveduet, its OSC client and feedback, the keyboard and the recorder."""

    def __init__(self, proc: subprocess.Popen[str], lines: list[str], client: SimpleUDPClient,
                 listener: Listener, keys: Any, got: list[tuple[int, ...]], config: Path
                 ) -> None:
        self.proc, self.lines, self.client, self.listener = proc, lines, client, listener
        self.keys, self.got, self.config = keys, got, config

    def messages(self, since: int) -> str:
        return " ".join(str(a) for a in self.listener.seen("/liveduet/message", since))


@pytest.fixture(scope="module")
def session(jack_server: JackServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Session]:
    folder = tmp_path_factory.mktemp("newcomer_live")
    models = folder / "models"
    models.mkdir()
    lstm_model(models / "mine.onnx", hidden=16)
    config = folder / "live.toml"
    config.write_text('# my settings\nbpm = 120\n')
    listener = Listener()
    port = _free_port()
    env = dict(jack_server.env(), XDG_CONFIG_HOME=str(folder / "cfg"),
               XDG_DATA_HOME=str(folder / "data"))
    cmd = [sys.executable, "-m", "liveduet", "run", "--api", "jack", "--quiet",
           "--config", str(config), "--models-dir", str(models), "--in-channel", "1",
           "--osc-port", str(port), "--osc-reply-port", str(listener.port)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True).start()
    got: list[tuple[int, ...]] = []
    rec = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="ncrec")
    rec.open_virtual_port("in")
    rec.set_callback(lambda ev, _d: got.append(tuple(ev[0])))
    keys = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="nckeys")
    keys.open_virtual_port("out")
    try:
        wait_for(lambda: any("Ctrl-C to stop" in ln for ln in lines) or proc.poll() is not None,
                 30.0, what="liveduet run to start")
        assert proc.poll() is None, "".join(lines)
        jack_server.connect(jack_server.find_port(":liveduet out"), "ncrec:in")
        jack_server.connect("nckeys:out", jack_server.find_port(":liveduet in"))
        client = SimpleUDPClient("127.0.0.1", port)
        client.send_message("/liveduet/state", [])
        wait_for(lambda: listener.seen("/liveduet/mode"), 10.0, what="the first state dump")
        yield Session(proc, lines, client, listener, keys, got, config)
    finally:
        proc.terminate()
        proc.wait(20)
        release(rec, keys)
        listener.close()


def test_in_channel_filters_the_input(session: Session) -> None:
    n = len(session.got)
    session.keys.send_message([0x94, 61, 100])  # channel 5: ignored, not even passed through
    session.keys.send_message([0x90, 62, 100])  # channel 1: heard and passed through
    wait_for(lambda: (0x90, 62, 100) in session.got[n:], 5.0, what="the thru copy on channel 1")
    session.keys.send_message([0x84, 61, 0])
    session.keys.send_message([0x80, 62, 0])
    wait_for(lambda: any(m[:2] in ((0x80, 62), (0x90, 62)) and (m[0] == 0x80 or m[2] == 0)
                         for m in session.got[n:]), 5.0, what="the thru note-off")
    assert not [m for m in session.got[n:] if m[0] & 0x0F == 4]


def test_midi_learn_is_saved_to_the_config_file(session: Session) -> None:
    since = len(session.listener.got)
    session.client.send_message("/liveduet/learn", ["density"])
    wait_for(lambda: ["density"] in session.listener.seen("/liveduet/learn", since), 5.0,
             what="learn echoing density")
    session.keys.send_message([0xB0, 50, 10])
    wait_for(lambda: "density = [1, 50]" in session.config.read_text(), 10.0,
             what="the learnt binding in the config file")
    text = session.config.read_text()
    assert text.startswith("# my settings\nbpm = 120\n") and "[cc]" in text
    wait_for(lambda: any("learnt CC 50 on channel 1 -> density" in ln for ln in session.lines),
             5.0, what="the learn notice")


def test_a_model_from_the_models_dir_loads_by_name(session: Session) -> None:
    since = len(session.listener.got)
    session.client.send_message("/liveduet/model", ["mine"])
    wait_for(lambda: "model mine playing" in session.messages(since), 15.0,
             what="the model from --models-dir playing")


def test_the_sustain_pedal_holds_the_call_live(session: Session) -> None:
    since = len(session.listener.got)
    session.client.send_message("/liveduet/bpm", [300.0])  # a bar is 0.8 s
    wait_for(lambda: [300.0] in session.listener.seen("/liveduet/bpm", since), 5.0,
             what="bpm 300 echoed")
    wait_for(lambda: session.listener.seen("/liveduet/phase")[-1:] == [["listening"]], 15.0,
             what="liveduet listening (any earlier answer over)")
    since = len(session.listener.got)
    session.keys.send_message([0xB0, 64, 127])  # pedal down, then a short note
    session.keys.send_message([0x90, 64, 100])
    session.keys.send_message([0x80, 64, 0])
    held = time.monotonic()
    wait_for(lambda: time.monotonic() - held > 2.5, 5.0, what="three bars under the pedal")
    assert ["answering"] not in session.listener.seen("/liveduet/phase", since)
    session.keys.send_message([0xB0, 64, 0])  # pedal up: the call is over
    wait_for(lambda: ["answering"] in session.listener.seen("/liveduet/phase", since), 10.0,
             what="the answer once the pedal is up")


def test_osc_harmonise_loads_the_harmoniser_and_plays_on_channels_2_to_4(
        session: Session) -> None:
    since = len(session.listener.got)
    session.client.send_message("/liveduet/mode", ["harmonise"])
    wait_for(lambda: [2] in session.listener.seen("/liveduet/mode", since), 20.0,
             what="mode harmonize echoed once the harmoniser plays")
    text = session.messages(since)
    assert "chorale_satb" in text
    assert not any("Traceback" in ln or "needs a multi-voice" in ln for ln in session.lines)
    n = len(session.got)
    session.keys.send_message([0x90, 72, 100])
    wait_for(lambda: len({m[0] for m in session.got[n:] if m[0] & 0xF0 == 0x90 and m[2]}) >= 3,
             10.0, what="the soprano's thru copy and harmony notes")
    session.keys.send_message([0x80, 72, 0])
    ons = [m for m in session.got[n:] if m[0] & 0xF0 == 0x90 and m[2]]
    assert (0x90, 72, 100) in ons  # the soprano passes through on its own channel 1
    assert [m for m in ons if m[0] == 0x90] == [(0x90, 72, 100)]  # nothing else on channel 1
    assert {m[0] & 0x0F for m in ons} - {0} and {m[0] & 0x0F for m in ons} - {0} <= {1, 2, 3}
