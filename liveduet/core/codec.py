"""Token vocabularies shared by training and the live loop: the ``grid`` codec.

The grid codec writes one token per voice per grid step (a 16th note by default)::

    BOS            start of a sequence (fed once after a reset, never sampled)
    HOLD           the voice's current note goes on sounding through this step
    REST           the voice is silent in this step
    NOTE_ON(p)     a new note of pitch ``p`` starts at this step (``low <= p <= high``)

Several voices are interleaved in a fixed order inside each step: the flat sequence is
``step0/voice0, step0/voice1, ..., step1/voice0, ...``. Each voice has a role: ``given`` (always
fed from the human, never sampled), ``sampled`` (always the machine's) or ``shared`` (a one-voice
codec where human and machine take turns on the same line).

Encoding notes is deterministic and every lossy decision is counted in an
:class:`EncodeReport`, never silent:

* a note whose start or end is off the grid is rounded to the nearest step (``off_grid``);
  a note shorter than one step lasts one step;
* a pitch outside its voice's range is moved by whole octaves into it (``folded``), or dropped
  when the range is narrower than an octave and no octave fits (``dropped_range``);
* several notes starting on the same step in one voice: the highest is kept (``dropped_chord``);
* a note starting while an earlier one still sounds cuts the earlier one short (``truncated``).

Decoding is the exact inverse for canonical frames: ``encode(decode(f)) == f``. A HOLD with
no sounding note (only a sampler can produce one) decodes as a rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from liveduet.errors import CodecError

BOS = 0
HOLD = 1
REST = 2
N_SPECIAL = 3
ROLES = ("given", "sampled", "shared")
GRID_VERSION = 1


@dataclass(frozen=True)
class Voice:
    """One voice of a grid codec: a name, an inclusive MIDI pitch range and a role."""

    name: str
    low: int
    high: int
    role: str = "shared"

    def __post_init__(self) -> None:
        if not self.name:
            raise CodecError("voice name is empty; give every voice a name such as 'melody'")
        if not (0 <= self.low <= self.high <= 127):
            raise CodecError(
                f"voice {self.name!r} has range {self.low}..{self.high}; "
                "use MIDI pitches 0..127 with low <= high"
            )
        if self.role not in ROLES:
            raise CodecError(f"voice {self.name!r} has role {self.role!r}; use one of {ROLES}")

    def contains(self, pitch: int) -> bool:
        """True when ``pitch`` lies in this voice's range."""
        return self.low <= pitch <= self.high


@dataclass(frozen=True, order=True)
class Note:
    """A note on the grid: ``start`` and ``end`` are step indices, ``end`` exclusive."""

    start: int
    pitch: int
    end: int
    voice: int = 0
    velocity: int = 100

    def __post_init__(self) -> None:
        if self.end <= self.start or self.start < 0:
            raise CodecError(f"note {self} must have 0 <= start < end")
        if not (0 <= self.pitch <= 127 and 1 <= self.velocity <= 127):
            raise CodecError(f"note {self} needs pitch 0..127 and velocity 1..127")


@dataclass(frozen=True, order=True)
class TimedNote:
    """A note in musical time: ``start``/``end`` in beats (quarter notes)."""

    start: float
    pitch: int
    end: float
    voice: int = 0
    velocity: int = 100


