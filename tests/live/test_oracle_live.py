"""The oracle against the running kernel: the distinguishing cases of tests/unit/test_oracle.py,
a generated sweep, and the relations, as root and (through the CLI tests) as uid 65534."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from clone3_fuzz.campaign.corpus import CGROUP2_SEEDS, SEEDS
from clone3_fuzz.model import profile as profiles
from clone3_fuzz.model.case import parse, read_jsonl
from clone3_fuzz.model.oracle import predict
from clone3_fuzz.model.verdict import evaluate
from clone3_fuzz.runtime.probe import live_profile
from clone3_fuzz.runtime.sandbox import Sandbox


@pytest.fixture(scope="module")
def live(sandbox: Sandbox) -> profiles.Profile:
    return live_profile(sandbox)


DISTINGUISHING = [
    {"size": 88, "set_tid": "0x1000", "set_tid_size": 1},
    {"size": 72, "exit_signal": 17},
    {"size": 64, "stack_size": 4096},
    {"size": 88, "cgroup": 3},
    {"size": 88, "flags": "CLONE_INTO_CGROUP"},
    {"size": 80, "flags": "CLONE_INTO_CGROUP"},
    {"size": 88, "flags": "CLONE_INTO_CGROUP", "cgroup": 999},
    {"size": 88, "flags": "CLONE_NEWTIME", "exit_signal": 17},
    {"size": 88, "flags": "CLONE_PIDFD|CLONE_THREAD|CLONE_SIGHAND|CLONE_VM", "pidfd": "scratch"},
    {"size": 88, "flags": "CLONE_PIDFD|CLONE_PARENT_SETTID"},
    {"size": 88, "flags": "CLONE_AUTOREAP|CLONE_PIDFD", "pidfd": "scratch"},
    {"size": 88, "flags": "CLONE_EMPTY_MNTNS"},
    {"size": 88, "exit_signal": 65, "set_tid": "unmapped", "set_tid_size": 1},
    {"size": 88, "flags": "CLONE_NEWNET"},
    {"size": 88, "flags": "CLONE_NEWUSER|CLONE_NEWPID", "set_tid": [1]},
    {"size": 88, "set_tid": [1]},
    {"size": 88, "flags": "CLONE_NEWIPC|CLONE_SYSVSEM"},
    {"size": 88, "flags": "CLONE_SETTLS", "tls": "kernel"},
    {"size": 200, "memory": "guard", "readable": 150, "tail": {"120": 1}},
]


@pytest.mark.parametrize("obj", DISTINGUISHING, ids=lambda o: json.dumps(o, separators=(",", ":")))
def test_distinguishing_cases_agree_with_both_profiles(obj: dict[str, Any], sandbox: Sandbox,
                                                      live: profiles.Profile) -> None:
    """The measured profile and the one derived from this kernel's version number both
    predict what the kernel does, effects included (a backport would show here as a
    version mismatch)."""
    case = parse(obj)
    observed = sandbox.run([case])[0].key
    assert observed in predict(case, live).outcomes
    assert observed in predict(case, profiles.named(live.release, live)).outcomes


@pytest.mark.parametrize("seeds", [SEEDS, CGROUP2_SEEDS], ids=["seeds", "cgroup2"])
def test_the_seed_corpus_agrees(sandbox: Sandbox, live: profiles.Profile, seeds: Path) -> None:
    if seeds == CGROUP2_SEEDS and not live.cgroup2_usable:
        pytest.skip("this caller cannot make a scratch cgroup v2 directory")
    with open(seeds, "rb") as f:
        named = list(read_jsonl(f, seeds.name))
    evaluation = evaluate(named, sandbox, live, relations=True)  # type: ignore[arg-type]
    assert [r.to_json() for r in evaluation.discrepancies] == []
    assert evaluation.violations == []
    assert len(evaluation.checks) > len(named)
