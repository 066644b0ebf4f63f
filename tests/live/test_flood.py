"""Floods: control traffic never delays MIDI, memory stays bounded, drops are counted and shown.

Unit checks of the control box (coalescing, rate) and the MIDI queue bound; then a real UDP flood
from another process into a running Runtime (real clock, OSC server, sockets; the engine is the
recording fake of tests/live/test_control_runtime.py, which also times each note it is fed).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pythonosc.udp_client import SimpleUDPClient

from liveduet.cli.status import StatusLine, format_status
from liveduet.core.clock import InternalClock
from liveduet.core.settings import FIELDS, Action, Set
from liveduet.live.control import RATE, OscControl
from liveduet.live.mailbox import BURST, ControlBox
from liveduet.live.runtime import MAX_QUEUED, Runtime
from tests.live.test_control import Listener
from tests.live.test_control_runtime import RecordingEngine

PORT = 0
FLOOD = r"""
import random, socket, sys, time
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_bundle_builder import OscBundleBuilder, IMMEDIATELY
def msg(path, *args):
    b = OscMessageBuilder(address=path)
    for a in args:
        b.add_arg(a)
    return b.build()
rnd = random.Random(1)
packets = [msg("/liveduet/density", rnd.random()).dgram for _ in range(50)]
packets += [msg("/liveduet/temperature", 0.1 + rnd.random()).dgram for _ in range(50)]
packets += [msg("/liveduet/nope", 1.0).dgram, msg("/liveduet/density", "x").dgram,
            b"garbage!" * 8, msg("/liveduet/state").dgram]
bundle = OscBundleBuilder(IMMEDIATELY)
for i in range(400):
    bundle.add_content(msg("/liveduet/top_p", 0.5 + i / 1000))
packets.append(bundle.build().dgram)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
port, seconds = int(sys.argv[1]), float(sys.argv[2])
end = time.perf_counter() + seconds
n = 0
start = time.perf_counter()
while (now := time.perf_counter()) < end:
    if n > (now - start) * 20_000:  # 20,000 datagrams/s, sent 100 at a time
        time.sleep(0.005)
        continue
    for _ in range(100):
        try:
            sock.sendto(packets[n % len(packets)], ("127.0.0.1", port))
        except OSError:
            pass
        n += 1
