"""How the engine hears the human: MIDI messages become notes on the grid, held keys, the
sustain pedal and the thru copy, and what changed sends the engine back to re-decide.

:class:`Hearing` is the input side of :class:`liveduet.core.engine.Engine` (its base class): it
reads and changes the engine's state named below, and calls back into the engine to re-decide
steps whose input changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from liveduet.core.ledger import CONTROL, NOTE_OFF, NOTE_ON, Ledger, Out
from liveduet.core.midimsg import is_valid
from liveduet.core.settings import Settings
from liveduet.core.sustain import SUSTAIN, Pedal
from liveduet.core.turns import ACCOMPANYING, ANSWERING, HumanRecord

KEEP_EMITTED = 2  # emitted steps kept re-runnable for input that arrives late


class Hearing:
    """The engine's input side; the engine provides the state and the methods it uses."""

    _settings: Settings
    _human: HumanRecord
    _pedal: Pedal
    _ledger: Ledger
    _plan: Any
    _running: bool
    _emit: int
    _last_pos: float
    _last_input: float | None
    counters: dict[str, int]
    codec: Any

    def _x(self, pos: float) -> float:
        raise NotImplementedError

    def _redecide(self, step: int, at: float) -> list[Out]:
        raise NotImplementedError

    def _emit_step(self, n: int, at: float, retrigger: bool = True) -> list[Out]:
        raise NotImplementedError

    def _current_phase(self) -> str:
        raise NotImplementedError

    def feed(self, pos: float, msg: Sequence[int]) -> list[Out]:
        """One human MIDI message at ``pos``; returns what must go out now."""
        return self.feed_many(((pos, msg),))

    def feed_many(self, events: Sequence[tuple[float, Sequence[int]]]) -> list[Out]:
        """Human messages that arrived together, in order: the state of feeding them one by one,
        with one re-decision at the end instead of one per message.

        A busy conductor drains its queue into one call, so a burst of notes costs one model
        re-run; only the intermediate answers (superseded before they could sound) are skipped.
        """
        outs: list[Out] = []
        changed: int | None = None     # first step whose human input changed
        onset: int | None = None       # last step a note began (harmonize answers up to it)
        at = self._last_pos
        for pos, msg in events:
            if not is_valid(msg):
                self.counters["bad_input"] += 1  # a broken message is dropped, never passed on
                continue
            self._last_pos = at = max(self._last_pos, pos)
            status, kind, ch = msg[0], msg[0] & 0xF0, msg[0] & 0x0F
            if status >= 0xF0:
                continue  # clock and transport are the runtime's
            if kind not in (NOTE_ON, NOTE_OFF):
                if self._settings.thru:
                    outs.append(Out(pos, tuple(msg)))
                if kind == CONTROL and msg[1] == SUSTAIN and (step := self._pedal_change(
                        pos, ch, int(msg[2]))) is not None:
                    changed = step if changed is None else min(changed, step)
                if kind == CONTROL and msg[1] in (120, 123) and self._running:
                    step = self._human.all_off(self._human_step(pos), ch)  # All Notes Off
                    if step is not None:
                        changed = step if changed is None else min(changed, step)
                continue
            pitch, vel = int(msg[1]), int(msg[2])
            self._last_input = pos
            if kind == NOTE_ON and vel > 0:
                step = self._human_on(pos, ch, pitch, vel, outs)
                if step is not None:
                    onset = step if onset is None else max(onset, step)
            else:
                step = self._human_off(pos, ch, pitch, outs)
            if step is not None:
                changed = step if changed is None else min(changed, step)
        if changed is not None:
            outs += self._redecide(changed, at)
        if onset is not None:
            if self._settings.mode == "harmonize" and onset >= self._emit:
                for n in range(self._emit, onset + 1):
                    outs += self._emit_step(n, at)  # harmony of this note goes out now
            self._plan.extend(onset + 1)  # lookahead waits: the answer goes out first
        return outs

    def _human_step(self, pos: float) -> int:
        step = self._human.step_of(self._x(pos))
        base = max(self._plan.base(), self._emit - KEEP_EMITTED, 0)
        if step < base:
            self.counters["late_input"] += 1
            step = base
        return step

    def _human_on(self, pos: float, ch: int, pitch: int, vel: int, outs: list[Out]) -> int | None:
        """Record a note-on (thru copy, barge-in note-offs into ``outs``); its step or None."""
        if self._settings.thru:
            outs += self._ledger.thru_on(ch, pitch, vel, pos)
        if not self._running:
            return None
        self.counters["human_notes"] += 1
        self._pedal.strike(ch, pitch)
        step = self._human.note_on(self._human_step(pos), pitch, vel, ch)
        mode = self._settings.mode
        if mode in ("call", "continue") and self._current_phase() in (ANSWERING, ACCOMPANYING):
            voices = [self._plan.hv] if mode == "continue" else range(self.codec.n_voices)
            for v in voices:
                outs += self._ledger.off(v, pos)  # barge-in: the human takes the voice now
        return step

    def _human_off(self, pos: float, ch: int, pitch: int, outs: list[Out]) -> int | None:
        """Record a note-off (thru copy into ``outs``); the first changed step or None. Under
        the sustain pedal the note goes on sounding for turn-taking until the pedal is up."""
        outs += self._ledger.thru_off(ch, pitch, pos)
        if not self._running or self._pedal.hold(ch, pitch):
            return None
        return self._human.note_off(self._human_step(pos), pitch, ch)

    def _pedal_change(self, pos: float, ch: int, value: int) -> int | None:
        """The sustain pedal moved: the notes it held end now; the first changed step."""
        first: int | None = None
        for pitch in self._pedal.change(ch, value):
            if self._running and (step := self._human.note_off(self._human_step(pos), pitch,
                                                               ch)) is not None:
                first = step if first is None else min(first, step)
        return first
