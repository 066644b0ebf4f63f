"""A JACK-Client test client that records (and plays) MIDI in JACK frame time, and grid fitting.

:class:`FrameClient` stamps every event it receives with its frame (the cycle's
``last_frame_time`` plus the event's offset) and can send events at chosen offsets of its
cycles: what a sample-accurate synth or sequencer sees and does. :func:`grid_offsets` says how
far note-on frames lie from a tempo grid.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Sequence

import numpy as np

WRAP = 1 << 32


class FrameClient:
    """JACK client ``name`` with a MIDI input ``in`` (recorded) and output ``out``."""

    def __init__(self, name: str) -> None:
        import jack
        self.client = jack.Client(name, no_start_server=True)
        self.rate = float(self.client.samplerate)
        self.inp = self.client.midi_inports.register("in")
        self.out = self.client.midi_outports.register("out")
        self.got: list[tuple[int, bytes]] = []    # (frame, bytes) received
        self.times: list[float] = []              # perf_counter time of each one's frame
        self.sent: list[tuple[int, float]] = []   # (frame, perf_counter time of that frame)
        self._plan: list[tuple[int, bytes]] = []   # (offset, bytes) for the next cycle
        self._lock = threading.Lock()
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _cycle_start(self) -> float:
        """``perf_counter`` time of this cycle's first frame, from a reading of both clocks
        not split by a preemption (frames since the cycle start read on both sides of it)."""
        client, perf = self.client, time.perf_counter
        best = (math.inf, 0.0)
        for _ in range(3):
            before = client.frames_since_cycle_start
            now = perf()
            after = client.frames_since_cycle_start
            if after - before < best[0]:
                best = (after - before, now - (before + after) / 2 / self.rate)
            if after - before <= 1:
                break
        return best[1]

    def _process(self, frames: int) -> None:
        begun = self._cycle_start()
        start = self.client.last_frame_time
        for offset, data in self.inp.incoming_midi_events():
            self.got.append((start + offset, bytes(data)))
            self.times.append(begun + offset / self.rate)
        self.out.clear_buffer()
        with self._lock:
            plan, self._plan = self._plan, []
        for offset, data in plan:
            self.out.write_midi_event(offset, data)
            self.sent.append((start + offset, begun + offset / self.rate))

    def play(self, events: Sequence[tuple[int, bytes]]) -> None:
        """Send (offset, bytes) in the next cycle (offsets in order, below the period)."""
        with self._lock:
            self._plan = list(events)

    def _note_ons(self) -> list[int]:
        return [i for i, (_, d) in enumerate(list(self.got))
                if len(d) == 3 and d[0] & 0xF0 == 0x90 and d[2]]

    def note_on_frames(self) -> list[int]:
        """Frames of the note-ons received so far (unwrapped)."""
        frames = [self.got[i][0] for i in self._note_ons()]
        return list(np.unwrap(np.array(frames, dtype=float), period=WRAP).astype(np.int64))

    def note_on_times(self) -> list[float]:
        """``perf_counter`` times of the frames of the note-ons received so far (mapped by
        the JACK frame clock in the cycle each arrived in)."""
        return [self.times[i] for i in self._note_ons()]

    def close(self) -> None:
        """Leave the server."""
        with contextlib.suppress(Exception):
            self.client.deactivate()
            self.client.close()


def grid_offsets(times: Sequence[float], step: float, rate: float) -> np.ndarray:
    """Offsets in frames of note-ons (at ``perf_counter`` ``times`` of their frames, as the
    receiving client maps frames to time) from a wall-clock grid of spacing ``step`` seconds
    whose phase is the median one. Frames are mapped to time by JACK's own frame clock at
    the cycle they arrive in: a dummy driver's frame count drifts against the wall clock by a
    few frames a second on a loaded machine, which would otherwise be counted."""
    t = np.asarray(times, dtype=float)
    if len(t) == 0:
        return np.zeros(0)
    rel = t - t[0]
    phase = rel - np.round(rel / step) * step
    centre = np.median(phase)
    dev = (phase - centre + step / 2) % step - step / 2
    return dev * rate


def frame_grid_offsets(frames: Sequence[int], step: float, window: int = 4) -> np.ndarray:
    """Offsets (frames) of note-on ``frames`` from a grid of ``step`` frames: each note is put
    on its nearest grid line and compared with the line fitted (least squares) through its
    ``window`` neighbours on either side, so the frame clock drifting slowly against the wall
    clock (a dummy server on a loaded machine) is not counted."""
    f = np.asarray(frames, dtype=float)
    if len(f) < 3:
        return np.zeros(0)
    k = np.round((f - f[0]) / step)
    out = np.zeros(len(f))
    for i in range(len(f)):
        near = [j for j in range(max(0, i - window), min(len(f), i + window + 1)) if j != i]
        slope, icept = np.polyfit(k[near], f[near], 1)
        out[i] = f[i] - (icept + slope * k[i])
    return out
