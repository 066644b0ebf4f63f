"""Clock sources: wall time <-> grid position, given time as an argument (no clock reads here).

Grid positions are float grid steps (16ths at 4 steps per beat) since transport start.
:class:`InternalClock` runs at a set tempo; a tempo change keeps the position continuous.
:class:`MidiClockFollower` follows a DAW's MIDI clock (24 ppqn, Start/Stop/Continue/Song
Position Pointer): it fits a line through the recent tick times (robust to the period jitter of
an audio driver). Ticks off the line stay out of the fit: a late burst after a stall catches up
by itself; ``CONFIRM`` (6, a quarter of a beat) in a row that do not shrink (a tempo change, a
resumed stall) re-anchor the fit; ``CONFIRM`` the same whole number of periods late count as ticks
lost in transport. Both predict the wall time of future positions (:meth:`time_of`) so the
runtime can send on time.
:class:`VirtualTime` is a settable time source for tests and offline runs.

The tempo's home is here: :data:`BPM_RANGE` and :data:`DEFAULT_BPM` are the tempo liveduet
runs at itself (the internal clock, the JACK transport's own tempo), and the ``bpm`` setting
(``--bpm``, the config file, OSC, MIDI CC) is validated with the same range.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Protocol

PPQN = 24
CLOCK, START, CONTINUE, STOP, SPP = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
TRANSPORT = frozenset((CLOCK, START, CONTINUE, STOP, SPP))
MAX_LOST = 4   # at most this many ticks in a row are taken as lost in transport
CONFIRM = 6    # ticks in a row that confirm lost ticks or a new tempo/phase (a loaded sender
# can run a period late for a few ticks; a wrong guess would shift the grid by a tick for good)
BPM_RANGE = (20.0, 300.0)
"""Lowest and highest tempo (quarter notes per minute) liveduet runs at itself."""
DEFAULT_BPM = 120.0


def check_bpm(bpm: float) -> float:
    """``bpm`` as a float; ValueError when it is outside :data:`BPM_RANGE`."""
    low, high = BPM_RANGE
    if not low <= bpm <= high:
        raise ValueError(f"bpm={bpm} out of range {low:g}..{high:g}")
    return float(bpm)


class Clock(Protocol):
    """What the runtime needs from a clock source."""

    running: bool

    @property
    def bpm(self) -> float: ...

    def position(self, now: float) -> float: ...

    def time_of(self, pos: float) -> float | None: ...


class VirtualTime:
    """A time source for tests: call it for 'now', move it with :meth:`advance`."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError(f"time cannot go back ({seconds} s)")
        self.now += seconds
        return self.now


class InternalClock:
    """A steady tempo; starts running at ``start`` (position ``pos``)."""

    def __init__(self, bpm: float, steps_per_beat: int = 4) -> None:
        self._bpm = check_bpm(bpm)
        self.steps_per_beat = steps_per_beat
        self._t0 = 0.0
        self._pos0 = 0.0
        self.running = False

    @property
    def bpm(self) -> float:
        """The tempo in beats per minute."""
        return self._bpm

    @property
    def step_seconds(self) -> float:
        """Duration of one grid step."""
        return 60.0 / (self._bpm * self.steps_per_beat)

    def start(self, now: float, pos: float = 0.0) -> None:
        """Run from position ``pos`` at time ``now``."""
        self._t0, self._pos0, self.running = now, pos, True

    def stop(self, now: float) -> None:
        """Freeze the position at ``now``."""
        self._pos0, self._t0, self.running = self.position(now), now, False

    def set_bpm(self, bpm: float, now: float) -> None:
        """Change tempo at ``now`` without a jump in position."""
        bpm = check_bpm(bpm)
        self._pos0, self._t0 = self.position(now), now
        self._bpm = bpm

    def position(self, now: float) -> float:
        """Grid position at wall time ``now``."""
        if not self.running:
            return self._pos0
        return self._pos0 + (now - self._t0) / self.step_seconds

    def time_of(self, pos: float) -> float | None:
        """Wall time at which position ``pos`` is (was) reached; None when stopped."""
        if not self.running:
            return None
        return self._t0 + (pos - self._pos0) * self.step_seconds


