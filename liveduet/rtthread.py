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
from collections.abc import Callable

log = logging.getLogger("liveduet.rtthread")
PR_SET_TIMERSLACK = 29
RT_PRIORITY = 10
"""SCHED_FIFO priority of the conductor: above normal threads, below a real-time JACK server
(jackd -R uses 70+), so JACK's own cycle always wins."""


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
