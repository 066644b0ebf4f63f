"""The ledger's repair (which note-offs a reconnected receiver needs) and JackWatch on a real
server."""

from __future__ import annotations

import os
import signal
import time

import rtmidi

from liveduet.core.ledger import Ledger
from liveduet.live.jackwatch import JackWatch
from liveduet.testkit.jack import JackServer, release, wait_for


def test_repair_closes_what_ended_while_unplugged_not_what_still_sounds() -> None:
    track = Ledger()
    track.sent((0x90, 60, 100))
    track.sent((0x91, 64, 100))
    track.checkpoint()                 # connected: both sounding
    track.receiver_lost()              # unplugged now
    track.sent((0x80, 60, 0))          # lost on the way
    track.sent((0x90, 67, 90))         # never reached it
    track.sent((0x90, 67, 0))          # vel-0 note-on = off
    assert track.repair() == [(0x80, 60, 0)]  # 64 still sounds: its own off will come
    assert track.repair() == []


def test_notes_started_since_the_last_check_count_as_heard() -> None:
    track = Ledger()
    track.checkpoint()
    track.sent((0x90, 70, 100))        # may have reached the receiver before the break
    track.sent((0x80, 70, 0))
    track.receiver_lost()
    assert track.repair() == [(0x80, 70, 0)]


def test_a_quiet_break_needs_no_repair() -> None:
    track = Ledger()
    track.sent((0x90, 60, 100))
    track.sent((0x80, 60, 0))
    track.checkpoint()
    track.receiver_lost()
    assert track.repair() == []


def test_watch_lists_connections(jack_server: JackServer) -> None:
    src = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="wsrc")
    src.open_virtual_port("out")
    dst = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="wdst")
    dst.open_virtual_port("in")
    watch = JackWatch.open()
    try:
        assert watch is not None and not watch.lost
        assert watch.connections("wsrc:out") == []
        assert watch.connections("no-such:port") is None
        jack_server.connect("wsrc:out", "wdst:in")
        wait_for(lambda: watch.connections("wsrc:out") == ["wdst:in"], 5.0,
                 what="the connection to show")
    finally:
        if watch is not None:
            watch.close()
        release(src, dst)


def test_wait_cycles_follows_the_servers_cycles_not_the_wall_clock(
        jack_server: JackServer) -> None:
    """Three cycles begin at once on a running server; a stopped one begins none, so the wait
    gives up after its timeout (and succeeds again once the server runs)."""
    watch = JackWatch.open()
    assert watch is not None
    try:
        assert watch.wait_cycles(3, timeout=1.0)
        assert jack_server.proc is not None
        os.kill(jack_server.proc.pid, signal.SIGSTOP)
        try:
            start = time.monotonic()
            assert not watch.wait_cycles(3, timeout=0.2)
            assert time.monotonic() - start >= 0.2
        finally:
            os.kill(jack_server.proc.pid, signal.SIGCONT)
        assert watch.wait_cycles(3, timeout=1.0)
    finally:
        watch.close()
