"""pytest plugin for `bench.mutation_score`: notes the mutants that a test "killed" only by hitting its timeout.

A mutant that makes a test hang until pytest-timeout fires is not caught by an assertion about the promise:
the test has a wait with no bound of its own. The mutant's name goes to a file the score counts as surviving.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

MARK = Path("mutmut-timeouts.txt")  # in mutmut's working directory (mutants/)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    active = mutant not in ("", "stats", "fail", "mutant_generation")
    if active and report.failed and "Timeout (>" in str(report.longrepr):  # pytest-timeout's message
        with MARK.open("a") as out:
            out.write(f"{mutant}\n")
