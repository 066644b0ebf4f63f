"""OscControl over real UDP on 127.0.0.1: a python-osc client plays the phone, a UDP socket
listens for the feedback."""

from __future__ import annotations

import queue
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pythonosc import osc_bundle_builder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient

from liveduet.core import oscmap
from liveduet.core.settings import FIELDS, Action, Set, Settings
from liveduet.errors import ConfigError
from liveduet.live.control import OscControl, state_values

TIMEOUT = 3.0


def wait_until(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class Listener:
    """The phone's feedback port: a plain UDP socket decoding OSC messages."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(TIMEOUT)
        self.port = self.sock.getsockname()[1]

    def until(self, address: str) -> list[Any]:
        """Arguments of the next message to ``address`` (others are skipped)."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            msg = OscMessage(self.sock.recv(65536))
            if msg.address == address:
                return list(msg.params)
        raise AssertionError(f"no feedback on {address}")

    def drain(self, seconds: float = 0.2) -> list[tuple[str, list[Any]]]:
        self.sock.settimeout(seconds)
        out = []
        try:
            while True:
                msg = OscMessage(self.sock.recv(65536))
                out.append((msg.address, list(msg.params)))
        except TimeoutError:
            return out
        finally:
            self.sock.settimeout(TIMEOUT)


@pytest.fixture
def listener() -> Iterator[Listener]:
    lis = Listener()
    yield lis
    lis.sock.close()


@pytest.fixture
def server(listener: Listener) -> Iterator[tuple[OscControl, queue.Queue[Any]]]:
    commands: queue.Queue[Any] = queue.Queue()
    ctl = OscControl(commands.put, port=0, reply_port=listener.port)
    ctl.start()
    yield ctl, commands
    ctl.stop()


def phone(ctl: OscControl) -> SimpleUDPClient:
    return SimpleUDPClient(*ctl.address)


def _sample(address: oscmap.Address) -> tuple[list[Any], Any]:
    """A valid TouchOSC-style message for the address and the Command it must make."""
    if address.kind == "setting":
        f = next(f for f in FIELDS if f.name == address.target)
        if f.kind == "choice":
            return [float(len(f.choices) - 1)], Set(f.name, f.choices[-1])
        if f.kind == "bool":
            return [0.0], Set(f.name, False)
        if f.kind == "int":
            return [float(f.high or 0) - 0.2], Set(f.name, int(f.high or 0))
        return [float(f.low or 0) + 0.5], Set(f.name, float(f.low or 0) + 0.5)
    if address.kind == "trigger":
        return [1.0], Action(address.target)
    if address.kind == "learn":
        return ["temperature", 1.0], Action("learn", "temperature")
    return ["folk_melody"], Action("model", "folk_melody")


@pytest.mark.parametrize("path", oscmap.addresses(accepted=True))
def test_every_address_enqueues_its_command(server: tuple[OscControl, queue.Queue[Any]],
                                            path: str) -> None:
    ctl, commands = server
    args, expected = _sample(oscmap.ADDRESSES[path])
    phone(ctl).send_message(path, args)
    assert commands.get(timeout=TIMEOUT) == expected
    assert sum(ctl.counters.values()) == 0


def test_button_release_and_string_choice(server: tuple[OscControl, queue.Queue[Any]]) -> None:
    ctl, commands = server
    client = phone(ctl)
    client.send_message("/liveduet/panic", 0.0)  # release: nothing to do
    client.send_message("/liveduet/mode", "Harmonize")
    assert commands.get(timeout=TIMEOUT) == Set("mode", "harmonize")
    client.send_message("/liveduet/learn", "cancel")
    assert commands.get(timeout=TIMEOUT) == Action("learn", None)
    client.send_message("/liveduet/thru", True)
    assert commands.get(timeout=TIMEOUT) == Set("thru", True)
    assert commands.empty()
    assert ctl.accepted == 3


def test_a_bundle_is_applied_message_by_message(
        server: tuple[OscControl, queue.Queue[Any]]) -> None:
    ctl, commands = server
    bundle = osc_bundle_builder.OscBundleBuilder(osc_bundle_builder.IMMEDIATELY)
    for path, arg in (("/liveduet/bpm", 90.0), ("/liveduet/seed", 7)):
        msg = OscMessageBuilder(address=path)
        msg.add_arg(arg)
        bundle.add_content(msg.build())
    phone(ctl).send(bundle.build())
    assert [commands.get(timeout=TIMEOUT) for _ in range(2)] == [Set("bpm", 90.0),
                                                                 Set("seed", 7)]


def test_publish_reaches_the_client(server: tuple[OscControl, queue.Queue[Any]],
                                    listener: Listener) -> None:
    ctl, commands = server
    ctl.publish({"temperature": 1.0})  # no client seen yet: goes nowhere
    phone(ctl).send_message("/liveduet/state", [])
    assert commands.get(timeout=TIMEOUT) == Action("state")
    assert ctl.clients == ["127.0.0.1"]
    settings = Settings().with_value("mode", "continue").with_value("thru", False)
    ctl.publish(state_values(settings, {"phase": "answering", "step": 13, "title": "Folk"}))
    got = dict(listener.drain())
    assert got["/liveduet/mode"] == [1]
    assert got["/liveduet/thru"] == [0]
    assert got["/liveduet/temperature"] == [pytest.approx(0.9)]
    assert got["/liveduet/bpm"] == got["/liveduet/tempo"] == [pytest.approx(120.0)]
    assert got["/liveduet/phase"] == ["answering"]
    assert got["/liveduet/beat"] == [3]
    assert got["/liveduet/model"] == ["Folk"]
    assert "/liveduet/temperature" in got and len(got) == len(FIELDS) + 4
    assert sum(ctl.counters.values()) == 0


MALFORMED = [
    b"",
    b"garbage that is not OSC",
    b"/liveduet/temperature\x00\x00\x00,f\x00\x00",  # promises a float, has none
    b"/liveduet/temperature\x00\x00\x00,i\x00\x00\x00\x00",  # int cut to 2 bytes
    b"/liveduet/density\x00\x00\x00,f\x00\x00",  # float missing: python-osc reads 0.0
    b"/liveduet/density\x00\x00\x00,f\x00\x00" + b"\x00" * 8,  # 4 bytes too many
    b"/liveduet/learn\x00,s\x00\x00abcd",  # string without its terminator
    b"/liveduet/model\x00,b\x00\x00\x00\x00\x01\x00",  # blob longer than the packet
    b"#bundle\x00" + struct.pack(">I", 1),  # bundle time tag cut off
    b"#bundle\x00" + struct.pack(">Q", 1) + struct.pack(">i", 400) + b"/x\x00\x00",
    b"/liveduet/seed\x00\x00,\xff\xfe\x00" + b"\x01" * 8,  # unknown type tag bytes
]


def test_malformed_packets_are_counted_and_the_server_keeps_serving(
        server: tuple[OscControl, queue.Queue[Any]]) -> None:
    ctl, commands = server
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for dgram in MALFORMED:
            raw.sendto(dgram, ctl.address)
        wait_until(lambda: ctl.counters["malformed"] == len(MALFORMED), "malformed counts")
    finally:
        raw.close()
    phone(ctl).send_message("/liveduet/density", 0.25)
    assert commands.get(timeout=TIMEOUT) == Set("density", 0.25)
    assert ctl.counters["internal"] == 0


BAD = [
    ("/liveduet/nope", [1.0], "unknown"),
    ("/liveduet", [1.0], "unknown"),
    ("/liveduet/phase", ["answering"], "readonly"),
    ("/liveduet/temperature", ["hot"], "type"),
    ("/liveduet/temperature", [], "type"),
    ("/liveduet/temperature", [1.0, 2.0], "type"),
    ("/liveduet/bpm", [True], "type"),
    ("/liveduet/panic", ["now"], "type"),
    ("/liveduet/learn", [1.0], "type"),
    ("/liveduet/temperature", [5.0], "range"),
    ("/liveduet/bpm", [float("nan")], "range"),
    ("/liveduet/mode", [4.0], "range"),
    ("/liveduet/mode", ["jazz"], "range"),
    ("/liveduet/thru", [0.5 + 1.0], "range"),
    ("/liveduet/channel", [17], "range"),
    ("/liveduet/learn", ["bogus"], "range"),
    ("/liveduet/model", ["../../etc/passwd"], "range"),
]


def test_bad_messages_are_refused_counted_and_logged_once(
        server: tuple[OscControl, queue.Queue[Any]], caplog: pytest.LogCaptureFixture) -> None:
    ctl, commands = server
    client = phone(ctl)
    expected: dict[str, int] = {}
    caplog.set_level("WARNING", logger="liveduet.live.control")
    for path, args, reason in BAD:
        client.send_message(path, args)
        expected[reason] = expected.get(reason, 0) + 1
        wait_until(lambda r=reason: ctl.counters[r] == expected[r], f"{path} {args} -> {reason}")
    client.send_message("/liveduet/nope", [1.0])  # same address again: counted, not logged
    expected["unknown"] += 1
    wait_until(lambda: ctl.counters["unknown"] == expected["unknown"], "second unknown")
    assert {k: v for k, v in ctl.counters.items() if v} == expected
    assert sum("/liveduet/nope" in r.getMessage() for r in caplog.records) == 1
    assert commands.empty()
    client.send_message("/liveduet/low", 40.4)
    assert commands.get(timeout=TIMEOUT) == Set("low", 40)


def test_a_sender_outside_allow_is_dropped(listener: Listener) -> None:
    commands: queue.Queue[Any] = queue.Queue()
    ctl = OscControl(commands.put, port=0, reply_port=listener.port, allow=["127.0.0.3, 127.0.0.2"])
    ctl.start()
    try:
        phone(ctl).send_message("/liveduet/temperature", 1.5)  # from 127.0.0.1
        wait_until(lambda: ctl.counters["denied"] == 1, "denied count")
        assert ctl.clients == []
        friend = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        friend.bind(("127.0.0.2", 0))
        msg = OscMessageBuilder(address="/liveduet/temperature")
        msg.add_arg(1.5)
        friend.sendto(msg.build().dgram, ctl.address)
        friend.close()
        assert commands.get(timeout=TIMEOUT) == Set("temperature", 1.5)
        assert ctl.clients == ["127.0.0.2"]
        assert commands.empty()
    finally:
        ctl.stop()


def test_binds_localhost_by_default_and_reports_bad_setup() -> None:
    ctl = OscControl(lambda cmd: None, port=0)
    ctl.start()
    try:
        assert ctl.address[0] == "127.0.0.1"
        busy = OscControl(lambda cmd: None, port=ctl.address[1])
        with pytest.raises(ConfigError, match="--osc-port"):
            busy.start()
    finally:
        ctl.stop()
    ctl.stop()  # twice is fine
    with pytest.raises(ConfigError, match="osc-allow"):
        OscControl(lambda cmd: None, allow=["no-such-host.invalid"])
    with pytest.raises(ConfigError, match="port"):
        OscControl(lambda cmd: None, port=70000)


def test_a_failing_submit_is_counted_not_fatal(listener: Listener) -> None:
    calls: list[Any] = []

    def submit(cmd: Any) -> None:
        calls.append(cmd)
        if len(calls) == 1:
            raise RuntimeError("queue full")

    ctl = OscControl(submit, port=0, reply_port=listener.port)
    ctl.start()
    try:
        client = phone(ctl)
        client.send_message("/liveduet/play", [])
        wait_until(lambda: ctl.counters["internal"] == 1, "internal count")
        client.send_message("/liveduet/stop", [])
        wait_until(lambda: len(calls) == 2, "second command")
        assert calls == [Action("play"), Action("stop")]
    finally:
        ctl.stop()


def test_well_formed_accepts_what_python_osc_builds() -> None:
    from liveduet.live.oscwire import well_formed

    msg = OscMessageBuilder(address="/liveduet/x")
    for arg, kind in ((1, "i"), (0.5, "f"), ("abc", "s"), (b"\x01\x02\x03", "b"), (True, "T"),
                      (2**40, "h"), (0.25, "d"), (None, "N")):
        msg.add_arg(arg, kind)
    dgram = msg.build().dgram
    assert well_formed(dgram)
    assert well_formed(b"/liveduet/play\x00\x00")  # no type tag string at all
    assert not well_formed(dgram[:-4])
    bundle = osc_bundle_builder.OscBundleBuilder(osc_bundle_builder.IMMEDIATELY)
    bundle.add_content(msg.build())
    assert well_formed(bundle.build().dgram)
    assert not well_formed(bundle.build().dgram[:-4])


def test_state_values_takes_only_display_keys_from_status() -> None:
    status = {"key": "G", "step": -1, "model": "Folk tunes", "phase": "idle", "learn": None,
              "counters": {"x": 1}}
    values = state_values(Settings(), status)
    assert values["key"] == "off"  # the setting, not the engine's estimate
    assert "beat" not in values and "counters" not in values
    assert values["model"] == "Folk tunes" and values["learn"] is None
    assert state_values(Settings(), {"beat": 2, "step": 13})["beat"] == 2
