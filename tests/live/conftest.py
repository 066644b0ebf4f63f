"""Fixtures of the live tests: the fault tests' models and running instances."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from liveduet.core.codec import melody_codec
from liveduet.testkit.factory import scripted_model
from liveduet.testkit.jack import JackServer
from tests.live.faultkit import Live, _table


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("faults")
    codec = melody_codec()
    return {"answer": scripted_model(folder / "answer.onnx", _table(), codec),
            "nan": scripted_model(folder / "nan.onnx", _table(nan_after_answer=True), codec)}


@pytest.fixture
def live_factory(jack_server: JackServer) -> Iterator[list[Live]]:
    made: list[Live] = []
    yield made
    for live in made:
        live.close()
