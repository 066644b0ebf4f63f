"""A separate OSC client steers a running ``liveduet run`` and sees every echo.

``liveduet run --api jack`` runs as a subprocess on a private JACK server with its OSC server on a
free port and feedback sent to this test's UDP listener (real UDP on 127.0.0.1). Every address the
map accepts is sent once and its effect is seen in the echo (settings: the new value; stop/play:
the phase; panic: All Notes Off on the MIDI output; the other actions: their notice).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rtmidi
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient

from liveduet.core.oscmap import ADDRESSES, addresses
from liveduet.core.settings import FIELD_BY_NAME
from liveduet.testkit.factory import lstm_model
from liveduet.testkit.jack import JackServer, release, wait_for

ROOT = Path(__file__).resolve().parents[2]
NEW_VALUES: dict[str, Any] = {
    "mode": "continue", "temperature": 0.5, "top_p": 0.5, "bpm": 100.0, "tempo": 110.0,
    "key": "D", "scale": "minor", "low": 40, "high": 90, "density": 0.25, "listen_gap": 6,
    "response_bars": 2.0, "response_min_bars": 2.0, "response_max_bars": 8.0, "thru": False,
    "channel": 3, "velocity": 64, "seed": 7, "meter": "6/8", "answer_at": "beat",
    "candidates": 4, "develop": 0.25, "max_copy": 20, "voice_leading": "off",
}


class Listener:
    """A UDP socket on 127.0.0.1 collecting every OSC message it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.got: list[tuple[str, list[Any]]] = []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._halt.is_set():
            try:
                data = self.sock.recv(65536)
            except OSError:
                continue
            msg = OscMessage(data)
            self.got.append((msg.address, list(msg.params)))

    def seen(self, path: str, since: int = 0) -> list[list[Any]]:
        return [args for p, args in self.got[since:] if p == path]

    def close(self) -> None:
        self._halt.set()
        self._thread.join(2)
        self.sock.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def running(jack_server: JackServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[SimpleUDPClient, Listener, list[tuple[int, ...]]]]:
    """``liveduet run`` with OSC on a free port, a listener for its feedback, a MIDI recorder."""
    folder = tmp_path_factory.mktemp("osc_run")
    model = lstm_model(folder / "melody.onnx", hidden=16)
    listener = Listener()
    port = _free_port()
    cmd = [sys.executable, "-m", "liveduet", "run", "--api", "jack", "--model", str(model),
           "--quiet", "--osc-port", str(port), "--osc-reply-port", str(listener.port)]
    proc = subprocess.Popen(cmd, env=jack_server.env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True).start()
    got: list[tuple[int, ...]] = []
    rec = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="oscrec")
    rec.open_virtual_port("in")
    rec.set_callback(lambda ev, _d: got.append(tuple(ev[0])))
    try:
        wait_for(lambda: any("Ctrl-C to stop" in ln for ln in lines) or proc.poll() is not None,
                 30.0, what="liveduet run to start")
        assert proc.poll() is None, "".join(lines)
        jack_server.connect(jack_server.find_port(":liveduet out"), "oscrec:in")
        client = SimpleUDPClient("127.0.0.1", port)
        client.send_message("/liveduet/state", [])  # also registers us as a feedback client
        wait_for(lambda: listener.seen("/liveduet/mode"), 10.0, what="the first state dump")
        yield client, listener, got
    finally:
        proc.terminate()
        proc.wait(20)
        release(rec)
        listener.close()


def _echo_of(name: str, value: Any) -> Any:
    f = FIELD_BY_NAME.get(ADDRESSES[f"/liveduet/{name}"].target)
    if f is not None and f.kind == "choice":
        return f.choices.index(value)
    if f is not None and f.kind == "bool":
        return int(value)
    return value


def _send_and_see(client: SimpleUDPClient, listener: Listener, path: str, args: list[Any],
                  expect: Any, echo_path: str | None = None) -> None:
    since = len(listener.got)
    client.send_message(path, args)

    def echoed() -> bool:
        return any(a and a[0] == pytest.approx(expect, rel=1e-5) if isinstance(expect, float)
                   else a == [expect] for a in listener.seen(echo_path or path, since))
    wait_for(echoed, 5.0, what=f"{echo_path or path} echoing {expect!r} after {path} {args}")


def test_every_setting_address_changes_the_running_liveduet_and_is_echoed(running: Any) -> None:
    client, listener, _ = running
    settings = [a for a in addresses(accepted=True) if ADDRESSES[a].kind == "setting"]
    assert {a.rsplit("/", 1)[1] for a in settings} == set(NEW_VALUES)
    for path in settings:
        name = path.rsplit("/", 1)[1]
        value = NEW_VALUES[name]
        echo_path = f"/liveduet/{ADDRESSES[path].target}"
        _send_and_see(client, listener, path, [value], _echo_of(name, value), echo_path)


def test_a_refused_setting_snaps_the_fader_back(running: Any) -> None:
    client, listener, _ = running
    _send_and_see(client, listener, "/liveduet/high", [80], 80)
    since = len(listener.got)
    client.send_message("/liveduet/low", [100])  # above high: the engine refuses it
    wait_for(lambda: listener.seen("/liveduet/low", since), 5.0, what="low re-published")
    assert listener.seen("/liveduet/low", since)[-1] != [100]
    assert any("low" in str(m) for m in listener.seen("/liveduet/message", since))


def test_actions_learn_and_model_reach_the_running_liveduet(running: Any) -> None:
    client, listener, got = running
    _send_and_see(client, listener, "/liveduet/stop", [1.0], "idle", "/liveduet/phase")
    since = len(listener.got)
    client.send_message("/liveduet/play", [])
    wait_for(lambda: [a for a in listener.seen("/liveduet/phase", since) if a != ["idle"]], 5.0,
             what="/liveduet/play to leave the idle phase")
    n = len(got)
    client.send_message("/liveduet/panic", [1.0])
    wait_for(lambda: any(m[0] & 0xF0 == 0xB0 and m[1] == 123 for m in got[n:]), 5.0,
             what="All Notes Off on the MIDI output after /liveduet/panic")
    for action in ("reset", "end_call", "panic"):
        since = len(listener.got)
        client.send_message(f"/liveduet/{action}", [1.0])
        wait_for(lambda a=action, s=since: any(a in str(m) for m in
                                             listener.seen("/liveduet/message", s)),
                 5.0, what=f"the notice of /liveduet/{action}")
    _send_and_see(client, listener, "/liveduet/learn", ["density"], "density")
    _send_and_see(client, listener, "/liveduet/learn", ["cancel"], "")
    since = len(listener.got)
    client.send_message("/liveduet/model", ["no_such_model"])
    wait_for(lambda: any("no_such_model" in str(m) and "old one plays on" in str(m)
                         for m in listener.seen("/liveduet/message", since)), 10.0,
             what="the reason a missing model was not loaded")


def test_state_returns_a_full_dump(running: Any) -> None:
    client, listener, _ = running
    since = len(listener.got)
    client.send_message("/liveduet/state", [])
    want = [a for a in addresses(echoed=True) if a not in ("/liveduet/learn",
                                                          "/liveduet/message")]
    wait_for(lambda: all(listener.seen(a, since) for a in want), 5.0,
             what="every echoed address in the /liveduet/state dump")
