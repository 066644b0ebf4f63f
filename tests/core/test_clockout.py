"""MIDI clock out: the pure generator, its driver on an internal clock, and its config."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from liveduet.core.clock import InternalClock, MidiClockFollower
from liveduet.core.clockout import ClockOut, ClockOutput, spp
from liveduet.errors import ConfigError
from tests.cli.test_cli_run import parse

F8, FA, FB, FC = (0xF8,), (0xFA,), (0xFB,), (0xFC,)


def test_start_at_zero_is_start_then_six_ticks_per_step() -> None:
    out = ClockOut(4)
    assert out.start(-0.3) == [FA]
    assert out.take(0.0) == [F8]                  # the first tick is the downbeat
    assert out.take(0.5) == [F8] * 3
    assert out.take(1.0) == [F8] * 3              # 24 ppqn = 6 per 16th step
    assert out.next_pos == pytest.approx(7 / 6)


def test_start_mid_bar_continues_on_the_next_sixteenth() -> None:
    out = ClockOut(4)
    assert out.start(5.2) == [spp(6), FB]
    assert out.next_pos == 6.0
    assert out.take(5.9) == []
    out.stop()
    assert out.start(6.05) == [spp(6), FB]        # seen 0.3 ticks late: still that 16th


def test_a_position_past_spp_range_keeps_the_bar_phase() -> None:
    out = ClockOut(4)
    msgs = out.start(40_000.0)                # e.g. a Link session 2,500 bars in
    sent = msgs[0][1] | (msgs[0][2] << 7)
    assert sent <= 0x3FFF and (40_000 - sent) % 5040 == 0
    assert out.next_pos == 40_000.0


def test_spp_bytes_are_14_bit_sixteenths() -> None:
    assert spp(0) == (0xF2, 0, 0)
    assert spp(200) == (0xF2, 200 & 0x7F, 200 >> 7)
    assert spp(10**9) == (0xF2, 0x7F, 0x7F)


def test_stop_once_and_locate_is_stop_spp_continue() -> None:
    out = ClockOut(4)
    out.start(0.0)
    assert out.stop() == [FC]
    assert out.stop() == []
    out.start(0.0)
    out.take(8.0)
    assert out.locate(2.0) == [FC, spp(2), FB]
    assert out.next_pos == 2.0


def test_a_stall_sends_every_missed_tick_in_a_burst() -> None:
    out = ClockOut(4)
    out.start(0.0)
    assert out.take(10.0) == [F8] * 61        # receivers count ticks: none may be skipped
    assert out.next_pos == pytest.approx(61 / 6)


def test_driver_relocates_when_the_transport_jumps_ahead() -> None:
    clock = InternalClock(120, 4)
    rec = Recorder()
    co = ClockOutput(clock, rec, 4)
    clock.start(0.0)
    drive(co, rec, 0.5)
    clock.start(0.5, 64.0)                    # four bars on, at once
    rec.now = 0.5
    co.send_due(0.5)
    assert [m for t, m in rec.sent if t == 0.5][-4:] == [FC, spp(64), FB, F8]


def test_steps_per_beat_must_divide_24() -> None:
    with pytest.raises(ValueError, match="divide 24"):
        ClockOut(5)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[float, tuple[int, ...]]] = []
        self.now = 0.0

    def __call__(self, msgs: Sequence[tuple[int, ...]]) -> None:
        self.sent += [(self.now, m) for m in msgs]


def drive(co: ClockOutput, rec: Recorder, until: float) -> None:
    """Call the driver as the conductor does: at each due time, then at ``until``."""
    while True:
        due = co.due_time()
        if due is None or due > until:
            rec.now = until
            co.send_due(until)
            return
        rec.now = max(rec.now, due)
        co.send_due(rec.now)


def test_driver_sends_24_ppqn_at_the_tempo_and_follows_a_tempo_change() -> None:
    clock = InternalClock(120, 4)
    rec = Recorder()
    co = ClockOutput(clock, rec, 4)
    clock.start(0.1)
    drive(co, rec, 2.1)                      # 4 beats at 120 bpm, from 0.1 s
    ticks = [t for t, m in rec.sent if m == F8]
    assert rec.sent[0][1] == FA and rec.sent[0][0] <= ticks[0]
    assert len(ticks) == 4 * 24 + 1
    assert all(t == pytest.approx(0.1 + k * 0.5 / 24, abs=1e-9) for k, t in enumerate(ticks))
    clock.set_bpm(60, 2.1)
    n = len(ticks)
    drive(co, rec, 4.1)                      # 2 beats at 60 bpm
    later = [t for t, m in rec.sent if m == F8][n:]
    assert len(later) == 48
    assert later[1] - later[0] == pytest.approx(1.0 / 24)


def test_driver_sends_stop_then_spp_continue_on_the_grid_after_a_resume() -> None:
    clock = InternalClock(120, 4)
    rec = Recorder()
    co = ClockOutput(clock, rec, 4)
    clock.start(0.0)
    drive(co, rec, 1.03)                      # 8.24 steps
    clock.stop(1.03)
    drive(co, rec, 2.0)
    assert rec.sent[-1][1] == FC
    clock.start(2.0, 8.0)                     # the runtime resumes on a whole step
    drive(co, rec, 2.2)
    after = [m for t, m in rec.sent if t >= 2.0]
    assert after[:3] == [spp(8), FB, F8]
    co.stop()
    assert rec.sent[-1][1] == FC


def test_relaying_a_followed_midi_clock() -> None:
    """With ``--clock midi``, ticks out follow the DAW's ticks in (tempo and Stop)."""
    clock = MidiClockFollower(4, 120)
    rec = Recorder()
    co = ClockOutput(clock, rec, 4)
    clock.on_message(FA, 0.0)
    period = 60 / (100 * 24)
    for k in range(48):
        clock.on_message(F8, k * period)
        rec.now = k * period
        co.send_due(rec.now + 0.001)
    ticks = [t for t, m in rec.sent if m == F8]
    assert rec.sent[0][1] == FA
    assert len(ticks) >= 46
    clock.on_message(FC, 48 * period)
    co.send_due(48 * period)
    assert rec.sent[-1][1] == FC


