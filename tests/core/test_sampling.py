"""Sampling: masks, temperature/top-p/density, key estimation."""

from __future__ import annotations

import numpy as np
import pytest

from liveduet.core.codec import HOLD, N_SPECIAL, REST, chorale_codec, melody_codec
from liveduet.core.sampling import Sampler, estimate_key, key_pcs, scale_pcs

CODEC = melody_codec(48, 84)


def pitches(mask: np.ndarray) -> list[int]:
    return [CODEC.low + t - N_SPECIAL for t in np.flatnonzero(mask) if t >= N_SPECIAL]


def draw(sampler: Sampler, logits: np.ndarray, legal: np.ndarray, n: int = 2000,
         **kw: float) -> np.ndarray:
    opts: dict = {"temperature": 1.0, "top_p": 1.0, "density": 0.5, **kw}
    us = np.random.default_rng(0).random(n)
    return np.array([sampler.sample(logits, legal, u=float(u), **opts) for u in us])


def test_range_and_key_masks() -> None:
    s = Sampler(CODEC)
    legal = s.legal(0, 60, 72, scale_pcs(2, "major"), allow_hold=False)
    assert pitches(legal) == [61, 62, 64, 66, 67, 69, 71]  # D major within 60..72
    assert legal[REST] and not legal[HOLD]
    assert s.legal(0, 60, 72, None, allow_hold=True)[HOLD]


def test_masks_never_leave_a_voice_without_pitches() -> None:
    s = Sampler(CODEC)
    # range 59..60 holds no note of F# pentatonic: the key mask is dropped, the range kept
    assert pitches(s.legal(0, 59, 60, key_pcs("F#", "pentatonic"), False)) == [59, 60]
    # a range outside the voice: the voice's own range
    assert pitches(s.legal(0, 100, 110, None, False)) == list(range(48, 85))


def test_voice_ranges_of_a_multi_voice_codec() -> None:
    codec = chorale_codec()
    legal = Sampler(codec).legal(3, 0, 127, None, False)  # bass 33..64
    got = [codec.low + t - N_SPECIAL for t in np.flatnonzero(legal) if t >= N_SPECIAL]
    assert got == list(range(33, 65))


def test_low_temperature_and_small_top_p_pick_the_top_pitch() -> None:
    s = Sampler(CODEC)
    logits = np.linspace(0, 1, CODEC.vocab_size).astype(np.float32)
    legal = s.legal(0, 0, 127, None, True)
    got = draw(s, logits, legal, temperature=0.05, top_p=0.05)
    assert set(got.tolist()) == {HOLD, REST, 39}  # the event still follows the model


def event_shares(tokens: np.ndarray) -> tuple[float, float, float]:
    return (float(np.mean(tokens == HOLD)), float(np.mean(tokens == REST)),
            float(np.mean(tokens >= N_SPECIAL)))


def test_temperature_moves_pitches_not_the_note_density() -> None:
    s = Sampler(CODEC)
    logits = np.zeros(CODEC.vocab_size, dtype=np.float32)
    logits[HOLD], logits[REST] = 3.0, 1.0  # HOLD the likeliest event, as on a 16th grid
    logits[[10, 11, 12]] = [1.5, 1.0, 0.5]
    legal = s.legal(0, 0, 127, None, True)
    cold, hot = (draw(s, logits, legal, temperature=t) for t in (0.3, 1.7))
    assert event_shares(cold) == event_shares(hot)  # same u, same event
    assert np.mean(cold[cold >= N_SPECIAL] == 10) > 0.6 > 0.2 > np.mean(hot[hot >= N_SPECIAL] == 10)


def test_a_key_mask_keeps_the_note_density() -> None:
    s = Sampler(CODEC)
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 1, CODEC.vocab_size).astype(np.float32)
    free = s.legal(0, 0, 127, None, True)
    keyed = s.legal(0, 0, 127, scale_pcs(0, "pentatonic"), True)
    plain = draw(s, logits, free, voice=0)
    masked = draw(s, logits, keyed, voice=0)
    assert event_shares(plain) == event_shares(masked)
    assert all(CODEC.pitch_of(int(t)) % 12 in {0, 2, 4, 7, 9} for t in masked if t >= N_SPECIAL)
    # without the voice's note pool the masked notes' mass would go to HOLD and REST
    thinned = draw(s, logits, keyed)
    assert event_shares(thinned)[2] < event_shares(masked)[2]


