"""Verdicts: each outcome against the oracle's prediction, and each relation's variant
against its source. Anything that disagrees is a discrepancy, named by its rule or
relation; but only once it has repeated.

Two rules keep luck out of every verdict:

- A relation compares only outcomes that the cases determine: a source or a variant
  whose prediction holds more than one outcome (a pid that may be in use, a literal
  pointer that may be mapped, RLIMIT_NPROC) is not compared, since its two runs may
  legitimately differ.
- Before anything is reported, it is run again, back to back, until it has been seen
  :data:`REPEATS` times. A discrepancy or violation that does not repeat every time is
  *flaky*: recorded with its counts, never a finding.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Sequence

from . import effects
from .case import Case
from .oracle import DISCREPANCY, Oracle, Prediction
from .outcome import Outcome, Runner
from .profile import Profile
from .relations import SAME, Check, Violation, derive, violations

REPEATS = 3
FLAKY = "flaky"
HARNESS = "harness"  # the harness could not run the case (killed, stalled, a cgroup limit)


@dataclass(frozen=True)
class Result:
    """One case's outcome beside the oracle's prediction."""

    where: str
    case: Case
    outcome: Outcome
    prediction: Prediction
    flaky: bool = False  # disagreed once, but not on every re-run

    @property
    def observed(self) -> str:
        """What the kernel gave, with its effects: the outcome's key."""
        return self.outcome.key

    @cached_property
    def verdict(self) -> str:
        """``agree``, ``discrepancy``, ``flaky`` (disagreed once but not on every re-run),
        or ``harness`` (the harness could not run it, every time: no verdict at all)."""
        if self.observed.startswith("harness"):
            return HARNESS
        return FLAKY if self.flaky else self.prediction.verdict(self.observed)

    @property
    def rule(self) -> str:
        """The rule that explains what was observed, or, in a discrepancy, the one that
        predicted otherwise."""
        return self.prediction.rule_for(self.observed)

    def to_json(self) -> dict[str, Any]:
        """The result as JSON."""
        return {"where": self.where, "case": self.case.to_json(), "observed": self.observed,
                "effects": effects.parse(self.outcome.effects), "detail": self.outcome.detail,
                "predicted": self.prediction.outcomes, "rule": self.rule, "verdict": self.verdict}


def violation_json(v: Violation) -> dict[str, Any]:
    """A broken relation as JSON, with its source and variant."""
    return {"relation": v.check.relation, "source": v.check.source.to_json(), "variant": v.check.variant.to_json(),
            "source_observed": v.source_observed, "observed": v.variant_observed, "expected": v.expected,
            "verdict": DISCREPANCY}


@dataclass(frozen=True)
class Flaky:
    """A discrepancy or violation that did not repeat: ``observed`` counts what each run
    gave (for a relation, "source -> variant")."""

    what: str  # the rule, or "relation.<name>"
    case: Case
    observed: Counter[str]

    def to_json(self) -> dict[str, Any]:
        """The result as JSON."""
        return {"what": self.what, "case": self.case.to_json(), "observed": dict(self.observed), "verdict": FLAKY}


@dataclass
class Evaluation:
    """Everything :func:`evaluate` learnt from one run of cases and their variants."""

    results: list[Result]
    checks: list[Check] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    #: Relation variants that the oracle itself contradicts (a variant is a case too).
    variant_discrepancies: list[Result] = field(default_factory=list)
    flaky: list[Flaky] = field(default_factory=list)
    #: Checks left out because their outcome depends on machine state.
    undetermined: int = 0
    #: Cases (and variants) the harness could not run, every time it tried.
    harness: list[Result] = field(default_factory=list)

    @property
    def discrepancies(self) -> list[Result]:
        """The source cases that disagreed on every run."""
        return [r for r in self.results if r.verdict == DISCREPANCY]

    @property
    def clean(self) -> bool:
        """Whether nothing disagreed for good: no discrepancy, variant discrepancy or violation."""
        return not self.discrepancies and not self.violations and not self.variant_discrepancies

    def rule_counts(self) -> Counter[str]:
        """How many source results each rule explained."""
        return Counter(r.rule for r in self.results)


def judge(named: Sequence[tuple[str, Case]], outcomes: Sequence[Outcome | None], profile: Profile,
          predictions: Sequence[Prediction] | None = None) -> list[Result]:
    """A result for every case that has an outcome (an interrupted run leaves some out)."""
    if predictions is None:
        oracle = Oracle(profile)
        predictions = [oracle.predict(case) for _, case in named]
    return [Result(where, case, outcome, prediction)
            for (where, case), outcome, prediction in zip(named, outcomes, predictions) if outcome is not None]


def determined(prediction: Prediction) -> bool:
    """Whether the case alone decides the outcome."""
    return len(prediction.rules) == 1


