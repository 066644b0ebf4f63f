"""JACK transport as a clock source: rolling/stopped, position and, from a timebase master, tempo.

Each :meth:`JackTransportClock.poll` (the conductor calls it every few milliseconds) reads the
transport (``jack_transport_query``, safe from any thread) and anchors a line: the transport's
position now, in grid steps, and how fast it moves. With a timebase master (a DAW such as Ardour
or a sequencer) the position is its bar/beat/tick and the tempo its beats per minute (in quarter
notes, like every tempo in liveduet: 120 beats of an eighth note a minute are 60 quarters);
without one the position is the transport frame at liveduet's own tempo (``--bpm``, OSC). Grid
position 0 is bar 1, beat 1, so bar lines are the master's. Rolling and stopping are transport
events ('play', 'stop', and 'locate' when the position jumps), as a DAW's MIDI clock
Start/Stop are for the MIDI clock follower; liveduet's play and stop start and stop the transport.

The binding is JACK-Client (module ``jack``, the ``jack`` extra).
"""

from __future__ import annotations

import contextlib
from typing import Any

from liveduet.core.clock import check_bpm
from liveduet.errors import ConfigError

MISSING = ("--clock jack needs JACK-Client: pip install 'liveduet[jack]' (and a running JACK "
           "server)")
LOCATE_STEPS = 2.0   # a position this far off its course between polls is a locate


def load_jack() -> Any:
    """The ``jack`` module of JACK-Client; a one-line ConfigError naming the extra."""
    try:
        import jack
    except (ImportError, OSError) as err:   # OSError: the JACK library itself is missing
        raise ConfigError(MISSING) from err
    return jack


def quarters(pos: dict[str, Any]) -> float | None:
    """Quarter notes since bar 1, beat 1 of a transport position with bar/beat/tick (BBT)."""
    if "bar" not in pos:
        return None
    beat_type = float(pos["beat_type"]) or 4.0
    beats = ((pos["bar"] - 1) * pos["beats_per_bar"] + (pos["beat"] - 1)
             + pos["tick"] / (pos["ticks_per_beat"] or 1920.0))
    return float(beats * 4.0 / beat_type)


class JackTransportClock:
    """Follows (and drives) the JACK transport; see the module text."""

    def __init__(self, bpm: float, steps_per_beat: int = 4, lib: Any = None,
                 name: str = "liveduet-transport", client: Any = None) -> None:
        """``client``: an active JACK-Client client to query (liveduet's own, which the JACK
        MIDI backend closes); without one, a client ``name`` of its own."""
        check_bpm(bpm)
        jack = lib if lib is not None else load_jack()
        self._rolling, self._starting = jack.ROLLING, jack.STARTING
        self._owned = client is None
        if client is not None:
            self._client = client
        else:
            try:
                self._client = jack.Client(name, no_start_server=True)
            except jack.JackError as err:
                raise ConfigError(f"--clock jack: no JACK server reachable ({err}); start one, "
                                  "e.g. jackd -d alsa") from err
            self._client.activate()
        self.steps_per_beat = steps_per_beat
        self._own_bpm = float(bpm)
        self._bpm = float(bpm)
        self.running = False
        self._anchor = (0.0, 0.0)        # (perf time, grid position) of the last poll

    @property
    def bpm(self) -> float:
        """Quarter notes per minute: the timebase master's, else liveduet's own."""
        return self._bpm

    def _read(self, now: float) -> tuple[Any, float]:
        """(transport state, grid position at ``now``) from the transport."""
        state, pos = self._client.transport_query()
        rate = float(pos.get("frame_rate") or self._client.samplerate)
        # the query describes the start of the current cycle: add the frames since then
        since = self._client.frames_since_cycle_start / rate if state == self._rolling else 0.0
        q = quarters(pos)
        if q is not None and pos.get("beats_per_minute"):
            self._bpm = float(pos["beats_per_minute"]) * 4.0 / (float(pos["beat_type"]) or 4.0)
        else:
            self._bpm = self._own_bpm
            q = float(pos["frame"]) / rate * self._own_bpm / 60.0
        q += since * self._bpm / 60.0
        return state, q * self.steps_per_beat

    def _steps_per_second(self) -> float:
        return self._bpm / 60.0 * self.steps_per_beat

    def poll(self, now: float) -> str | None:
        """Read the transport: 'play', 'stop', 'locate' or None (call it often)."""
        state, pos = self._read(now)
        if state == self._starting:   # waiting for slow-sync clients: not moving, not stopped
            return None
        rolling = state == self._rolling
        course = self.position(now)
        self._anchor = (now, pos)
        if rolling and not self.running:
            self.running = True
            return "play"
        if not rolling and self.running:
            self.running = False
            return "stop"
        if rolling and abs(pos - course) > LOCATE_STEPS:
            return "locate"
        return None

    def position(self, now: float) -> float:
        """Grid position at ``now`` (the last poll's, carried on at the tempo while rolling)."""
        t, pos = self._anchor
        return pos + (now - t) * self._steps_per_second() if self.running else pos

    def time_of(self, pos: float) -> float | None:
        """Wall time of grid position ``pos`` while rolling; None when stopped."""
        if not self.running:
            return None
        t, at = self._anchor
        return t + (pos - at) / self._steps_per_second()

    def start(self, now: float, pos: float = 0.0) -> None:
        """Start the transport (from where it is)."""
        self._client.transport_start()
        self._anchor = (now, self.position(now))
        self.running = True

    def stop(self, now: float) -> None:
        """Stop the transport."""
        self._anchor = (now, self.position(now))
        self.running = False
        self._client.transport_stop()

    def set_bpm(self, bpm: float, now: float) -> None:
        """liveduet's own tempo (used while no timebase master gives one)."""
        bpm = check_bpm(bpm)
        self._anchor = (now, self.position(now))
        self._own_bpm = bpm

    def close(self) -> None:
        """Leave the JACK server (a shared client is left to its owner)."""
        if not self._owned:
            return
        with contextlib.suppress(Exception):  # a server that went away: nothing to close
            self._client.deactivate()
            self._client.close()
