"""The pure co-performer: modes, turn taking, lookahead with rollback, and the note ledger.

No threads, no clocks, no ports: positions are float grid steps passed in, and the result of
every call is a list of :class:`Out` messages. The same engine runs live, offline and in tests.

How a session runs. One model state lives for the whole session (BOS is fed once, at start and
after ``Action('reset')``). Each grid step feeds exactly one token per codec voice in the codec's
order: the human's voice gets the human's token (NOTE_ON at the step a note belongs to, HOLD
while held, REST when silent) whenever the human sounds; the machine's voices get sampled tokens
when the turn policy gives them to the machine, REST otherwise.

Steps are *planned* ahead (``lookahead`` steps), each with a snapshot of the model and turn state
taken before it, and *emitted* when their position comes. When what the human does changes the
input of a planned step (a note cut in, a key released, a late soprano note), the engine restores
that step's snapshot and re-runs it and the steps after it with what was really played; a step
already emitted is re-decided and the difference goes out at once. Sampling draws from a
counter-based generator keyed on ``(seed, step, voice)`` (see :mod:`liveduet.sampling`), so a
re-run step draws the same random numbers as its first decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from liveduet.codec import BOS, HOLD, REST, GridCodec
from liveduet.errors import ConfigError
from liveduet.ledger import ALL_NOTES_OFF, CONTROL, NOTE_OFF, NOTE_ON, Ledger, Out
from liveduet.midimsg import is_valid
from liveduet.model import Snapshot, StepModel
from liveduet.sampling import Sampler, key_pcs, keyed_uniform
from liveduet.settings import Action, Set, Settings
from liveduet.turns import (
    ANSWERING,
    LISTENING,
    HumanIn,
    HumanRecord,
    Turn,
    initial_turn,
    machine_owns,
    next_turn,
)

__all__ = ["Engine", "Out"]
KEEP_EMITTED = 2  # emitted steps kept re-runnable for input that arrives late
DEFAULT_VELOCITY = 80
BEATS_PER_BAR = 4


@dataclass(slots=True)
class _Step:
    """One planned step: tokens fed, tokens the machine plays, and the state before it."""

    fed: tuple[int, ...]
    mach: tuple[int | None, ...]
    turn: Turn
    snap: Snapshot
    logits: np.ndarray
    turn_before: Turn
    sounding_before: tuple[bool, ...]
    bad: bool = False


def check_mode(codec: GridCodec, mode: str) -> None:
    """Raise ConfigError when ``mode`` cannot run with ``codec``."""
    if mode == "harmonize" and not (codec.roles("given") and codec.roles("sampled")):
        raise ConfigError(
            "mode 'harmonize' needs a multi-voice model (a given voice for you and sampled "
            "voices for the machine); this model has one voice. Load one such as chorale_satb "
            "(--model chorale_satb, or the 'model' action), or pick mode call or continue"
        )


class Engine:
    """The co-performer in virtual time; see the module docstring."""

    def __init__(self, model: StepModel, settings: Settings | None = None, *,
                 lookahead: int = 2, tolerance: float = 0.5) -> None:
        if lookahead < 0:
            raise ConfigError(f"lookahead={lookahead}; give 0 or more steps")
        if not 0.0 < tolerance <= 1.0:
            raise ConfigError(f"tolerance={tolerance}; give a fraction of a step in (0, 1]")
        self._settings = settings or Settings()
        check_mode(model.codec, self._settings.mode)
        self.lookahead = lookahead
        self.tolerance = tolerance
        self._ledger = Ledger()
        self._human = HumanRecord(tolerance)
        self.counters: dict[str, int] = dict.fromkeys(
            ("steps", "model_steps", "rollbacks", "answers", "barge_ins", "machine_notes",
             "human_notes", "bad_logits", "late_input", "late_steps", "resets", "bad_input"), 0)
        self._warnings: list[str] = []
        self.turns: list[tuple[float, str]] = []  # (position, phase) at every emitted change
        self._anchor = (0.0, 0)
        self._running = True
        self._last_pos = 0.0
        self._emit = 0
        self._end_calls: set[int] = set()
        self._played: dict[int, tuple[int, ...]] = {}
        self._phase = ""
        self._last_machine: tuple[int, int] | None = None
        self._use_model(model)

    # -- model and sequence -------------------------------------------------------------------
    def _use_model(self, model: StepModel) -> None:
        self._model = model
        self._codec: GridCodec = model.codec
        self._sampler = Sampler(self._codec)
        given = self._codec.roles("given") or self._codec.roles("shared")
        self._hv = given[0] if given else -1
        self._steps_per_bar = self._codec.steps_per_beat * BEATS_PER_BAR
        self._start_sequence()

    def _start_sequence(self) -> None:
        """Zero the model state, feed BOS, and drop every plan from the next step on."""
        self._model.reset()
        self._logits = self._model.step(BOS)[0].copy()
        self.counters["model_steps"] += 1
        self._plan: dict[int, _Step] = {}
        self._end = self._emit
        self._turn = initial_turn(self._settings.mode)
        self._sounding = (False,) * self._codec.n_voices
        self._played.clear()

    @property
    def settings(self) -> Settings:
        """The current settings (change them with :meth:`apply`)."""
        return self._settings

    @property
    def codec(self) -> GridCodec:
        """The codec of the current model."""
        return self._codec

    # -- positions ----------------------------------------------------------------------------
    def _pos_of(self, step: int) -> float:
        return self._anchor[0] + (step - self._anchor[1])

    def _x(self, pos: float) -> float:
        return self._anchor[1] + (pos - self._anchor[0])

    def _base(self) -> int:
        return min(self._plan, default=self._end)

    # -- planning -----------------------------------------------------------------------------
    def _rollback(self, step: int) -> None:
        """Restore the state before ``step`` and drop the plan from there on."""
        step = max(step, self._base())
        if step >= self._end:
            return
        st = self._plan[step]
        self._model.restore(st.snap)
        self._logits = st.logits
        self._turn = st.turn_before
        self._sounding = st.sounding_before
        for n in range(step, self._end):
            del self._plan[n]
        self._end = step
        self.counters["rollbacks"] += 1

    def _extend(self, upto: int) -> None:
        """Plan every step before ``upto``."""
        while self._end < upto:
            self._plan[self._end] = self._run_step(self._end)
            self._end += 1

    def _run_step(self, n: int) -> _Step:
        s = self._settings
        snap, logits0, turn0, sounding0 = (self._model.snapshot(), self._logits, self._turn,
                                           self._sounding)
        hin = self._human.at(n)
        turn = next_turn(turn0, s, hin, n, n in self._end_calls, self._steps_per_bar)
        played = self._played.get(n)
        fed: list[int] = []
        mach: list[int | None] = []
        sounding = list(sounding0)
        bad = False
        for v in range(self._codec.n_voices):
            tok, m, ok = self._decide(v, n, hin, turn, played, sounding[v])
            bad |= not ok
            self._logits = self._model.step(tok)[0].copy()
            self.counters["model_steps"] += 1
            fed.append(tok)
            mach.append(m)
            sounding[v] = m is not None and (m > REST or (m == HOLD and sounding[v]))
        self._turn = turn
        self._sounding = tuple(sounding)
        return _Step(tuple(fed), tuple(mach), turn, snap, logits0, turn0, sounding0, bad)

    def _decide(self, v: int, n: int, hin: HumanIn, turn: Turn,
                played: tuple[int, ...] | None, sounding: bool
                ) -> tuple[int, int | None, bool]:
        """(token fed, token the machine plays or None, logits were finite) for voice ``v``."""
        human_voice = v == self._hv
        if human_voice and hin.sounding:
            return self._human_token(v, hin), None, True
        if not machine_owns(turn, human_voice):
            return REST, None, True
        if played is not None and (human_voice or self._codec.voices[v].role == "shared"):
            return played[v], played[v], True  # already emitted: feed what really sounded
        s = self._settings
        pcs = key_pcs(s.key, s.scale, self._human.key_notes(n) if s.key == "auto" else ())
        legal = self._sampler.legal(v, s.low, s.high, pcs, sounding)
        tok = self._sampler.sample(self._logits, legal, temperature=s.temperature,
                                   top_p=s.top_p, density=s.density,
                                   u=keyed_uniform(s.seed, n, v))
        if tok is None:
            return REST, REST, False
        return tok, tok, True

    def _human_token(self, v: int, hin: HumanIn) -> int:
        if hin.onset is None:
            return HOLD
        voice = self._codec.voices[v]
        pitch = hin.onset
        while pitch < voice.low:
            pitch += 12
        while pitch > voice.high:
            pitch -= 12
        return self._codec.note_on(pitch) if voice.contains(pitch) else HOLD

    # -- emission -----------------------------------------------------------------------------
    def _channel(self, v: int) -> int:
        sampled = self._codec.roles("sampled")
        rank = sampled.index(v) if v in sampled else len(sampled)
        return (self._settings.channel - 1 + rank) % 16

    def _velocity(self) -> int:
        if self._settings.velocity:
            return self._settings.velocity
        vels = self._human.velocities
        return round(sum(vels) / len(vels)) if vels else DEFAULT_VELOCITY

    def _emit_step(self, n: int, at: float, retrigger: bool = True) -> list[Out]:
        """Send step ``n``'s machine notes at ``at``; record what really sounded.

        A first emission plays the tokens as planned; a re-decided step (``retrigger`` False)
        only sends what differs from what already sounds.
        """
        self._extend(n + 1)
        st = self._plan[n]
        outs: list[Out] = []
        played: list[int] = []
        for v, tok in enumerate(st.mach):
            cur = self._ledger.pitch(v)
            if not retrigger:
                want = self._target(v, n)
            elif tok is None or tok == REST:
                want = None
            else:
                want = cur if tok == HOLD else self._codec.pitch_of(tok)
            if want is None or tok is None:
                outs += self._ledger.off(v, at)
                played.append(REST)
            elif want == cur and (tok == HOLD or not retrigger):
                played.append(tok)
            else:
                outs += self._ledger.on(v, self._channel(v), int(want), self._velocity(), at)
                self.counters["machine_notes"] += 1
                self._last_machine = (v, int(want))
                played.append(self._codec.note_on(int(want)))
        if n >= self._emit:
            self._account(n, st, at)
        self._played[n] = tuple(played)
        self._emit = max(self._emit, n + 1)
        return outs

    def _target(self, v: int, n: int) -> int | None:
        """Pitch the plan has sounding in voice ``v`` at step ``n`` (walking back over HOLDs)."""
        while n in self._plan:
            tok = self._plan[n].mach[v]
            if tok is None or tok == REST:
                return None
            if tok != HOLD:
                return self._codec.pitch_of(tok)
            n -= 1
        return self._ledger.pitch(v)

    def _account(self, n: int, st: _Step, at: float) -> None:
        """Counters and the turn log for a step emitted the first time."""
        self.counters["steps"] += 1
        if st.bad:
            self.counters["bad_logits"] += 1
            self._warn("the model gave NaN/inf logits; those steps fell back to silence (REST)")
        phase = st.turn.phase
        if phase != self._phase:
            if phase == ANSWERING:
                self.counters["answers"] += 1
            elif phase == LISTENING and self._phase == ANSWERING and self._human.at(n).sounding:
                self.counters["barge_ins"] += 1
            self.turns.append((self._pos_of(n), phase))
            self._phase = phase

    def _warn(self, text: str) -> None:
        if text not in self._warnings:
            self._warnings.append(text)

    def _redecide(self, step: int, at: float) -> list[Out]:
        """Roll back to ``step``; re-decide emitted steps and send the difference at ``at``."""
        self._rollback(step)
        last = self._emit - 1
        if step > last:
            return []
        self._extend(last + 1)
        return self._emit_step(last, at, retrigger=False)

    def _replan(self, silenced: bool) -> None:
        """Drop the plan of steps not yet emitted (they are re-planned with the new state)."""
        self._rollback(self._emit)
        if silenced and self._end == self._emit:
            self._sounding = (False,) * self._codec.n_voices

    def _prune(self) -> None:
        keep = self._emit - KEEP_EMITTED
        for n in [k for k in self._plan if k < keep]:
            del self._plan[n]
        for n in [k for k in self._played if k < keep]:
            del self._played[n]
        self._end_calls = {k for k in self._end_calls if k >= keep}
        self._human.prune(keep - 1)

    # -- the interface ------------------------------------------------------------------------
    def feed(self, pos: float, msg: Sequence[int]) -> list[Out]:
        """One human MIDI message at ``pos``; returns what must go out now."""
        if not is_valid(msg):
            self.counters["bad_input"] += 1  # a broken message is dropped, never passed on
            return []
        self._last_pos = max(self._last_pos, pos)
        status, kind, ch = msg[0], msg[0] & 0xF0, msg[0] & 0x0F
        if status >= 0xF0:
            return []  # clock and transport are the runtime's
        if kind not in (NOTE_ON, NOTE_OFF):
            return [Out(pos, tuple(msg))] if self._settings.thru else []
        pitch, vel = int(msg[1]), int(msg[2])
        if kind == NOTE_ON and vel > 0:
            return self._human_on(pos, ch, pitch, vel)
        return self._human_off(pos, ch, pitch)

    def _human_step(self, pos: float) -> int:
        step = self._human.step_of(self._x(pos))
        base = max(self._base(), self._emit - KEEP_EMITTED, 0)
        if step < base:
            self.counters["late_input"] += 1
            step = base
        return step

    def _human_on(self, pos: float, ch: int, pitch: int, vel: int) -> list[Out]:
        outs = self._ledger.thru_on(ch, pitch, vel, pos) if self._settings.thru else []
        if not self._running:
            return outs
        self.counters["human_notes"] += 1
        step = self._human.note_on(self._human_step(pos), pitch, vel, ch)
        mode = self._settings.mode
        if mode in ("call", "continue") and self._current_phase() in (ANSWERING, "accompanying"):
            voices = [self._hv] if mode == "continue" else range(self._codec.n_voices)
            for v in voices:
                outs += self._ledger.off(v, pos)  # barge-in: the human takes the voice now
        outs += self._redecide(step, pos)
        if mode == "harmonize" and step >= self._emit:
            for n in range(self._emit, step + 1):
                outs += self._emit_step(n, pos)  # harmony of this note goes out now
        self._extend(max(step, self._emit) + 1)
        return outs

    def _human_off(self, pos: float, ch: int, pitch: int) -> list[Out]:
        outs = self._ledger.thru_off(ch, pitch, pos)
        if not self._running:
            return outs
        step = self._human.note_off(self._human_step(pos), pitch, ch)
        if step is not None:
            outs += self._redecide(step, pos)
        return outs

    def _current_phase(self) -> str:
        last = self._plan.get(self._emit - 1)
        return last.turn.phase if last is not None else self._turn.phase

    def advance(self, pos: float) -> list[Out]:
        """Emit every step due at ``pos``; plan ahead when no note is waiting to leave."""
        self._last_pos = max(self._last_pos, pos)
        if not self._running:
            return []
        outs: list[Out] = []
        x = self._x(pos) + 1e-9
        first = self._emit
        while self._emit <= x:
            n = self._emit
            if x - n > 1.0:
                self.counters["late_steps"] += 1
            outs += self._emit_step(n, self._pos_of(n))
        if self._emit == first or x >= self._emit - 1 + self.tolerance:
            self._extend(self._emit + self.lookahead)
        self._prune()
        return outs

    def next_due(self) -> float | None:
        """Position of the next emission, or of the next planning point if planning is due."""
        if not self._running:
            return None
        due = self._pos_of(self._emit)
        if self._end < self._emit + self.lookahead:
            plan_at = max(self._pos_of(self._emit - 1) + self.tolerance, self._last_pos)
            due = min(due, plan_at)
        return due

    def apply(self, cmd: Set | Action, pos: float) -> list[Out]:
        """Change a setting or run an action between steps."""
        self._last_pos = max(self._last_pos, pos)
        if isinstance(cmd, Set):
            return self._set(cmd.name, cmd.value, pos)
        return self._action(cmd, pos)

    def _set(self, name: str, value: Any, pos: float) -> list[Out]:
        new = self._settings.with_value(name, value)
        check_mode(self._codec, new.mode)
        old, self._settings = self._settings, new
        outs: list[Out] = []
        if new.mode != old.mode or new.channel != old.channel:
            outs += self._ledger.release_machine(pos)
        if old.thru and not new.thru:
            outs += self._ledger.release_thru(pos)
        self._replan(silenced=bool(outs))
        return outs

    def _action(self, cmd: Action, pos: float) -> list[Out]:
        name = cmd.name
        if name == "end_call":
            self._end_calls.add(max(self._emit, math.ceil(self._x(pos) - 1e-9)))
            self._rollback(self._emit)
            return []
        if name == "panic":
            outs = self._ledger.release_all(pos)
            chans = sorted({self._channel(v) for v in range(self._codec.n_voices)})
            outs += [Out(pos, (CONTROL | c, ALL_NOTES_OFF, 0)) for c in chans]
            self._replan(silenced=True)
            return outs
        if name == "reset":
            outs = self._ledger.release_machine(pos)
            self.counters["resets"] += 1
            self._start_sequence()
            return outs
        if name == "stop":
            outs = self._ledger.release_all(pos)
            self._replan(silenced=True)
            self._running = False
            return outs
        if name == "play":
            outs = self._ledger.release_machine(pos)
            self._replan(silenced=True)
            self._anchor = (float(pos), self._emit)
            self._human.clear()
            self._running = True
            return outs
        return []  # state / learn / model are the runtime's

    def swap_model(self, model: StepModel, pos: float) -> list[Out]:
        """Release the machine's notes and continue with ``model`` from a fresh state."""
        check_mode(model.codec, self._settings.mode)
        outs = self._ledger.release_machine(pos)
        self._use_model(model)
        return outs

    def release_all(self, pos: float) -> list[Out]:
        """Note-off for every sounding note (machine and thru)."""
        return self._ledger.release_all(pos)

    def status(self) -> dict[str, Any]:
        """A JSON-ready summary for displays and logs."""
        phase = self._current_phase() if self._running else "idle"
        last_h = self._human.recent[-1].pitch if self._human.recent else None
        return {
            "mode": self._settings.mode,
            "phase": phase,
            "running": self._running,
            "step": self._emit - 1,
            "position": self._last_pos,
            "model": self._model.title,
            "voices": [v.name for v in self._codec.voices],
            "lookahead": self.lookahead,
            "planned": self._end - self._emit,
            "last_machine_note": None if self._last_machine is None else self._last_machine[1],
            "last_human_note": last_h,
            "sounding": {str(v): p for v, (_, p) in self._ledger.machine_notes().items()},
            "counters": dict(self.counters),
            "warnings": list(self._warnings),
        }
