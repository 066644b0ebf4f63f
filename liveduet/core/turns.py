"""What the human played, per grid step, and the turn-taking policy of each mode.

Both are pure and step-indexed so the engine can re-run any step after a rollback and reach
the same decision. :class:`HumanRecord` quantises the human's notes to steps (a note belongs
to the step it is nearest to, within ``tolerance``); :func:`next_turn` moves the turn state
over one step given what the human did in it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

from liveduet.core.metre import Metre, StepGrid, parse_metre
from liveduet.core.settings import Settings
from liveduet.errors import ConfigError

LISTENING = "listening"
ANSWERING = "answering"
ACCOMPANYING = "accompanying"
IDLE = "idle"
HELD_LIMIT_STEPS = 128
"""A key held this many steps (8 bars of 4/4 in 16ths: 16 s at 120 bpm) stops counting as
sounding: far longer than any phrase, so it is a note-off that never came (lost under load, a
cable pulled mid-note). Until then call mode waits for the human; after, it answers again."""
HELD_LIMIT_ONSETS = 16
"""A held key also stops counting once this many later notes have started over it (from the
step of the last of them): a pedal note under a 16-note melody still holds the turn while the
melody plays, but a flood that lost note-offs leaves no key held a moment after it ends."""


@dataclass(slots=True)
class HumanNote:
    """One human note on the grid: ``end`` is exclusive, ``None`` while the key is held."""

    start: int
    pitch: int
    velocity: int
    channel: int
    end: int | None = None
    later: int = 0              # notes that started while this key was held
    cut: int | None = None      # the step the HELD_LIMIT_ONSETS-th of them started

    def expiry(self) -> int:
        """The step from which a held key no longer counts (the held limits)."""
        limit = self.start + HELD_LIMIT_STEPS
        return limit if self.cut is None else min(limit, self.cut)

    def sounds_at(self, step: int) -> bool:
        """True when the note sounds in ``step`` (a held key only up to the held limits)."""
        end = self.expiry() if self.end is None else self.end
        return self.start <= step < end


@dataclass(frozen=True, slots=True)
class HumanIn:
    """What the human does in one step: the (highest) onset pitch and whether they sound."""

    onset: int | None
    sounding: bool


class HumanRecord:
    """The human's notes quantised to grid steps (kept only as far back as needed)."""

    def __init__(self, tolerance: float = 0.5) -> None:
        self.tolerance = tolerance
        self.notes: list[HumanNote] = []
        self.recent: deque[HumanNote] = deque(maxlen=24)
        self.velocities: deque[int] = deque(maxlen=8)

    def step_of(self, x: float) -> int:
        """The step a note at fractional step ``x`` belongs to."""
        return math.floor(x + 1.0 - self.tolerance)

    def note_on(self, step: int, pitch: int, velocity: int, channel: int) -> int:
        """Record a note-on at ``step``; returns the first step whose input changed. A repeated
        note-on of a held key closes the held one first: a key counts once."""
        self.note_off(step, pitch, channel)
        for held in self.notes:
            if held.end is None and held.cut is None:
                held.later += 1
                if held.later >= HELD_LIMIT_ONSETS:
                    held.cut = max(step, held.start + 1)
        note = HumanNote(step, pitch, velocity, channel)
        self.notes.append(note)
        self.recent.append(note)
        self.velocities.append(velocity)
        return step

    def note_off(self, step: int, pitch: int, channel: int) -> int | None:
        """Close the held note ``pitch``; returns the first changed step (None if not held)."""
        for note in self.notes:
            if note.end is None and note.pitch == pitch and note.channel == channel:
                if step > note.expiry():  # it stopped counting already: nothing changes now
                    note.end = note.expiry()
                    return None
                note.end = max(step, note.start + 1)
                return note.end
        return None

    def all_off(self, step: int, channel: int) -> int | None:
        """All Notes Off (CC 123) or All Sound Off (CC 120) on ``channel``: close every held
        key there; the first changed step (None if none was held)."""
        changed: int | None = None
        for note in self.notes:
            if note.end is None and note.channel == channel:
                note.end = max(step, note.start + 1)
                changed = note.end if changed is None else min(changed, note.end)
        return changed

    def at(self, step: int) -> HumanIn:
        """The human's onset and sounding state at ``step`` (held notes go on sounding)."""
        onset: int | None = None
        sounding = False
        for note in self.notes:
            if note.sounds_at(step):
                sounding = True
                if note.start == step and (onset is None or note.pitch > onset):
                    onset = note.pitch
        return HumanIn(onset, sounding)

    def held(self, step: int | None = None) -> bool:
        """True while any human key is down (at ``step``: within the held limit)."""
        return any(n.end is None and (step is None or n.sounds_at(step)) for n in self.notes)

    def key_notes(self, before: int) -> list[tuple[int, float]]:
        """(pitch, duration in steps) of recent notes starting before ``before``, as heard by
        then: a note still sounding at ``before`` counts up to it, whenever it ends later (so
        a step's key never depends on a note-off that came after it)."""
        return [(n.pitch, float(min(n.end or before, before) - n.start)) for n in self.recent
                if n.start < before]

    def prune(self, before: int) -> None:
        """Forget notes that ended before step ``before``; a key held past the held limits
        counts as ended there (its note-off was lost), so stale keys cannot pile up."""
        for note in self.notes:
            if note.end is None and note.expiry() < before:
                note.end = note.expiry()
        self.notes = [n for n in self.notes if n.end is None or n.end >= before]

    def clear(self) -> None:
        """Forget everything (a new transport anchor)."""
        self.notes.clear()


