"""Teacher-forced scoring of token sequences and MIDI files by a :class:`StepModel`.

Each piece is scored from a fresh state: ``reset()``, feed BOS, then every token of the piece
is predicted from what came before it (teacher forcing, via :meth:`StepModel.prime`). NLL is in
nats. ``nll_per_token`` averages over every scored token (all voices of a multi-voice codec);
``nll_per_note`` is the same total NLL divided by the number of NOTE_ON tokens scored (the
notes), so it is comparable across codecs that spend different numbers of tokens per note.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from liveduet import midifile
from liveduet.codec import BOS, N_SPECIAL, EncodeReport
from liveduet.errors import LiveduetError
from liveduet.model import StepModel

CHUNK = 2048  # tokens per prime() call; the state carries across calls


@dataclass
class Score:
    """Summed NLL and counts of one or more scored pieces."""

    nll: float = 0.0
    tokens: int = 0
    notes: int = 0
    voice_nll: list[float] = field(default_factory=list)
    voice_tokens: list[int] = field(default_factory=list)

    def add(self, other: Score) -> None:
        """Accumulate ``other`` into this score."""
        self.nll += other.nll
        self.tokens += other.tokens
        self.notes += other.notes
        if not self.voice_nll:
            self.voice_nll = [0.0] * len(other.voice_nll)
            self.voice_tokens = [0] * len(other.voice_tokens)
        for v in range(len(other.voice_nll)):
            self.voice_nll[v] += other.voice_nll[v]
            self.voice_tokens[v] += other.voice_tokens[v]

    @property
    def nll_per_token(self) -> float:
        """Mean NLL of a scored token (nats)."""
        return self.nll / self.tokens if self.tokens else float("nan")

    @property
    def nll_per_note(self) -> float:
        """Total NLL divided by the number of NOTE_ON tokens (nats per note)."""
        return self.nll / self.notes if self.notes else float("nan")


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x -= x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def score_tokens(model: StepModel, tokens: Sequence[int] | np.ndarray) -> Score:
    """Teacher-forced NLL of one interleaved token sequence (without BOS) from a fresh state."""
    body = np.asarray(tokens, dtype=np.int64)
    n_voices = model.codec.n_voices
    model.reset()
    seq = np.concatenate([[BOS], body])
    nll = np.empty(body.size)
    for start in range(0, body.size, CHUNK):
        inputs = seq[start : start + CHUNK]
        targets = body[start : start + CHUNK]
        logp = _log_softmax(model.prime(inputs[: targets.size])[0])
        nll[start : start + targets.size] = -logp[np.arange(targets.size), targets]
    model.reset()
    voice = np.arange(body.size) % n_voices
    return Score(float(nll.sum()), int(body.size), int((body >= N_SPECIAL).sum()),
                 [float(nll[voice == v].sum()) for v in range(n_voices)],
                 [int((voice == v).sum()) for v in range(n_voices)])


def score_file(model: StepModel, path: str | os.PathLike[str]) -> tuple[Score, EncodeReport]:
    """Read a MIDI file through the model's codec and score it teacher-forced."""
    mid = midifile.load(path)
    codec = model.codec
    if not any(m.type == "note_on" and m.velocity > 0 for t in mid.tracks for m in t):
        raise LiveduetError(f"{path}: the file has no notes at all; give a MIDI file with a "
                            "melody (or all the voices) to score")
    with_notes = sum(any(m.type == "note_on" for m in t) for t in mid.tracks)
    if codec.n_voices > 1 and with_notes < codec.n_voices:
        names = ", ".join(v.name for v in codec.voices)
        raise LiveduetError(f"{path}: {with_notes} track(s) with notes, but this model's codec "
                            f"has {codec.n_voices} voices; give a type-1 MIDI file with one "
                            f"track per voice in the order {names}")
    frames, report = midifile.midi_to_frames(codec, mid)
    if frames.shape[0] == 0 or not (frames >= N_SPECIAL).any():
        raise LiveduetError(f"{path}: no notes in the model's range "
                            f"{model.codec.low}..{model.codec.high}; give a MIDI file with notes")
    return score_tokens(model, model.codec.interleave(frames)), report


def evaluate_files(model: StepModel, paths: Sequence[str | os.PathLike[str]]) -> dict[str, Any]:
    """Score every file; the totals, per-voice NLL, encode report counts and per-file results."""
    if not paths:
        raise LiveduetError("no MIDI files to evaluate; pass one or more .mid files")
    total, report = Score(), EncodeReport()
    files = []
    for path in paths:
        score, rep = score_file(model, path)
        total.add(score)
        report.merge(rep)
        files.append({"file": os.fspath(path), "nll_per_token": score.nll_per_token,
                      "nll_per_note": score.nll_per_note, "notes": score.notes,
                      "tokens": score.tokens})
    per_voice = {v.name: total.voice_nll[i] / max(total.voice_tokens[i], 1)
                 for i, v in enumerate(model.codec.voices)}
    return {"model": model.path, "title": model.title, "nll_per_token": total.nll_per_token,
            "nll_per_note": total.nll_per_note, "notes": total.notes, "tokens": total.tokens,
            "nll_per_voice": per_voice, "report": asdict(report), "files": files}
