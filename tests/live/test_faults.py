"""Faults over real JACK: unplugged output, vanished clients and ports, a killed server, signals
mid-answer, a model emitting NaN logits.

``liveduet run --api jack`` runs as a subprocess on the internal clock (240 bpm, one-bar answers,
listen gap 2 steps) with a scripted model that answers C5 (72) eighth notes. The test plays the
keyboard (``keys:out``) and the DAW (``daw:in``) with python-rtmidi; a ``spy:in`` receiver may
stay connected to see everything liveduet sends. Waits are on conditions: what a port received or
a line liveduet printed.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import rtmidi

from liveduet.testkit.jack import JackServer, wait_for
from tests.live.faultkit import Live


def test_output_unplugged_mid_answer_closes_missed_notes_on_reconnect(
        jack_server: JackServer, models: dict[str, Path], live_factory: list[Live]) -> None:
    live = Live(jack_server, models["answer"], spy=True)
    live_factory.append(live)
    assert live.spy is not None
    live.call()
    wait_for(lambda: live.daw.sounding(), 10.0, what="an answer note sounding at the DAW")
    jack_server.disconnect(live.out, live.daw.name)
    live.wait_line("disconnected from 'daw:in'")
    held = live.daw.sounding()
    assert held, "the DAW should hold the note whose note-off it will miss"
    wait_for(lambda: live.spy.quiet(0.3), 10.0, what="the answer to end (seen by the spy)")
    assert live.daw.sounding() == held, "the unplugged DAW cannot have heard the note-offs"
    plugged = time.perf_counter()
    jack_server.connect(live.out, live.daw.name)
    live.wait_line("note-off(s) for notes a receiver missed")
    wait_for(lambda: not live.daw.sounding(), 5.0, what="the missed note-offs at the DAW")
    assert any(t >= plugged and m[0] & 0xF0 == 0x80 and (m[0] & 0x0F, m[1]) in held
               for t, m in live.daw.got)
    again = live.call(64)
    wait_for(lambda: live.daw.answers(again), 10.0, what="an answer after reconnecting")
    code, err = live.finish()
    assert code == 0, err
    wait_for(lambda: not live.daw.sounding(), 2.0, what="every note off at exit")


def test_keyboard_client_vanishing_mid_answer_plays_on(
        jack_server: JackServer, models: dict[str, Path], live_factory: list[Live]) -> None:
    live = Live(jack_server, models["answer"])
    live_factory.append(live)
    assert live.keys is not None
    live.call()
    wait_for(lambda: live.daw.answers(), 10.0, what="the first answer note")
    live.keys.delete()
    live.keys = None
    gone = time.perf_counter()
    live.wait_line("disconnected from 'keys:out'")
    wait_for(lambda: live.daw.answers(gone), 5.0, what="the answer to go on without the keys")
    keys = live.keys = live.plug_keys("keys2")
    again = live.call(64, keys)
    wait_for(lambda: live.daw.answers(again), 10.0, what="an answer to the new keyboard")
    code, err = live.finish()
    assert code == 0, err
    wait_for(lambda: not live.daw.sounding(), 2.0, what="every note off at exit")


def test_named_input_that_vanishes_is_reported_and_reopened(
        jack_server: JackServer, models: dict[str, Path], live_factory: list[Live]) -> None:
    kbd = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="kbd")
    kbd.open_virtual_port("out")
    live = Live(jack_server, models["answer"], inputs=("kbd:out",))
    live_factory.append(live)
    kbd.delete()
    live.wait_line("input port 'kbd:out' vanished")
    live.keys = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="kbd")
    live.keys.open_virtual_port("out")
    live.wait_line("input port 'kbd:out' is back; reopened")
    wait_for(lambda: jack_server.connections().get("kbd:out"), 5.0,
             what="liveduet to wire the returned port")
    start = live.call()
    wait_for(lambda: live.daw.answers(start), 10.0, what="an answer through the reopened port")
    code, err = live.finish()
    assert code == 0, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_answer_exits_0_with_every_note_closed(
        jack_server: JackServer, models: dict[str, Path], live_factory: list[Live],
        sig: int) -> None:
    live = Live(jack_server, models["answer"])
    live_factory.append(live)
    live.call()
    wait_for(lambda: live.daw.sounding(), 10.0, what="an answer note sounding")
    code, err = live.finish(sig)
    assert code == 0, err
    wait_for(lambda: not live.daw.sounding(), 2.0, what="the note-offs sent at exit")
    assert not any(ln.startswith("liveduet: error") for ln in err.splitlines()), err


def test_nan_logits_fall_back_to_silence_logged_once(
        jack_server: JackServer, models: dict[str, Path], live_factory: list[Live]) -> None:
    live = Live(jack_server, models["nan"])
    live_factory.append(live)
    live.call()
    wait_for(lambda: len(live.daw.answers()) >= 2, 10.0, what="answers around the NaN steps")
    live.wait_line("NaN")
    wait_for(lambda: not live.daw.sounding(), 10.0, what="the first answer to end")
    again = live.call(64)
    wait_for(lambda: len(live.daw.answers(again)) >= 2, 10.0, what="a second answer")
    code, err = live.finish()
    assert code == 0, err
    nan_lines = [ln for ln in err.splitlines() if "NaN" in ln]
    assert len(nan_lines) == 1, err
    assert "playing on" in nan_lines[0]


def test_killed_jack_server_exits_3_with_one_clear_line(models: dict[str, Path]) -> None:
    if not JackServer.available():
        pytest.skip("jackd2 is not installed: run 'bash scripts/test.sh' (it installs jackd2)")
    with JackServer() as server:
        live = Live(server, models["answer"])
        try:
            live.call()
            wait_for(lambda: live.daw.sounding(), 10.0, what="an answer note sounding")
            assert server.proc is not None
            server.proc.kill()  # SIGKILL: no goodbye from the server
            server.proc.wait(5)
            live.proc.wait(timeout=10)
            live.reader.join(5)
        finally:
            if live.proc.poll() is None:
                live.proc.kill()
                live.proc.wait()
    assert live.proc.returncode == 3, live.lines
    errors = [ln for ln in live.lines if ln.startswith("liveduet: error")]
    assert len(errors) == 1, live.lines
    # libjack's own complaints about the lost server stay off the terminal (--debug shows them)
    assert all(ln.startswith("liveduet") for ln in live.lines if ln.strip()), live.lines
    assert "JACK server stopped" in errors[0] and "restart JACK" in errors[0]
