"""Ableton Link as a clock source: tempo, beat phase (quantum = the bar), start/stop sync.

Grid positions are Link beats (quarter notes) times the steps per beat, so bar lines fall where
the session's phase over the quantum (the bar length in quarter notes of the current metre) is
zero, and every peer's bar is liveduet's bar. Tempo is the session's: a peer's change moves
:meth:`LinkClock.time_of` of every position not yet played; :meth:`LinkClock.set_bpm` (an OSC
or CC bpm) changes the session's tempo for every peer. With start/stop sync the session's
play state is the transport: :meth:`LinkClock.poll` reports 'play' and 'stop' (and 'locate'
when a peer re-maps the beat timeline) as the MIDI clock follower does for a DAW's Start/Stop;
:meth:`LinkClock.start`/:meth:`LinkClock.stop` start and stop the session.

Link's own clock is ``CLOCK_MONOTONIC_RAW`` (microseconds); the runtime's is
``time.perf_counter``. :meth:`LinkClock.poll` measures their offset each time it is called
(the two drift apart by NTP's slew, at most 0.5 ms per second), so positions are computed
from times passed in, like the other clock sources.

The binding is LinkPython-extern (module ``link``, the ``link`` extra): it exposes Link's whole
session state (time <-> beat at a quantum, start/stop with its time), which the conductor needs
to place future notes; aalink's interface is asyncio (await the next beat) with beat and phase
at "now" only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from liveduet.errors import ConfigError

MISSING = ("--clock link needs Ableton Link support: pip install 'liveduet[link]' "
           "(the LinkPython-extern package)")
LOCATE_STEPS = 2.0   # a position this far off its course between polls is a timeline jump


def load_link() -> Any:
    """The ``link`` module of LinkPython-extern; a one-line ConfigError naming the extra."""
    try:
        import link
    except ImportError as err:
        raise ConfigError(MISSING) from err
    return link


class LinkClock:
    """A Link session peer that answers the runtime's clock questions (see the module text)."""

    def __init__(self, bpm: float, steps_per_beat: int = 4,
                 quantum: Callable[[float], float] = lambda _pos: 4.0, lib: Any = None) -> None:
        if not 20.0 <= bpm <= 999.0:   # Link's tempo range
            raise ValueError(f"bpm={bpm} out of range 20..999 for Ableton Link")
        lib = lib if lib is not None else load_link()
        self.steps_per_beat = steps_per_beat
        self.quantum_at = quantum   # bar length in quarter notes at a grid position
        self._hint = 0.0            # the position last polled: where the quantum is read
        self._link = lib.Link(float(bpm))
        self._link.startStopSyncEnabled = True
        self._offset = 0.0                  # Link seconds minus perf_counter seconds
        self.measure_offset()
        self.running = False
        self._launch = True      # the first poll starts the transport (see poll)
        self._seen: tuple[bool, int] | None = None   # the session's (playing, since) seen
        self._frozen = 0.0
        self._last: tuple[float, float] | None = None   # (now, position) at the last poll
        self._link.enabled = True

    # -- time bases -----------------------------------------------------------------------
    def measure_offset(self) -> None:
        """Measure Link's clock against ``time.perf_counter`` (the smallest of three reads)."""
        best = math.inf
        for _ in range(3):
            a = time.perf_counter()
            micros = self._link.clock().micros()
            b = time.perf_counter()
            if b - a < best:
                best, self._offset = b - a, micros / 1e6 - (a + b) / 2
        # reading both clocks back to back bounds the error by the read time (~1 µs)

    def _us(self, now: float) -> int:
        return round((now + self._offset) * 1e6)

    def quantum(self) -> float:
        """The Link quantum: the bar length (quarter notes) of the metre being played."""
        return float(self.quantum_at(self._hint))

    def _state(self) -> Any:
        return self._link.captureAppSessionState()

    # -- the Clock protocol ---------------------------------------------------------------
    @property
    def bpm(self) -> float:
        """The session tempo."""
        return float(self._state().tempo())

    @property
    def peers(self) -> int:
        """Other Link peers in the session."""
        return int(self._link.numPeers())

    def beat_at(self, now: float) -> float:
        """The session's beat at ``now`` (phase aligned to the quantum)."""
        return float(self._state().beatAtTime(self._us(now), self.quantum()))

    def position(self, now: float) -> float:
        """Grid position at ``now``: Link beats times steps per beat (frozen while stopped)."""
        if not self.running:
            return self._frozen
        return self.beat_at(now) * self.steps_per_beat

    def time_of(self, pos: float) -> float | None:
        """Wall time (perf_counter) of grid position ``pos`` in the session; None when stopped."""
        if not self.running:
            return None
        micros = self._state().timeAtBeat(pos / self.steps_per_beat, self.quantum())
        return micros / 1e6 - self._offset

    # -- transport ------------------------------------------------------------------------
    def poll(self, now: float) -> str | None:
        """Follow the session: 'play', 'stop', 'locate' or None (call it often).

        The first poll starts playing on the session's beat grid: Link tells a peer that
        joins nothing of the session's play state until a peer next starts or stops it. From
        then on each start or stop of the session (start/stop sync) starts or stops liveduet.
        """
        self.measure_offset()
        state = self._state()
        playing = bool(state.isPlaying())
        # a stop the session was already in (liveduet joined a playing session: locally it
        # looks stopped) changes nothing but the time of the state: compare both
        seen = (playing, int(state.timeForIsPlaying()))
        changed = self._seen is not None and seen != self._seen
        self._seen = seen
        if self._launch or (changed and playing and not self.running):
            self._launch, self.running = False, True
            self._last = (now, self.position(now))
            return "play"
        if changed and not playing and self.running:
            self._frozen = self.position(now)
            self.running, self._last = False, None
            return "stop"
        if not self.running:
            return None
        pos = self.position(now)
        self._hint = pos
        last, self._last = self._last, (now, pos)
        if last is not None and now - last[0] < 1.0:
            course = last[1] + (now - last[0]) * self.bpm / 60.0 * self.steps_per_beat
            if abs(pos - course) > LOCATE_STEPS:
                return "locate"
        return None

    def start(self, now: float, pos: float = 0.0) -> None:
        """Start the session's transport at ``now`` (``pos`` is the session's, not ours)."""
        state = self._state()
        state.setIsPlaying(True, self._us(now))
        self._link.commitAppSessionState(state)
        self.running = True
        self._seen = (True, int(state.timeForIsPlaying()))
        self._last = (now, self.position(now))

    def stop(self, now: float) -> None:
        """Stop the session's transport at ``now``."""
        self._frozen = self.position(now)
        state = self._state()
        state.setIsPlaying(False, self._us(now))
        self._link.commitAppSessionState(state)
        self.running, self._last = False, None
        self._seen = (False, int(state.timeForIsPlaying()))

    def set_bpm(self, bpm: float, now: float) -> None:
        """Change the session's tempo at ``now`` (the beat at ``now`` stays where it is)."""
        if not 20.0 <= bpm <= 999.0:
            raise ValueError(f"bpm={bpm} out of range 20..999 for Ableton Link")
        state = self._state()
        state.setTempo(float(bpm), self._us(now))
        self._link.commitAppSessionState(state)

    def close(self) -> None:
        """Leave the session."""
        self._link.enabled = False
