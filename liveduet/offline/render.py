"""Offline duet: run the engine in virtual time against a human part and collect its output.

:func:`drive` runs the live runtime's :class:`~liveduet.core.conductor.Conductor` in virtual time
(one second is one grid step): it hands the conductor the human's MIDI messages at their grid
positions and wakes it whenever it asks, and keeps every ``Out`` the engine returns (with its
voice and grid position). :func:`render` turns a human part (notes in beats) into the duet's
parts; :func:`render_file` reads and writes MIDI files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import mido

from liveduet.core.clock import Clock, InternalClock, VirtualTime
from liveduet.core.codec import TimedNote
from liveduet.core.conductor import Conductor, Options
from liveduet.core.engine import Engine, Out
from liveduet.core.events import Midi
from liveduet.core.metre import MetreMap
from liveduet.core.sender import SendMany
from liveduet.errors import LiveduetError
from liveduet.offline import midifile, outfile
from liveduet.offline.midifile import Part

Event = tuple[float, tuple[int, ...]]
OFFLINE = Options(early=0.0, prefetch_after=0.0, status_period=math.inf)
"""Virtual time: nothing asked ahead or put off, and no status snapshots (nobody reads them;
taken five times a step they cost a render a third of its time)."""
SPIN_LIMIT = 50       # wake-ups at one instant that show a conductor spinning
SAME_INSTANT = 1e-6   # a wake-up this close before a human message is at its instant: the
# message goes first (the conductor may wake a rounding error before a step it then emits)


def note_events(notes: Sequence[TimedNote], steps_per_beat: int, channel: int = 0) -> list[Event]:
    """Human notes (beats) -> note-on/off messages at grid positions, offs first on ties."""
    keyed: list[tuple[float, int, tuple[int, ...]]] = []
    for n in notes:
        keyed.append((n.start * steps_per_beat, 1, (0x90 | channel, n.pitch, n.velocity)))
        keyed.append((n.end * steps_per_beat, 0, (0x80 | channel, n.pitch, 0)))
    keyed.sort(key=lambda e: (e[0], e[1], e[2]))
    return [(pos, msg) for pos, _, msg in keyed]


class Recording:
    """An engine whose every returned ``Out`` is also kept in :attr:`outs` (in order)."""

    RETURNING = frozenset(("feed", "feed_many", "advance", "apply", "swap_model", "release_all"))

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.outs: list[Out] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.engine, name)
        if name not in self.RETURNING:
            return attr

        def recorded(*args: Any) -> list[Out]:
            got = attr(*args)
            self.outs += got
            return got
        return recorded


def virtual_conductor(engine: Any, clock: Clock | None = None,
                      sink: SendMany | None = None) -> tuple[Conductor, VirtualTime]:
    """A conductor for ``engine`` in virtual time: by default an internal clock already running
    at one grid step per second from time 0 (positions and times are the same numbers), and a
    sink that drops what is sent."""
    if clock is None:
        clock = InternalClock(60.0, steps_per_beat=1)   # a "beat" per grid step: 1 s each
        clock.start(0.0)
    timer = VirtualTime()
    return Conductor(engine, clock, sink or (lambda msgs, stamps: None), OFFLINE, timer), timer


def wake_until(conductor: Conductor, timer: VirtualTime, end: float) -> int:
    """Let virtual time run to ``end``, ticking the conductor whenever it asks (as the live
    runtime's thread does); returns how many ticks it took.

    Raises:
        RuntimeError: the conductor keeps asking to be woken at an instant its tick does not
            move on (live, that would spin the thread).
    """
    ticks, repeats, last = 0, 0, None
    while (wake := conductor.wake(timer.now)) <= end:
        repeats = repeats + 1 if wake == last else 0
        if repeats >= SPIN_LIMIT:
            raise RuntimeError(f"the conductor keeps asking to be woken at {wake}")
        last = timer.now = max(timer.now, wake)
        conductor.tick(timer.now)
        ticks += 1
    timer.now = end
    return ticks


def drive(engine: Engine, events: Sequence[Event], end: float) -> list[Out]:
    """Hand ``events`` (sorted by position) to a virtual conductor and run it up to ``end``;
    then it shuts down (everything released). Returns the engine's outputs in order.

    Human messages at or before the conductor's next wake-up go first, so a note exactly on a
    step boundary reaches the engine before that step is emitted (as it would live).
    """
    recording = Recording(engine)
    conductor, timer = virtual_conductor(recording)
    i = 0
    while True:
        wake = max(timer.now, conductor.wake(timer.now))
        if i < len(events) and events[i][0] <= wake + SAME_INSTANT:
            timer.now = max(timer.now, events[i][0])
            conductor.handle(timer.now, [Midi(timer.now, events[i][1])])
            i += 1
            continue
        if wake > end:
            break
        timer.now = wake
        conductor.tick(wake)
    timer.now = max(timer.now, end)
    conductor.shutdown(end)
    return recording.outs


def machine_notes(outs: Sequence[Out], steps_per_beat: int) -> dict[int, list[TimedNote]]:
    """Machine voice -> its notes in beats, paired from the engine's note-on/off messages."""
    by_voice: dict[int, list[TimedNote]] = {}
    open_: dict[tuple[int, int], tuple[float, int]] = {}
    for out in outs:
        if out.voice is None or len(out.msg) < 3:
            continue
        kind, pitch, vel = out.msg[0] & 0xF0, out.msg[1], out.msg[2]
        key = (out.voice, pitch)
        if key in open_ and kind in (0x80, 0x90):
            start, v = open_.pop(key)
            if out.pos > start:
                by_voice.setdefault(out.voice, []).append(
                    TimedNote(start / steps_per_beat, pitch, out.pos / steps_per_beat,
                              out.voice, v))
        if kind == 0x90 and vel > 0:
            open_[key] = (out.pos, vel)
    return {v: sorted(ns) for v, ns in sorted(by_voice.items())}


@dataclass
class Duet:
    """The result of a render: the human part, the machine's parts, turns and counters."""

    human: list[TimedNote]
    machine: dict[int, list[TimedNote]]
    voice_names: list[str]
    channels: dict[int, int]
    turns: list[tuple[float, str]]
    status: dict[str, Any] = field(default_factory=dict)
    beats: float = 0.0
    metres: MetreMap = field(default_factory=MetreMap)

    def bar_lines(self) -> list[float]:
        """Beats (quarter notes) of every bar line up to the end."""
        spq = self.metres.changes[0].metre.steps_per_quarter
        return [s / spq for s in self.metres.bar_lines(0, round(self.beats * spq) + 1)]

    def parts(self, human_channel: int = 0) -> list[Part]:
        """Tracks to write: the human's (when there is a human part), then one per machine
        voice."""
        parts = [Part("human", human_channel, self.human)] if self.human else []
        for v, notes in self.machine.items():
            parts.append(Part(f"liveduet {self.voice_names[v]}", self.channels[v], notes))
        return parts


def render(engine: Engine, human: Sequence[TimedNote], *, tail_bars: float | None = None,
           human_channel: int = 0) -> Duet:
    """Run ``engine`` against ``human`` (notes in beats) and return the duet.

    The render runs to the end of the human part plus ``tail_bars`` bars of the metre
    (default: the longest answer in call and continue mode, so a last answer or continuation
    plays out; none in harmonize and off), rounded up to a bar line.
    """
    spb = engine.codec.steps_per_beat
    if tail_bars is None:
        tail_bars = engine.settings.response_max_bars if engine.settings.mode in (
            "call", "continue") else 0.0
    grid = engine.grid
    last = math.ceil(max((n.end for n in human), default=0.0) * spb - 1e-9)
    end = grid.metres.next_bar_line(last)
    for _ in range(math.ceil(tail_bars - 1e-9)):
        end = grid.metres.next_bar_line(end + 1)
    beats = end / spb
    outs = drive(engine, note_events(human, spb, human_channel), end)
    channels = {o.voice: o.msg[0] & 0x0F for o in outs if o.voice is not None}
    names = [v.name for v in engine.codec.voices]
    turns = [(pos / spb, phase) for pos, phase in engine.turns]
    return Duet(list(human), machine_notes(outs, spb), names, channels, turns, engine.status(),
                float(beats), grid.metres)


def pick_part(mid: mido.MidiFile, track: int | None, channel: int | None) -> list[TimedNote]:
    """The human part: ``track`` and/or ``channel`` if given, else the first track with notes."""
    if track is None and channel is None:
        with_notes = [i for i, t in enumerate(mid.tracks)
                      if any(m.type == "note_on" and m.velocity > 0 for m in t)]
        if not with_notes:
            raise LiveduetError("the MIDI file has no notes; give a file with a melody track")
        track = with_notes[0]
    notes = midifile.read_notes(mid, track, channel)
    if not notes:
        where = " and ".join(([] if track is None else [f"track {track}"])
                             + ([] if channel is None else [f"channel {channel + 1}"]))
        raise LiveduetError(f"{where} has no notes; pick the human part with --track/--in-channel")
    return notes


def write(duet: Duet, path: str | os.PathLike[str], bpm: float, human_channel: int = 0) -> None:
    """Write the duet as a type-1 MIDI file (human track first)."""
    mid = midifile.write_parts(duet.parts(human_channel), bpm, metres=duet.metres)
    outfile.write_with(path, lambda fh: mid.save(file=fh))
