"""The sustain pedal (CC 64) as a player means it: a key released under the pedal still sounds.

Pure bookkeeping for the engine's turn-taking: while the pedal is down on a channel, the
note-offs of that channel are held back; when the pedal comes up they all take effect. So a
pianist who lifts the hands but holds the pedal is still playing, and the call goes on.
"""

from __future__ import annotations

SUSTAIN = 64
ON = 64  # CC values 64..127 mean pedal down (the MIDI convention for switch controllers)


class Pedal:
    """Pedal state per channel and the note-offs it holds back."""

    def __init__(self) -> None:
        self._down: set[int] = set()
        self._held: set[tuple[int, int]] = set()

    def change(self, channel: int, value: int) -> list[int]:
        """A CC 64 ``value`` on ``channel``; returns the pitches whose note-off takes effect now
        (the pedal came up), lowest first."""
        if value >= ON:
            self._down.add(channel)
            return []
        self._down.discard(channel)
        released = sorted(p for c, p in self._held if c == channel)
        self._held = {(c, p) for c, p in self._held if c != channel}
        return released

    def hold(self, channel: int, pitch: int) -> bool:
        """A key released: True when the pedal holds it (its note-off waits)."""
        if channel in self._down:
            self._held.add((channel, pitch))
            return True
        return False

    def strike(self, channel: int, pitch: int) -> None:
        """A key struck again: the held note ends with the new note-on, not at pedal-up."""
        self._held.discard((channel, pitch))

    def clear(self) -> None:
        """Forget every pedal and held note (a new transport anchor)."""
        self._down.clear()
        self._held.clear()
