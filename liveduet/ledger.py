"""The note ledger: every note liveduet sounds, so every note-on gets its note-off.

Machine voices hold at most one note each. Thru copies of the human's notes are ledgered too,
so panic and every exit path close them. Keys are reference-counted per (channel, pitch): when
a machine voice and a thru copy share a key, the note-off goes out when the last owner lets go.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

NOTE_ON = 0x90
NOTE_OFF = 0x80
CONTROL = 0xB0
ALL_NOTES_OFF = 123


@dataclass(frozen=True, slots=True)
class Out:
    """A MIDI message to send at grid position ``pos`` (at or before now: send at once).

    ``voice`` is the machine voice (codec voice index) that produced it; ``None`` for thru
    copies of the human's messages and for panic controller messages.
    """

    pos: float
    msg: tuple[int, ...]
    voice: int | None = None


class Ledger:
    """Sounding notes by owner; emits the note-on/off messages that keep it true."""

    def __init__(self) -> None:
        self._voices: dict[int, tuple[int, int]] = {}
        self._thru: set[tuple[int, int]] = set()
        self._keys: Counter[tuple[int, int]] = Counter()

    # -- queries --------------------------------------------------------------------------
    def pitch(self, voice: int) -> int | None:
        """Pitch sounding in machine ``voice``, or ``None``."""
        held = self._voices.get(voice)
        return None if held is None else held[1]

    def machine_notes(self) -> dict[int, tuple[int, int]]:
        """Machine voice -> (channel, pitch) of every sounding machine note."""
        return dict(self._voices)

    def thru_notes(self) -> set[tuple[int, int]]:
        """(channel, pitch) of every sounding thru copy."""
        return set(self._thru)

    @property
    def empty(self) -> bool:
        """True when nothing liveduet sent is sounding."""
        return not self._voices and not self._thru

    # -- machine voices -------------------------------------------------------------------
    def on(self, voice: int, channel: int, pitch: int, velocity: int, pos: float) -> list[Out]:
        """Start ``pitch`` in ``voice`` (closing its previous note first)."""
        outs = self.off(voice, pos)
        self._voices[voice] = (channel, pitch)
        self._keys[(channel, pitch)] += 1
        outs.append(Out(pos, (NOTE_ON | channel, pitch, max(1, min(127, velocity))), voice))
        return outs

    def off(self, voice: int, pos: float) -> list[Out]:
        """Stop the note of ``voice`` if one sounds."""
        held = self._voices.pop(voice, None)
        if held is None:
            return []
        return self._release(held, pos, voice)

    def _release(self, key: tuple[int, int], pos: float, voice: int | None) -> list[Out]:
        self._keys[key] -= 1
        if self._keys[key] > 0:
            return []
        del self._keys[key]
        return [Out(pos, (NOTE_OFF | key[0], key[1], 0), voice)]

    # -- thru -----------------------------------------------------------------------------
    def thru_on(self, channel: int, pitch: int, velocity: int, pos: float) -> list[Out]:
        """Pass a human note-on through (a repeated key retriggers, one owner)."""
        key = (channel, pitch)
        if key not in self._thru:
            self._thru.add(key)
            self._keys[key] += 1
        return [Out(pos, (NOTE_ON | channel, pitch, velocity))]

    def thru_off(self, channel: int, pitch: int, pos: float) -> list[Out]:
        """Pass a human note-off through if its note-on went through."""
        key = (channel, pitch)
        if key not in self._thru:
            return []
        self._thru.discard(key)
        return self._release(key, pos, None)

    # -- exit paths -----------------------------------------------------------------------
    def release_machine(self, pos: float) -> list[Out]:
        """Note-off for every machine voice."""
        outs: list[Out] = []
        for voice in sorted(self._voices):
            outs += self.off(voice, pos)
        return outs

    def release_thru(self, pos: float) -> list[Out]:
        """Note-off for every thru copy."""
        outs: list[Out] = []
        for key in sorted(self._thru):
            outs += self.thru_off(key[0], key[1], pos)
        return outs

    def release_all(self, pos: float) -> list[Out]:
        """Note-off for everything sounding."""
        return self.release_machine(pos) + self.release_thru(pos)
