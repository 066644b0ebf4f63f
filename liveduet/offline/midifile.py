"""MIDI files <-> notes in beats, and MIDI files <-> grid tokens through a codec.

Reading pairs each note-on with the next note-off (or velocity-0 note-on) of the same channel
and pitch; a note-on that is never closed ends at the end of its track, and a repeated note-on
of a sounding pitch closes the earlier one first. Times are in beats (quarter notes).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import mido
import numpy as np

from liveduet.core.codec import EncodeReport, GridCodec, TimedNote
from liveduet.core.metre import Metre, MetreChange, MetreMap
from liveduet.errors import ConfigError, LiveduetError


@dataclass(frozen=True)
class Part:
    """One track to write: its name, MIDI channel (0-15) and notes in beats."""

    name: str
    channel: int
    notes: Sequence[TimedNote]
    program: int | None = None


def load(path: str | os.PathLike[str]) -> mido.MidiFile:
    """Open a MIDI file, converting any read failure into one clear error."""
    try:
        mid = mido.MidiFile(os.fspath(path))
    except FileNotFoundError as err:
        raise LiveduetError(f"{path}: no such MIDI file; check the path") from err
    except (OSError, EOFError, ValueError, KeyError, IndexError) as err:
        raise LiveduetError(
            f"{path}: not a readable Standard MIDI File ({err}); export it again from your DAW "
            "as a .mid (type 0 or 1)"
        ) from err
    if not 0 < mid.ticks_per_beat < 0x8000:  # 0 divides by zero; bit 15 set is SMPTE time
        raise LiveduetError(
            f"{path}: its header gives {mid.ticks_per_beat} ticks per beat; liveduet reads files "
            "timed in ticks per beat (1..32767): export it again from your DAW")
    return mid


def tempo_bpm(mid: mido.MidiFile, default: float = 120.0) -> float:
    """The first tempo in the file, in beats per minute."""
    for track in mid.tracks:
        for msg in track:
            if msg.type == "set_tempo" and msg.tempo > 0:  # a 0 tempo would divide by zero
                return float(mido.tempo2bpm(msg.tempo))
    return default


def read_metres(mid: mido.MidiFile, steps_per_quarter: int = 4) -> MetreMap | None:
    """The file's time signatures as a metre map on the grid, or None when it has none.

    A time signature that the grid cannot hold (e.g. 7/32 on a 16th grid) is skipped.
    """
    tpb = float(mid.ticks_per_beat)
    changes: dict[int, Metre] = {}
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type != "time_signature":
                continue
            try:
                metre = Metre(msg.numerator, msg.denominator, steps_per_quarter)
            except ConfigError:
                continue
            changes[round(tick / tpb * steps_per_quarter)] = metre
    if not changes:
        return None
    return MetreMap([MetreChange(step, metre) for step, metre in sorted(changes.items())])


def read_notes(
    mid: mido.MidiFile, track: int | None = None, channel: int | None = None, voice: int = 0
) -> list[TimedNote]:
    """Notes of ``mid`` (optionally one track and/or channel) in beats, sorted by start."""
    if track is not None and not 0 <= track < len(mid.tracks):
        raise LiveduetError(f"track {track} does not exist; the file has "
                            f"{plural(len(mid.tracks), 'track')} (0..{len(mid.tracks) - 1})")
    tracks = mid.tracks if track is None else [mid.tracks[track]]
    tpb = float(mid.ticks_per_beat)
    notes: list[TimedNote] = []
    for trk in tracks:
        notes.extend(_track_notes(trk, tpb, channel, voice))
    return sorted(notes)


def _track_notes(
    trk: Iterable[mido.Message], tpb: float, channel: int | None, voice: int
) -> list[TimedNote]:
    out: list[TimedNote] = []
    sounding: dict[tuple[int, int], tuple[float, int]] = {}
    tick = 0
    for msg in trk:
        tick += msg.time
        if msg.type not in ("note_on", "note_off") or (
            channel is not None and msg.channel != channel
        ):
            continue
        key = (msg.channel, msg.note)
        now = tick / tpb
        if key in sounding:
            start, vel = sounding.pop(key)
            if now > start:
                out.append(TimedNote(start, msg.note, now, voice, vel))
        if msg.type == "note_on" and msg.velocity > 0:
            sounding[key] = (now, msg.velocity)
    end = tick / tpb
    for (_ch, pitch), (start, vel) in sounding.items():
        if end > start:
            out.append(TimedNote(start, pitch, end, voice, vel))
    return out


def write_parts(
    parts: Sequence[Part], bpm: float = 120.0, ticks_per_beat: int = 480,
    metres: MetreMap | None = None,
) -> mido.MidiFile:
    """A type-1 MIDI file: a tempo track with the time signatures, then one track per part."""
    mid = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    last = 0
    for change in (metres or MetreMap()).changes:
        tick = max(0, round(change.step / change.metre.steps_per_quarter * ticks_per_beat))
        meta.append(mido.MetaMessage("time_signature", numerator=change.metre.numerator,
                                     denominator=change.metre.denominator, time=tick - last))
        last = tick
    mid.tracks.append(meta)
    for part in parts:
        mid.tracks.append(_part_track(part, ticks_per_beat))
    return mid


def _part_track(part: Part, tpb: int) -> mido.MidiTrack:
    events: list[tuple[int, int, mido.Message]] = []
    for n in part.notes:
        on, off = round(n.start * tpb), round(n.end * tpb)
        events.append((on, 1, mido.Message("note_on", channel=part.channel, note=n.pitch,
                                           velocity=n.velocity)))
        events.append((off, 0, mido.Message("note_off", channel=part.channel, note=n.pitch)))
    events.sort(key=lambda e: (e[0], e[1]))  # note-offs before note-ons at the same tick
    trk = mido.MidiTrack([mido.MetaMessage("track_name", name=part.name, time=0)])
    if part.program is not None:
        trk.append(mido.Message("program_change", channel=part.channel, program=part.program))
    last = 0
    for tick, _, msg in events:
        trk.append(msg.copy(time=tick - last))
        last = tick
    return trk


def midi_to_frames(
    codec: GridCodec,
    mid: mido.MidiFile,
    voice_tracks: Sequence[tuple[int | None, int | None]] | None = None,
) -> tuple[np.ndarray, EncodeReport]:
    """A MIDI file -> ``[steps, voices]`` frames; voice ``i`` reads ``voice_tracks[i]``.

    ``voice_tracks`` holds (track, channel) selectors per voice; by default a one-voice codec
    reads every note of the file (a chord keeps its top note) and a multi-voice codec reads
    voice ``i`` from the ``i``-th track that has notes.
    """
    if voice_tracks is None:
        if codec.n_voices == 1:
            voice_tracks = [(None, None)]
        else:
            with_notes = [
                i for i, t in enumerate(mid.tracks) if any(m.type == "note_on" for m in t)
            ]
            if len(with_notes) < codec.n_voices:
                raise LiveduetError(
                    f"the file has {plural(len(with_notes), 'track')} with notes; the codec needs "
                    f"{codec.n_voices} (one per voice); pass voice_tracks"
                )
            voice_tracks = [(t, None) for t in with_notes[: codec.n_voices]]
    timed: list[TimedNote] = []
    for v, (trk, ch) in enumerate(voice_tracks):
        timed.extend(read_notes(mid, trk, ch, voice=v))
    notes, report = codec.quantize(timed)
    frames, enc = codec.encode(notes)
    report.merge(enc)
    report.notes_in = len(timed)
    return frames, report


def frames_to_midi(
    codec: GridCodec, frames: np.ndarray, bpm: float = 120.0, channels: Sequence[int] | None = None
) -> mido.MidiFile:
    """``[steps, voices]`` frames -> a type-1 MIDI file with one track per voice."""
    notes = codec.to_beats(codec.decode(frames))
    chans = list(channels) if channels is not None else list(range(codec.n_voices))
    parts = [
        Part(v.name, chans[i], [n for n in notes if n.voice == i])
        for i, v in enumerate(codec.voices)
    ]
    return write_parts(parts, bpm)


def plural(count: int, noun: str) -> str:
    """``'1 track'``, ``'2 tracks'``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
