"""A stalled process does not burst: after SIGSTOP / SIGCONT the steps it missed are skipped
(note-offs still go out), instead of every missed note-on leaving back to back.

``liveduet run`` in continue mode over real JACK plays eighth notes at 240 bpm (8 note-ons a
second, tests/live/test_faults.py's scripted model); the test stops the process for 1.5 s (12 missed
note-ons) and counts what reaches the DAW right after it resumes.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from liveduet.testkit.jack import JackServer, wait_for
from tests.live.faultkit import Live


@pytest.mark.wallclock
def test_a_stall_skips_the_missed_notes_instead_of_bursting(
        jack_server: JackServer, models: dict[str, Path], live_factory: list[Live]) -> None:
    live = Live(jack_server, models["answer"], "--mode", "continue")
    live_factory.append(live)
    wait_for(lambda: len(live.daw.answers()) >= 4, 10.0, what="the machine playing on")
    os.kill(live.proc.pid, signal.SIGSTOP)
    time.sleep(1.5)
    resumed = time.perf_counter()
    os.kill(live.proc.pid, signal.SIGCONT)
    wait_for(lambda: len(live.daw.answers(resumed)) >= 4, 10.0, what="play after the stall")
    after = live.daw.answers(resumed)
    burst = [t for t in after if t - after[0] < 0.05]
    assert len(burst) <= 2, f"{len(burst)} note-ons within 50 ms of resuming"
    code, err = live.finish()
    assert code == 0, err
    wait_for(lambda: not live.daw.sounding(), 2.0, what="every note off at exit")
