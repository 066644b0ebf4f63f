"""ports.py over real virtual ports on a private JACK dummy server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import rtmidi

from liveduet.errors import PortError
from liveduet.live import ports
from liveduet.testkit.jack import JackServer, release, wait_for


class Recorder:
    """A sink that records (time, msg, index) and lets a test wait for a count."""

    def __init__(self) -> None:
        self.events: list[tuple[float, tuple[int, ...], int]] = []
        self.lock = threading.Lock()

    def __call__(self, t: float, msg: tuple[int, ...], idx: int) -> None:
        with self.lock:
            self.events.append((t, msg, idx))

    def wait(self, n: int) -> list[tuple[float, tuple[int, ...], int]]:
        wait_for(lambda: len(self.events) >= n, 5.0, what=f"{n} MIDI messages")
        return list(self.events)


@pytest.fixture
def player(jack_server: JackServer) -> Iterator[rtmidi.MidiOut]:
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="player")
    out.open_virtual_port("keys")
    yield out
    out.delete()


@pytest.fixture
def listener(jack_server: JackServer) -> Iterator[tuple[rtmidi.MidiIn, Recorder]]:
    rec = Recorder()
    inp = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="daw")
    inp.open_virtual_port("track")
    inp.set_callback(lambda ev, _d: rec(time.perf_counter(), tuple(ev[0]), 0))
    yield inp, rec
    release(inp)


def test_no_jack_server_is_one_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "liveduet_no_such_server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    start = time.monotonic()
    with pytest.raises(PortError, match=r"no JACK server reachable.*jackd -d"):
        ports.choose_api("jack")
    assert time.monotonic() - start < ports.PROBE_TIMEOUT


def test_unknown_api_names_the_choices() -> None:
    with pytest.raises(PortError, match="choose auto, alsa, jack, coremidi, winmm"):
        ports.choose_api("portaudio")


@pytest.mark.parametrize(("platform", "words"), [
    ("linux", ["ALSA", "jackd -d", "--api jack"]),
    ("darwin", ["Audio MIDI Setup"]),
    ("win32", ["loopMIDI", "--in 'liveduet in'"]),
])
def test_no_midi_help_names_the_fix(platform: str, words: list[str]) -> None:
    text = ports.no_midi_help(platform)
    assert all(w in text for w in words), text


def test_match_port_exact_substring_ambiguous_missing() -> None:
    names = ["a2j:Keystation [20] (capture): Keystation MIDI 1", "synth:in", "synth:in2"]
    assert ports.match_port(names, "synth:in", "output") == 1
    assert ports.match_port(names, "keystation", "input") == 0
    with pytest.raises(PortError, match="several output ports"):
        ports.match_port(names, "synth", "output")
    with pytest.raises(PortError, match=r"no input port matches --in 'piano'.*liveduet ports"):
        ports.match_port(names, "piano", "input")
    assert ports.match_port(names, "synth", "output", exclude=["in2"]) == 1


@pytest.mark.parametrize("poll", [None, 0.0005], ids=["callback", "poll"])
def test_virtual_ports_carry_messages_both_ways(jack_server: JackServer,
                                                player: rtmidi.MidiOut,
                                                listener: tuple[rtmidi.MidiIn, Recorder],
                                                poll: float | None) -> None:
    api = ports.choose_api("jack")
    got = Recorder()
    ps = ports.open_ports(api, sink=got, poll=poll)
    try:
        assert ps.input_names == [jack_server.find_port(":liveduet in")]
        assert ps.output_name == jack_server.find_port(":liveduet out")
        jack_server.connect("player:keys", ps.input_names[0])
        jack_server.connect(ps.output_name, "daw:track")
        before = time.perf_counter()
        player.send_message([0x90, 60, 100])
        player.send_message([0xF8])  # clock ticks must reach the runtime
        t, msg, idx = got.wait(2)[0]
        # JACK-native input is stamped with its frame: the cycle it came in may have begun
        # (by JACK's clock) just before the send
        assert (msg, idx) == ((0x90, 60, 100), 0) and t >= before - 2 * jack_server.period_s \
            - 0.002
        assert got.events[1][1] == (0xF8,)
        ps.send([0x80, 60, 0])
        assert listener[1].wait(1)[0][1] == (0x80, 60, 0)
    finally:
        ps.close()
    assert not any("liveduet" in p for p in jack_server.ports())


def test_named_ports_by_substring_and_listing(jack_server: JackServer, player: rtmidi.MidiOut,
                                              listener: tuple[rtmidi.MidiIn, Recorder]) -> None:
    api = ports.choose_api("jack")
    listed = ports.list_ports(api)
    assert "player:keys" in listed.inputs and "daw:track" in listed.outputs
    assert "player:keys" in ports.describe(listed)
    got = Recorder()
    ps = ports.open_ports(api, inputs=["KEYS"], output="track", sink=got)
    try:
        assert ps.input_names == ["player:keys"] and ps.output_name == "daw:track"
        player.send_message([0x90, 64, 90])
        assert got.wait(1)[0][1] == (0x90, 64, 90)
        ps.send([0x90, 67, 80])
        assert listener[1].wait(1)[0][1] == (0x90, 67, 80)
    finally:
        ps.close()


def test_bad_port_name_lists_what_exists(jack_server: JackServer, player: rtmidi.MidiOut) -> None:
    api = ports.choose_api("jack")
    with pytest.raises(PortError, match=r"no input port matches --in 'nope'.*player:keys"):
        ports.open_ports(api, inputs=["nope"])
    assert not any(p.startswith("liveduet") for p in jack_server.ports())


def test_vanished_port_is_reported_and_reopened(jack_server: JackServer) -> None:
    api = ports.choose_api("jack")
    source = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="flaky")
    source.open_virtual_port("src")
    got = Recorder()
    ps = ports.open_ports(api, inputs=["flaky:src"], sink=got)
    try:
        assert ps.check() == []
        source.delete()
        wait_for(lambda: "flaky:src" not in jack_server.ports(), what="port to vanish")
        assert ps.check() == ["input port 'flaky:src' vanished; waiting for it to come back"]
        assert ps.check() == []
        source = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="flaky")
        source.open_virtual_port("src")
        wait_for(lambda: "flaky:src" in jack_server.ports(), what="port to come back")
        assert ps.check() == ["input port 'flaky:src' is back; reopened"]
        source.send_message([0x90, 62, 70])
        assert got.wait(1)[0][1] == (0x90, 62, 70)
    finally:
        ps.close()
        source.delete()
