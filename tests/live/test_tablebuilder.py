"""Harmony tables built ahead on the worker thread: the same tables, the same music."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from liveduet.core.codec import BOS
from liveduet.core.engine import Engine, Out
from liveduet.core.harmony import Context, Harmonizer
from liveduet.core.model import StepModel
from liveduet.core.sampling import Sampler
from liveduet.core.settings import Settings
from liveduet.live.tablebuilder import TableBuilder
from liveduet.live.workers import Workers
from liveduet.offline.render import drive
from tests.core.test_engine_props import check_common, drive_until

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "models" / "chorale_satb.onnx"   # int8, dynamically quantised: rows depend
pytestmark = pytest.mark.skipif(not BUNDLED.exists(), reason="bundled chorale_satb missing")


def context(step: int) -> Context:
    return Context(step, (False, False, False, False), 3, 0.7, 0.95, 0.5, 0, 127, None)


def test_worker_table_is_bit_for_bit_the_conductors() -> None:
    model = StepModel(BUNDLED)
    model.step(BOS)
    snap, logits0 = model.snapshot(), np.asarray(model.step(model.codec.note_on(67))[0]).copy()
    own = Harmonizer(model, Sampler(model.codec), 0).build(context(5), snap, logits0)
    builder = TableBuilder.for_model(StepModel(BUNDLED))
    assert builder is not None
    try:
        builder.request(context(5), snap, logits0)
        made = None
        for _ in range(50):  # a loaded machine may take longer than one wait to load and build
            made = builder.take(context(5), snap, logits0)
            if made is not None:
                break
        assert made is not None and made.matches(context(5), snap, logits0)
        for name in ("fed", "bad", "logits"):
            assert np.array_equal(getattr(made, name), getattr(own, name)), name
        for a, b in zip(made.state, own.state, strict=True):
            assert np.array_equal(a, b)
        assert builder.take(context(6), snap, logits0) is None      # never asked: no wait
    finally:
        builder.close()


def test_a_newer_request_replaces_the_waiting_one_and_close_stops() -> None:
    model = StepModel(BUNDLED)
    model.step(BOS)
    snap, logits0 = model.snapshot(), np.asarray(model.step(model.codec.note_on(67))[0]).copy()
    builder = TableBuilder.for_model(model)
    assert builder is not None
    for step in range(10):
        builder.request(context(step), snap, logits0)
    last = builder.take(context(9), snap, logits0)
    assert last is not None and last.ctx.step == 9
    assert builder.built <= 10 and builder.failed == 0
    builder.close()
    assert not builder._thread.is_alive()
    builder.request(context(11), snap, logits0)               # closed: ignored, no error
    assert builder.take(context(11), snap, logits0) is None


def test_melody_models_get_no_worker(tmp_path: Path) -> None:
    from liveduet.core.codec import melody_codec
    from liveduet.testkit.factory import lstm_model

    assert TableBuilder.for_model(StepModel(lstm_model(tmp_path / "m.onnx", melody_codec()))) \
        is None


def soprano(seed: int) -> list[tuple[float, tuple[int, ...]]]:
    rng = random.Random(seed)
    ev, step, pitch = [], 4.0, 67
    for _ in range(40):
        dur = rng.choice([1, 2, 2, 4])
        pitch = max(60, min(79, pitch + rng.choice([-4, -2, -1, 1, 2, 3])))
        start = step + rng.uniform(-0.3, 0.3)
        ev += [(start, (0x90, pitch, 90)), (step + dur - 0.15, (0x80, pitch, 0))]
        step += dur
    return sorted(ev)


def play(engine: Engine, ev: list[tuple[float, tuple[int, ...]]]) -> list[Out]:
    """Drive like the runtime: advance when due, feed, and prefetch after each."""
    outs: list[Out] = []
    for pos, msg in ev:
        outs += drive_until(engine, pos)
        engine.prefetch()
        outs += engine.feed(pos, msg)
        engine.prefetch()
    return outs + drive(engine, [], ev[-1][0] + 8)


@pytest.mark.parametrize(("seed", "rules"), [(0, "off"), (1, "off"), (0, "strict"),
                                             (1, "guided")])
def test_prefetched_tables_play_exactly_what_the_conductor_would(seed: int, rules: str) -> None:
    settings = Settings(mode="harmonize", temperature=0.7, seed=seed, thru=False,
                        voice_leading=rules)
    alone = play(Engine(StepModel(BUNDLED), settings), soprano(seed))
    workers = Workers()
    helped = Engine(StepModel(BUNDLED), settings, table_source=workers.tables)
    try:
        with_worker = play(helped, soprano(seed))
    finally:
        workers.close()
    assert with_worker == alone
    check_common(with_worker)
    assert helped.counters["harmony_prefetched"] > 0   # the worker's tables were used


def test_model_swap_closes_the_old_worker_and_starts_one_for_the_new_model() -> None:
    settings = Settings(mode="harmonize", temperature=0.7, seed=2, thru=False)
    workers = Workers()
    engine = Engine(StepModel(BUNDLED), settings, table_source=workers.tables)
    try:
        outs = play(engine, soprano(2)[:20])
        old = engine._source
        assert isinstance(old, TableBuilder) and old._thread.is_alive()
        outs += engine.swap_model(StepModel(BUNDLED), engine._last_pos)
        assert not old._thread.is_alive()
        new = engine._source
        assert isinstance(new, TableBuilder) and new is not old
        start = engine._last_pos + 1
        outs += play(engine, [(start + pos, msg) for pos, msg in soprano(3)[:20]])
        assert engine.counters["harmony_prefetched"] > 0 and new.built > 0
        check_common(outs + engine.release_all(engine._last_pos + 100), ordered=False)
    finally:
        workers.close()
    assert workers.builder is None and not new._thread.is_alive()
