"""Stop signals for ``liveduet run``: SIGINT, SIGTERM and SIGHUP at any moment end it cleanly.

``python -m liveduet`` calls :func:`install` before anything heavy is imported. From then on a
stop signal only sets :data:`STOP` (the handler raises nothing): Python's default SIGINT handler
raised KeyboardInterrupt in the middle of an import (numpy, onnxruntime), which printed a
traceback or ``ImportError: initialization failed``, and SIGTERM/SIGHUP killed the process with
notes sounding. ``run`` checks :func:`check` between its start-up phases (before ports open
nothing can sound) and its play loop waits on :data:`STOP`; a second signal while it stops
changes nothing. Commands other than ``run`` get the usual handlers back (:func:`restore`).
"""

from __future__ import annotations

import signal
import threading
from typing import Any

STOP = threading.Event()
"""Set by the first stop signal."""
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                if hasattr(signal, name))
received: list[int] = []
"""Every stop signal received, in order (the first is the one that counts)."""
_old: dict[int, Any] = {}


class Interrupted(Exception):
    """A stop signal arrived while ``run`` was starting: end before anything can sound."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name} while starting")


def _handler(signum: int, _frame: object) -> None:
    received.append(signum)
    STOP.set()


def install() -> None:
    """Route stop signals to :data:`STOP` (main thread only; safe to call twice)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in SIGNALS:
        if sig not in _old:
            _old[sig] = signal.getsignal(sig)
        signal.signal(sig, _handler)
        # restart interrupted system calls: a signal landing in libjack's socket reads (a
        # JACK thread or ours) made it fail "creating virtual port"; Python code retries
        # EINTR itself (PEP 475) and waits with timeouts, so the flag is still seen at once
        signal.siginterrupt(sig, False)


def restore() -> None:
    """Give the signals their previous handlers (commands that stop by KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, old in list(_old.items()):
        signal.signal(sig, old if old is not None else signal.SIG_DFL)
    _old.clear()


def check() -> None:
    """Raise :class:`Interrupted` if a stop signal has arrived."""
    if STOP.is_set():
        raise Interrupted(received[0] if received else signal.SIGINT)


def reset() -> None:
    """Forget received signals (tests that call ``main`` in process)."""
    STOP.clear()
    received.clear()
