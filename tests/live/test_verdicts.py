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

from clone3_fuzz.model import profile as profiles
from clone3_fuzz.runtime.probe import live_profile
from clone3_fuzz.campaign import repro
from clone3_fuzz.model.case import parse
from clone3_fuzz.campaign.finding import Finding
from clone3_fuzz.campaign.findings import Store
from clone3_fuzz.campaign.minimize import minimize
from clone3_fuzz.model.oracle import predict
from clone3_fuzz.runtime.sandbox import Sandbox
from clone3_fuzz.model.verdict import evaluate

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


@pytest.mark.parametrize("fault", ["stack-range-unchecked", "tls-range-unchecked", "pid-max-unchecked"])
def test_a_limit_whose_check_is_gone_is_not_learned(fault: str, live: profiles.Profile) -> None:
    broken = live_profile(Sandbox(fault=fault))
    assert (broken.user_ptr_limit, broken.tls_limit, broken.pid_max) == (live.user_ptr_limit, live.tls_limit, live.pid_max)
    if live.arch == "x86_64" and live.address_bits == 47:
        assert live.user_ptr_limit == live.tls_limit == TASK_SIZE_MAX_4


def test_minimization_reaches_the_root_cause(live: profiles.Profile) -> None:
    sandbox = Sandbox(fault="tail-ignored")
    big = parse({"size": 700, "flags": "CLONE_DETACHED|CLONE_VM", "exit_signal": 17, "tail": {"600": 3}})
    observed = sandbox.run([big])[0].observed
    assert observed == "EINVAL"  # the tail is ignored, so the flags decide
    found = Finding("oracle", "copy.tail_nonzero", big, observed, tuple(predict(big, live).outcomes))
    small = minimize(found, sandbox, live)
    assert (small.case, small.name, small.expected) == (parse({"size": 89, "tail": {"88": 1}}), "copy.tail_nonzero", ("E2BIG",))
    assert small.observed == "success"


@needs_cc
def test_one_folder_per_root_cause_with_a_checked_reproducer(tmp_path: Path, live: profiles.Profile) -> None:
    sandbox = Sandbox(fault="detached-accepted")
    store = Store(str(tmp_path), live, fault="detached-accepted")
    for text in ({"size": 88, "flags": "CLONE_DETACHED|CLONE_FS"}, {"size": 64, "flags": "CLONE_DETACHED", "exit_signal": 17}):
        case = parse(text)
        raw = Finding("oracle", "flags.deprecated", case, sandbox.run([case])[0].observed, ("EINVAL",))
        store.record(raw, lambda f: minimize(f, sandbox, live))
    store.flush()
    assert store.signatures() == ["flags.deprecated--ver0,CLONE_DETACHED"]
    folder = tmp_path / "findings" / store.signatures()[0]
    meta = json.loads((folder / "finding.json").read_text())
    assert meta["status"] == "confirmed" and meta["case"] == {"size": 64, "flags": "CLONE_DETACHED"}
    assert json.loads((folder / "sightings.json").read_text())["count"] == 2
    assert (folder / "finding.md").read_text().startswith("clone3: a 64-byte struct, CLONE_DETACHED accepted")
    # The reproducer is the executor's code: it builds alone and passes on the real kernel.
    binary = repro.build(folder / "repro.c")
    assert isinstance(binary, Path) and repro.run(binary, None)[0] == 0
    assert repro.run(binary, "detached-accepted")[0] == 1


@needs_cc
@pytest.mark.parametrize("case, expected", [
    ({"size": 4097}, "E2BIG"),
    ({"size": 96, "tail": {"95": 1}}, "E2BIG"),
    ({"size": 88, "flags": "CLONE_PIDFD|CLONE_PARENT_SETTID", "pidfd": "scratch", "parent_tid": "scratch"}, "success"),
    ({"size": 88, "set_tid": [1], "set_tid_size": 1}, "EEXIST"),
])
def test_a_reproducer_does_what_the_executor_did(tmp_path: Path, sandbox: Sandbox, case: dict, expected: str) -> None:
    parsed = parse(case)
    assert sandbox.run([parsed])[0].observed == expected
    (tmp_path / "repro.c").write_text(repro.render([parsed], [expected], "live"))
    binary = repro.build(tmp_path / "repro.c")
    assert isinstance(binary, Path)
    assert repro.run(binary, None) == (0, f"{expected}\n")


@needs_cc
def test_a_relation_reproducer_compares_its_two_cases(tmp_path: Path) -> None:
    source, variant = parse({"size": 88, "flags": "CLONE_VM"}), parse({"size": 1000, "flags": "CLONE_VM"})
    (tmp_path / "repro.c").write_text(repro.render([source, variant], [], "zero extension", compare=True))
    binary = repro.build(tmp_path / "repro.c")
    assert isinstance(binary, Path) and repro.run(binary, None) == (0, "success\nsuccess\n")
    assert repro.check(tmp_path / "repro.c", "oversize-einval").confirmed is False  # the fault leaves both alone


@pytest.mark.parametrize("compiler", ["gcc", "clang", "musl-gcc"])
def test_a_reproducer_builds_with_any_compiler_and_libc(compiler: str, tmp_path: Path) -> None:
    """No glibc-only call (strerrorname_np) and no kernel header (musl ships none)."""
    path = shutil.which(compiler)
    if path is None:
        pytest.skip(f"{compiler} is not installed (.ci/run installs musl-tools)")
    (tmp_path / "repro.c").write_text(repro.render([parse({"size": 4097})], ["E2BIG"], compiler))
    build = subprocess.run([path, "-O1", "-Wall", "-Werror", "-o", str(tmp_path / "r"), str(tmp_path / "repro.c")],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    assert subprocess.run([str(tmp_path / "r")], capture_output=True, text=True).stdout == "E2BIG\n"
