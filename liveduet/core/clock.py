"""Clock sources: wall time <-> grid position, given time as an argument (no clock reads here).

Grid positions are float grid steps (16ths at 4 steps per beat) since transport start.
:class:`InternalClock` runs at a set tempo; a tempo change keeps the position continuous.
:class:`MidiClockFollower` follows a DAW's MIDI clock (24 ppqn, Start/Stop/Continue/Song
Position Pointer): it trusts the tick count and fits a least-squares line of tick time against
count over the last beat of ticks; Start, Continue and Song Position re-anchor it. Its other
rules are each needed by a replayed trace (tests/core/test_clock_traces.py and
tests/core/test_clock.py): a tick that follows the last within a quarter period ends a late
burst and the late tick leaves the fit; ``CONFIRM`` ticks in a row off the line on one side are
either ticks lost in transport (near whole numbers of periods late: counted back; after a stall
that made the run's first ticks irregular, its last ticks decide) or a new tempo or phase (the
fit restarts from them); a shorter run off the line was jitter and joins the fit.
The first ticks after a start have no line to be judged on: a burst among them is ticks held
back (all counted), and ticks lost among them are counted back when the first restarted line
shows them (the first tick then lies whole periods before it, where no tick comes).
Both clocks predict the wall time of future positions (:meth:`time_of`) so the runtime can
send on time.
:class:`VirtualTime` is a settable time source for tests and offline runs.

The tempo's home is here: :data:`BPM_RANGE` and :data:`DEFAULT_BPM` are the tempo liveduet
runs at itself (the internal clock, the JACK transport's own tempo), and the ``bpm`` setting
(``--bpm``, the config file, OSC, MIDI CC) is validated with the same range.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

PPQN = 24
CLOCK, START, CONTINUE, STOP, SPP = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
TRANSPORT = frozenset((CLOCK, START, CONTINUE, STOP, SPP))
CONFIRM = 6       # ticks in a row off the line that say the tempo, phase or count moved (a
# loaded sender can run a period late for a few ticks; a wrong guess shifts the grid for good)
MAX_LOST = 4      # at most this many ticks in a row are taken as lost in transport
JITTER = 0.25     # a tick within this many periods (or min_jitter) of the line is on it
BURST = 0.25      # a tick this many periods or less after the last one ends a late burst
LOST_EARLY = 0.35    # a tick n periods late, less up to this many periods of jitter, or more
# by a delay short of the next period, follows n lost ticks
TAIL = 4          # the last ticks of a run off the line that say whether ticks were lost
STEADY = 0.03     # ... when their lateness drifts less than this many periods a tick
FIRST = 3         # the first ticks after a (re)start, kept to find ticks lost among them
START_CHECK = 2 * PPQN   # ... until this many ticks after it (a tempo change since drifts)
HISTORY = 8 * PPQN   # pieces of the position map kept for queries of the past (8 beats: over a
# second at 300 bpm, more than a latency offset asks for)
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


def _whole_periods_late(run: Sequence[tuple[int, float, float]], per: float) -> int:
    """``n`` when a run off the line ends as ``n`` ticks lost in transport around a stall: its
    last ``TAIL`` ticks are ``n`` periods late and keep the old tempo (their lateness does not
    drift), whatever a stall did to the ticks before them. A new tempo drifts off the line a
    little more at every tick; 0 when the run does not end as 1 to ``MAX_LOST`` lost ticks."""
    tail = [(k, e / per) for k, _, e in run[-TAIL:]]
    n = round(sum(x for _, x in tail) / len(tail))
    if not 1 <= n <= MAX_LOST or any(abs(x - n) > LOST_EARLY for _, x in tail):
        return 0
    return n if abs(_slope(tail)) <= STEADY else 0


def _slope(points: Iterable[tuple[int, float]]) -> float:
    """Least-squares slope of (tick count, value) points, e.g. seconds per tick (at least two
    counts)."""
    pts = list(points)
    mk = sum(k for k, _ in pts) / len(pts)
    mt = sum(t for _, t in pts) / len(pts)
    var = sum((k - mk) ** 2 for k, _ in pts)
    return sum((k - mk) * (t - mt) for k, t in pts) / var


class _Segment(NamedTuple):
    """The position map from the tick at ``since`` on: the fitted line through (``t0``,
    ``base``) at ``step_s`` seconds per step, held within [``floor``, ``cap``]."""

    since: float
    t0: float
    base: float
    step_s: float
    floor: float   # the position the previous map gave at ``since``: never backwards
    cap: float     # 1.5 ticks past the last tick: a stalled DAW does not run on

    def at(self, now: float) -> float:
        """The position at ``now``."""
        return max(self.floor, min(self.base + (now - self.t0) / self.step_s, self.cap))


class MidiClockFollower:
    """Position and tempo from MIDI clock bytes stamped with their arrival time.

    ``min_jitter`` (s): a tick this close to the line is on it, however fast the tempo; the
    default takes in the quantisation of a 256-frame audio period at 48 kHz (5.3 ms). Longer
    audio periods are outside what it follows well; from a period as long as a tick on (512
    frames from 234 bpm, 1024 from 117 bpm), two ticks delivered together look like one
    delivered twice, and their stamps like a tempo of one tick per period.
    Only :meth:`on_message` changes state; the queries are pure. Each tick counted starts a
    new piece of the position map at its arrival time (the last ``HISTORY`` pieces are kept),
    so a query for an earlier time (``now - latency_offset``) reads the map as it stood then,
    and a later query never reads a smaller position.
    More than ``MAX_LOST`` ticks lost in a row leave the position that many ticks behind until
    the DAW's next Song Position Pointer, Continue or Start; up to that many lost among the
    first three after Start/Continue (before there is a line) are counted back when the line
    first restarts, within two beats.
    """

    def __init__(self, steps_per_beat: int = 4, bpm: float = DEFAULT_BPM, window: int = PPQN,
                 min_jitter: float = 0.006) -> None:
        self.ticks_per_step = PPQN / steps_per_beat
        self.min_jitter = min_jitter
        self.running = False
        self._armed = False
        self._frozen = 0.0                 # the position while stopped, or to start from
        self._base = 0.0                   # position of tick 0 since the last (re)start
        self._count = 0                    # index of the last tick since then
        self._last_t = 0.0                 # arrival time of the last tick
        self._fit = (0.0, 60.0 / (bpm * PPQN))   # (t at k=0, seconds per tick)
        self._window: deque[tuple[int, float]] = deque(maxlen=window)   # ticks on the line
        self._run: list[tuple[int, float, float]] = []   # ticks off it, same side: (k, t, err)
        self._map: deque[_Segment] = deque(maxlen=HISTORY)
        self._first: list[tuple[int, float]] = []   # the first ticks since the (re)start

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
        if self._armed:   # Start/Continue/SPP: this tick is the frozen position
            self._armed, self.running = False, True
            self._base, self._count, self._last_t = self._frozen, 0, t
            self._fit = (t, self._fit[1])
            self._window.clear()
            self._window.append((0, t))
            self._run.clear()
            self._first = [(0, t)]
            self._map.clear()
            self._map.append(self._segment(t, self._frozen))
            return "play"
        if not self.running:
            return None
        before = self.position(t)
        if t - self._last_t < BURST * self._fit[1]:
            if len(self._window) >= 3 and self._window[-1][0] == self._count:
                # right after a tick judged on the line: the same tick again (a loaded JACK
                # client was seen to deliver one twice), not one a period early. The first
                # ticks after a start have no line to be judged on: a burst there is ticks
                # held back together, all counted
                return None
            self._drop_last()
        self._count += 1
        self._last_t = t
        if len(self._first) < FIRST:
            self._first.append((self._count, t))
        self._place(self._count, t)
        self._map.append(self._segment(t, before))
        return None

    def _drop_last(self) -> None:
        """The last tick came late (this one followed it within ``BURST`` periods: a burst after
        a stall or a preempted sender): take it out of the fit, the count keeps it."""
        k = self._count
        if self._run and self._run[-1][0] == k:
            self._run.pop()
        elif self._window and self._window[-1][0] == k:
            self._window.pop()
            self._refit()

    def _place(self, k: int, t: float) -> None:
        """Fit a tick on the line; hold ticks off it until ``CONFIRM`` in a row on one side say
        what moved: ticks lost in transport or the tempo or phase. Lost ticks: the run's
        first tick follows a loss, at most one more loss comes in the run (a gap of two
        periods or more), and with the losses taken out its ticks come a period apart; a
        slower tempo instead falls behind by a fraction of a period more at every tick."""
        t0, per = self._fit
        err = t - (t0 + per * k)
        if len(self._window) < 3 or abs(err) <= max(self.min_jitter, JITTER * per):
            self._end_run()
            self._window.append((k, t))
            self._refit()
            return
        if self._run and (self._run[-1][2] > 0) != (err > 0):
            self._end_run()
        self._run.append((k, t, err))
        if len(self._run) < CONFIRM:
            return
        run, self._run = self._run, []
        lost = [math.floor(e / per + LOST_EARLY) for _, _, e in run]   # before each tick
        steps = [(b - a, tb - ta) for (_, ta, _), (_, tb, _), a, b   # where the count changes
                 in zip(run, run[1:], lost, lost[1:], strict=False) if b != a]
        spacing = _slope([(rk, rt - n * per) for (rk, rt, _), n in zip(run, lost, strict=True)])
        if (lost[0] >= 1 and lost[-1] <= MAX_LOST and abs(spacing - per) <= 0.1 * per
                and len(steps) <= 1 and all(d == 1 and gap >= 1.5 * per for d, gap in steps)):
            self._count += lost[-1]
            self._window.extend((rk + n, rt) for (rk, rt, _), n in zip(run, lost, strict=True))
        elif n := _whole_periods_late(run, per):
            self._count += n
            self._window.extend((rk + n, rt) for rk, rt, e in run
                                if abs(e / per - n) <= LOST_EARLY)
        else:
            self._window.clear()
            self._window.extend((rk, rt) for rk, rt, _ in run)
            self._refit()
            self._recount_start()
        self._refit()

    def _recount_start(self) -> None:
        """A line restarted within two beats of the (re)start: if the first ticks lie on it
        only with ``n`` ticks lost among them (after the first or second), count them back.
        Before a line exists every tick is taken as on it, so a tick lost there went unseen
        and the line restarted from ticks counted ``n`` short: the first tick, whose time is
        its count's (the start's position), then lies ``n`` periods before the line, where a
        real tick never comes. The other first ticks must lie on it too, which a tempo change
        after the start does not give."""
        first = self._first
        if self._count > START_CHECK or len(first) < FIRST:
            return
        t0, per = self._fit
        bound = max(self.min_jitter, JITTER * per)

        def on_line(n: int, split: int) -> bool:
            return all(abs(t - (t0 + per * (k - (n if k < split else 0)))) <= bound
                       for k, t in first)

        if on_line(0, 0):
            return
        for n in range(1, MAX_LOST + 1):
            if any(on_line(n, split) for split in range(1, FIRST)):
                self._count += n
                self._window = deque(((k + n, t) for k, t in self._window),
                                     maxlen=self._window.maxlen)
                self._first = []   # the caller refits
                return

    def _end_run(self) -> None:
        """A run too short to say anything moved ends: its ticks within half a period of the
        line were jitter and join the fit (held out, one side of a jitter as wide as the bound
        would pull the line away from the other)."""
        self._window.extend((k, t) for k, t, e in self._run if abs(e) < 0.5 * self._fit[1])
        self._run.clear()

    def _refit(self) -> None:
        """Least-squares line of tick time against tick count over the window (through its one
        tick at the last period, while it has one)."""
        if len(self._window) == 1:
            k, t = self._window[0]
            self._fit = (t - self._fit[1] * k, self._fit[1])
        if len(self._window) < 2:
            return
        per = _slope(self._window)
        if per > 0:
            mk = sum(k for k, _ in self._window) / len(self._window)
            mt = sum(t for _, t in self._window) / len(self._window)
            self._fit = (mt - per * mk, per)

    def _segment(self, since: float, floor: float) -> _Segment:
        """The map from the tick at ``since``: the fitted line, moved up to half a tick behind
        the count where it is further behind (the count is trusted: while a faster tempo is
        being confirmed its ticks are held off the line, yet they are counted)."""
        t0, per = self._fit
        tps = self.ticks_per_step
        behind = (self._count - 0.5) - (since - t0) / per
        return _Segment(since, t0, self._base + max(behind, 0.0) / tps, per * tps, floor,
                        self._base + (self._count + 1.5) / tps)

    # -- queries (pure) -------------------------------------------------------------------
    @property
    def bpm(self) -> float:
        """The smoothed tempo."""
        return 60.0 / (self._fit[1] * PPQN)

    def position(self, now: float) -> float:
        """Grid position at ``now``, as the ticks received so far place it: never backwards
        between later queries, never more than 1.5 ticks past the last tick."""
        if not self.running:
            return self._frozen
        for seg in reversed(self._map):
            if seg.since <= now:
                return seg.at(now)
        return self._map[0].at(now)

    def time_of(self, pos: float) -> float | None:
        """Predicted wall time of position ``pos`` on the fitted line; None while stopped."""
        if not self.running:
            return None
        t0, per = self._fit
        return t0 + (pos - self._base) * self.ticks_per_step * per
