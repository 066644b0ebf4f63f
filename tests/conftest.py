"""Fixtures every test package shares: a private JACK dummy server per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from liveduet.testkit.jack import JackServer


@pytest.fixture(scope="module")
def jack_server() -> Iterator[JackServer]:
    """A JACK dummy server for one test module (skipped when jackd is not installed)."""
    if not JackServer.available():
        pytest.skip("jackd2 is not installed: run 'bash scripts/test.sh' (it installs jackd2)")
    with JackServer() as server:
        yield server