print(n)
"""


class TimedEngine(RecordingEngine):
    """The recording fake, plus when each note was fed (to time MIDI against the flood)."""

    def __init__(self) -> None:
        super().__init__()
        self.fed: list[tuple[float, Any]] = []

    def feed_many(self, events: Any) -> list[Any]:
        now = time.perf_counter()
        self.fed += [(now, msg) for _pos, msg in events]
        return []

    def apply(self, cmd: Any, pos: float) -> list[Any]:
        time.sleep(0.0005)  # a real setting change re-plans: not free
        return super().apply(cmd, pos)


def test_box_keeps_one_entry_per_setting_and_the_latest_value() -> None:
    woken: list[int] = []
    box = ControlBox(lambda: woken.append(1))
    for i in range(10_000):
        box.put(Set("density", i / 10_000))
        box.put(Action("panic"))
    box.put(Set("temperature", 0.5))
    assert len(box) == 3 and box.coalesced == 2 * 9_999
    assert woken == [1]  # one wake-up while it was waiting
    taken = box.take(0.0)
    assert taken == [Set("density", 0.9999), Action("panic"), Set("temperature", 0.5)]
    assert len(box) == 0


def test_box_is_rate_limited_and_says_when_it_is_ready() -> None:
    box = ControlBox(lambda: None, rate=100.0, burst=2)
    for f in FIELDS[:5]:
        box.put(Set(f.name, f.default))
    assert len(box.take(10.0)) == 2
    assert box.take(10.0) == []
    assert box.ready_at(10.0) == pytest.approx(10.01)
    assert len(box.take(10.0101)) == 1


def test_midi_queue_is_bounded_but_keeps_every_note_off() -> None:
    rt = Runtime(RecordingEngine(), InternalClock(bpm=120.0), lambda msg: None)
    for i in range(MAX_QUEUED + 5_000):  # the conductor is not running: nothing is taken
        rt.on_midi(float(i), (0x90, 60, 100) if i % 2 == 0 else (0x80, 60, 0))
    queued = rt.queue.qsize()
    assert queued == MAX_QUEUED + 2_500  # past the bound only the note-offs got in
    assert rt.midi_dropped == 2_500
    assert rt.dropped() == 2_500


@pytest.fixture
def flooded() -> Iterator[tuple[SimpleUDPClient, Listener, TimedEngine, Runtime, OscControl]]:
    listener = Listener()
    engine = TimedEngine()
    rt = Runtime(engine, InternalClock(bpm=120.0), lambda msg: None)
    control = OscControl(rt.submit, port=0, reply_port=listener.port)
    rt.publisher = control
    control.start()
    rt.start()
    try:
        yield SimpleUDPClient(*control.address), listener, engine, rt, control
    finally:
        rt.stop()
        control.stop()
        listener.sock.close()
    assert rt.failed is None


@pytest.mark.wallclock
def test_osc_flood_is_dropped_counted_and_never_delays_a_note(flooded: Any) -> None:
    phone, listener, engine, rt, control = flooded
    seconds = 2.0
    sender = subprocess.Popen([sys.executable, "-c", FLOOD, str(PORT or control.address[1]),
                               str(seconds)], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    stamps = []
    t_end = time.perf_counter() + seconds - 0.5
    while time.perf_counter() < t_end:   # 200 notes/s while the flood runs
        t = time.perf_counter()
        rt.on_midi(t, (0x90, 60, 100))
        stamps.append(t)
        time.sleep(0.005)
    sent = int(sender.communicate(timeout=30)[0])
    assert sent > 20_000, "the flood was too thin to test anything"
    delays = sorted(fed - t for (fed, _), t in zip(engine.fed, stamps, strict=False))
    assert len(engine.fed) == len(stamps)
    p99 = delays[int(0.99 * (len(delays) - 1))]
    print(f"fed p50 {delays[len(delays) // 2] * 1e3:.2f} ms p99 {p99 * 1e3:.2f} ms, "
          f"{sent} datagrams sent, {control.dropped} dropped")
    assert p99 < 0.010, f"notes waited behind control traffic: p99 {p99 * 1e3:.1f} ms"
    assert control.dropped > 0
    assert control.accepted <= (RATE * (seconds + 1) + BURST) * 400  # a bundle: 400 messages
    applied = engine.commands.qsize()
    assert applied < sent / 10, "settings were applied one by one instead of coalesced"
    # a fader moved after the flood: the socket buffer the flood filled has room again once
    # the server reads on (it sleeps up to 50 ms past the rate; a datagram sent before that is
    # dropped with the flood, counted)
    time.sleep(0.2)
    phone.send_message("/liveduet/density", 0.125)
    deadline = time.monotonic() + 10.0  # behind what waited in the socket buffer (~2 s)
    while engine.settings.density != 0.125 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.settings.density == 0.125
    time.sleep(0.5)  # the status snapshot is refreshed every 0.2 s
    assert rt.snapshot["dropped"] == control.dropped
    listener.drain()
    phone.send_message("/liveduet/state", [])
    assert listener.until("/liveduet/dropped") == [control.dropped]
    assert f"dropped {control.dropped}" in format_status(rt.snapshot)


def test_a_refused_osc_value_is_one_log_line_not_a_traceback(
        flooded: Any, caplog: pytest.LogCaptureFixture) -> None:
    """low above high passes the address check but not the settings' cross-field rule: the
    conductor refuses it with one warning (no traceback) and echoes the value in force."""
    phone, listener, engine, rt, _ = flooded
    listener.drain()
    with caplog.at_level(logging.WARNING):
        phone.send_message("/liveduet/low", 120.0)
        assert listener.until("/liveduet/low") == [engine.settings.low]
        deadline = time.monotonic() + 5.0  # the echo goes out just before the log line
        while not rt.errors and time.monotonic() < deadline:
            time.sleep(0.01)
    refused = [r for r in caplog.records if "low" in r.getMessage()]
    assert len(refused) == 1 and refused[0].exc_info is None, caplog.text
    assert "playing on" in refused[0].getMessage()
    assert engine.settings.low == 36


def test_a_status_line_on_a_closed_terminal_stops_quietly() -> None:
    """After SIGHUP the terminal is gone: writing the status fails once, then nothing more."""

    class Closed:
        writes = 0

        def write(self, _text: str) -> None:
            Closed.writes += 1
            raise OSError(5, "Input/output error")

        def flush(self) -> None:
            raise OSError(5, "Input/output error")

    line = StatusLine(Closed(), tty=True)  # type: ignore[arg-type]
    line.show({"mode": "call"}, now=0.0)
    line.show({"mode": "continue"}, now=20.0)
    line.close()
    assert line.gone and Closed.writes == 1
