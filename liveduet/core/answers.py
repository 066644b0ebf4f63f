"""Where an answer or continuation phrase is chosen among candidates (the planner's hook).

A phrase begins at the first step of an answer (``call``) and, in ``continue``, on every
``PHRASE_BARS``-th bar line of the metre the human is silent on. There :meth:`Phrases.step`
samples the candidates and keeps the critic's pick; :meth:`Phrases.token` then gives the planner the
chosen token for each step, until the phrase ends or the human plays. The source the critic
develops is the call (``call``) or the recent human and machine notes (``continue``).

With ``candidates`` 1 nothing is sampled here: the planner samples as it always has.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from liveduet.core import candidates as cand
from liveduet.core.codec import REST
from liveduet.core.copyindex import CopyIndex, load_for
from liveduet.core.critic import Context
from liveduet.core.metre import MetreMap, StepGrid
from liveduet.core.model import Snapshot, StepModel
from liveduet.core.motifs import Material, PNote
from liveduet.core.sampling import Sampler, estimate_key, scale_pcs
from liveduet.core.searchjob import Job, SearchSource
from liveduet.core.settings import Settings
from liveduet.core.turns import (
    ACCOMPANYING,
    ANSWERING,
    LISTENING,
    HumanIn,
    HumanRecord,
    Turn,
    next_turn,
)

PHRASE_BARS = 2      # continue: a phrase every two bars
HISTORY_BARS = 8     # continue: the critic develops what sounded this far back
Before = tuple[Snapshot, np.ndarray, tuple[int, ...]]  # state and logits before a step, its tokens


class Phrases:
    """Chosen phrases by first step, and the machine's notes they made."""

    def __init__(self, model: StepModel, sampler: Sampler, human: HumanRecord,
                 grid: StepGrid | None = None,
                 positions_of: cand.PositionsOf = cand.no_positions) -> None:
        self.model = model
        self.sampler = sampler
        self.human = human
        self.grid = grid or StepGrid(MetreMap())
        self.positions_of = positions_of
        # The line rules of an answer that enters after a listen gap (the worker's searches).
        self.entry_line: Callable[[int], cand.Line] | None = None
        # Seconds a search for a phrase at a step may take (live only; None: no deadline).
        self.budget: Callable[[int, Settings], float] | None = None
        self.chosen: dict[int, cand.Phrase] = {}
        self.cut: dict[int, int] = {}  # phrase start -> first step the human played in it
        self.index: CopyIndex | None = load_for(model.path)
        self.worker: SearchSource | None = None  # searches ahead, live only

    def step(self, n: int, s: Settings, turn0: Turn, turn: Turn, human_sounds: bool,
             logits: np.ndarray, sounding: tuple[bool, ...],
             pcs: Callable[[], frozenset[int] | None], before: Before | None = None,
             line: cand.Line | None = None) -> None:
        """Called before step ``n`` is decided: note where the human cuts a phrase short, and
        choose a phrase when one begins here (``before``: the state before step ``n - 1``
        and the tokens fed there, for taking a search the worker started; ``line``: the
        planner's line rules at ``n``)."""
        if human_sounds:
            for start, phrase in self.chosen.items():
                if start <= n < phrase.end:
                    self.cut[start] = min(self.cut.get(start, n), n)
            return
        if s.candidates <= 1 or n in self.chosen:
            return
        length = self._starts(n, turn0, turn)
        if length:
            self._begin(n, length, s, turn0, logits, sounding, pcs(), before, line)

    def soon(self, n: int, turn: Turn, s: Settings) -> int:
        """1 when a phrase may begin at step ``n + 1`` given the turn after step ``n - 1``
        (a listen gap is running, or a continue phrase is due): plan a step further then, so a
        search here has a step and a half. Not with a worker: it starts the search earlier
        still, and the conductor then waits for it at most until the phrase is due."""
        if s.candidates <= 1 or (self.worker is not None and s.mode == "call"):
            return 0
        if s.mode == "call":
            return int(turn.phase == LISTENING and turn.call_start is not None
                       and turn.silent > 0)
        return int(s.mode == "continue" and self._phrase_line(n + 1))

    def _phrase_line(self, n: int) -> bool:
        """True on every ``PHRASE_BARS``-th bar line of the metre (counted from its start)."""
        if not self.grid.is_bar_line(n):
            return False
        metres = self.grid.metres
        at = n + self.grid.offset
        change = metres.at(at)
        return ((at - change.step) // change.metre.bar_steps) % PHRASE_BARS == 0

    def _starts(self, n: int, turn0: Turn, turn: Turn) -> int:
        """Length of the phrase beginning at ``n`` (0 when none begins)."""
        if turn.phase == ANSWERING and turn0.phase != ANSWERING:
            return turn.answer_left + 1
        if turn.phase == ACCOMPANYING and turn.mode == "continue" and self._phrase_line(n):
            return PHRASE_BARS * self.grid.bar_steps(n)
        return 0

    def _begin(self, n: int, length: int, s: Settings, turn0: Turn, logits: np.ndarray,
               sounding: tuple[bool, ...], pcs: frozenset[int] | None,
               before: Before | None, line: cand.Line | None) -> None:
        """Choose the phrase starting at ``n``: the worker's search of exactly these inputs,
        else a search here from the model's current state."""
        budget = None if self.budget is None else self.budget(n, s)
        deadline = None if budget is None else time.perf_counter() + budget
        ctx = self._context(n, s, turn0, pcs, line, length)
        if self.worker is not None and before is not None:
            job = Job(*before, n, length, s, sounding, pcs, ctx, deadline, self.positions_of,
                      line)
            phrase = self.worker.take(job, budget)
            if phrase is not None:
                self.chosen[n] = phrase
                return
        batch = cand.sample(self.model, self.sampler, s, n, length, logits, sounding, pcs,
                            self.positions_of, deadline, line)
        self.chosen[n] = cand.choose(self.model.codec, batch, ctx, length)

    def prefetch(self, m: int, s: Settings, turn: Turn, ends: Callable[[int], bool],
                 before: Callable[[], tuple[Snapshot, np.ndarray]],
                 pcs: Callable[[int], frozenset[int] | None],
                 previous: Callable[[], Before | None] | None = None) -> None:
        """Give the worker the search of the answer that starts next if the human is silent
        from step ``m`` (the next unplanned one; ``turn`` is the state after ``m - 1``) on:
        at ``m`` itself (a bar line that ends the call; ``previous`` gives the state before
        ``m - 1`` and what was fed there), or at ``m + 1`` when ``m`` is the last step of a
        listen gap (the machine listens and every voice rests in ``m``)."""
        if self.worker is None or s.candidates <= 1 or s.mode != "call":
            return
        silent = HumanIn(None, False)
        turn_m = next_turn(turn, s, silent, m, ends(m), self.grid)
        if turn_m.phase == ANSWERING and turn.phase == LISTENING:
            prev = None if previous is None or m in self.chosen else previous()
            if prev is not None:
                self._request(prev, m, turn_m.answer_left + 1, s, turn, pcs(m))
            return
        if m + 1 in self.chosen or self.human.held():
            return
        turn_a = next_turn(turn_m, s, silent, m + 1, ends(m + 1), self.grid)
        length = self._starts(m + 1, turn_m, turn_a) if turn_m.phase == LISTENING else 0
        if not length:
            return
        snap, logits = before()
        self._request((snap, logits, (REST,) * self.model.codec.n_voices), m + 1, length, s,
                      turn_m, pcs(m + 1))

    def _request(self, prev: Before, start: int, length: int, s: Settings, turn0: Turn,
                 keys: frozenset[int] | None) -> None:
        """Ask the worker for the answer starting at ``start`` (``prev``: the state before
        ``start - 1`` and what is fed there; ``turn0`` the turn after ``start - 1``)."""
        assert self.worker is not None
        voices = self.model.codec.n_voices
        deadline = None if self.budget is None else time.perf_counter() + self.budget(start, s)
        line = None if self.entry_line is None else self.entry_line(start)
        ctx = self._context(start, s, turn0, keys, line, length)
        self.worker.request(Job(*prev, start, length, s, (False,) * voices, keys, ctx, deadline,
                                self.positions_of, line))

    def token(self, n: int, voice: int) -> int | None:
        """The chosen token at ``n`` for ``voice``, or None (sample as usual)."""
        for start in sorted(self.chosen, reverse=True):  # the latest phrase begun wins
            phrase = self.chosen[start]
            if start <= n < min(phrase.end, self.cut.get(start, phrase.end)):
                return phrase.token(n, voice)
        return None

    def rollback(self, step: int) -> None:
        """Forget phrases that start at or after ``step`` (their start state may change) and
        cuts at or after it (the re-run steps find them again)."""
        for start in [k for k in self.chosen if k >= step]:
            del self.chosen[start]
        self.cut = {k: c for k, c in self.cut.items() if k in self.chosen and c < step}

    def prune(self, keep: int) -> None:
        """Forget phrases that ended more than ``HISTORY_BARS`` before ``keep``."""
        horizon = keep - HISTORY_BARS * self.grid.bar_steps(keep)
        for start in [k for k, p in self.chosen.items() if p.end < horizon]:
            del self.chosen[start]
            self.cut.pop(start, None)

    def clear(self) -> None:
        """Forget everything (a fresh sequence)."""
        self.chosen.clear()
        self.cut.clear()

    def machine_notes(self, before: int) -> list[PNote]:
        """The melody notes of the chosen phrases that sounded before step ``before``."""
        codec = self.model.codec
        out: list[PNote] = []
        for start in sorted(self.chosen):
            phrase = self.chosen[start]
            stop = min(before, self.cut.get(start, phrase.end), phrase.end)
            toks = np.array(phrase.tokens[:max(0, stop - start)], dtype=np.int64)
            if toks.size:
                out += cand.notes_of(codec, toks, start)
        return out

    def _context(self, n: int, s: Settings, turn0: Turn, pcs: frozenset[int] | None,
                 line: cand.Line | None = None, length: int = 0) -> Context:
        human = [PNote(h.start, (h.end or n) - h.start, h.pitch) for h in self.human.recent
                 if h.start < n]
        entry = None
        if turn0.call_start is not None and s.mode == "call":
            source = [p for p in human if p.onset >= turn0.call_start]
            entry = n
        else:
            horizon = n - HISTORY_BARS * self.grid.bar_steps(n)
            source = sorted([p for p in human + self.machine_notes(n) if p.onset >= horizon])
        prefix = [p for p in self.machine_notes(n) if p.onset < n][-s.max_copy:]
        heard = human if s.mode == "call" and len(human) >= len(source) else source
        return Context(Material(source), prefix, _key(heard, pcs), self.grid.beat_steps(n),
                       self.grid.bar_steps(n), s.develop, s.max_copy, self.index, entry,
                       None if line is None or not any(line.paced) else line.target, length)


def _key(source: list[PNote], pcs: frozenset[int] | None) -> tuple[int, frozenset[int]] | None:
    """The tonic the notes suggest (Krumhansl-Schmuckler) and the scale the critic judges
    against: the key mask's pitch classes, else that key's scale; None with too few notes."""
    found = estimate_key([p.pitch for p in source], [max(p.dur, 1) for p in source])
    if found is None:
        return None
    tonic, mode = found
    return tonic, pcs if pcs is not None else scale_pcs(tonic, mode)