def _confirm(sandbox: Runner, results: list[Result], found: list[Violation],
             flaky: list[Flaky]) -> tuple[list[Result], list[Violation]]:
    """Runs each suspect REPEATS - 1 more times, back to back with its source for a
    relation, and keeps those that gave the same answer every time."""
    if not results and not found:
        return results, found
    again = REPEATS - 1
    cases = [r.case for r in results for _ in range(again)]
    for v in found:
        cases += [v.check.source, v.check.variant] * again
    outcomes = [o.key for o in sandbox.run(cases)]
    kept_results, kept_violations = [], []
    for i, result in enumerate(results):
        seen = Counter([result.observed, *outcomes[i * again:(i + 1) * again]])
        if seen == Counter({result.observed: REPEATS}):
            kept_results.append(result)
        else:
            flaky.append(Flaky(result.rule, result.case, seen))
    base = len(results) * again
    for j, v in enumerate(found):
        pairs = outcomes[base + 2 * again * j:base + 2 * again * (j + 1)]
        seen = Counter([f"{v.source_observed} -> {v.variant_observed}",
                        *(f"{pairs[k]} -> {pairs[k + 1]}" for k in range(0, len(pairs), 2))])
        if len(seen) == 1:
            kept_violations.append(v)
        else:
            flaky.append(Flaky(f"relation.{v.check.relation}", v.check.variant, seen))
    return kept_results, kept_violations


def evaluate(named: Sequence[tuple[str, Case]], sandbox: Runner, profile: Profile,
             relations: bool = False, rng: random.Random | None = None, oracle: Oracle | None = None) -> Evaluation:
    """Runs the cases (and, with ``relations``, a variant of each for every relation that
    applies to a determined case) in one go, judges every outcome, and re-runs whatever
    disagrees before it counts. ``oracle``, for ``profile``, may remember predictions
    from one call to the next."""
    oracle = oracle or Oracle(profile)
    assert oracle.profile is profile, "the oracle must judge by the profile given"
    cases = [case for _, case in named]
    predictions = [oracle.predict(case) for case in cases]
    rng = rng or random.Random(0)
    checks: list[Check] = []
    sources: list[int] = []
    variant_predictions: list[Prediction] = []
    undetermined = 0
    if relations:
        for index, (case, prediction) in enumerate(zip(cases, predictions)):
            for check in derive(case, profile, rng):
                variant_prediction = oracle.predict(check.variant)
                # "The same as the source" needs a source that has one answer; a fixed
                # expectation (E2BIG) needs only a variant that has one.
                if not determined(variant_prediction) or (check.expected == SAME and not determined(prediction)):
                    undetermined += 1
                    continue
                checks.append(check)
                sources.append(index)
                variant_predictions.append(variant_prediction)
    outcomes = _retry_harness(sandbox, cases + [c.variant for c in checks])
    results = judge(named, outcomes, profile, predictions)
    variant_results = judge([(f"variant:{c.relation}", c.variant) for c in checks], outcomes[len(cases):],
                            profile, variant_predictions)
    found = violations(checks, [outcomes[i].key for i in sources], [r.observed for r in variant_results])
    # A relation broken by a case the oracle already contradicts is that case's finding.
    suspect = {id(r.case) for r in results + variant_results if r.verdict == DISCREPANCY}
    found = [v for v in found if id(v.check.source) not in suspect and id(v.check.variant) not in suspect]
    flaky: list[Flaky] = []
    wrong = [r for r in results if r.verdict == DISCREPANCY]
    wrong_variants = [r for r in variant_results if r.verdict == DISCREPANCY]
    confirmed, found = _confirm(sandbox, wrong + wrong_variants, found, flaky)
    kept = {id(r) for r in confirmed}
    results = [r if r.verdict != DISCREPANCY or id(r) in kept else replace(r, flaky=True) for r in results]
    harness = [r for r in results + variant_results if r.verdict == HARNESS]
    return Evaluation(results, checks, found, [r for r in wrong_variants if id(r) in kept], flaky, undetermined,
                      harness)


def _retry_harness(sandbox: Runner, cases: Sequence[Case]) -> list[Outcome]:
    """Every case's outcome, where the harness failed a case (an executor killed from
    outside, a stall, a cgroup limit of the caller's) run again up to REPEATS - 1 times: the
    first real answer stands; a case that never gets one keeps its harness outcome."""
    outcomes = list(sandbox.run(cases))
    for _ in range(REPEATS - 1):
        again = [i for i, o in enumerate(outcomes) if o.observed.startswith("harness")]
        if not again:
            break
        for i, outcome in zip(again, sandbox.run([cases[i] for i in again])):
            if not outcome.observed.startswith("harness"):
                outcomes[i] = outcome
    return outcomes