@pytest.mark.parametrize(("argv", "want"), [
    ((), None), (("--clock-out",), ""), (("--clock-out", "Synth"), "Synth")])
def test_clock_out_option(argv: tuple[str, ...], want: str | None) -> None:
    _, opts, _ = parse(*argv)
    assert opts["clock_out"] == want


def test_clock_out_true_in_a_config_file_means_the_output_port(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "c.toml"
    cfg.write_text("clock_out = true\nclock = 'link'\n")
    _, opts, _ = parse("--config", str(cfg))
    assert opts["clock_out"] == "" and opts["clock"] == "link"
    cfg.write_text("clock_out = 3\n")
    with pytest.raises(ConfigError, match="--clock-out 3"):
        parse("--config", str(cfg))


def test_driver_hands_ticks_a_lead_ahead_with_their_due_times_to_a_scheduling_port() -> None:
    clock = InternalClock(120, 4)
    rec = Recorder()
    placed: list[tuple[float, float, tuple[int, ...]]] = []   # (handed at, due, message)
    co = ClockOutput(clock, rec, 4)
    co.lead = 0.007
    co.send_at = lambda msgs, at: placed.extend(
        (rec.now, t, m) for m, t in zip(msgs, at, strict=True))
    clock.start(0.1)
    drive(co, rec, 1.1)                      # two beats at 120 bpm, from 0.1 s
    assert [m for _, m in rec.sent] == [FA]   # Start goes now
    assert [m for _, _, m in placed] == [F8] * (2 * 24 + 1)
    assert all(due == pytest.approx(0.1 + k * 0.5 / 24, abs=1e-9)
               for k, (_, due, _) in enumerate(placed))
    assert all(due - handed == pytest.approx(0.007, abs=1e-9) for handed, due, _ in placed[1:])