@dataclass
class EncodeReport:
    """Counts of every lossy decision made while encoding notes."""

    notes_in: int = 0
    off_grid: int = 0
    folded: int = 0
    dropped_range: int = 0
    dropped_chord: int = 0
    truncated: int = 0

    @property
    def dropped(self) -> int:
        """Notes that did not survive encoding."""
        return self.dropped_range + self.dropped_chord

    def merge(self, other: EncodeReport) -> None:
        """Add ``other``'s counts into this report."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class GridCodec:
    """The ``grid`` codec: tempo-locked, one token per voice per step."""

    voices: tuple[Voice, ...]
    steps_per_beat: int = 4
    name: str = field(default="grid", init=False)

    def __post_init__(self) -> None:
        if not self.voices:
            raise CodecError("a grid codec needs at least one voice")
        if self.steps_per_beat not in (1, 2, 3, 4, 6, 8, 12, 16, 24):
            raise CodecError(
                f"steps_per_beat={self.steps_per_beat}; use a divisor of 24 ppqn such as 4 (16ths)"
            )
        names = [v.name for v in self.voices]
        if len(set(names)) != len(names):
            raise CodecError(f"voice names {names} repeat; give each voice its own name")
        if len(self.voices) > 1 and any(v.role == "shared" for v in self.voices):
            raise CodecError("'shared' is for one-voice codecs; mark each voice given or sampled")

    # -- vocabulary ---------------------------------------------------------------------------
    @cached_property
    def low(self) -> int:
        """Lowest pitch in the vocabulary."""
        return min(v.low for v in self.voices)

    @cached_property
    def high(self) -> int:
        """Highest pitch in the vocabulary."""
        return max(v.high for v in self.voices)

    @cached_property
    def vocab_size(self) -> int:
        """Number of token ids."""
        return N_SPECIAL + self.high - self.low + 1

    @property
    def n_voices(self) -> int:
        """Voices interleaved per step."""
        return len(self.voices)

    def note_on(self, pitch: int) -> int:
        """Token id of NOTE_ON(pitch)."""
        if not self.low <= pitch <= self.high:
            raise CodecError(f"pitch {pitch} is outside the vocabulary {self.low}..{self.high}")
        return N_SPECIAL + pitch - self.low

    def pitch_of(self, token: int) -> int | None:
        """Pitch of a NOTE_ON token, ``None`` for special tokens."""
        if not 0 <= token < self.vocab_size:
            raise CodecError(f"token {token} is outside the vocabulary 0..{self.vocab_size - 1}")
        return None if token < N_SPECIAL else self.low + token - N_SPECIAL

    def token_name(self, token: int) -> str:
        """Human-readable name of a token id, e.g. ``NOTE_ON(60)``."""
        pitch = self.pitch_of(token)
        return ("BOS", "HOLD", "REST")[token] if pitch is None else f"NOTE_ON({pitch})"

    def voice_tokens(self, voice: int) -> np.ndarray:
        """Boolean mask over the vocabulary of the tokens voice ``voice`` may emit."""
        v = self.voices[voice]
        mask = np.zeros(self.vocab_size, dtype=bool)
        mask[[HOLD, REST]] = True
        mask[self.note_on(v.low) : self.note_on(v.high) + 1] = True
        return mask

    def roles(self, role: str) -> list[int]:
        """Indices of voices with ``role``."""
        return [i for i, v in enumerate(self.voices) if v.role == role]

    # -- frames <-> flat token sequence -------------------------------------------------------
    def interleave(self, frames: np.ndarray) -> np.ndarray:
        """``[steps, voices]`` frames -> flat int64 token sequence in voice order per step."""
        frames = np.asarray(frames, dtype=np.int64)
        if frames.ndim != 2 or frames.shape[1] != self.n_voices:
            raise CodecError(f"frames of shape {frames.shape}; expected [steps, {self.n_voices}]")
        return frames.reshape(-1)

    def deinterleave(self, tokens: Sequence[int] | np.ndarray) -> np.ndarray:
        """Flat token sequence -> ``[steps, voices]`` frames (length must be whole steps)."""
        arr = np.asarray(tokens, dtype=np.int64)
        if arr.ndim != 1 or arr.size % self.n_voices:
            raise CodecError(
                f"{arr.size} tokens is not a whole number of steps of {self.n_voices} voices"
            )
        return arr.reshape(-1, self.n_voices)

    # -- notes <-> frames ---------------------------------------------------------------------
    def encode(
        self, notes: Iterable[Note], n_steps: int | None = None
    ) -> tuple[np.ndarray, EncodeReport]:
        """Grid notes -> ``[steps, voices]`` frames, with a report of every lossy decision."""
        report = EncodeReport()
        by_voice: list[list[Note]] = [[] for _ in self.voices]
        for note in notes:
            report.notes_in += 1
            if not 0 <= note.voice < self.n_voices:
                raise CodecError(f"{note} names voice {note.voice}; the codec has {self.n_voices}")
            fitted = self._fit_range(note, report)
            if fitted is not None:
                by_voice[note.voice].append(fitted)
        last = max((n.end for vs in by_voice for n in vs), default=0)
        steps = last if n_steps is None else n_steps
        frames = np.full((steps, self.n_voices), REST, dtype=np.int64)
        for v, vnotes in enumerate(by_voice):
            self._write_voice(frames[:, v], vnotes, report)
        return frames, report

    def _fit_range(self, note: Note, report: EncodeReport) -> Note | None:
        voice = self.voices[note.voice]
        if voice.contains(note.pitch):
            return note
        pitch = note.pitch
        while pitch < voice.low:
            pitch += 12
        while pitch > voice.high:
            pitch -= 12
        if not voice.contains(pitch):
            report.dropped_range += 1
            return None
        report.folded += 1
        return Note(note.start, pitch, note.end, note.voice, note.velocity)

    @staticmethod
    def _order(n: Note) -> tuple[int, int]:
        return (n.start, -n.pitch)

    def _write_voice(self, column: np.ndarray, notes: list[Note], report: EncodeReport) -> None:
        """Write one voice's notes into its column: highest wins a shared start."""
        notes.sort(key=self._order)
        prev: Note | None = None
        for note in notes:
            if note.start >= column.size:
                report.dropped_range += 1
                continue
            if prev is not None and note.start == prev.start:
                report.dropped_chord += 1
                continue
            if prev is not None and note.start < prev.end:
                report.truncated += 1
            column[note.start] = self.note_on(note.pitch)
            column[note.start + 1 : note.end] = HOLD
            prev = note

    def decode(self, frames: np.ndarray, velocity: int = 100) -> list[Note]:
        """``[steps, voices]`` frames -> grid notes sorted by (start, pitch)."""
        frames = np.asarray(frames)
        if frames.ndim != 2 or frames.shape[1] != self.n_voices:
            raise CodecError(f"frames of shape {frames.shape}; expected [steps, {self.n_voices}]")
        notes: list[Note] = []
        for v in range(self.n_voices):
            start = pitch = None
            for step, token in enumerate(frames[:, v].tolist()):
                if token == HOLD and start is not None:
                    continue
                if start is not None:
                    notes.append(Note(start, pitch, step, v, velocity))
                    start = None
                if token == BOS:
                    raise CodecError(f"BOS at step {step} of voice {v}; BOS only starts a sequence")
                p = self.pitch_of(int(token))
                if p is not None:
                    start, pitch = step, p
            if start is not None:
                notes.append(Note(start, pitch, frames.shape[0], v, velocity))
        return sorted(notes)

    # -- musical time <-> grid ----------------------------------------------------------------
    def quantize(self, notes: Iterable[TimedNote]) -> tuple[list[Note], EncodeReport]:
        """Notes in beats -> grid notes; off-grid starts/ends round to the nearest step."""
        report = EncodeReport()
        out: list[Note] = []
        spb = self.steps_per_beat
        for tn in notes:
            s, e = tn.start * spb, tn.end * spb
            start, end = round(s), round(e)
            if abs(s - start) > 1e-6 or abs(e - end) > 1e-6:
                report.off_grid += 1
            out.append(Note(max(start, 0), tn.pitch, max(end, start + 1), tn.voice, tn.velocity))
        return out, report

    def to_beats(self, notes: Iterable[Note]) -> list[TimedNote]:
        """Grid notes -> notes in beats (exact inverse of :meth:`quantize` on the grid)."""
        spb = self.steps_per_beat
        return [TimedNote(n.start / spb, n.pitch, n.end / spb, n.voice, n.velocity) for n in notes]

    # -- metadata -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """JSON-ready description that rebuilds this exact vocabulary."""
        return {
            "name": self.name,
            "version": GRID_VERSION,
            "steps_per_beat": self.steps_per_beat,
            "voices": [
                {"name": v.name, "low": v.low, "high": v.high, "role": v.role} for v in self.voices
            ],
            "vocab_size": self.vocab_size,
        }

    def dumps(self) -> str:
        """The JSON text stored in a model's metadata."""
        return json.dumps(self.to_json(), sort_keys=True)


