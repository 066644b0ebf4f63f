"""Clock sources in virtual time: internal tempo, MIDI clock follower, virtual time."""

from __future__ import annotations

import numpy as np
import pytest

from liveduet.core.clock import (
    BPM_RANGE,
    CLOCK,
    CONTINUE,
    DEFAULT_BPM,
    SPP,
    START,
    STOP,
    InternalClock,
    MidiClockFollower,
    VirtualTime,
)
from liveduet.core.settings import FIELD_BY_NAME, Settings, coerce
from liveduet.errors import ConfigError


def tick_times(bpm: float, n: int, start: float = 10.0) -> list[float]:
    per = 60.0 / (bpm * 24)
    return [start + i * per for i in range(n)]


def feed_ticks(f: MidiClockFollower, times: list[float]) -> list[str | None]:
    return [f.on_message([CLOCK], t) for t in times]


def test_virtual_time_moves_only_forward() -> None:
    vt = VirtualTime(5.0)
    assert vt() == 5.0 and vt.advance(0.25) == 5.25 and vt() == 5.25
    with pytest.raises(ValueError, match="cannot go back"):
        vt.advance(-1)


def test_internal_clock_maps_both_ways_and_tempo_change_is_continuous() -> None:
    c = InternalClock(120)
    assert c.time_of(0) is None
    c.start(100.0)
    assert c.position(100.5) == pytest.approx(4.0)          # 120 bpm: 8 steps per second
    assert c.time_of(4.0) == pytest.approx(100.5)
    c.set_bpm(60, 100.5)
    assert c.position(100.5) == pytest.approx(4.0)          # no jump
    assert c.position(101.5) == pytest.approx(8.0)          # now 4 steps per second
    assert c.time_of(8.0) == pytest.approx(101.5)
    c.stop(102.0)
    assert c.position(200.0) == pytest.approx(10.0) and not c.running
    with pytest.raises(ValueError, match="bpm=0"):
        c.set_bpm(0, 1.0)


def test_the_bpm_setting_takes_the_clocks_range_and_default() -> None:
    low, high = BPM_RANGE
    f = FIELD_BY_NAME["bpm"]
    assert (f.low, f.high, f.default, Settings().bpm) == (low, high, DEFAULT_BPM, DEFAULT_BPM)
    c = InternalClock(low)
    c.set_bpm(high, 0.0)
    with pytest.raises(ValueError, match="out of range"):
        c.set_bpm(high + 1, 0.0)
    with pytest.raises(ConfigError, match="out of range"):
        coerce("bpm", high + 1)


def test_follower_start_plays_at_first_tick_and_tracks_tempo() -> None:
    f = MidiClockFollower()
    assert f.on_message([START], 9.99) is None and not f.running
    times = tick_times(100, 49)
    events = feed_ticks(f, times)
    assert events[0] == "play" and set(events[1:]) == {None}
    assert f.bpm == pytest.approx(100, rel=1e-6)
    step = 60 / 100 / 4
    assert f.position(times[0]) == pytest.approx(0.0)
    assert f.position(times[-1]) == pytest.approx(8.0)     # 48 ticks = 2 beats = 8 steps
    assert f.time_of(9.0) == pytest.approx(times[0] + 9 * step)


def test_follower_smooths_jitter() -> None:
    rng = np.random.default_rng(1)
    f = MidiClockFollower()
    f.on_message([START], 0.0)
    ideal = tick_times(120, 24 * 8)
    period = 64 / 48000  # arrival quantised to a JACK period, plus scheduling noise
    noisy = [np.floor(t / period) * period + rng.uniform(0, 0.0005) for t in ideal]
    feed_ticks(f, noisy)
    assert f.bpm == pytest.approx(120, abs=0.5)
    pred = f.time_of(f.position(noisy[-1]) + 4)
    assert pred is not None and abs(pred - (ideal[-1] + 0.5)) < 0.002   # one beat ahead


def test_follower_follows_tempo_change_within_a_beat() -> None:
    f = MidiClockFollower()
    f.on_message([START], 0.0)
    slow = tick_times(100, 48)
    per = 60 / (140 * 24)
    fast = [slow[-1] + per * (i + 1) for i in range(24)]
    feed_ticks(f, slow)
    assert f.bpm == pytest.approx(100, rel=1e-6)
    feed_ticks(f, fast[:12])                  # half a beat at the new tempo
    assert f.bpm == pytest.approx(140, rel=0.02)
    feed_ticks(f, fast[12:])
    assert f.bpm == pytest.approx(140, rel=1e-6)
    assert f.position(fast[-1]) == pytest.approx((47 + 24) / 6, abs=0.01)


def test_follower_stop_freezes_and_continue_resumes() -> None:
    f = MidiClockFollower()
    f.on_message([START], 0.0)
    times = tick_times(120, 13)
    feed_ticks(f, times)                                    # 12 ticks = 2 steps
    assert f.on_message([STOP], times[-1] + 0.001) == "stop"
    assert not f.running and f.time_of(3.0) is None
    frozen = f.position(times[-1] + 5)
    assert frozen == pytest.approx(2.0, abs=0.01)
    assert f.on_message([STOP], 20.0) is None               # a second Stop is not news
    f.on_message([CONTINUE], 30.0)
    assert f.on_message([CLOCK], 30.01) == "play"
    assert f.position(30.01) == pytest.approx(frozen)


