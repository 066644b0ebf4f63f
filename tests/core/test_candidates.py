"""Candidates and the critic: one batch, the same bytes per seed, the same answer instants."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from liveduet.core import answers
from liveduet.core import candidates as cand
from liveduet.core.codec import BOS, REST, TimedNote
from liveduet.core.critic import Context, Verdict, best, judge, metric_weight
from liveduet.core.engine import Engine
from liveduet.core.ledger import Out
from liveduet.core.model import StepModel
from liveduet.core.motifs import Material, PNote
from liveduet.core.sampling import Sampler, keyed_uniform
from liveduet.core.searchjob import Job, run
from liveduet.core.settings import Settings
from liveduet.live.searchworker import SearchWorker
from liveduet.offline.render import note_events, render

MELODY = Path(__file__).resolve().parents[2] / "models" / "folk_melody.onnx"
CALL = [TimedNote(i * 0.5, p, i * 0.5 + 0.5) for i, p in
        enumerate([67, 69, 71, 67, 74, 72, 71, 69, 67, 69, 71, 67, 69, 67, 66, 67])]


@pytest.fixture(scope="module")
def model() -> StepModel:
    return StepModel(MELODY)


def duet(model: StepModel, **kw: object) -> tuple[list[TimedNote], list[tuple[float, str]]]:
    """Machine notes and the turn log of a call-mode render of CALL twice."""
    second = [TimedNote(n.start + 16, n.pitch, n.end + 16) for n in CALL]
    s = Settings(mode="call", thru=False, **kw)  # type: ignore[arg-type]
    d = render(Engine(model, s), CALL + second, tail_bars=2)
    return d.machine.get(0, []), d.turns


def test_row_uniforms_are_the_keyed_streams() -> None:
    u = cand.row_uniforms(7, 4, 123, 0)
    assert u[0] == keyed_uniform(7, 123, 0)  # row 0 draws what a single sample draws
    assert list(u) == [keyed_uniform(cand.row_seed(7, r), 123, 0) for r in range(4)]
    assert len(set(u.tolist())) == 4


def test_one_candidate_is_the_single_sample(model: StepModel,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    one = duet(model, candidates=1, seed=5)
    monkeypatch.setattr(answers.Phrases, "step", lambda *a, **k: None)
    assert duet(model, candidates=8, seed=5) == one  # with the hook off, N changes nothing


def test_same_seed_same_answer_on_the_same_instants(model: StepModel) -> None:
    a, b = duet(model, candidates=8, seed=3), duet(model, candidates=8, seed=3)
    assert a == b and a[0]
    single = duet(model, candidates=1, seed=3)
    assert [t for t in a[1] if t[1] == "answering"] == [t for t in single[1]
                                                       if t[1] == "answering"]
    assert duet(model, candidates=8, seed=4)[0] != a[0]


def test_sample_leaves_the_model_state_and_steps_rows_apart(model: StepModel) -> None:
    model.reset()
    logits = model.step(BOS)[0].copy()
    before = model.snapshot()
    batch = cand.sample(model, Sampler(model.codec), Settings(candidates=6), 0, 16, logits,
                        (False,), None, cand.no_positions)
    assert batch.tokens.shape == (6, 16, 1) and batch.steps == 16
    assert len({r.tobytes() for r in batch.tokens}) > 1
    after = model.snapshot()
    assert all(np.array_equal(x, y) for x, y in zip(before.arrays, after.arrays, strict=True))
    assert np.all(batch.logp <= 0.0)


def test_a_passed_deadline_keeps_what_was_sampled(model: StepModel) -> None:
    model.reset()
    logits = model.step(BOS)[0].copy()
    seen: list[int] = []
    batch = cand.sample(model, Sampler(model.codec), Settings(candidates=4), 10, 32, logits,
                        (False,), None, lambda n: seen.append(n) or (0,),
                        deadline=time.perf_counter() - 1.0)
    assert batch.steps == 1 and seen == [10]  # positions_of is asked before each step


def ctx(**kw: object) -> Context:
    base = dict(source=Material([PNote(2 * i, 2, p) for i, p in enumerate([60, 62, 64, 60,
                                                                           67])]),
                prefix=[], key=(0, frozenset({0, 2, 4, 5, 7, 9, 11})), steps_per_beat=4,
                steps_per_bar=16, develop=1.0, max_copy=12, index=None)
    return Context(**{**base, **kw})  # type: ignore[arg-type]


def test_critic_prefers_development_in_key_and_closure() -> None:
    reuse = [PNote(2 * i, 2, p) for i, p in enumerate([65, 67, 69, 65, 72, 67, 64, 60])]
    plain = [PNote(2 * i, 2, p) for i, p in enumerate([65, 64, 65, 67, 71, 69, 66, 61])]
    logps = [-2.0] * 8
    assert judge(reuse, logps, ctx()).score > judge(plain, logps, ctx()).score
    assert judge(reuse, logps, ctx(develop=0.0)).score < judge(reuse, logps, ctx()).score
    odd = judge(reuse, [-2.0] * 7 + [-9.0], ctx())
    assert odd.score < judge(reuse, logps, ctx()).score
    assert judge([], [], ctx()).score == -np.inf
    assert [metric_weight(n, 4, 16) for n in (32, 8, 4, 3)] == [1.0, 0.7, 0.4, 0.0]


def test_best_rejects_copies_unless_every_row_copies() -> None:
    good, copy = Verdict(1.0, 0, 0, 1, 0), Verdict(5.0, 0, 0, 1, 20)
    assert best([copy, good], max_copy=12) == 1
    assert best([copy, Verdict(0.0, 0, 0, 1, 14)], max_copy=12) == 1  # the shortest copy
    assert best([good, good], max_copy=12) == 0


def test_a_search_out_of_budget_still_answers_on_time(model: StepModel) -> None:
    s = Settings(mode="call", thru=False, candidates=8, seed=3)
    engine = Engine(model, s, search_margin=64.0)
    cut = render(engine, CALL, tail_bars=2)
    full = render(Engine(model, s), CALL, tail_bars=2)
    assert cut.turns == full.turns and cut.machine.get(0)
    chosen = list(engine._plan.phrases.chosen.values())
    assert chosen and all(not p.complete and len(p.tokens) == 1 for p in chosen)


def test_a_listen_gap_plans_one_step_further(model: StepModel) -> None:
    for n, extra in ((1, 0), (8, 1)):
        engine = Engine(model, Settings(mode="call", thru=False, candidates=n), lookahead=1)
        engine.feed(0.0, (0x90, 67, 80))
        engine.feed(3.0, (0x80, 67, 0))
        ahead = []
        for pos in np.arange(0.0, 8.0, 0.5):
            engine.advance(float(pos))
            ahead.append(engine.status()["planned"])
        assert max(ahead) == 1 + extra  # only the gap (steps 4-6) plans the extra step


def drive_prefetching(engine: Engine, notes: list[TimedNote], end: float) -> list[Out]:
    """render.drive, calling ``prefetch`` after every call as the live runtime does."""
    events = note_events(notes, 4)
    outs: list[Out] = []
    i = 0
    while (due := engine.next_due()) is not None and due <= end:
        if i < len(events) and events[i][0] <= due:
            outs += engine.feed(*events[i])
            i += 1
        else:
            outs += engine.advance(due)
        engine.prefetch()
    return outs


def test_the_worker_searches_in_the_gap_and_answers_the_same(model: StepModel) -> None:
    s = Settings(mode="call", thru=False, candidates=8, seed=9)
    workers: list[SearchWorker] = []

    def make(m: StepModel) -> SearchWorker | None:
        workers.append(SearchWorker(m))
        return workers[-1]
    with_worker = Engine(model, s, search_worker=make)
    ahead = drive_prefetching(with_worker, CALL, 48.0)
    alone = drive_prefetching(Engine(model, s), CALL, 48.0)
    workers[0].close()
    assert [o.msg for o in ahead] == [o.msg for o in alone] and ahead
    assert workers[0].taken >= 1  # the answer was searched ahead and taken


def test_the_worker_hands_over_only_the_search_of_the_same_inputs(model: StepModel) -> None:
    model.reset()
    logits = model.step(BOS)[0].copy()
    s = Settings(candidates=4, seed=2)
    job = Job(model.snapshot(), logits, (REST,), 1, 16, s, (False,), None, ctx(), None)
    other = Job(job.snap, logits, (REST,), 1, 16, s.with_value("seed", 3), (False,), None,
                ctx(), None)
    worker = SearchWorker(model)
    try:
        worker.request(job)
        phrase = worker.take(job, None)
        assert phrase is not None and phrase == run(model, Sampler(model.codec), job)
        assert worker.take(other, 0.0) is None  # another seed: the conductor searches itself
    finally:
        worker.close()
