"""The generated sweep: Hypothesis draws batches of cases of every class, and every case
and relation variant must agree with the oracle on the running kernel. 3,000 cases by
default; CLONE3_FUZZ_SWEEP=100000 for the full measurement."""

from __future__ import annotations

import os
import random
from collections import Counter

import pytest
from clone3_fuzz.model import profile as profiles
from clone3_fuzz.model.verdict import evaluate
from clone3_fuzz.runtime.probe import live_profile
from clone3_fuzz.runtime.sandbox import Sandbox
from clone3_fuzz.strategies import batches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SWEEP = int(os.environ.get("CLONE3_FUZZ_SWEEP", "3000"))
BATCH = 50


@pytest.fixture(scope="module")
def live(sandbox: Sandbox) -> profiles.Profile:
    return live_profile(sandbox)


def test_generated_cases_agree_and_relations_hold(sandbox: Sandbox, live: profiles.Profile) -> None:
    rules: Counter[str] = Counter()
    relations: Counter[str] = Counter()

    @settings(max_examples=max(1, SWEEP // BATCH), database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(batches(live.page_size, live.cgroup2_usable, BATCH), st.randoms(use_true_random=False))
    def sweep(cases: list, rng: random.Random) -> None:
        evaluation = evaluate([(f"#{i}", c) for i, c in enumerate(cases)], sandbox, live, relations=True, rng=rng)
        rules.update(evaluation.rule_counts())
        relations.update(check.relation for check in evaluation.checks)
        assert [r.to_json() for r in evaluation.discrepancies] == []
        assert [(v.check.relation, v.check.variant.dumps(), v.expected, v.variant_observed)
                for v in evaluation.violations] == []

    sweep()
    print(f"\nsweep: {sum(rules.values())} cases, rules {dict(rules.most_common())}, relations {dict(relations)}")
    assert rules["success"] and rules["copy.tail_nonzero"] and rules["size.over_page"]
    assert set(relations) == {"zero_extension", "truncation", "tail_position", "no_read_past_size", "precedence"}
