"""Stop signals at any moment over real JACK: SIGINT, SIGTERM and SIGHUP while ``liveduet run``
starts (imports, model load, port set-up), mid-answer, and twice in a row; each ends with exit
status 0, no traceback, and a note-off at the DAW for every note that sounded.

"Any moment" starts at the first line of ``python -m liveduet`` (liveduet/__main__.py installs
the handlers before the heavy imports); the test waits for that through /proc (SigCgt) instead
of guessing a delay, then signals at several points of the start-up.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from liveduet.testkit.jack import JackServer, wait_for
from tests.live.faultkit import ROOT, RUN, Live

SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGHUP": signal.SIGHUP}


def _catches_stop_signals(pid: int) -> bool:
    """True once ``pid`` has handlers for SIGINT, SIGTERM and SIGHUP (its SigCgt mask)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            mask = next(int(ln.split()[1], 16) for ln in fh if ln.startswith("SigCgt"))
    except (OSError, StopIteration):
        return False
    return all(mask >> (s - 1) & 1 for s in SIGNALS.values())


def _clean(err: str) -> None:
    assert "Traceback" not in err, err
    assert all(ln.startswith("liveduet") for ln in err.splitlines() if ln.strip()), err


@pytest.mark.parametrize("delay", [0.0, 0.3, 1.0], ids=lambda d: f"{d:.1f}s")
@pytest.mark.parametrize("name", list(SIGNALS))
def test_signal_while_starting_exits_0_without_traceback(
        jack_server: JackServer, models: dict[str, Path], name: str, delay: float) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "liveduet", "run", "--api", "jack",
                             "--model", str(models["answer"]), *RUN], env=jack_server.env(),
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for(lambda: _catches_stop_signals(proc.pid) or proc.poll() is not None, 20.0,
                 0.001, "the stop-signal handlers")
        time.sleep(delay)
        proc.send_signal(SIGNALS[name])
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    _clean(err)


@pytest.mark.parametrize("first,second", [("SIGHUP", None), ("SIGINT", "SIGTERM"),
                                          ("SIGTERM", "SIGHUP")])
def test_signal_mid_answer_closes_every_note_once_or_twice(
        jack_server: JackServer, models: dict[str, Path], live_factory: list[Live],
        first: str, second: str | None) -> None:
    live = Live(jack_server, models["answer"])
    live_factory.append(live)
    live.call()
    wait_for(lambda: live.daw.sounding(), 10.0, what="an answer note sounding")
    live.proc.send_signal(SIGNALS[first])
    if second is not None:
        time.sleep(0.01)  # while it releases and closes
        live.proc.send_signal(SIGNALS[second])
    code, err = live.finish(SIGNALS[first])
    assert code == 0, err
    _clean(err)
    wait_for(lambda: not live.daw.sounding(), 2.0, what="the note-offs sent at exit")
