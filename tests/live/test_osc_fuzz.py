"""Fuzz the OSC server over real UDP on 127.0.0.1: random datagrams and hostile values.

One ``OscControl`` serves the whole module. Each example sends its datagrams one at a time,
each followed by a sentinel (``/liveduet/seed N`` with a fresh N) the test waits for, so every
datagram has been handled when it is judged. Invariants: the server never dies (the sentinel,
a valid message, is always accepted); every Command it submits is valid (a Set's value passes
``settings.coerce`` unchanged; an Action names a known action with a well-formed argument); each
datagram is either accepted, counted as refused, or a button release.
"""

from __future__ import annotations

import math
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from liveduet.core import oscmap
from liveduet.core.settings import ACTIONS, Action, Set, coerce
from liveduet.errors import ConfigError
from liveduet.live.control import OscControl
from liveduet.testkit.jack import wait_for

FUZZ = settings(max_examples=80, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
ADDRESSES = sorted(oscmap.ADDRESSES)


class Harness:
    """The server under test, a client socket and what the server submitted."""

    def __init__(self) -> None:
        self.submitted: list[Any] = []
        self.lock = threading.Lock()
        self.control = OscControl(self._submit, port=0, reply_port=9)
        self.control.start()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.seed = 0

    def _submit(self, cmd: Any) -> None:
        with self.lock:
            self.submitted.append(cmd)

    def outcomes(self) -> int:
        """Accepted commands plus refusals counted so far."""
        return self.control.accepted + sum(self.control.counters.values())

    def send(self, data: bytes) -> list[Any]:
        """Send one datagram and a sentinel; return what the datagram submitted."""
        with self.lock:
            start = len(self.submitted)
        self.sock.sendto(data, self.control.address)
        self.seed += 1
        sentinel = Set("seed", self.seed)
        self.sock.sendto(_message("/liveduet/seed", [self.seed]), self.control.address)
        wait_for(lambda: sentinel in self.submitted, 5.0, 0.001, "the sentinel to be accepted")
        with self.lock:
            got = self.submitted[start:]
        return [c for c in got if c != sentinel]


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.control.stop()
    h.sock.close()


def _message(address: str, args: list[Any]) -> bytes:
    builder = OscMessageBuilder(address=address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


def _check_command(cmd: Any) -> None:
    """A submitted Command must be valid as it stands."""
    if isinstance(cmd, Set):
        value = cmd.value
        assert not (isinstance(value, float) and not math.isfinite(value)), cmd
        assert coerce(cmd.name, value) == value, cmd
        return
    assert isinstance(cmd, Action) and cmd.name in ACTIONS, cmd
    if cmd.name == "learn":
        assert cmd.arg is None or cmd.arg in oscmap.LEARN_TARGETS, cmd
    elif cmd.name == "model":
        assert isinstance(cmd.arg, str) and cmd.arg and "/" not in cmd.arg, cmd
    else:
        assert cmd.arg is None, cmd


def _judge(h: Harness, data: bytes, release_possible: bool) -> list[Any]:
    before = h.outcomes()
    got = h.send(data)
    for cmd in got:
        _check_command(cmd)
    handled = h.outcomes() - before - 1  # minus the sentinel
    assert handled >= 1 or release_possible, f"datagram neither accepted nor refused: {data!r}"
    return got


hostile_values = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0, 0.5, 1.0]),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from(["", " ", "jazz", "C", "on", "off", "cancel", "../../etc/passwd", "é♯𝄞",
                     "\u202e", "a" * 5000, "nan", "inf", "1e999", "model.onnx", "folk_melody"]),
    st.text(max_size=40),
    st.booleans(),
    st.binary(max_size=64),
)
hostile_messages = st.tuples(
    st.one_of(st.sampled_from(ADDRESSES), st.sampled_from(["/liveduet", "/liveduet/",
              "/LIVEDUET/bpm", "/liveduet/bpm/x", "/", "//", "/liveduet/seed\x01"]),
              st.text(min_size=1, max_size=30).map(lambda s: "/" + s.replace("\x00", ""))),
    st.lists(hostile_values, max_size=4),
)


