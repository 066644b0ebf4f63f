"""Scheduling help for the conductor thread: real-time priority, timer slack, GIL hand-over.

python-rtmidi calls liveduet's MIDI input callback from the JACK (or ALSA/CoreMIDI) thread,
which must take the GIL. While the conductor holds the GIL (Python work, a spin), that thread
waits up to :func:`sys.getswitchinterval` (5 ms by default): longer than a JACK period, so the
JACK client misses its cycle and input arrives late or is lost. :func:`tune_process` lowers the
switch interval while liveduet runs; :func:`tune_thread` asks the OS for ``SCHED_FIFO`` priority
and a 1 µs timer slack for the calling thread, so its sleeps end on time on a busy machine.
Every step is best effort: without permission the thread runs as before and the reason is
returned, never raised.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("liveduet.live.rtthread")
PR_SET_TIMERSLACK = 29
RT_PRIORITY = 10
"""SCHED_FIFO priority of the conductor: above normal threads, below a real-time JACK server
(jackd -R uses 70+), so JACK's own cycle always wins."""


@dataclass(frozen=True)
class Tuning:
    """How the conductor thread waits and shares the GIL (benchmarks compare variants)."""

    spin: float = 0.0005               # busy-wait before each due send (the first value)
    adaptive_spin: bool = True         # then: what recent sleeps overslept (SpinBudget)
    yield_spin: bool = True            # release the GIL on every turn of that busy-wait
    switch_interval: float | None = 0.0002  # GIL switch interval while running (None: keep)
    realtime: bool = False             # SCHED_FIFO conductor: wake-up p99 7x tighter, but it
    # starves non-real-time MIDI threads (jackd --no-realtime, ALSA) under dense input


def tune_process(switch_interval: float | None) -> Callable[[], None]:
    """Set the GIL switch interval (None: leave it); return a function that restores it."""
    old = sys.getswitchinterval()
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    return lambda: sys.setswitchinterval(old)


def tune_thread(realtime: bool, slack_ns: int = 1000) -> list[str]:
    """Give the calling thread SCHED_FIFO (when ``realtime``) and a small timer slack.

    Returns:
        What could not be done and why (empty when everything worked).
    """
    problems = []
    if slack_ns > 0 and sys.platform.startswith("linux"):
        why = _timer_slack(slack_ns)
        if why:
            problems.append(why)
    if realtime:
        why = _fifo(RT_PRIORITY)
        if why:
            problems.append(why)
    for text in problems:
        log.info("conductor thread: %s", text)
    return problems


def _timer_slack(ns: int) -> str | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        if libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(ns), 0, 0, 0) != 0:
            return f"timer slack not set ({os.strerror(ctypes.get_errno())})"
    except (OSError, AttributeError) as err:
        return f"timer slack not set ({err})"
    return None


def _fifo(priority: int) -> str | None:
    if not hasattr(os, "sched_setscheduler"):
        return "real-time priority is not available on this system"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as err:
        return (f"no real-time priority ({err.strerror}); on Linux add your user to the "
                "'audio' group with an rtprio limit for tighter timing")
    return None


class SpinBudget:
    """How long the conductor busy-waits before a due send.

    A timed sleep ends late by the kernel's wake-up latency (tens of µs on a quiet machine).
    The budget is a high quantile of how late the recent sleeps woke plus a margin, within
    ``[low, high]``, so a quiet machine burns less CPU spinning. It never grows past ``high``:
    measured under full CPU contention, a longer spin made sends *later* (a thread that spins
    uses up its time slice and the scheduler preempts it for milliseconds; only real-time
    priority helps there). Fixed at ``start`` when not ``adaptive``.
    """

    def __init__(self, start: float = 0.0005, *, adaptive: bool = True, low: float = 0.00008,
                 high: float = 0.0005, margin: float = 0.00005, window: int = 64,
                 quantile: float = 0.95) -> None:
        self.seconds = start
        self.adaptive = adaptive
        self.low, self.high, self.margin, self.quantile = low, high, margin, quantile
        self._late: deque[float] = deque(maxlen=window)
        self._count = 0

    def woke(self, late: float) -> None:
        """Record that a timed sleep ended ``late`` seconds after it was asked to."""
        if not self.adaptive:
            return
        self._late.append(max(0.0, late))
        self._count += 1
        if self._count % 16 == 0:
            ordered = sorted(self._late)
            q = ordered[int(self.quantile * (len(ordered) - 1))]
            self.seconds = min(max(q + self.margin, self.low), self.high)
