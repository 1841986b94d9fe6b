"""Verdicts: each outcome against the oracle's prediction, and each relation's variant
against its source. Anything that disagrees is a discrepancy, named by its rule or
relation.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from .case import Case
from .executor import Outcome
from .oracle import DISCREPANCY, Prediction, predict
from .profile import Profile
from .relations import Check, Violation, derive, violations
from .sandbox import Sandbox


@dataclass(frozen=True)
class Result:
    where: str
    case: Case
    outcome: Outcome
    prediction: Prediction

    @property
    def observed(self) -> str:
        return self.outcome.observed

    @property
    def verdict(self) -> str:
        return self.prediction.verdict(self.observed)

    @property
    def rule(self) -> str:
        """The rule that explains what was observed, or, in a discrepancy, the one that
        predicted otherwise."""
        return self.prediction.rules.get(self.observed, self.prediction.rule)

    def to_json(self) -> dict[str, Any]:
        return {"where": self.where, "case": self.case.to_json(), "observed": self.observed,
                "detail": self.outcome.detail, "predicted": self.prediction.outcomes, "rule": self.rule,
                "verdict": self.verdict}


def violation_json(v: Violation) -> dict[str, Any]:
    return {"relation": v.check.relation, "source": v.check.source.to_json(), "variant": v.check.variant.to_json(),
            "source_observed": v.source_observed, "observed": v.variant_observed, "expected": v.expected,
            "verdict": DISCREPANCY}


@dataclass
class Evaluation:
    results: list[Result]
    checks: list[Check] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)

    @property
    def discrepancies(self) -> list[Result]:
        return [r for r in self.results if r.verdict == DISCREPANCY]

    @property
    def clean(self) -> bool:
        return not self.discrepancies and not self.violations

    def rule_counts(self) -> Counter[str]:
        return Counter(r.rule for r in self.results)


def judge(named: Sequence[tuple[str, Case]], outcomes: Sequence[Outcome | None], profile: Profile) -> list[Result]:
    """A result for every case that has an outcome (an interrupted run leaves some out)."""
    return [Result(where, case, outcome, predict(case, profile))
            for (where, case), outcome in zip(named, outcomes) if outcome is not None]


def evaluate(named: Sequence[tuple[str, Case]], sandbox: Sandbox, profile: Profile,
             relations: bool = False, rng: random.Random | None = None) -> Evaluation:
    """Runs the cases (and, with ``relations``, a variant of each for every relation that
    applies) in one go, and judges every outcome."""
    cases = [case for _, case in named]
    rng = rng or random.Random(0)
    checks, sources = [], []
    if relations:
        for index, case in enumerate(cases):
            derived = derive(case, profile, rng)
            checks.extend(derived)
            sources.extend([index] * len(derived))
    outcomes = sandbox.run(cases + [c.variant for c in checks])
    results = judge(named, outcomes, profile)
    variant_observed = [o.observed for o in outcomes[len(cases):]]
    found = violations(checks, [outcomes[i].observed for i in sources], variant_observed)
    return Evaluation(results, checks, found)
