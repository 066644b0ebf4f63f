"""The listener's check: sample 8 bars from a model and describe range, rhythm and key.

    python -m export.listen models/folk_melody.onnx --bars 8 --seeds 0 1 2
    python -m export.listen models/chorale_satb.onnx --soprano-from chorale   # harmonise a
                                                    # validation chorale's soprano

Sampling: temperature softmax, each voice masked to its own range (``voice_tokens``), BOS and
(for the first step) HOLD excluded. A model with a position input gets the ``metre-v1`` id of
each predicted step (``--meter``, or the given chorale's own ids). Writes MIDI files under
``export/runs/listen/``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from liveduet.core.codec import BOS, HOLD, N_SPECIAL, GridCodec
from liveduet.core.metre import MetreMap, parse_metre, predicted_step
from liveduet.core.model import StepModel
from liveduet.offline import midifile

OUT = Path(__file__).resolve().parent / "runs" / "listen"
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


def sample_token(logits: np.ndarray, mask: np.ndarray, temperature: float,
                 rng: np.random.Generator) -> int:
    """One token from ``softmax(logits / temperature)`` restricted to ``mask``."""
    x = np.where(mask, logits.astype(np.float64) / temperature, -np.inf)
    p = np.exp(x - x.max())
    return int(rng.choice(p.size, p=p / p.sum()))


def generate(model: StepModel, steps: int, temperature: float, seed: int,
             given: np.ndarray | None = None, positions: np.ndarray | None = None
             ) -> np.ndarray:
    """``[steps, voices]`` frames: given voices copied from ``given``, the rest sampled.

    ``positions``: the position id of each step (4/4 from step 0 when None).
    """
    codec = model.codec
    n = codec.n_voices
    rng = np.random.default_rng(seed)
    masks = [codec.voice_tokens(v) for v in range(n)]
    frames = np.zeros((steps, n), dtype=np.int64)
    ids = np.asarray(MetreMap().position_ids(0, steps + 1) if positions is None else positions)
    model.reset()
    model.set_position(int(ids[0]))
    logits = model.step(BOS)[0].copy()
    for t in range(steps):
        for v in range(n):
            if given is not None and codec.voices[v].role == "given":
                tok = int(given[t, v])
            else:
                mask = masks[v].copy()
                if t == 0:
                    mask[HOLD] = False
                tok = sample_token(logits, mask, temperature, rng)
            frames[t, v] = tok
            model.set_position(int(ids[min(predicted_step(1 + t * n + v, n), ids.size - 1)]))
            logits = model.step(tok)[0].copy()
    model.reset()
    return frames


def estimate_key(pitches: list[int]) -> tuple[str, float]:
    """Krumhansl-Schmuckler key of a pitch list: name and correlation."""
    hist = np.bincount(np.asarray(pitches) % 12, minlength=12).astype(float)
    best = ("?", -2.0)
    for tonic in range(12):
        for mode, prof in (("major", MAJOR), ("minor", MINOR)):
            r = float(np.corrcoef(hist, np.roll(prof, tonic))[0, 1])
            if r > best[1]:
                best = (f"{NAMES[tonic]} {mode}", r)
    return best


def describe(codec: GridCodec, frames: np.ndarray) -> dict[str, Any]:
    """Range, rhythm, key and loop checks of generated frames."""
    notes = codec.decode(frames)
    out: dict[str, Any] = {"steps": int(frames.shape[0]), "voices": {}}
    for v, voice in enumerate(codec.voices):
        vn = [n for n in notes if n.voice == v]
        pitches = [n.pitch for n in vn]
        if not pitches:
            out["voices"][voice.name] = {"notes": 0}
            continue
        runs, run = [], 1
        for a, b in itertools.pairwise(pitches):
            run = run + 1 if a == b else 1
            runs.append(run)
        rest_steps = int((frames[:, v] == 2).sum())
        out["voices"][voice.name] = {
            "notes": len(vn), "range": [min(pitches), max(pitches)],
            "in_voice_range": all(voice.contains(p) for p in pitches),
            "distinct_pitches": len(set(pitches)),
            "longest_same_pitch_run": max(runs, default=1),
            "durations_16ths": dict(sorted(Counter(n.end - n.start for n in vn).items())),
            "rest_fraction": round(rest_steps / frames.shape[0], 2),
            "onsets_on_beat": round(sum(n.start % 4 == 0 for n in vn) / len(vn), 2),
            "mean_abs_interval": round(float(np.mean(np.abs(np.diff(pitches)))), 2)
            if len(pitches) > 1 else 0.0,
        }
    key, r = estimate_key([n.pitch for n in notes])
    out["key"], out["key_corr"] = key, round(r, 2)
    return out


def sounding(codec: GridCodec, frames: np.ndarray) -> np.ndarray:
    """``[steps, voices]`` sounding pitch (-1 for silence), holds resolved."""
    out = np.full(frames.shape, -1, dtype=np.int64)
    for v in range(codec.n_voices):
        cur = -1
        for t, tok in enumerate(frames[:, v].tolist()):
            if tok >= N_SPECIAL:
                cur = codec.pitch_of(tok) or -1
            elif tok != HOLD:
                cur = -1
            out[t, v] = cur
    return out


def harmony(codec: GridCodec, frames: np.ndarray) -> dict[str, float]:
    """Share of four-voice steps consonant over the bass, and of steps with voice crossings."""
    s = sounding(codec, frames)
    full = s[(s >= 0).all(axis=1)]
    if not len(full):
        return {"four_voice_steps": 0}
    bass_iv = (full[:, :3] - full[:, 3:4]) % 12
    consonant = np.isin(bass_iv, [0, 3, 4, 7, 8, 9]).all(axis=1)
    crossed = (np.diff(full, axis=1) > 0).any(axis=1)
    return {"four_voice_steps": len(full), "consonant_over_bass": round(consonant.mean(), 2),
            "voice_crossing": round(crossed.mean(), 2)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(prog="python -m export.listen", description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("--bars", type=int, default=8)
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--soprano-from", default="chorale", help="corpus cache whose validation "
                   "pieces give the soprano of a model with a given voice")
    p.add_argument("--meter", default="4/4", help="metre of sampled pieces (position ids)")
    args = p.parse_args(argv)
    model = StepModel(args.model)
    codec = model.codec
    metre = parse_metre(args.meter, codec.steps_per_beat)
    steps = args.bars * metre.bar_steps
    givens: list[np.ndarray | None] = [None] * len(args.seeds)
    ids: list[np.ndarray] = [np.array(MetreMap(metre).position_ids(0, steps))] * len(givens)
    if codec.roles("given"):
        from export.corpus import load

        cache = load(args.soprano_from)
        pairs = [(f, q) for f, q in zip(cache.split(True), cache.split_positions(True),
                                        strict=True) if len(f) >= steps]
        givens = [pairs[i % len(pairs)][0][:steps] for i in range(len(args.seeds))]
        ids = [pairs[i % len(pairs)][1][:steps] for i in range(len(args.seeds))]
    OUT.mkdir(parents=True, exist_ok=True)
    for seed, given, pos in zip(args.seeds, givens, ids, strict=True):
        frames = generate(model, steps, args.temperature, seed, given, pos)
        info = describe(codec, frames)
        if codec.n_voices > 1:
            info["harmony"] = harmony(codec, frames)
            if given is not None:
                info["bach_harmony"] = harmony(codec, given)
        path = OUT / f"{Path(args.model).stem}_seed{seed}.mid"
        midifile.frames_to_midi(codec, frames, 100).save(path)
        info["midi"] = str(path)
        print(json.dumps({"seed": seed, **info}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