class MidiClockFollower:
    """Position and tempo from MIDI clock bytes stamped with their arrival time."""

    def __init__(self, steps_per_beat: int = 4, bpm: float = DEFAULT_BPM, window: int = PPQN,
                 min_jitter: float = 0.0015) -> None:
        self.ticks_per_step = PPQN / steps_per_beat
        self.window = window
        self.min_jitter = min_jitter
        self.running = False
        self._armed = False
        self._base = 0.0                   # position of tick 0 since the last (re)start
        self._ticks: deque[tuple[int, float]] = deque(maxlen=window)
        self._count = -1                   # index of the last tick since the anchor
        self._fit = (0.0, 60.0 / (bpm * PPQN))   # (t at k=0, seconds per tick)
        self._outliers: list[tuple[int, float, float]] = []   # recent run off the line
        self._pending: list[tuple[int, float]] = []   # ticks that may follow lost ones
        self._pending_n = 0
        self._frozen = 0.0
        self._last = 0.0

    # -- input ----------------------------------------------------------------------------
    def on_message(self, msg: Sequence[int], t: float) -> str | None:
        """Take one MIDI message received at ``t``; return 'play', 'stop', 'locate' or None."""
        if not msg:
            return None
        status = msg[0]
        if status == CLOCK:
            return self._tick(t)
        if status in (START, CONTINUE):
            if status == START:
                self._frozen = 0.0
            self._armed, self.running = True, False
            return None
        if status == STOP:
            was = self.running or self._armed
            if self.running:
                self._frozen = self.position(t)
            self.running = self._armed = False
            return "stop" if was else None
        if status == SPP and len(msg) >= 3:
            beats16 = (msg[1] & 0x7F) | ((msg[2] & 0x7F) << 7)
            self._frozen = beats16 * 6 / self.ticks_per_step
            if self.running:   # a jump while playing: re-anchor at the next tick
                self._armed, self.running = True, False
                return "locate"
        return None

    def _tick(self, t: float) -> str | None:
        if self._armed:
            self._armed, self.running = False, True
            self._base, self._count, self._last = self._frozen, 0, self._frozen
            self._ticks.clear()
            self._ticks.append((0, t))
            self._fit = (t, self._fit[1])
            self._outliers.clear()
            self._pending.clear()
            return "play"
        if not self.running:
            return None
        self._count += 1
        if not self._held_as_loss(self._count, t):
            self._accept(self._count, t)
        return None

    def _err(self, k: int, t: float) -> tuple[float, float]:
        t0, per = self._fit
        return t - (t0 + per * k), per

    def _held_as_loss(self, k: int, t: float) -> bool:
        """Hold a tick that came a whole number of periods late; ``CONFIRM`` in a row mean ticks
        were lost in transport (a stalled sender catches up in a burst instead, and a long stall
        is not a loss)."""
        err, per = self._err(k, t)
        n = round(err / per)
        whole = (len(self._ticks) >= 4 and 1 <= n <= MAX_LOST
                 and abs(err - n * per) <= 0.25 * per)
        if self._pending and (not whole or n != self._pending_n):
            held, self._pending = self._pending, []
            for hk, ht in held:
                self._accept(hk, ht)
        if not whole:
            return False
        self._pending.append((k, t))
        self._pending_n = n
        if len(self._pending) < CONFIRM:
            return True
        self._count += n
        held, self._pending = self._pending, []
        for hk, ht in held:
            self._accept(hk + n, ht)
        return True

    def _accept(self, k: int, t: float) -> None:
        """Fit a tick within the jitter; keep others out unless a run says tempo or phase moved."""
        err, per = self._err(k, t)
        bound = max(self.min_jitter, 0.1 * per)
        if len(self._ticks) < 3 or abs(err) <= bound:
            self._outliers.clear()
            self._ticks.append((k, t))
            self._refit()
            return
        # A burst catching up after a stall shrinks towards the line: those stay outliers.
        # A tempo change grows away from it and a resumed stall stays off it: re-anchor.
        prev = self._outliers[-1][2] if self._outliers else None
        if prev is None or (prev > 0) != (err > 0) or abs(err) < abs(prev) - bound:
            self._outliers.clear()
        self._outliers.append((k, t, err))
        if len(self._outliers) < CONFIRM:
            return
        run, self._outliers = self._outliers, []
        errs = sorted(e for _, _, e in run)
        n = round(errs[len(errs) // 2] / per)
        if (1 <= n <= MAX_LOST and errs[-1] - errs[0] <= 0.75 * per
                and abs(errs[len(errs) // 2] - n * per) <= 0.35 * per):
            # steadily n periods late, with more jitter than the strict check allows: ticks
            # were lost (JACK drops events in cycles a busy client misses); count them
            self._count += n
            self._ticks.extend((ok + n, ot) for ok, ot, _ in run)
        else:
            self._ticks.clear()
            self._ticks.extend((ok, ot) for ok, ot, _ in run)
        self._refit()

    def _refit(self) -> None:
        n = len(self._ticks)
        if n < 2:
            return
        ks = [k for k, _ in self._ticks]
        ts = [t for _, t in self._ticks]
        mk, mt = sum(ks) / n, sum(ts) / n
        var = sum((k - mk) ** 2 for k in ks)
        per = sum((k - mk) * (t - mt) for k, t in zip(ks, ts, strict=True)) / var
        if per <= 0:
            return
        self._fit = (mt - per * mk, per)

    # -- queries --------------------------------------------------------------------------
    @property
    def bpm(self) -> float:
        """The smoothed tempo."""
        return 60.0 / (self._fit[1] * PPQN)

    def position(self, now: float) -> float:
        """Grid position at ``now``: never backwards, never more than 1.5 ticks past the last."""
        if not self.running:
            return self._frozen
        t0, per = self._fit
        k = min((now - t0) / per, self._count + 1.5)
        pos = max(self._base + k / self.ticks_per_step, self._last)
        self._last = pos
        return pos

    def time_of(self, pos: float) -> float | None:
        """Predicted wall time of position ``pos``; None while stopped."""
        if not self.running:
            return None
        t0, per = self._fit
        return t0 + (pos - self._base) * self.ticks_per_step * per
