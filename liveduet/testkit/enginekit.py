"""Helpers for engine tests: scripted tables, a note simulator over Out streams."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from liveduet.core.codec import BOS, HOLD, REST, GridCodec, melody_codec
from liveduet.core.engine import Out
from liveduet.core.model import StepModel
from liveduet.testkit.factory import scripted_model

BIG = 30.0


def table_for(codec: GridCodec, nxt: dict[int, int], default: int = REST) -> np.ndarray:
    """A scripted table: after token ``t`` the model strongly predicts ``nxt.get(t, default)``."""
    table = np.zeros((codec.vocab_size, codec.vocab_size), dtype=np.float32)
    for tok in range(codec.vocab_size):
        table[tok, nxt.get(tok, default)] = BIG
    return table


def loop_model(tmp: Path, codec: GridCodec | None = None) -> StepModel:
    """Melody model cycling 60 (two steps), 64 (one step), rest: [60, HOLD, 64, REST]."""
    codec = codec or melody_codec()
    on = codec.note_on
    table = table_for(codec, {BOS: REST, REST: on(60), on(60): HOLD, HOLD: on(64), on(64): REST})
    return StepModel(scripted_model(tmp / "loop.onnx", table, codec))


def sounding_after(outs: Sequence[Out]) -> set[tuple[int, int]]:
    """(channel, pitch) keys a synth would still sound after receiving ``outs`` in order."""
    keys: set[tuple[int, int]] = set()
    for out in outs:
        kind, ch = out.msg[0] & 0xF0, out.msg[0] & 0x0F
        if kind == 0x90 and out.msg[2] > 0:
            keys.add((ch, out.msg[1]))
        elif kind == 0x80 or kind == 0x90:
            keys.discard((ch, out.msg[1]))
        elif kind == 0xB0 and out.msg[1] == 123:
            keys = {k for k in keys if k[0] != ch}
    return keys


def notes_of(outs: Sequence[Out], voice: int | None = 0) -> list[tuple[float, int, float]]:
    """(start, pitch, end) of machine notes of ``voice`` from note-on/off pairs."""
    open_: dict[int, float] = {}
    done: list[tuple[float, int, float]] = []
    for out in outs:
        if out.voice != voice:
            continue
        kind, pitch = out.msg[0] & 0xF0, out.msg[1]
        if pitch in open_:
            done.append((open_.pop(pitch), pitch, out.pos))
        if kind == 0x90 and out.msg[2] > 0:
            open_[pitch] = out.pos
    return sorted(done)


def human(notes: Sequence[tuple[float, int, float]], channel: int = 15
          ) -> list[tuple[float, tuple[int, ...]]]:
    """(start, pitch, end) in steps -> note messages on ``channel``, offs before ons."""
    ev = []
    for start, pitch, end in notes:
        ev.append((start, 1, (0x90 | channel, pitch, 100)))
        ev.append((end, 0, (0x80 | channel, pitch, 0)))
    ev.sort()
    return [(p, m) for p, _, m in ev]


__all__ = ["HOLD", "human", "loop_model", "notes_of", "sounding_after", "table_for"]
