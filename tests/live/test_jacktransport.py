"""``--clock jack``: liveduet follows the JACK transport (and a timebase master's tempo)."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from liveduet.live.jacktransport import quarters
from liveduet.testkit.jack import JackServer, wait_for
from liveduet.testkit.jackrec import FrameClient
from liveduet.testkit.midicheck import sounding_keys
from tests.live.test_clockout_run import Live
from tests.live.test_run import answer_model

__all__ = ["answer_model"]


def test_quarters_from_bar_beat_tick() -> None:
    bbt = {"bar": 3, "beat": 2, "tick": 960, "beats_per_bar": 4.0, "beat_type": 4.0,
           "ticks_per_beat": 1920.0}
    assert quarters(bbt) == 2 * 4 + 1 + 0.5
    six8 = {**bbt, "bar": 2, "beat": 4, "tick": 0, "beats_per_bar": 6.0, "beat_type": 8.0}
    assert quarters(six8) == (6 + 3) / 2       # eighth-note beats: half a quarter each
    assert quarters({"frame": 0}) is None


class Transport:
    """A JACK client that rolls and stops the transport, optionally timebase master."""

    def __init__(self, bpm: float | None = None) -> None:
        import jack

        self.jack = jack
        self.client = jack.Client("transport-driver", no_start_server=True)
        self.bpm = bpm
        if bpm is not None:
            self.client.set_timebase_callback(self._timebase)
        self.client.activate()

    def _timebase(self, state: Any, blocksize: int, pos: Any, new_pos: bool) -> None:
        """4/4 bar/beat/tick at ``self.bpm`` from the transport frame (JACK's process thread)."""
        bpm = float(self.bpm or 120.0)
        beats = pos.frame / pos.frame_rate * bpm / 60.0
        pos.valid = self.jack._lib.JackPositionBBT
        pos.beats_per_bar, pos.beat_type, pos.ticks_per_beat = 4.0, 4.0, 1920.0
        pos.beats_per_minute = bpm
        bar, beat = divmod(int(beats), 4)
        pos.bar, pos.beat = bar + 1, beat + 1
        pos.tick = int((beats - int(beats)) * 1920)
        pos.bar_start_tick = bar * 4 * 1920.0

    def close(self) -> None:
        self.client.transport_stop()
        self.client.deactivate()
        self.client.close()


@pytest.fixture
def jack_env() -> Iterator[JackServer]:
    if importlib.util.find_spec("jack") is None:
        pytest.skip("JACK-Client is not installed: pip install -e '.[jack]'")
    if not JackServer.available():
        pytest.skip("jackd2 is not installed: run 'bash scripts/test.sh' (it installs jackd2)")
    with JackServer() as server:
        yield server


def eighth_gaps(rec: FrameClient) -> np.ndarray:
    """Seconds between note-ons by the JACK frame clock: the transport's own time line (a
    dummy server on a loaded machine runs its cycles behind wall time for a while, and the
    transport with them)."""
    gaps = np.diff(rec.note_on_frames()) / rec.rate
    return gaps[gaps > 0.01]   # notes a stalled process sent at once are no tempo


@pytest.mark.wallclock
@pytest.mark.parametrize("master_bpm", [None, 150.0])
def test_follows_jack_transport_roll_stop_and_the_masters_tempo(
        jack_env: JackServer, answer_model: Path, master_bpm: float | None) -> None:
    """Rolling starts liveduet at ``--bpm 120`` (no timebase master) or at the master's tempo;
    stopping the transport ends its notes."""
    transport = Transport(master_bpm)
    rec = FrameClient("rec")
    live = None
    try:
        live = Live(jack_env, answer_model, "--clock", "jack", "--mode", "continue",
                    "--bpm", "120", "--out", "rec:in")
        time.sleep(0.5)
        assert len(rec.note_on_times()) == 0, "played before the transport rolled"
        transport.client.transport_start()
        wait_for(lambda: len(rec.note_on_times()) >= 10, 15.0, what="notes with the transport")
        transport.client.transport_stop()
        stopped = time.perf_counter()
        wait_for(lambda: not sounding_keys(tuple(m) for _, m in list(rec.got)), 2.0,
                 what="every note off after the transport stopped")
        n = len(rec.note_on_times())
        time.sleep(0.5)
        assert len(rec.note_on_times()) == n
        assert all(t < stopped + 0.1 for t in rec.note_on_times())
        live.finish()
    finally:
        if live is not None and live.proc.poll() is None:
            live.proc.kill()
        transport.close()
        rec.close()
    bpm = master_bpm or 120.0
    assert np.median(eighth_gaps(rec)) == pytest.approx(30.0 / bpm, rel=0.03)


def test_missing_binding_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from liveduet.errors import ConfigError
    from liveduet.live.jacktransport import MISSING, load_jack

    monkeypatch.setitem(sys.modules, "jack", None)
    with pytest.raises(ConfigError) as err:
        load_jack()
    assert str(err.value) == MISSING and "liveduet[jack]" in MISSING
