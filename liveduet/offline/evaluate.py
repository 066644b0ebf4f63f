"""Teacher-forced scoring of token sequences and MIDI files by a :class:`StepModel`.

Each piece is scored from a fresh state: ``reset()``, feed BOS, then every token of the piece
is predicted from what came before it (teacher forcing, via :meth:`StepModel.prime`). NLL is in
nats. ``nll_per_token`` averages over every scored token (all voices of a multi-voice codec);
``nll_per_note`` is the same total NLL divided by the number of NOTE_ON tokens scored (the
notes), so it is comparable across codecs that spend different numbers of tokens per note.

A model with a position input gets each input's ``metre-v1`` position id: the id of the grid
step of the token it predicts (:func:`liveduet.core.metre.predicted_step`), from the piece's own
metre when the caller knows it (the export pipeline passes the corpus's ids) and from a
:class:`~liveduet.core.metre.MetreMap` otherwise (4/4 from the first step unless given).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import mido
import numpy as np

from liveduet.core.codec import BOS, N_SPECIAL, EncodeReport, GridCodec
from liveduet.core.metre import Metre, MetreMap, predicted_step
from liveduet.core.model import StepModel
from liveduet.errors import LiveduetError
from liveduet.offline import midifile

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


def input_positions(n_inputs: int, n_voices: int, steps: Sequence[int] | np.ndarray
                    ) -> np.ndarray:
    """Position ids of flat inputs ``0..n_inputs-1`` (BOS first) from per-step ids."""
    step_ids = np.asarray(steps, dtype=np.int64)
    idx = np.minimum(predicted_step(np.arange(n_inputs), n_voices), step_ids.size - 1)
    return step_ids[idx]


def score_tokens(model: StepModel, tokens: Sequence[int] | np.ndarray,
                 positions: Sequence[int] | np.ndarray | None = None,
                 metre: MetreMap | None = None) -> Score:
    """Teacher-forced NLL of one interleaved token sequence (without BOS) from a fresh state.

    ``positions``: the ``metre-v1`` id of every grid step of the piece (else from ``metre``,
    4/4 by default); only a model with a position input reads them.
    """
    body = np.asarray(tokens, dtype=np.int64)
    n_voices = model.codec.n_voices
    model.reset()
    seq = np.concatenate([[BOS], body])
    pos = None
    if model.has_position:
        n_steps = max(1, -(-body.size // n_voices))
        if positions is None:
            positions = (metre or MetreMap()).position_ids(0, n_steps)
        pos = input_positions(seq.size, n_voices, positions)
    nll = np.empty(body.size)
    for start in range(0, body.size, CHUNK):
        inputs = seq[start : start + CHUNK]
        targets = body[start : start + CHUNK]
        chunk_pos = None if pos is None else pos[start : start + targets.size]
        logp = _log_softmax(model.prime(inputs[: targets.size], positions=chunk_pos)[0])
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
    return score_tokens(model, model.codec.interleave(frames), metre=midi_metre(mid, codec)
                        ), report


def midi_metre(mid: mido.MidiFile, codec: GridCodec) -> MetreMap:
    """The metre of a MIDI file for position ids: its first ``time_signature`` (4/4 when it
    has none or one the grid cannot hold), bars counted from the file's start."""
    for track in mid.tracks:
        for msg in track:
            if msg.type == "time_signature":
                try:
                    return MetreMap(Metre(msg.numerator, msg.denominator, codec.steps_per_beat))
                except LiveduetError:
                    return MetreMap(Metre(4, 4, codec.steps_per_beat))
    return MetreMap(Metre(4, 4, codec.steps_per_beat))


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