Codec = GridCodec


def codec_from_json(data: dict[str, Any] | str) -> GridCodec:
    """Rebuild a codec from :meth:`GridCodec.to_json` output (dict or JSON text)."""
    try:
        obj = json.loads(data) if isinstance(data, str) else dict(data)
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise CodecError(f"codec description is not JSON ({err}); store GridCodec.dumps()") from err
    if obj.get("name") != "grid":
        raise CodecError(f"codec {obj.get('name')!r} is unknown; this liveduet knows: 'grid'")
    if obj.get("version", GRID_VERSION) != GRID_VERSION:
        raise CodecError(f"grid codec version {obj.get('version')}; this liveduet reads version 1")
    try:
        voices = tuple(
            Voice(str(v["name"]), int(v["low"]), int(v["high"]), str(v.get("role", "shared")))
            for v in obj["voices"]
        )
        codec = GridCodec(voices, int(obj.get("steps_per_beat", 4)))
    except (KeyError, TypeError, ValueError) as err:
        raise CodecError(
            f"codec description lacks or mistypes {err}; see GridCodec.to_json"
        ) from err
    if "vocab_size" in obj and int(obj["vocab_size"]) != codec.vocab_size:
        raise CodecError(
            f"codec says vocab_size {obj['vocab_size']} but its voices give {codec.vocab_size}"
        )
    return codec


def melody_codec(low: int = 48, high: int = 84, steps_per_beat: int = 4) -> GridCodec:
    """The one-voice codec of call-and-response and continuation models."""
    return GridCodec((Voice("melody", low, high, "shared"),), steps_per_beat)


def chorale_codec(steps_per_beat: int = 4) -> GridCodec:
    """Four voices, soprano given by the human, alto/tenor/bass sampled."""
    return GridCodec(
        (
            Voice("soprano", 55, 84, "given"),
            Voice("alto", 50, 79, "sampled"),
            Voice("tenor", 43, 72, "sampled"),
            Voice("bass", 33, 64, "sampled"),
        ),
        steps_per_beat,
    )
