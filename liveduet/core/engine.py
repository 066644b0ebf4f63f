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
counter-based generator keyed on ``(seed, step, voice)`` (see :mod:`liveduet.core.sampling`), so a
re-run step draws the same random numbers as its first decision.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from liveduet.core.codec import HOLD, REST, GridCodec
from liveduet.core.harmony import TableSource
from liveduet.core.hearing import KEEP_EMITTED, Hearing
from liveduet.core.ledger import ALL_NOTES_OFF, CONTROL, Ledger, Out
from liveduet.core.metre import MetreMap, StepGrid, parse_metre
from liveduet.core.model import StepModel
from liveduet.core.planner import PlannedStep, Planner, check_mode
from liveduet.core.sampling import TONICS, estimate_key
from liveduet.core.searchjob import SearchSource
from liveduet.core.settings import Act, Action, Set, Settings
from liveduet.core.sustain import Pedal
from liveduet.core.turns import ANSWERING, LISTENING, HumanRecord
from liveduet.errors import ConfigError

__all__ = ["Engine", "Out"]
DEFAULT_VELOCITY = 80
PLAN_QUIET = 0.1    # steps of no input before planning ahead again after a note
PLAN_MARGIN = 0.2   # ... but plan at the latest this many steps before the next step is due


class Engine(Hearing):
    """The co-performer in virtual time; see the module docstring."""

    def __init__(self, model: StepModel, settings: Settings | None = None, *,
                 lookahead: int = 1, tolerance: float = 0.5, tables: bool = True,
                 table_source: Callable[[StepModel], TableSource | None] | None = None,
                 metres: MetreMap | None = None,
                 search_margin: float | None = None,
                 search_worker: Callable[[StepModel], SearchSource | None] | None = None
                 ) -> None:
        if lookahead < 0:
            raise ConfigError(f"lookahead={lookahead}; give 0 or more steps")
        if not 0.0 < tolerance <= 1.0:
            raise ConfigError(f"tolerance={tolerance}; give a fraction of a step in (0, 1]")
        self._settings = settings or Settings()
        check_mode(model.codec, self._settings.mode)
        self.lookahead = lookahead
        self.tolerance = tolerance
        self.tables = tables  # harmonize through harmony tables (see liveduet.core.harmony)
        # Live: a candidate search stops this many steps before its phrase is due (None: it
        # always finishes, as offline where time is virtual).
        self.search_margin = search_margin
        self._searchers = search_worker  # per model: who searches answers ahead (live)
        self.clock_bpm: Callable[[], float] | None = None  # the live clock's tempo, if known
        self._searcher: SearchSource | None = None
        self._sources = table_source  # per model: who builds tables ahead (the runtime's workers)
        self._source: TableSource | None = None
        self._ledger = Ledger()
        self._human = HumanRecord(tolerance)
        self._pedal = Pedal()
        self.counters: dict[str, int] = dict.fromkeys(
            ("steps", "model_steps", "rollbacks", "answers", "barge_ins", "machine_notes",
             "human_notes", "bad_logits", "late_input", "late_steps", "resets", "bad_input",
             "harmony_tables", "harmony_hits", "harmony_prefetched"), 0)
        self._warnings: list[str] = []
        self.turns: list[tuple[float, str]] = []  # (position, phase) at every emitted change
        self._anchor = (0.0, 0)
        self._running = True
        self._last_pos = 0.0
        self._last_input: float | None = None  # position of the latest human note message
        self._emit = 0
        self._phase = ""
        self._last_machine: tuple[int, int] | None = None
        spq = model.codec.steps_per_beat
        self._grid = StepGrid(metres or MetreMap(parse_metre(self._settings.meter, spq)))
        self._use_model(model)

    # -- model and sequence -------------------------------------------------------------------
    def _use_model(self, model: StepModel) -> None:
        self._source = self._sources(model) if self._sources is not None else None
        self._model = model
        spq = model.codec.steps_per_beat
        if self._grid.metres.metre(0).steps_per_quarter != spq:  # a model on another grid
            self._grid.metres = MetreMap(parse_metre(self._settings.meter, spq))
        self._plan = Planner(model, self._settings, self._human, self.counters, self._emit,
                             tables=self.tables, source=self._source, grid=self._grid)
        if self.search_margin is not None:
            self._plan.phrases.budget = self._search_budget
        if self._searchers is not None:
            self._searcher = self._plan.phrases.worker = self._searchers(model)

    def prefetch(self) -> None:
        """Let the table source start on the next harmonize step's table (call after sending:
        the work happens elsewhere, this only hands over the inputs)."""
        if self._running:
            self._plan.prefetch()

    @property
    def settings(self) -> Settings:
        """The current settings (change them with :meth:`apply`)."""
        return self._settings

    @property
    def codec(self) -> GridCodec:
        """The codec of the current model."""
        return self._plan.codec

    # -- positions ----------------------------------------------------------------------------
    def _pos_of(self, step: int) -> float:
        return self._anchor[0] + (step - self._anchor[1])

    def _x(self, pos: float) -> float:
        return self._anchor[1] + (pos - self._anchor[0])

    # -- emission -----------------------------------------------------------------------------
    def _channel(self, v: int) -> int:
        sampled = self._plan.codec.roles("sampled")
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
        self._plan.extend(n + 1)
        st = self._plan.steps[n]
        outs: list[Out] = []
        played: list[int] = []
        for v, tok in enumerate(st.mach):
            cur = self._ledger.pitch(v)
            if not retrigger:
                want = self._plan.target(v, n, cur)
            elif tok is None or tok == REST:
                want = None
            else:
                want = cur if tok == HOLD else self._plan.codec.pitch_of(tok)
            if want is None or tok is None:
                outs += self._ledger.off(v, at)
                played.append(REST)
            elif want == cur and (tok == HOLD or not retrigger):
                played.append(tok)
            else:
                outs += self._ledger.on(v, self._channel(v), int(want), self._velocity(), at)
                self.counters["machine_notes"] += 1
                self._last_machine = (v, int(want))
                played.append(self._plan.codec.note_on(int(want)))
        if n >= self._emit:
            self._account(n, st, at)
        self._plan.played[n] = tuple(played)
        self._emit = max(self._emit, n + 1)
        return outs

    def _account(self, n: int, st: PlannedStep, at: float) -> None:
        """Counters and the turn log for a step emitted the first time."""
        self.counters["steps"] += 1
        if st.bad:
            self.counters["bad_logits"] += 1
            self._warn("the model gave NaN/inf logits; those steps fell back to silence (REST)")
        phase = st.turn.phase
        if phase != self._phase:
            if phase == ANSWERING:
                self.counters["answers"] += 1
            elif (phase == LISTENING and self._phase == ANSWERING
                  and st.turn_before.answer_left > 0 and self._human.at(n).sounding):
                self.counters["barge_ins"] += 1  # the answer still had steps to play
            self.turns.append((self._pos_of(n), phase))
            self._phase = phase

    def _warn(self, text: str) -> None:
        if text not in self._warnings:
            self._warnings.append(text)

    def _redecide(self, step: int, at: float) -> list[Out]:
        """Roll back to ``step``; re-decide emitted steps and send the difference at ``at``."""
        self._plan.rollback(step)
        last = self._emit - 1
        if step > last:
            return []
        self._plan.extend(last + 1)
        return self._emit_step(last, at, retrigger=False)

    def _replan(self, silenced: bool) -> None:
        """Drop the plan of steps not yet emitted (they are re-planned with the new state)."""
        self._plan.rollback(self._emit)
        if silenced and self._plan.end == self._emit:
            self._plan.silence()

    def _prune(self) -> None:
        keep = self._emit - KEEP_EMITTED
        self._plan.prune(keep)
        self._human.prune(keep - 1)

    # -- the interface ------------------------------------------------------------------------
    def _current_phase(self) -> str:
        last = self._plan.steps.get(self._emit - 1)
        return last.turn.phase if last is not None else self._plan.turn.phase

    def advance(self, pos: float) -> list[Out]:
        """Emit every step due at ``pos``; plan ahead from :meth:`_plan_from`."""
        self._last_pos = max(self._last_pos, pos)
        if not self._running:
            return []
        outs: list[Out] = []
        x = self._x(pos) + 1e-9
        while self._emit <= x:
            n = self._emit
            if x - n > 1.0:
                self.counters["late_steps"] += 1
            outs += self._emit_step(n, self._pos_of(n))
        if x >= self._plan_from():
            self._plan.extend(self._emit + self._ahead())
        self._prune()
        return outs

    def _search_budget(self, step: int, s: Settings) -> float:
        """Seconds a candidate search for a phrase starting at ``step`` may take now."""
        left = step - self._x(self._last_pos) - (self.search_margin or 0.0)
        bpm = self.clock_bpm() if self.clock_bpm is not None else s.bpm
        return max(0.0, left) * 60.0 / (max(bpm, 1.0) * self.codec.steps_per_beat)

    def _ahead(self) -> int:
        """Steps planned ahead: ``lookahead``, one more where the next step may begin a
        candidate search (it then has a step and a half instead of half a step)."""
        return self.lookahead + self._plan.phrases.soon(self._plan.end, self._plan.turn,
                                                        self._settings)

    def _plan_from(self) -> float:
        """The fractional step from which the steps ahead are planned: the middle of the current
        step; while the human keeps playing, once the input pauses for ``PLAN_QUIET`` steps, at
        the latest ``PLAN_MARGIN`` before the next step is due (a note changes what the next
        step hears, so planning after every note of a fast run would be thrown away)."""
        start = self._emit - 1 + self.tolerance
        if self._last_input is None:
            return start
        return max(start, min(self._x(self._last_input) + PLAN_QUIET, self._emit - PLAN_MARGIN))

    def next_due(self) -> float | None:
        """Position of the next emission, or of the next planning point if planning is due."""
        if not self._running:
            return None
        due = self._pos_of(self._emit)
        if self._plan.end < self._emit + self._ahead():
            plan_at = self._anchor[0] + (self._plan_from() - self._anchor[1])
            due = min(due, max(plan_at, self._last_pos))
        return due

    def apply(self, cmd: Set | Action, pos: float) -> list[Out]:
        """Change a setting or run an action between steps."""
        self._last_pos = max(self._last_pos, pos)
        if isinstance(cmd, Set):
            return self._set(cmd.name, cmd.value, pos)
        return self._action(cmd, pos)

    def _set(self, name: str, value: Any, pos: float) -> list[Out]:
        new = self._settings.with_value(name, value)
        check_mode(self._plan.codec, new.mode)
        old, self._settings = self._settings, new
        self._plan.settings = new
        if new.meter != old.meter:  # the new metre takes over at the next bar line
            metre = parse_metre(new.meter, self.codec.steps_per_beat)
            self._grid.metres = self._grid.metres.change_at_next_bar(
                self._emit + self._grid.offset, metre)
        outs: list[Out] = []
        if new.mode != old.mode or new.channel != old.channel:
            outs += self._ledger.release_machine(pos)
        if old.thru and not new.thru:
            outs += self._ledger.release_thru(pos)
        self._replan(silenced=bool(outs))
        return outs

    def _action(self, cmd: Action, pos: float) -> list[Out]:
        name = cmd.name
        if name == Act.END_CALL:
            self._plan.end_calls.add(max(self._emit, math.ceil(self._x(pos) - 1e-9)))
            self._plan.rollback(self._emit)
            return []
        if name == Act.PANIC:
            outs = self._ledger.release_all(pos)
            chans = sorted({self._channel(v) for v in range(self._plan.codec.n_voices)})
            outs += [Out(pos, (CONTROL | c, ALL_NOTES_OFF, 0)) for c in chans]
            self._replan(silenced=True)
            return outs
        if name == Act.RESET:
            outs = self._ledger.release_machine(pos)
            self.counters["resets"] += 1
            self._plan.start(self._emit)
            return outs
        if name == Act.STOP:
            outs = self._ledger.release_all(pos)
            self._replan(silenced=True)
            self._running = False
            return outs
        if name == Act.PLAY:
            outs = self._ledger.release_machine(pos)
            self._replan(silenced=True)
            self._anchor = (float(pos), self._emit)
            self._grid.offset = round(pos) - self._emit
            self._human.clear()
            self._pedal.clear()
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

    def _key_name(self) -> str | None:
        """The key mask in force: 'off', a fixed key, or the key 'auto' hears right now."""
        s = self._settings
        if s.key != "auto":
            return s.key if s.key == "off" else f"{s.key} {s.scale}"
        notes = self._human.key_notes(self._emit)
        found = estimate_key([p for p, _ in notes], [d for _, d in notes]) if notes else None
        return None if found is None else f"{TONICS[found[0]]} {found[1]}"

    @property
    def grid(self) -> StepGrid:
        """Bars and beats of the engine's steps."""
        return self._grid

    def beat_at(self, pos: float) -> int:
        """The beat of the bar (0-based, beats of the metre) that grid position ``pos`` is in."""
        step = math.floor(pos)
        if step < 0:
            return 0
        metres = self._grid.metres
        return metres.step_in_bar(step) // metres.metre(step).beat_steps

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
            "voices": [v.name for v in self._plan.codec.voices],
            "lookahead": self.lookahead,
            "planned": self._plan.end - self._emit,
            "last_machine_note": None if self._last_machine is None else self._last_machine[1],
            "last_human_note": last_h,
            "sounding": {str(v): p for v, (_, p) in self._ledger.machine_notes().items()},
            "counters": dict(self.counters),
            "key": self._key_name(),
            "meter": self._grid.metre(max(self._emit - 1, 0)).label,
            "warnings": list(self._warnings),
        }
