"""The note ledger: every note liveduet sounds, so every note-on gets its note-off.

One :class:`Ledger` serves three places. The engine owns notes through it: a machine voice
holds at most one note, and thru copies of the human's notes are ledgered too, so panic and
every exit path close them; it returns the messages that keep it true. The sender and the port
set watch the wire instead (:meth:`Ledger.sent`): every note-on that went out is sounding until
its note-off went out, so an exit path can end it, and a receiver unplugged meanwhile gets the
note-offs it missed (:meth:`Ledger.repair`).

Keys are reference-counted per (channel, pitch): when a machine voice and a thru copy share a
key, the note-off goes out when the last owner lets go. A key owned by a thru copy or seen on
the wire has one owner however often it is retriggered, as a synthesizer hears it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

NOTE_ON = 0x90
NOTE_OFF = 0x80
CONTROL = 0xB0
ALL_NOTES_OFF = 123
Key = tuple[int, int]
"""(channel 0-15, pitch)."""


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
    """Sounding notes by owner; emits the note-on/off messages that keep it true.

    For a receiver that may be unplugged: ``touched`` holds every key that sounded since the
    last :meth:`checkpoint`; :meth:`receiver_lost` makes them ``orphans`` (the receiver may hold
    them and their note-offs may have gone nowhere), and :meth:`repair` gives note-offs for the
    orphans not sounding now (a sounding note's own note-off will still reach it). At most one
    entry per key, so these sets stay small however long nobody checks.
    """

    def __init__(self) -> None:
        self._voices: dict[int, Key] = {}
        self._keyed: set[Key] = set()  # thru copies, or notes seen on the wire
        self._keys: dict[Key, int] = {}  # owners per sounding key
        self.touched: set[Key] = set()
        self.orphans: set[Key] = set()

    # -- queries --------------------------------------------------------------------------
    def pitch(self, voice: int) -> int | None:
        """Pitch sounding in machine ``voice``, or ``None``."""
        held = self._voices.get(voice)
        return None if held is None else held[1]

    def machine_notes(self) -> dict[int, Key]:
        """Machine voice -> (channel, pitch) of every sounding machine note."""
        return dict(self._voices)

    def thru_notes(self) -> set[Key]:
        """(channel, pitch) of every sounding thru copy (or note seen on the wire)."""
        return set(self._keyed)

    @property
    def sounding(self) -> set[Key]:
        """(channel, pitch) of everything sounding, whoever owns it."""
        return set(self._keys)

    @property
    def empty(self) -> bool:
        """True when nothing liveduet sent is sounding."""
        return not self._keys

    # -- machine voices -------------------------------------------------------------------
    def on(self, voice: int, channel: int, pitch: int, velocity: int, pos: float) -> list[Out]:
        """Start ``pitch`` in ``voice`` (closing its previous note first)."""
        outs = self.off(voice, pos)
        key = (channel, pitch)
        self._voices[voice] = key
        self._hold(key)
        outs.append(Out(pos, (NOTE_ON | channel, pitch, max(1, min(127, velocity))), voice))
        return outs

    def off(self, voice: int, pos: float) -> list[Out]:
        """Stop the note of ``voice`` if one sounds."""
        held = self._voices.pop(voice, None)
        if held is None:
            return []
        return self._release(held, pos, voice)

    def _hold(self, key: Key) -> None:
        self._keys[key] = self._keys.get(key, 0) + 1
        self.touched.add(key)

    def _let_go(self, key: Key) -> bool:
        """One owner of ``key`` lets go; True when it was the last (the note ends)."""
        left = self._keys[key] - 1
        if left:
            self._keys[key] = left
            return False
        del self._keys[key]
        return True

    def _release(self, key: Key, pos: float, voice: int | None) -> list[Out]:
        return [Out(pos, (NOTE_OFF | key[0], key[1], 0), voice)] if self._let_go(key) else []

    def _key_on(self, key: Key) -> None:
        if key not in self._keyed:
            self._keyed.add(key)
            self._hold(key)

    def _key_off(self, key: Key) -> bool:
        """The keyed owner of ``key`` lets go; True when a note-off must go out."""
        if key not in self._keyed:
            return False
        self._keyed.discard(key)
        return self._let_go(key)

    # -- thru copies and the wire ---------------------------------------------------------
    def thru_on(self, channel: int, pitch: int, velocity: int, pos: float) -> list[Out]:
        """Pass a human note-on through (a repeated key retriggers, one owner)."""
        self._key_on((channel, pitch))
        return [Out(pos, (NOTE_ON | channel, pitch, velocity))]

    def thru_off(self, channel: int, pitch: int, pos: float) -> list[Out]:
        """Pass a human note-off through if its note-on went through."""
        ended = self._key_off((channel, pitch))
        return [Out(pos, (NOTE_OFF | channel, pitch, 0))] if ended else []

    def sent(self, msg: Sequence[int]) -> None:
        """Account one message that went out on the wire (anything but a note is ignored)."""
        if len(msg) < 3:
            return
        kind, key = msg[0] & 0xF0, (msg[0] & 0x0F, msg[1])
        if kind == NOTE_ON and msg[2] > 0:
            self._key_on(key)
        elif kind in (NOTE_OFF, NOTE_ON):
            self._key_off(key)

    def ends_sounding(self, msg: Sequence[int]) -> bool:
        """True when ``msg`` is a note-off for a note that sounds now."""
        kind = msg[0] & 0xF0
        off = kind == NOTE_OFF or (kind == NOTE_ON and len(msg) > 2 and msg[2] == 0)
        return off and (msg[0] & 0x0F, msg[1]) in self._keys

    # -- exit paths -----------------------------------------------------------------------
    def release_machine(self, pos: float) -> list[Out]:
        """Note-off for every machine voice."""
        outs: list[Out] = []
        for voice in sorted(self._voices):
            outs += self.off(voice, pos)
        return outs

    def release_thru(self, pos: float) -> list[Out]:
        """Note-off for every thru copy (or note seen on the wire)."""
        outs: list[Out] = []
        for key in sorted(self._keyed):
            outs += self.thru_off(key[0], key[1], pos)
        return outs

    def release_all(self, pos: float) -> list[Out]:
        """Note-off for everything sounding."""
        return self.release_machine(pos) + self.release_thru(pos)

    def offs(self) -> list[tuple[int, ...]]:
        """The messages of :meth:`release_all` (everything sounding is forgotten)."""
        return [o.msg for o in self.release_all(0.0)]

    # -- a receiver that may be unplugged -------------------------------------------------
    def checkpoint(self) -> None:
        """End of one check: from now on only what sounds or starts counts as touched."""
        self.touched = set(self._keys)

    def receiver_lost(self) -> None:
        """A receiver was unplugged: what sounded since the last check may hang there."""
        self.orphans |= self.touched

    def repair(self) -> list[tuple[int, int, int]]:
        """Note-offs for orphaned keys that are not sounding now; forget the orphans."""
        keys = sorted(self.orphans - self._keys.keys())
        self.orphans = set()
        return [(NOTE_OFF | ch, pitch, 0) for ch, pitch in keys]
