"""The engine's planner: one model state stepped through the grid, with per-step snapshots.

Each planned step records the tokens fed (one per codec voice, in the codec's order), the
tokens the machine plays (``None`` where a voice is not the machine's), the turn state after it,
and the model/turn state *before* it, so :meth:`Planner.rollback` can return to any planned
step exactly and re-run it with what the human really did. It also follows the pitch each
voice sounds (the human's and the machine's, as fed), which the part-writing rules of a
harmony table read as the previous chord.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from liveduet.core.answers import Phrases
from liveduet.core.candidates import Line
from liveduet.core.codec import BOS, HOLD, REST, GridCodec
from liveduet.core.harmony import Context, Harmonizer, TableSource, table_voice
from liveduet.core.metre import Metre, MetreMap, StepGrid, predicted_step
from liveduet.core.model import Snapshot, StepModel
from liveduet.core.pace import CorpusPace, next_rate, pace_bias, target_rate
from liveduet.core.sampling import Sampler, estimate_key, key_pcs, keyed_uniform
from liveduet.core.settings import TABLE_SETTINGS, Settings
from liveduet.core.turns import (
    ACCOMPANYING,
    ANSWERING,
    HumanIn,
    HumanRecord,
    Turn,
    initial_turn,
    machine_owns,
    next_turn,
)
from liveduet.errors import ConfigError

UNLIMITED = 1 << 30  # steps: a hold limit that never bites
KEY_NOTES = 16  # the human's notes the part-writing rules estimate the key from


@dataclass(slots=True)
class PlannedStep:
    """One planned step: tokens fed, tokens the machine plays, and the state before it."""

    fed: tuple[int, ...]
    mach: tuple[int | None, ...]
    turn: Turn
    snap: Snapshot
    logits: np.ndarray
    turn_before: Turn
    sounding_before: tuple[bool, ...]
    bad: bool = False
    held_before: tuple[int, ...] = ()  # steps each voice's note has sounded before the step
    rate_before: tuple[float, ...] = ()  # each voice's onsets per step (liveduet.core.pace)
    pitches_before: tuple[int, ...] = ()  # pitch per voice sounding before it, -1 silent
    beat_before: tuple[int, ...] = ()  # pitches sounding at the last beat before it


def check_mode(codec: GridCodec, mode: str) -> None:
    """Raise ConfigError when ``mode`` cannot run with ``codec``."""
    if mode == "harmonize" and not (codec.roles("given") and codec.roles("sampled")):
        raise ConfigError(
            "mode 'harmonize' needs a multi-voice model (a given voice for you and sampled "
            "voices for the machine); this model has one voice. Load one such as chorale_satb "
            "(--model chorale_satb, or the 'model' action), or pick mode call or continue"
        )


@lru_cache(maxsize=64)
def _human_key(notes: tuple[tuple[int, float], ...]) -> tuple[int, str] | None:
    """The key of the human's recent (pitch, duration) notes, for the part-writing rules.

    Cached: a note's answer re-plans steps whose notes were already seen, and the estimate
    (numpy on a dozen numbers) would cost the conductor tens of microseconds each time.
    """
    return estimate_key([p for p, _ in notes], [max(d, 1.0) for _, d in notes])


class Planner:
    """Plans steps with the model; rolls back to any planned step."""

    def __init__(self, model: StepModel, settings: Settings, human: HumanRecord,
                 counters: dict[str, int], start: int = 0, *, tables: bool = True,
                 source: TableSource | None = None, grid: StepGrid | None = None) -> None:
        self.model = model
        self.codec: GridCodec = model.codec
        self.sampler = Sampler(self.codec)
        given = self.codec.roles("given") or self.codec.roles("shared")
        self.hv = given[0] if given else -1  # the human's voice
        tables = tables and table_voice(self.codec) is not None
        self.harmony = Harmonizer(model, self.sampler, self.hv, source) if tables else None
        self.grid = grid or StepGrid(MetreMap())
        self.pace = CorpusPace(model.spec.card)
        # pace and the hold limit shape a line the machine carries alone (call, continue);
        # harmony voices follow the soprano through tables, which stay bit-for-bit the same
        self.paced = tuple(v.role == "shared" for v in self.codec.voices)
        self.settings = settings
        self.human = human
        self.counters = counters
        self.end_calls: set[int] = set()
        self.played: dict[int, tuple[int, ...]] = {}
        self.steps: dict[int, PlannedStep] = {}
        self.phrases = Phrases(model, self.sampler, human, self.grid, self.positions)
        self.phrases.entry_line = lambda n: self.line(n, True, (0,) * self.codec.n_voices,
                                                      self.rate)
        self.start(start)

    def start(self, step: int) -> None:
        """Zero the model state, feed BOS, and plan afresh from ``step``."""
        if self.harmony is not None:
            self.harmony.clear()
        self.model.reset()
        self.model.set_position(self.grid.position_id(step))
        self.logits = self.model.step(BOS)[0].copy()
        self.counters["model_steps"] += 1
        self.steps.clear()
        self.played.clear()
        self.phrases.clear()
        self.end = step
        self.turn = initial_turn(self.settings.mode)
        self.sounding = (False,) * self.codec.n_voices
        self.held = (0,) * self.codec.n_voices
        self.rate = (self.pace.rate(self.grid.metre(step)),) * self.codec.n_voices
        self.pitches = self.beat_pitches = (-1,) * self.codec.n_voices

    def base(self) -> int:
        """The oldest step that can still be rolled back to."""
        return min(self.steps, default=self.end)

    def rollback(self, step: int) -> None:
        """Restore the state before ``step`` and drop the plan from there on."""
        step = max(step, self.base())
        if step >= self.end:
            return
        st = self.steps[step]
        self.model.restore(st.snap)
        self.logits = st.logits
        self.turn = st.turn_before
        self.sounding = st.sounding_before
        self.held = st.held_before
        self.rate = st.rate_before
        self.pitches, self.beat_pitches = st.pitches_before, st.beat_before
        for n in range(step, self.end):
            del self.steps[n]
        self.phrases.rollback(step)
        self.end = step
        self.counters["rollbacks"] += 1

    def silence(self) -> None:
        """After a release: the machine's voices hold nothing from the plan's end on."""
        self.sounding = (False,) * self.codec.n_voices
        self.held = (0,) * self.codec.n_voices
        self.pitches = self.beat_pitches = (-1,) * self.codec.n_voices

    def extend(self, upto: int) -> None:
        """Plan every step before ``upto``."""
        while self.end < upto:
            before, beat = self.pitches, self.beat_pitches
            st = self.steps[self.end] = self._run_step(self.end)
            st.pitches_before, st.beat_before = before, beat
            self.pitches = self._pitches_after(st.fed, before)
            if self.grid.is_beat(self.end):
                self.beat_pitches = self.pitches
            self.end += 1

    def _pitches_after(self, fed: tuple[int, ...], before: tuple[int, ...]) -> tuple[int, ...]:
        """The pitch sounding in each voice after a step fed ``fed`` (-1 silent)."""
        out = []
        for tok, was in zip(fed, before, strict=True):
            pitch = self.codec.pitch_of(tok)
            out.append(pitch if pitch is not None else (was if tok == HOLD else -1))
        return tuple(out)

    def prune(self, keep: int) -> None:
        """Forget plans, records and end-call marks of steps before ``keep``."""
        for n in [k for k in self.steps if k < keep]:
            del self.steps[n]
        for n in [k for k in self.played if k < keep]:
            del self.played[n]
        self.end_calls = {k for k in self.end_calls if k >= keep}
        self.phrases.prune(keep)
        if self.harmony is not None:
            self.harmony.prune(keep)

    def target(self, v: int, n: int, before: int | None) -> int | None:
        """Pitch the plan has sounding in voice ``v`` at step ``n`` (walking back over HOLDs).

        ``before`` is the answer when the HOLDs reach back past the oldest planned step.
        """
        while n in self.steps:
            tok = self.steps[n].mach[v]
            if tok is None or tok == REST:
                return None
            if tok != HOLD:
                return self.codec.pitch_of(tok)
            n -= 1
        return before

    def _run_step(self, n: int) -> PlannedStep:
        snap, logits0, turn0, sounding0 = (self.model.snapshot(), self.logits, self.turn,
                                           self.sounding)
        held0, rate0 = self.held, self.rate
        hin = self.human.at(n)
        turn = next_turn(turn0, self.settings, hin, n, n in self.end_calls, self.grid)
        if self.harmony is not None and turn.phase == ACCOMPANYING and turn.mode == "harmonize":
            step = self._table_step(n, hin, turn, snap, logits0, turn0, sounding0)
            self._count_held(step.mach)
            step.held_before, step.rate_before = held0, rate0
            return step
        line = self.line(n, turn.phase == ANSWERING and turn0.phase != ANSWERING, held0, rate0)
        self.rate = line.rate  # an answer's entry restarts the pace
        # Candidates + critic: where an answer or continuation phrase is chosen.
        self.phrases.step(n, self.settings, turn0, turn, hin.sounding, logits0, sounding0,
                          lambda: self._pcs(n), self._before(n), line)
        played = self.played.get(n)
        fed: list[int] = []
        mach: list[int | None] = []
        sounding = list(sounding0)
        bad = False
        positions = self.positions(n)
        for v in range(self.codec.n_voices):
            can_hold = sounding[v] and (held0[v] < line.hold_limit or not line.paced[v])
            tok, m, ok = self._decide(v, n, hin, turn, played, can_hold, line)
            bad |= not ok
            self.model.set_position(positions[v])
            self.logits = self.model.step(tok)[0].copy()
            self.counters["model_steps"] += 1
            fed.append(tok)
            mach.append(m)
            sounding[v] = m is not None and (m > REST or (m == HOLD and sounding[v]))
        self.turn = turn
        self.sounding = tuple(sounding)
        self._count_held(tuple(mach))
        self.rate = tuple(r if m is None else next_rate(r, m > REST)
                          for r, m in zip(self.rate, mach, strict=True))
        return PlannedStep(tuple(fed), tuple(mach), turn, snap, logits0, turn0, sounding0, bad,
                           held0, rate0)

    def _count_held(self, mach: tuple[int | None, ...]) -> None:
        """Steps each machine voice's note has sounded, after a step that played ``mach``."""
        self.held = tuple(
            (h + 1 if m == HOLD else 1) if now else 0
            for h, m, now in zip(self.held, mach, self.sounding, strict=True))

    def line(self, n: int, enters: bool, held: tuple[int, ...], rate: tuple[float, ...]
             ) -> Line:
        """The rules of the machine's line at step ``n`` (sampled here or by candidate
        phrases), from the voices' held steps and onset rates before it; an answer's entry
        restarts the pace."""
        metre = self.grid.metre(n)
        corpus = self.pace.rate(metre)
        if enters:
            rate = (corpus,) * self.codec.n_voices
        return Line(target_rate(corpus, self.settings.density), rate, held,
                    self.max_hold(metre), self.paced, enters)

    def max_hold(self, metre: Metre) -> int:
        """Steps a machine note may sound: the longest note of the model's training corpus in
        this metre (its card), longer as density goes below 0.5, unlimited at density 0."""
        density = self.settings.density
        longest = self.pace.hold_steps(metre)
        if density >= 0.5:
            return longest
        limit = longest * 0.5 / density if density > 0.0 else math.inf
        return UNLIMITED if limit >= UNLIMITED else math.ceil(limit)

    def _table_step(self, n: int, hin: HumanIn, turn: Turn, snap: Snapshot,
                    logits0: np.ndarray, turn0: Turn, sounding0: tuple[bool, ...]
                    ) -> PlannedStep:
        """A harmonize step through the harmony table of step ``n`` (built if not kept)."""
        assert self.harmony is not None
        ctx = self._context(n, sounding0)
        built, fetched = self.harmony.built, self.harmony.fetched
        table = self.harmony.table(ctx, snap, logits0)
        if self.harmony.built != built:
            self.counters["model_steps"] += self.codec.n_voices
            self.counters["harmony_tables"] += 1
        elif self.harmony.fetched != fetched:
            self.counters["harmony_prefetched"] += 1
        else:
            self.counters["harmony_hits"] += 1
        row = table.rows[self._human_token(self.hv, hin) if hin.sounding else REST]
        self.model.restore(table.row_state(row))
        self.logits = table.logits[row]   # read-only: no copy needed
        fed = table.row_fed[row]
        mach = tuple(None if v == self.hv else fed[v] for v in range(self.codec.n_voices))
        self.turn = turn
        self.sounding = tuple(m is not None and (m > REST or (m == HOLD and was))
                              for m, was in zip(mach, sounding0, strict=True))
        return PlannedStep(fed, mach, turn, snap, logits0, turn0, sounding0, table.row_bad[row])

    def positions(self, n: int) -> tuple[int, ...]:
        """Position ids fed with each voice's token of step ``n``: the id of the step whose
        token the model predicts next (the last voice's token predicts step ``n + 1``)."""
        nv = self.codec.n_voices
        return tuple(self.grid.position_id(predicted_step(1 + n * nv + v, nv))
                     for v in range(nv))

    def _context(self, n: int, sounding0: tuple[bool, ...]) -> Context:
        s = self.settings
        given = {name: getattr(s, name) for name in TABLE_SETTINGS}
        pcs, positions = self._pcs(n), self.positions(n)
        if s.voice_leading == "off":  # the rules' inputs stay out of the key: tables reused
            return Context(n, sounding0, pcs=pcs, positions=positions, **given)
        # The last KEY_NOTES notes started before n: a note played at n must not change the
        # key of step n (the record drops its oldest note then), or step n's table is stale.
        key = _human_key(tuple(self.human.key_notes(n)[-KEY_NOTES:]))
        return Context(n, sounding0, pcs=pcs, prev=self.pitches, key=key,
                       on_beat=self.grid.is_beat(n), beat_prev=self.beat_pitches,
                       positions=positions, **given)

    def prefetch(self) -> None:
        """Have the table source build the next unplanned step's table ahead (harmonize), and
        the search worker an answer's search in a listen gap."""
        self.phrases.prefetch(self.end, self.settings, self.turn, self.end_calls.__contains__,
                              lambda: (self.model.snapshot(), self.logits), self._pcs,
                              lambda: self._before(self.end))
        harmony, n = self.harmony, self.end
        if harmony is None or harmony.source is None:
            return
        turn = next_turn(self.turn, self.settings, self.human.at(n), n, n in self.end_calls,
                         self.grid)
        if turn.phase == ACCOMPANYING and turn.mode == "harmonize":
            harmony.prefetch(self._context(n, self.sounding), self.model.snapshot(), self.logits)

    def _decide(self, v: int, n: int, hin: HumanIn, turn: Turn,
                played: tuple[int, ...] | None, sounding: bool, line: Line
                ) -> tuple[int, int | None, bool]:
        """(token fed, token the machine plays or None, logits were finite) for voice ``v``
        under the line's rules (``sounding``: the voice sounds and may go on holding).

        On an answer's first step (``line.enters``) the machine's voices play a note: an
        answer placed on the bar line comes in on it, not a rest later.
        """
        human_voice = v == self.hv
        if human_voice and hin.sounding:
            return self._human_token(v, hin), None, True
        if not machine_owns(turn, human_voice):
            return REST, None, True
        if played is not None and (human_voice or self.codec.voices[v].role == "shared"):
            return played[v], played[v], True  # already emitted: feed what really sounded
        chosen = self.phrases.token(n, v)
        if chosen is not None:  # a candidate row rests where its logits were not finite
            return chosen, chosen, bool(np.isfinite(self.logits).all())
        s = self.settings
        legal = self.sampler.legal(v, s.low, s.high, self._pcs(n),
                                   sounding and not line.enters)
        if line.enters:
            legal = legal.copy()
            legal[REST] = False
        bias = pace_bias(line.rate[v], line.target) if line.paced[v] else 0.0
        tok = self.sampler.sample(self.logits, legal, temperature=s.temperature,
                                  top_p=s.top_p, density=s.density, voice=v, note_bias=bias,
                                  u=keyed_uniform(s.seed, n, v))
        if tok is None:
            return REST, REST, False
        return tok, tok, True

    def _before(self, n: int) -> tuple[Snapshot, np.ndarray, tuple[int, ...]] | None:
        """The state and logits before step ``n - 1`` and what was fed there (None when that
        step is not planned)."""
        prev = self.steps.get(n - 1)
        return None if prev is None else (prev.snap, prev.logits, prev.fed)

    def _pcs(self, n: int) -> frozenset[int] | None:
        """The key mask's pitch classes at step ``n``."""
        s = self.settings
        return key_pcs(s.key, s.scale, self.human.key_notes(n) if s.key == "auto" else ())

    def _human_token(self, v: int, hin: HumanIn) -> int:
        """The human's token in voice ``v``: NOTE_ON folded into its range by octaves, HOLD."""
        if hin.onset is None:
            return HOLD
        voice = self.codec.voices[v]
        pitch = hin.onset
        while pitch < voice.low:
            pitch += 12
        while pitch > voice.high:
            pitch -= 12
        return self.codec.note_on(pitch) if voice.contains(pitch) else HOLD
