"""Verdicts that are never wrong, on the real kernel: state-dependent cases never become
discrepancies, limits are held to their promise under a fault that removes their check,
minimization keeps a finding true, and every reproducer is checked where it runs."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from clone3_fuzz.campaign import repro
from clone3_fuzz.campaign.finding import Finding
from clone3_fuzz.model import profile as profiles
from clone3_fuzz.model.case import parse
from clone3_fuzz.model.verdict import evaluate
from clone3_fuzz.runtime.probe import live_profile
from clone3_fuzz.runtime.sandbox import Sandbox

#: Cases whose outcome depends on machine state: a pid that may be in use at the innermost
#: level (EEXIST) or free (then the outer level's pid_max decides), literal pointers that
#: may be mapped, pid 1 of the executor's namespace.
STATE_DEPENDENT = [
    {"size": 80, "set_tid": [3, 70000], "set_tid_size": 2},
    {"size": 80, "set_tid": [2], "set_tid_size": 1},
    {"size": 88, "flags": "CLONE_PIDFD", "pidfd": "0x10000"},
    {"size": 88, "set_tid": "0x400000", "set_tid_size": 1},
    {"size": 200, "set_tid": [300, 70000], "set_tid_size": 2},
]
TASK_SIZE_MAX_4 = (1 << 47) - 4096
needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")


@pytest.fixture(scope="module")
def live(sandbox: Sandbox) -> profiles.Profile:
    return live_profile(sandbox)


def test_state_dependent_cases_never_break_a_relation(sandbox: Sandbox, live: profiles.Profile) -> None:
    named = [(f"#{i}", parse(c)) for i, c in enumerate(STATE_DEPENDENT)]
    rng = random.Random(3)
    checked = 0
    for _ in range(60):
        evaluation = evaluate(named, sandbox, live, relations=True, rng=rng)
        assert evaluation.clean, ([r.to_json() for r in evaluation.discrepancies], evaluation.violations)
        checked += len(evaluation.checks)
    assert checked > 0  # the fixed-expectation relations still ran








@needs_cc
@pytest.mark.parametrize("case, expected", [
    ({"size": 4097}, "E2BIG"),
    ({"size": 96, "tail": {"95": 1}}, "E2BIG"),
    ({"size": 88, "flags": "CLONE_PIDFD|CLONE_PARENT_SETTID", "pidfd": "scratch", "parent_tid": "scratch"},
     "success{pidfd=child,parent_tid=pid,signal=none}"),
    ({"size": 88, "flags": "CLONE_INTO_CGROUP|CLONE_PIDFD", "pidfd": "scratch", "cgroup": 999}, "EBADF{pidfd=closed}"),
    ({"size": 88, "set_tid": [1], "set_tid_size": 1}, "EEXIST"),
])
def test_a_reproducer_does_what_the_executor_did(tmp_path: Path, sandbox: Sandbox, case: dict, expected: str) -> None:
    """Effects included: the reproducer puts them in words with the executor's own code."""
    parsed = parse(case)
    assert sandbox.run([parsed])[0].key == expected
    (tmp_path / "repro.c").write_text(repro.render([parsed], [expected], "live"))
    binary = repro.build(tmp_path / "repro.c")
    assert isinstance(binary, Path)
    assert repro.run(binary, None) == (0, f"{expected}\n")


@needs_cc
def test_a_relation_reproducer_compares_its_two_cases(tmp_path: Path) -> None:
    source, variant = parse({"size": 88, "flags": "CLONE_VM"}), parse({"size": 1000, "flags": "CLONE_VM"})
    (tmp_path / "repro.c").write_text(repro.render([source, variant], [], "zero extension", compare=True))
    binary = repro.build(tmp_path / "repro.c")
    assert isinstance(binary, Path) and repro.run(binary, None) == (0, "success{signal=none}\nsuccess{signal=none}\n")
    assert repro.check(tmp_path / "repro.c", "oversize-einval").confirmed is False  # the fault leaves both alone


@pytest.mark.parametrize("compiler,package", [("gcc", "gcc"), ("clang", "clang"), ("musl-gcc", "musl-tools")])
def test_a_reproducer_builds_with_any_compiler_and_libc(compiler: str, package: str, tmp_path: Path) -> None:
    """No glibc-only call (strerrorname_np) and no kernel header (musl ships none)."""
    path = shutil.which(compiler)
    if path is None:
        pytest.skip(f"{compiler} is not installed (.ci/run installs {package})")
    (tmp_path / "repro.c").write_text(repro.render([parse({"size": 4097})], ["E2BIG"], compiler))
    build = subprocess.run([path, "-O1", "-Wall", "-Werror", "-o", str(tmp_path / "r"), str(tmp_path / "repro.c")],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    assert subprocess.run([str(tmp_path / "r")], capture_output=True, text=True).stdout == "E2BIG\n"


def test_sightings_keep_the_first_and_the_latest_cases(tmp_path: Path, live: profiles.Profile) -> None:
    from clone3_fuzz.campaign.findings import EXAMPLES, Store

    store = Store(str(tmp_path), live)
    (tmp_path / "findings" / "sig").mkdir()
    for size in range(4097, 4097 + 3 * EXAMPLES):
        store._sight("sig", Finding("oracle", "size.over_page", parse({"size": size}), "EINVAL", ("E2BIG",)))
    store.flush()
    seen = json.loads((tmp_path / "findings" / "sig" / "sightings.json").read_text())
    assert [e["case"]["size"] for e in seen["first"]] == list(range(4097, 4097 + EXAMPLES))
    assert [e["case"]["size"] for e in seen["last"]] == list(range(4097 + 2 * EXAMPLES, 4097 + 3 * EXAMPLES))
    assert seen["count"] == 3 * EXAMPLES