def test_temperature_spreads_and_top_p_truncates() -> None:
    s = Sampler(CODEC)
    logits = np.zeros(CODEC.vocab_size, dtype=np.float32)
    logits[[10, 11, 12]] = [3.0, 2.0, 1.0]
    legal = s.legal(0, 0, 127, None, True)
    hot = draw(s, logits, legal, temperature=2.0)
    cold = draw(s, logits, legal, temperature=0.5)
    assert (cold == 10).mean() > 0.7 > 0.2 > (hot == 10).mean()  # ~0.80 and ~0.10
    nucleus = draw(s, logits, legal, temperature=0.5, top_p=0.85)  # 0.80 + 0.11 >= 0.85
    notes = nucleus[nucleus >= N_SPECIAL]
    assert set(notes.tolist()) <= {10, 11} and len(notes) > 0.9 * len(nucleus)


def test_top_p_never_makes_hold_absorbing() -> None:
    """P(HOLD) above top_p must not freeze a note: top-p trims pitches, not the event."""
    s = Sampler(CODEC)
    logits = np.full(CODEC.vocab_size, -4.0, dtype=np.float32)
    logits[HOLD] = 2.5  # P(HOLD) ~ 0.946 > top_p, 37 other legal tokens share ~0.054
    legal = s.legal(0, 0, 127, None, True)
    got = draw(s, logits, legal, n=4000, top_p=0.9)
    share = float((got != HOLD).mean())
    assert 0.035 < share < 0.075  # the model's own ~5% chance to move on survives top-p


def test_density_biases_note_ons() -> None:
    s = Sampler(CODEC)
    logits = np.zeros(CODEC.vocab_size, dtype=np.float32)
    legal = s.legal(0, 0, 127, None, True)
    busy = (draw(s, logits, legal, density=1.0) >= N_SPECIAL).mean()
    even = (draw(s, logits, legal, density=0.5) >= N_SPECIAL).mean()
    sparse = (draw(s, logits, legal, density=0.0) >= N_SPECIAL).mean()
    assert sparse < 0.5 < even < busy  # at 0.5 the 37 pitches vs HOLD+REST as given
    assert abs(even - 37 / 39) < 0.03


def test_sample_respects_the_mask_and_refuses_nan() -> None:
    s = Sampler(CODEC)
    logits = np.full(CODEC.vocab_size, 5.0, dtype=np.float32)
    legal = s.legal(0, 60, 62, None, False)
    assert set(draw(s, logits, legal).tolist()) <= {REST, *[CODEC.note_on(p) for p in (60, 61,
                                                                                         62)]}
    logits[7] = np.nan
    assert s.sample(logits, legal, temperature=1, top_p=1, density=0.5, u=0.3) is None
    logits[7] = np.inf
    assert s.sample(logits, legal, temperature=1, top_p=1, density=0.5, u=0.3) is None


@pytest.mark.parametrize(("notes", "expected"), [
    ([62, 64, 66, 67, 69, 71, 73, 74, 69, 66, 62], (2, "major")),      # D major scale
    ([57, 60, 64, 57, 59, 60, 62, 64, 65, 64, 60, 57], (9, "minor")),  # A minor
    ([67, 71, 74, 67, 72, 71, 69, 67, 66, 67], (7, "major")),          # G major
])
def test_estimate_key(notes: list[int], expected: tuple[int, str]) -> None:
    assert estimate_key(notes) == expected


def test_key_pcs_settings() -> None:
    assert key_pcs("off", "major") is None
    assert key_pcs("C", "chromatic") is None
    assert key_pcs("A", "minor") == frozenset({9, 11, 0, 2, 4, 5, 7})
    assert key_pcs("auto", "major", []) is None  # nothing heard yet: no mask
    d_major = [(p, 1.0) for p in (62, 64, 66, 67, 69, 71, 73, 74)]
    assert key_pcs("auto", "major", d_major) == scale_pcs(2, "major")
    assert key_pcs("auto", "pentatonic", d_major) == scale_pcs(2, "pentatonic")
    assert estimate_key([60, 60, 60]) is None


def test_keyed_uniform_is_a_deterministic_uniform_stream() -> None:
    from liveduet.core.sampling import keyed_uniform

    us = np.array([keyed_uniform(3, n, v) for n in range(4000) for v in range(2)])
    assert ((us >= 0) & (us < 1)).all()
    assert abs(us.mean() - 0.5) < 0.02 and abs(us.var() - 1 / 12) < 0.005
    hist = np.histogram(us, bins=10, range=(0, 1))[0]
    assert hist.min() > 650  # 800 expected per bin
    assert keyed_uniform(3, 17, 1) == keyed_uniform(3, 17, 1)
    assert len({keyed_uniform(s, 17, 1) for s in range(50)}) == 50
    assert abs(np.corrcoef(us[:-2:2], us[2::2])[0, 1]) < 0.05  # successive steps