def test_song_position_pointer_sets_the_restart_position() -> None:
    f = MidiClockFollower()
    f.on_message([SPP, 32, 0], 1.0)                       # 32 sixteenths = 2 bars
    f.on_message([CONTINUE], 1.0)
    assert f.on_message([CLOCK], 1.1) == "play"
    assert f.position(1.1) == pytest.approx(32.0)
    f.on_message([CLOCK], 1.1 + 60 / (120 * 24))
    assert f.on_message([SPP, 0, 1], 1.2) == "locate"     # 128 sixteenths, while playing
    assert f.on_message([CLOCK], 1.3) == "play" and f.position(1.3) == pytest.approx(128.0)
    f.on_message([START], 2.0)                           # Start always from the top
    f.on_message([CLOCK], 2.1)
    assert f.position(2.1) == pytest.approx(0.0)


def test_follower_never_runs_backwards_or_far_past_the_last_tick() -> None:
    f = MidiClockFollower()
    f.on_message([START], 0.0)
    times = tick_times(120, 25)
    feed_ticks(f, times)
    late = f.position(times[-1] + 10.0)                    # the DAW stalled without Stop
    assert late == pytest.approx(4.0 + 1.5 / 6)
    f.on_message([CLOCK], times[-1] + 10.0)
    assert f.position(times[-1] + 10.0) >= late
    assert f.on_message([0x90, 60, 100], 1.0) is None and f.on_message([], 1.0) is None


def test_follower_counts_ticks_lost_in_transport() -> None:
    f = MidiClockFollower()
    f.on_message([START], 0.0)
    times = tick_times(120, 30)
    feed_ticks(f, times[:10] + times[12:])                 # ticks 10 and 11 never arrived
    assert f.position(times[-1]) == pytest.approx(29 / 6, abs=0.01)
    assert f.bpm == pytest.approx(120, rel=1e-6)


@pytest.mark.parametrize("stall_periods", [2, 3, 5, 12])
def test_follower_keeps_count_when_a_stalled_sender_catches_up(stall_periods: int) -> None:
    """A late tick then a burst (a busy sender, not a loss) keeps the DAW's grid."""
    f = MidiClockFollower()
    f.on_message([START], 0.0)
    times = tick_times(120, 60)
    per = 60 / (120 * 24)
    stalled = times[:20] + [times[20 + stall_periods] + 0.0002 * i
                            for i in range(stall_periods + 1)] + times[21 + stall_periods:]
    assert len(stalled) == len(times)
    feed_ticks(f, stalled)
    assert f.position(times[-1]) == pytest.approx(59 / 6, abs=0.01)
    assert f.time_of(12.0) == pytest.approx(times[0] + 72 * per, abs=0.001)
    assert f.bpm == pytest.approx(120, rel=1e-3)


def test_follower_re_anchors_when_ticks_resume_after_a_long_stall() -> None:
    f = MidiClockFollower()
    f.on_message([START], 0.0)
    times = tick_times(120, 24)
    later = tick_times(120, 24, start=times[-1] + 3.0)      # three seconds of silence, no Stop
    feed_ticks(f, times + later)
    assert f.position(later[-1]) == pytest.approx(47 / 6, abs=0.01)
    assert f.time_of(f.position(later[-1]) + 6) == pytest.approx(later[-1] + 0.75, abs=0.001)


def test_follower_keeps_count_when_the_sender_runs_a_period_late_for_a_while() -> None:
    """A loaded sender a whole period late for a few ticks (then back) lost nothing."""
    f = MidiClockFollower()
    f.on_message([START], 0.0)
    times = tick_times(120, 60)
    per = 60 / (120 * 24)
    late = times[:20] + [t + per for t in times[20:25]] + times[25:]
    feed_ticks(f, late)
    assert f.position(times[-1]) == pytest.approx(59 / 6, abs=0.01)
    assert f.time_of(12.0) == pytest.approx(times[0] + 72 * per, abs=0.001)


def test_follower_keeps_the_grid_when_a_tick_is_lost_and_the_rest_jitter() -> None:
    """A tick lost in a busy JACK cycle, the ticks after it 5.8 ms early or late by turns.

    Needs a short run off the line to join the fit: held out, the ticks on one side of a
    jitter as wide as the bound pull the line away from the other."""
    f = MidiClockFollower()
    f.on_message([START], 0.0)
    times = tick_times(120, 60)
    rest = [t + (0.0058 if i % 2 else -0.0058) for i, t in enumerate(times[31:])]
    feed_ticks(f, times[:30] + rest)                     # tick 30 never arrived
    assert f.position(times[-1]) == pytest.approx(59 / 6, abs=0.02)
