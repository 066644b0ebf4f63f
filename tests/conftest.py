"""Fixtures every test package shares (a private JACK dummy server per test module), and the
retry rule for ``wallclock`` tests.

A ``wallclock`` test bounds timing over a real JACK dummy server or UDP: on a 2-core machine
shared with the rest of the suite (and other work), the scheduler can starve a server cycle or a
process for tens of milliseconds at any moment. Such a test runs up to :data:`WALLCLOCK_RUNS`
times and passes when one run passes; every failed run is printed in the summary, so a bound
that fails often shows up as such instead of hiding.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _pytest.runner import runtestprotocol

from liveduet.testkit.jack import JackServer

pytest_plugins = ["pytester"]
WALLCLOCK_RUNS = 3
_RETRIED: list[tuple[str, str]] = []


@pytest.fixture(scope="module")
def jack_server() -> Iterator[JackServer]:
    """A JACK dummy server for one test module (skipped when jackd is not installed)."""
    if not JackServer.available():
        pytest.skip("jackd2 is not installed: run 'bash scripts/test.sh' (it installs jackd2)")
    with JackServer() as server:
        yield server


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """Run a ``wallclock`` test again (fixtures set up afresh) when a run fails."""
    if item.get_closest_marker("wallclock") is None:
        return None
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for run in range(1, WALLCLOCK_RUNS + 1):
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        failed = [r for r in reports if r.failed]
        if not failed or run == WALLCLOCK_RUNS:
            break
        crash = getattr(failed[0].longrepr, "reprcrash", None)
        why = crash.message.splitlines()[0] if crash is not None else failed[0].when
        _RETRIED.append((item.nodeid, f"run {run} failed: {why}"))
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name every failed run of a ``wallclock`` test that was run again."""
    if _RETRIED:
        terminalreporter.section("wallclock tests run again")
        for nodeid, why in _RETRIED:
            terminalreporter.line(f"{nodeid} {why}")