@dataclass(frozen=True, slots=True)
class Turn:
    """Turn state after a step: the mode and phase, and the call/answer bookkeeping."""

    mode: str
    phase: str
    call_start: int | None = None
    call_end: int = 0
    silent: int = 0
    answer_left: int = 0
    pending_end: bool = False
    waiting: bool = False  # continue: the human just stopped; the machine resumes on the beat


def initial_turn(mode: str) -> Turn:
    """The turn state on entering ``mode``."""
    phase = {"call": LISTENING, "continue": ACCOMPANYING, "harmonize": ACCOMPANYING}
    return Turn(mode, phase.get(mode, IDLE))


def response_steps(settings: Settings, call_len: int, bar_steps: int) -> int:
    """Answer length in steps: response_bars, or the call's length, clamped to min/max bars.

    With ``answer_at`` bar the length is whole bars (the call's length rounded, at least one),
    so an answer that enters on a bar line also ends on one.
    """
    bars = settings.response_bars or call_len / bar_steps
    if settings.answer_at == "bar":
        bars = max(1, round(bars))
    bars = min(max(bars, settings.response_min_bars), settings.response_max_bars)
    if settings.answer_at == "bar":
        bars = max(1, math.floor(bars + 1e-9))
    return max(1, round(bars * bar_steps))


def entry_point(settings: Settings, grid: StepGrid, step: int) -> bool:
    """Whether a machine phrase may enter at ``step`` under ``answer_at``."""
    if settings.answer_at == "bar":
        return grid.is_bar_line(step)
    if settings.answer_at == "beat":
        return grid.is_beat(step)
    return True


def next_turn(turn: Turn, settings: Settings, hin: HumanIn, step: int, end_call: bool,
              grid: StepGrid) -> Turn:
    """The turn state for ``step`` given what the human does in it.

    Call mode: the human's notes are the call; the call is over after ``listen_gap`` silent
    steps (or an end-of-call), and with ``answer_at`` bar also at a bar line the human leaves
    silent, as a musician trading phrases stops on the bar. The answer then enters at the next
    entry point (``entry_point``: bar line, beat, or at once) and lasts ``response_steps``.
    """
    if turn.mode != settings.mode:
        turn = initial_turn(settings.mode)
    if settings.mode == "continue":
        return _continue_turn(turn, settings, hin, step, grid)
    if settings.mode != "call":
        return turn
    pending = turn.pending_end or end_call
    if hin.sounding:
        start = step if turn.phase == ANSWERING or turn.call_start is None else turn.call_start
        return Turn("call", LISTENING, start, step + 1, 0, 0, pending)
    if turn.phase == ANSWERING:
        if turn.answer_left > 0:
            return replace(turn, answer_left=turn.answer_left - 1, pending_end=False)
        turn = Turn("call", LISTENING)
        pending = False
    if turn.call_start is None and not pending:
        return turn
    ready = pending or turn.silent >= settings.listen_gap or (
        settings.answer_at == "bar" and turn.call_start is not None
        and step - turn.call_start >= grid.beat_steps(step))
    if ready and entry_point(settings, grid, step):
        end = step if settings.answer_at == "bar" else turn.call_end
        call_len = 0 if turn.call_start is None else end - turn.call_start
        length = response_steps(settings, call_len, grid.bar_steps(step))
        return Turn("call", ANSWERING, None, 0, 0, length - 1, False)
    return replace(turn, silent=turn.silent + 1, pending_end=pending)


def _continue_turn(turn: Turn, settings: Settings, hin: HumanIn, step: int,
                   grid: StepGrid) -> Turn:
    """Continue mode: after the human takes the line, the machine resumes on the next beat
    (at once with ``answer_at`` gap), so its line keeps the bar's pulse."""
    if hin.sounding:
        return replace(turn, waiting=settings.answer_at != "gap")
    if turn.waiting and grid.is_beat(step):
        return replace(turn, waiting=False)
    return turn


def machine_owns(turn: Turn, human_voice: bool) -> bool:
    """Whether the machine plays a voice in this step (the human's voice only when silent)."""
    if turn.phase == ANSWERING:
        return True
    if turn.phase != ACCOMPANYING:
        return False
    return not human_voice or (turn.mode == "continue" and not turn.waiting)


def parse_steps(text: str | int, steps_per_beat: int = 4, metre: str | Metre = "4/4") -> int:
    """A length in steps from '4', '4s'/'4steps', '1b'/'1beat', '2bar'/'0.5bars' (whole steps).

    ``steps_per_beat`` is the grid's steps per quarter note; a beat and a bar are the metre's
    (a 6/8 beat is a dotted quarter, its bar two of them).
    """
    raw = str(text).strip().lower()
    m = parse_metre(metre, steps_per_beat)
    beat, bar = m.beat_steps, m.bar_steps
    units = {"": 1, "s": 1, "step": 1, "steps": 1, "b": beat, "beat": beat, "beats": beat,
             "bar": bar, "bars": bar}
    num = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(num):].strip()
    try:
        value = float(num) * units[unit]
    except (KeyError, ValueError) as err:
        raise ConfigError(f"length {text!r} is not understood; give steps ('4'), beats ('1b') "
                          "or bars ('2bar')") from err
    if value != int(value) or value <= 0:
        raise ConfigError(f"length {text!r} is {value:g} steps; give a whole number of steps > 0")
    return int(value)
