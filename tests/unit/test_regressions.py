"""The regression corpus, as pure oracle checks: every listed kernel version's expectation."""

from __future__ import annotations

from pathlib import Path

import pytest
from clone3_fuzz.campaign.corpus import Regression, read_regressions
from clone3_fuzz.model import profile as profiles
from clone3_fuzz.model.case import CaseError
from clone3_fuzz.model.oracle import predict

from .test_oracle import ROOT

ENTRIES = list(read_regressions())


def test_the_corpus_loads() -> None:
    assert ENTRIES and not [e for e in ENTRIES if isinstance(e, CaseError)]


@pytest.mark.parametrize("entry", [e for e in ENTRIES if isinstance(e, Regression)], ids=lambda e: e.where)
def test_the_oracle_expects_what_each_kernel_gave(entry: Regression) -> None:
    # An expectation with effects is a whole outcome key; one without, the errno alone.
    for version, outcomes in entry.expected.items():
        due = predict(entry.case, profiles.named(version, ROOT))
        assert (due.outcomes if any("{" in o for o in outcomes) else due.bases) == outcomes, version


def test_a_bad_entry_is_named_and_the_rest_loads(tmp_path: Path) -> None:
    (tmp_path / "r.jsonl").write_text('{"case": {"size": 88}, "expected": {"6.1": ["success"]}}\n'
                                      '{"case": {"size": 88, "x": 1}}\n{"case": {"size": 64}, "expected": {"v": []}}\n'
                                      '{"case": {"size": 4097}, "expected": {"5.3": ["E2BIG"]}}\n')
    loaded = list(read_regressions(tmp_path))
    assert [str(e) if isinstance(e, CaseError) else e.where for e in loaded] == [
        "r.jsonl:1", "r.jsonl:2: x: unknown key", "r.jsonl:3: expected: not a kernel version: 'v'", "r.jsonl:4"]
    assert loaded[0].expected_on((6, 5, 0)) == ["success"] and loaded[0].expected_on((5, 4, 0)) is None


def test_a_stable_release_applies_within_its_own_series(tmp_path: Path) -> None:
    # CLONE_NEWTIME: mainline 6.3, backported to 6.1.20 and 6.2.7 (model/stable.py).
    (tmp_path / "r.jsonl").write_text('{"case": {"size": 88}, "expected": {"6.0": ["EINVAL"], "6.3": ["success"], '
                                      '"6.1.20": ["success"], "6.2.7": ["success"]}}\n')
    [entry] = read_regressions(tmp_path)
    assert isinstance(entry, Regression)
    on = {v: entry.expected_on(v) for v in [(6, 1, 5), (6, 1, 192), (6, 2, 3), (6, 2, 7), (6, 4, 0), (5, 15, 0)]}
    assert on == {(6, 1, 5): ["EINVAL"], (6, 1, 192): ["success"], (6, 2, 3): ["EINVAL"], (6, 2, 7): ["success"],
                  (6, 4, 0): ["success"], (5, 15, 0): None}