def _build(msg: tuple[str, list[Any]]) -> bytes | None:
    try:
        return _message(msg[0], msg[1])
    except Exception:  # python-osc refuses some values itself (e.g. out-of-range ints)
        return None


def _release(address: str, args: list[Any]) -> bool:
    """True when ``parse`` may rightly submit nothing and count nothing (a button release).

    Judged on the values as they arrive: python-osc sends a float as float32, so 5e-324 is a
    0.0 on the wire (a release), 1e308 an inf.
    """
    wire = [struct.unpack(">f", struct.pack(">f", a))[0]
            if isinstance(a, float) and not isinstance(a, bool) and abs(a) < 3.5e38 else a
            for a in args]
    try:
        return oscmap.parse(address, wire) is None
    except (oscmap.Refused, ConfigError):
        return False


@FUZZ
@given(blob=st.binary(min_size=0, max_size=512))
def test_random_bytes_are_refused_and_the_server_lives(harness: Harness, blob: bytes) -> None:
    got = _judge(harness, blob, release_possible=False)
    assert got == [] or blob.startswith((b"/", b"#bundle"))


@FUZZ
@given(msg=hostile_messages)
def test_hostile_values_never_reach_the_engine(harness: Harness,
                                               msg: tuple[str, list[Any]]) -> None:
    data = _build(msg)
    if data is None:
        return
    _judge(harness, data, release_possible=_release(*msg))


@FUZZ
@given(msg=hostile_messages, cut=st.integers(1, 64), pad=st.booleans())
def test_truncated_messages_are_refused(harness: Harness, msg: tuple[str, list[Any]], cut: int,
                                        pad: bool) -> None:
    data = _build(msg)
    if data is None or cut >= len(data):
        return
    short = data[:-cut]
    if pad:
        short += b"\x00" * (-len(short) % 4)  # looks aligned, still cut short
    _judge(harness, short, release_possible=True)  # a cut may land on a shorter valid message


@FUZZ
@given(parts=st.lists(st.one_of(hostile_messages.map(_build), st.binary(max_size=40)),
                      min_size=1, max_size=4),
       lie=st.integers(-8, 8))
def test_bundles_with_garbage(harness: Harness, parts: list[bytes | None], lie: int) -> None:
    elements = [p for p in parts if p is not None]
    body = b"".join(struct.pack(">i", len(e) + (lie if i == 0 else 0)) + e
                    for i, e in enumerate(elements))
    data = b"#bundle\x00" + struct.pack(">Q", 1) + body
    _judge(harness, data, release_possible=True)


def test_huge_string_and_nested_bundle(harness: Harness) -> None:
    before = harness.control.counters["range"] + harness.control.counters["type"]
    assert harness.send(_message("/liveduet/mode", ["x" * 60000])) == []
    assert harness.send(_message("/liveduet/model", ["m" * 60000])) == []
    assert harness.control.counters["range"] + harness.control.counters["type"] == before + 2
    inner = OscBundleBuilder(IMMEDIATELY)
    inner.add_content(OscMessageBuilder(address="/liveduet/temperature").build())
    outer = OscBundleBuilder(IMMEDIATELY)
    msg = OscMessageBuilder(address="/liveduet/density")
    msg.add_arg(0.25)
    outer.add_content(msg.build())
    outer.add_content(inner.build())
    got = harness.send(outer.build().dgram)
    assert got == [Set("density", 0.25)]  # the empty temperature message is refused


def test_valid_messages_still_work_after_the_fuzz(harness: Harness) -> None:
    """Runs last in the module: the server survived everything above."""
    assert harness.send(_message("/liveduet/temperature", [0.5])) == [Set("temperature", 0.5)]
    assert harness.send(_message("/liveduet/panic", [])) == [Action("panic")]
    assert harness.control.counters["internal"] == 0
