"""Checks on what liveduet sends: valid MIDI bytes, one note per machine voice, nothing left on."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from liveduet.core.midimsg import CHANNEL_DATA, SYSTEM_DATA


def midi_problem(msg: Sequence[int]) -> str | None:
    """Why ``msg`` is not one complete, valid MIDI message, or None when it is."""
    if not msg:
        return "empty message"
    if any(not isinstance(b, int) or not 0 <= b <= 255 for b in msg):
        return f"{list(msg)}: bytes must be ints 0..255"
    status, data = msg[0], msg[1:]
    if status < 0x80:
        return f"{list(msg)}: starts with a data byte"
    if status == 0xF0:
        ok = len(msg) >= 2 and msg[-1] == 0xF7 and all(b < 0x80 for b in msg[1:-1])
        return None if ok else f"{list(msg)}: malformed sysex"
    want = CHANNEL_DATA.get(status & 0xF0) if status < 0xF0 else SYSTEM_DATA.get(status)
    if want is None:
        return f"{list(msg)}: undefined status byte"
    if len(data) != want:
        return f"{list(msg)}: status {status:#x} takes {want} data bytes"
    if any(b >= 0x80 for b in data):
        return f"{list(msg)}: data byte >= 0x80"
    return None


@dataclass
class Sounding:
    """Follows note-on/off of an output stream: what is sounding, per key and per voice."""

    keys: set[tuple[int, int]] = field(default_factory=set)
    voices: dict[int, tuple[int, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def take(self, msg: Sequence[int], voice: int | None = None) -> None:
        """Account one sent message; ``voice`` is the machine voice that sent it, if any."""
        problem = midi_problem(msg)
        if problem:
            self.problems.append(problem)
            return
        kind, key = msg[0] & 0xF0, (msg[0] & 0x0F, msg[1] if len(msg) > 1 else -1)
        if kind == 0x90 and msg[2] > 0:
            if voice is not None and voice in self.voices and self.voices[voice] != key:
                self.problems.append(f"voice {voice} starts {key} while {self.voices[voice]} "
                                     "still sounds")
            self.keys.add(key)
            if voice is not None:
                self.voices[voice] = key
        elif kind in (0x80, 0x90):
            self.keys.discard(key)
            self.voices = {v: k for v, k in self.voices.items() if k != key}
        elif kind == 0xB0 and msg[1] in (120, 123):  # all sound / all notes off
            self.keys = {k for k in self.keys if k[0] != (msg[0] & 0x0F)}
            self.voices = {v: k for v, k in self.voices.items() if k[0] != (msg[0] & 0x0F)}

    def take_all(self, msgs: Iterable[Sequence[int]]) -> None:
        """Account several messages without voice information."""
        for msg in msgs:
            self.take(msg)


def sounding_keys(msgs: Iterable[Sequence[int]]) -> set[tuple[int, int]]:
    """(channel, pitch) of every note-on in ``msgs`` without a later note-off (no CC 123)."""
    on: set[tuple[int, int]] = set()
    for m in msgs:
        if m[0] & 0xF0 == 0x90 and m[2] > 0:
            on.add((m[0] & 0x0F, m[1]))
        elif m[0] & 0xF0 in (0x80, 0x90):
            on.discard((m[0] & 0x0F, m[1]))
    return on
