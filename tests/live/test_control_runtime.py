"""Acceptance over real UDP: a separate OSC client changes every setting of a running Runtime
and sees each change echoed; actions, learn and model swaps reach the conductor.

The engine is a tiny recording fake (the runtime, the clock, the OSC server and the sockets are
real), so this checks the control layer and the runtime's hosting of it, not the music.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pythonosc.udp_client import SimpleUDPClient

from liveduet.core.ccmap import CcMap
from liveduet.core.clock import InternalClock
from liveduet.core.metre import MetreMap, StepGrid, parse_metre
from liveduet.core.oscmap import encode
from liveduet.core.settings import FIELD_BY_NAME, FIELDS, Action, Command, Set, Settings
from liveduet.live.control import OscControl
from liveduet.live.runtime import Runtime
from tests.live.test_control import Listener

NEW_VALUES: dict[str, Any] = {
    "mode": "harmonize", "temperature": 1.25, "top_p": 0.5, "bpm": 96.0, "key": "D",
    "scale": "dorian", "low": 40, "high": 90, "density": 0.75, "listen_gap": 8,
    "response_bars": 2.0, "response_min_bars": 2.0, "response_max_bars": 8.0, "thru": False,
    "channel": 3, "velocity": 100, "seed": 1234, "meter": "6/8", "answer_at": "beat",
    "candidates": 4, "develop": 0.25, "max_copy": 20, "voice_leading": "guided",
}


class RecordingEngine:
    """Applies settings like the real engine and records every command; plays nothing."""

    def __init__(self) -> None:
        self._settings = Settings()
        self.title = "first model"
        self.commands: queue.SimpleQueue[Command] = queue.SimpleQueue()

    @property
    def settings(self) -> Settings:
        return self._settings

    def feed(self, pos: float, msg: Any) -> list[Any]:
        return []

    def feed_many(self, events: Any) -> list[Any]:
        return []

    def prefetch(self) -> None:
        pass

    def close(self) -> None:
        pass

    def advance(self, pos: float) -> list[Any]:
        return []

    def next_due(self) -> float | None:
        return None

    def apply(self, cmd: Command, pos: float) -> list[Any]:
        if isinstance(cmd, Set):
            self._settings = self._settings.with_value(cmd.name, cmd.value)
        self.commands.put(cmd)
        return []

    def swap_model(self, model: Any, pos: float) -> list[Any]:
        self.title = f"title of {model}"
        return []

    def release_all(self, pos: float) -> list[Any]:
        return []

    def status(self) -> dict[str, Any]:
        return {"mode": self._settings.mode, "phase": "listening", "step": 0,
                "title": self.title}

    @property
    def grid(self) -> StepGrid:
        return StepGrid(MetreMap(parse_metre(self._settings.meter)))

    def beat_at(self, pos: float) -> int:
        return 0


@pytest.fixture
def live() -> Iterator[tuple[SimpleUDPClient, Listener, RecordingEngine, Runtime]]:
    listener = Listener()
    engine = RecordingEngine()
    rt = Runtime(engine, InternalClock(bpm=120.0), lambda msg: None, ccmap=CcMap.default(),
                 loader=lambda name: f"model {name}")
    control = OscControl(rt.submit, port=0, reply_port=listener.port)
    rt.publisher = control
    control.start()
    rt.start()
    try:
        yield SimpleUDPClient(*control.address), listener, engine, rt
    finally:
        rt.stop()
        control.stop()
        listener.sock.close()
    assert rt.failed is None
    assert sum(control.counters.values()) == 0


def _osc_form(name: str, value: Any) -> float:
    """The value as a TouchOSC control sends it: a float (choice index, 0/1, number)."""
    f = FIELD_BY_NAME[name]
    if f.kind == "choice":
        return float(f.choices.index(value))
    return float(value)


def test_every_setting_changes_and_is_echoed(live: Any) -> None:
    phone, listener, engine, _ = live
    assert set(NEW_VALUES) == {f.name for f in FIELDS}, "give every new setting a test value"
    phone.send_message("/liveduet/state", 1.0)
    assert listener.until("/liveduet/model") == ["first model"]
    for name, value in NEW_VALUES.items():
        assert value != getattr(Settings(), name)
        phone.send_message(f"/liveduet/{name}", _osc_form(name, value))
        for path, args in encode(name, value):
            assert listener.until(path) == pytest.approx(args), name
    assert engine.settings == Settings.from_dict(NEW_VALUES)
    phone.send_message("/liveduet/tempo", 150.0)
    assert listener.until("/liveduet/bpm") == [pytest.approx(150.0)]


def test_actions_learn_and_model_swap_reach_the_conductor(live: Any) -> None:
    phone, listener, engine, rt = live
    for name in ("end_call", "reset", "panic"):
        phone.send_message(f"/liveduet/{name}", 1.0)
        phone.send_message(f"/liveduet/{name}", 0.0)  # the release does nothing
    seen = []
    deadline = time.monotonic() + 3.0
    while len(seen) < 4 and time.monotonic() < deadline:  # play from start(), then the three
        try:
            seen.append(engine.commands.get(timeout=0.1))
        except queue.Empty:
            continue
    assert seen == [Action("play"), Action("end_call"), Action("reset"), Action("panic")]
    phone.send_message("/liveduet/learn", ["density", 1.0])
    assert listener.until("/liveduet/learn") == ["density"]
    assert rt.ccmap.learning == "density"
    phone.send_message("/liveduet/model", "chorale_satb")
    assert listener.until("/liveduet/model") == ["title of model chorale_satb"]
