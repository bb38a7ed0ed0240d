"""The hand-written regression list of `bench/mutations.py` (`make mutations-listed`) stays true to the code.

Each entry names the exact line it breaks; a refactor that moves or rewrites that line would make the entry
fail only when someone runs the (slow) list. This checks, in a fraction of a second, that every entry's line
is still in its file exactly once (or at least `occurrence` times when it names one) and that every test file
it runs still exists.
"""

from __future__ import annotations

import pytest

from bench.mutations import MUTATIONS
from bench.scratch import ROOT


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_each_listed_mutation_still_finds_its_line(mutation):
    text = (ROOT / mutation.file).read_text()
    hits = text.split("\n").count(mutation.original)
    if mutation.occurrence is None:
        assert hits == 1, f"{mutation.file} has {hits} lines {mutation.original.strip()!r}: update the entry"
    else:
        assert hits >= mutation.occurrence, f"{mutation.file} has only {hits} lines {mutation.original.strip()!r}"
    assert mutation.apply(text) != text


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_each_listed_mutation_runs_tests_that_exist(mutation):
    files = [arg.partition("::")[0] for arg in mutation.tests if arg.startswith("tests/")]
    assert files, "an entry names at least one test file"
    missing = [name for name in files if not (ROOT / name).exists()]
    assert not missing, f"{mutation.name} runs missing tests {missing}"


def test_names_are_unique():
    names = [m.name for m in MUTATIONS]
    assert len(names) == len(set(names))
