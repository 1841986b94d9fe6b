"""The verdict's rules against luck, driven by scripted outcomes. (tests/live/test_verdicts.py
runs the same rules against the real kernel.)"""

from __future__ import annotations

from collections import deque
from typing import Sequence

from clone3_fuzz.model.case import Case, parse
from clone3_fuzz.model.outcome import Outcome
from clone3_fuzz.model.verdict import evaluate

from .test_oracle import ROOT


class Scripted:
    """Answers every run from a queue of outcomes, one per case, in order."""

    def __init__(self, outcomes: list[str]) -> None:
        self.queue = deque(outcomes)

    def run(self, cases: Sequence[Case]) -> list[Outcome]:
        return [Outcome(self.queue.popleft()) for _ in cases]


def test_a_discrepancy_that_repeats_is_kept() -> None:
    evaluation = evaluate([("a", parse({"size": 4097}))], Scripted(["EINVAL"] * 3), ROOT)  # type: ignore[arg-type]
    assert [r.verdict for r in evaluation.results] == ["discrepancy"] and not evaluation.flaky


def test_a_discrepancy_that_does_not_repeat_is_flaky() -> None:
    evaluation = evaluate([("a", parse({"size": 4097}))], Scripted(["EINVAL", "E2BIG", "EINVAL"]), ROOT)  # type: ignore[arg-type]
    assert [r.verdict for r in evaluation.results] == ["flaky"] and evaluation.clean
    assert dict(evaluation.flaky[0].observed) == {"EINVAL": 2, "E2BIG": 1}


def test_relations_skip_what_machine_state_decides() -> None:
    # pid 3 may be in use, so the source has two legitimate outcomes (reference §1.7#9).
    state = parse({"size": 80, "set_tid": [3, 70000], "set_tid_size": 2})
    evaluation = evaluate([("a", state)], Scripted(["EEXIST"] * 10), ROOT, relations=True)  # type: ignore[arg-type]
    assert {c.relation for c in evaluation.checks} <= {"precedence", "tail_position"}  # fixed expectations only
    assert evaluation.undetermined >= 2


def test_a_harness_outcome_is_retried_and_never_a_discrepancy() -> None:
    # An executor killed from outside once: the retry's answer is judged.
    once = evaluate([("a", parse({"size": 4097}))], Scripted(["harness-crash", "E2BIG"]), ROOT)  # type: ignore[arg-type]
    assert [r.verdict for r in once.results] == ["agree"] and once.harness == []
    # Never a real answer: no verdict at all, and nothing to report as the kernel's.
    always = evaluate([("a", parse({"size": 4097}))], Scripted(["harness-pids-limit"] * 3), ROOT)  # type: ignore[arg-type]
    assert [r.verdict for r in always.results] == ["harness"] and always.clean and len(always.harness) == 1
