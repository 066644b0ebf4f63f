"""The retry rule for ``wallclock`` tests (tests/conftest.py), run on small test files."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py").read_text()
FILE = '''
import pytest
from pathlib import Path

@pytest.mark.wallclock
def test_fails_once(tmp_path, counter=Path(__file__).with_name("runs")):
    runs = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(runs + 1))
    assert not list(tmp_path.iterdir()), "a run again gets fresh fixtures"
    (tmp_path / "used").write_text("")
    assert runs >= 1, "late by 30 ms"

@pytest.mark.wallclock
def test_always_late():
    assert False, "late by 90 ms"

def test_plain_fails_once(counter=Path(__file__).with_name("plain")):
    runs = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(runs + 1))
    assert runs >= 1
'''


def test_a_wallclock_test_runs_again_and_every_failed_run_is_named(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    wallclock: timing\n")
    pytester.makepyfile(test_timing=FILE)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    assert (pytester.path / "runs").read_text() == "2"
    assert (pytester.path / "plain").read_text() == "1"   # no marker: one run
    result.stdout.fnmatch_lines([
        "*wallclock tests run again*",
        "*test_fails_once run 1 failed: AssertionError: late by 30 ms*",
        "*test_always_late run 1 failed: AssertionError: late by 90 ms*",
        "*test_always_late run 2 failed: AssertionError: late by 90 ms*",
    ])
    assert "test_always_late run 3" not in result.stdout.str()
