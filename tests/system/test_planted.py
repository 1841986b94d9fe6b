"""Planted faults against the verdict machinery: limits whose check is gone are not
learned, minimization reaches the root cause, and one folder per root cause holds a
reproducer checked under the fault and without it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from clone3_fuzz.campaign import repro
from clone3_fuzz.campaign.finding import Finding, from_result
from clone3_fuzz.campaign.findings import Store
from clone3_fuzz.campaign.minimize import minimize
from clone3_fuzz.model import profile as profiles
from clone3_fuzz.model.case import parse
from clone3_fuzz.model.oracle import predict
from clone3_fuzz.model.verdict import evaluate
from clone3_fuzz.runtime.probe import live_profile
from clone3_fuzz.runtime.sandbox import Sandbox

TASK_SIZE_MAX_4 = (1 << 47) - 4096
needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")


@pytest.fixture(scope="module")
def live(sandbox: Sandbox) -> profiles.Profile:
    return live_profile(sandbox)


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
    assert small.observed == "success{signal=none}"


@needs_cc
def test_an_effect_finding_is_minimized_and_its_reproducer_checks_the_effect(tmp_path: Path,
                                                                            live: profiles.Profile) -> None:
    """The errno is right, the word is not written: one folder, a minimized case, and a C
    reproducer that fails under the fault (exit 1) and passes without it."""
    sandbox = Sandbox(fault="parent-tid-ignored")
    store = Store(str(tmp_path), live, fault="parent-tid-ignored")
    big = parse({"size": 300, "flags": "CLONE_PARENT_SETTID|CLONE_VM|CLONE_CHILD_SETTID", "parent_tid": "scratch",
                 "child_tid": "scratch", "exit_signal": "SIGUSR1", "tail": {"200": 0}})
    result = evaluate([("x", big)], sandbox, live).results[0]
    assert (result.verdict, result.rule) == ("discrepancy", "effect.parent_tid")
    store.record(from_result(result), lambda f: minimize(f, sandbox, live))
    store.flush()
    [signature] = store.signatures()
    meta = json.loads((tmp_path / "findings" / signature / "finding.json").read_text())
    assert (meta["rule"], meta["status"], meta["observed"]) == ("effect.parent_tid", "confirmed", "success{signal=none}")
    assert meta["case"] == {"size": 64, "flags": "CLONE_PARENT_SETTID", "parent_tid": "scratch"}
    assert meta["expected"] == ["success{parent_tid=pid,signal=none}"]
    binary = repro.build(tmp_path / "findings" / signature / "repro.c")
    assert isinstance(binary, Path)
    assert repro.run(binary, None) == (0, "success{parent_tid=pid,signal=none}\n")
    assert repro.run(binary, "parent-tid-ignored")[0] == 1

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
