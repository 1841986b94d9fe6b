"""Effects on the running kernel: each one seen for real, as root and as uid 65534, and the
same as tests/unit/test_effects.py predicts; the planted faults of effects caught by
their rules; the relations keeping effects across sizes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from clone3_fuzz.model import profile as profiles
from clone3_fuzz.model.case import parse
from clone3_fuzz.model.oracle import predict
from clone3_fuzz.model.verdict import evaluate
from clone3_fuzz.runtime.probe import live_profile
from clone3_fuzz.runtime.sandbox import Sandbox

from ..command import NOBODY, clone3_fuzz

S = "CLONE_SIGHAND|CLONE_VM"
#: (case, what root sees, what uid 65534 sees): every effect the executor records.
EFFECTS: list[tuple[dict[str, Any], str, str]] = [
    ({"size": 88}, "success{signal=none}", "success{signal=none}"),
    ({"size": 88, "exit_signal": "SIGUSR1"}, "success{signal=SIGUSR1}", "success{signal=SIGUSR1}"),
    ({"size": 88, "exit_signal": 40}, "success{signal=SIG40}", "success{signal=SIG40}"),
    ({"size": 88, "exit_signal": "SIGKILL"}, "success{signal=SIGKILL}", "success{signal=SIGKILL}"),
    ({"size": 88, "flags": "CLONE_PIDFD", "pidfd": "scratch", "exit_signal": 17},
     "success{pidfd=child,signal=SIGCHLD}", "success{pidfd=child,signal=SIGCHLD}"),
    ({"size": 64, "flags": "CLONE_PARENT_SETTID", "parent_tid": "scratch", "exit_signal": 17},
     "success{parent_tid=pid,signal=SIGCHLD}", "success{parent_tid=pid,signal=SIGCHLD}"),
    ({"size": 88, "flags": "CLONE_VM|CLONE_CHILD_SETTID", "child_tid": "scratch", "exit_signal": 17},
     "success{child_tid=pid,signal=SIGCHLD}", "success{child_tid=pid,signal=SIGCHLD}"),
    ({"size": 88, "flags": "CLONE_VM|CLONE_CHILD_CLEARTID", "child_tid": "scratch", "exit_signal": 17},
     "success{child_tid=0,signal=SIGCHLD}", "success{child_tid=0,signal=SIGCHLD}"),
    ({"size": 88, "flags": "CLONE_CHILD_SETTID", "child_tid": "scratch", "exit_signal": 17},
     "success{signal=SIGCHLD}", "success{signal=SIGCHLD}"),
    ({"size": 88, "flags": "CLONE_VM|CLONE_VFORK", "exit_signal": 17},
     "success{signal=SIGCHLD,vfork=waited}", "success{signal=SIGCHLD,vfork=waited}"),
    ({"size": 88, "flags": f"CLONE_THREAD|{S}|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID", "parent_tid": "scratch",
      "child_tid": "scratch"}, "success{child_tid=0,parent_tid=pid,signal=none}",
     "success{child_tid=0,parent_tid=pid,signal=none}"),
    ({"size": 88, "flags": "CLONE_NEWUSER|CLONE_NEWPID|CLONE_VM|CLONE_CHILD_SETTID", "child_tid": "scratch",
      "exit_signal": 17}, "success{child_tid=1,signal=SIGCHLD,ns=pid+user}",
     "success{child_tid=1,signal=SIGCHLD,ns=pid+user}"),
    ({"size": 88, "flags": "CLONE_NEWPID", "exit_signal": 17}, "success{signal=SIGCHLD,ns=pid}", "EPERM"),
    ({"size": 88, "set_tid": [7011], "exit_signal": 17}, "success{pid=set_tid,signal=SIGCHLD}", "EPERM"),
    ({"size": 88, "flags": "CLONE_INTO_CGROUP|CLONE_PIDFD", "pidfd": "scratch", "cgroup": 999},
     "EBADF{pidfd=closed}", "EBADF{pidfd=closed}"),
    ({"size": 88, "pidfd": "scratch", "child_tid": "scratch", "parent_tid": "scratch"},
     "success{signal=none}", "success{signal=none}"),
    ({"size": 88, "flags": "CLONE_DETACHED|CLONE_PARENT_SETTID", "parent_tid": "scratch"}, "EINVAL", "EINVAL"),
    ({"size": 88, "flags": "CLONE_VM|CLONE_SIGHAND", "exit_signal": 17}, "success{signal=SIGCHLD}",
     "success{signal=SIGCHLD}"),
    ({"size": 88, "flags": "CLONE_VM|CLONE_SIGHAND|CLONE_NEWPID", "exit_signal": "SIGUSR1"},
     "success{signal=SIGUSR1,ns=pid}", "EPERM"),
]
IDS = [json.dumps(case, separators=(",", ":")) for case, _, _ in EFFECTS]


@pytest.fixture(scope="module")
def live(sandbox: Sandbox) -> profiles.Profile:
    return live_profile(sandbox)


@pytest.mark.parametrize("obj,as_root,_", EFFECTS, ids=IDS)
def test_each_effect_as_root(obj: dict[str, Any], as_root: str, _: str, sandbox: Sandbox,
                             live: profiles.Profile) -> None:
    """Seen three times, and predicted (set_tid's pid may also be in use: EEXIST); the
    cases of tests/unit/test_effects.py agree."""
    case = parse(obj)
    assert [o.key for o in sandbox.run([case] * 3)] == [as_root] * 3
    assert as_root in predict(case, live).outcomes and not predict(case, live).rule.startswith("effect.")


def test_the_cgroup_a_child_lands_in(sandbox: Sandbox, live: profiles.Profile) -> None:
    if not live.cgroup2_usable:
        pytest.skip("no usable cgroup v2 here")
    case = parse({"size": 88, "flags": "CLONE_INTO_CGROUP|CLONE_PIDFD", "pidfd": "scratch", "cgroup": "cgroup2"})
    assert sandbox.run([case])[0].key == "success{pidfd=child,signal=none,cgroup=in}"


def test_an_init_that_shared_our_handlers_changes_no_later_case(sandbox: Sandbox, live: profiles.Profile) -> None:
    """It leaves SIGCHLD ignored for us (zap_pid_ns_processes): the kernel reaps its SIGCHLD
    exit itself; the executor restores SIGCHLD, so the next SIGCHLD child still signals."""
    init = parse({"size": 88, "flags": "CLONE_VM|CLONE_SIGHAND|CLONE_NEWPID", "exit_signal": "SIGCHLD"})
    plain = parse({"size": 88, "exit_signal": "SIGCHLD"})
    seen = [o.key for o in sandbox.run([init, plain] * 20)]
    if not live.cap_sys_admin:
        pytest.skip("CLONE_NEWPID needs CAP_SYS_ADMIN")
    assert seen == ["success{signal=none}", "success{signal=SIGCHLD}"] * 20


def test_a_thread_into_another_domain_is_eopnotsupp(sandbox: Sandbox, live: profiles.Profile) -> None:
    if not live.cgroup2_usable:
        pytest.skip("no usable cgroup v2 here")
    case = parse({"size": 88, "flags": "CLONE_THREAD|CLONE_SIGHAND|CLONE_VM|CLONE_INTO_CGROUP|CLONE_PIDFD",
                  "pidfd": "scratch", "cgroup": "cgroup2"})
    assert [o.key for o in sandbox.run([case] * 3)] == ["ENOTSUP{pidfd=closed}"] * 3
    assert predict(case, live).outcomes == ["ENOTSUP{pidfd=closed}"]


def test_each_effect_as_uid_65534() -> None:
    cases = "".join(json.dumps(case) + "\n" for case, _, _ in EFFECTS)
    done = clone3_fuzz("run", "--json", "-", prefix=tuple(NOBODY), stdin=cases)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["observed"] for r in rows] == [as_nobody for _, _, as_nobody in EFFECTS]
    assert {r["verdict"] for r in rows} == {"agree"}
    assert rows[4]["effects"] == {"pidfd": "child", "signal": "SIGCHLD"}


#: A planted fault of effects, a case it spoils, and the rule that must name it.
FAULTS = [
    ("parent-tid-ignored", {"size": 88, "flags": "CLONE_PARENT_SETTID", "parent_tid": "scratch"}, "effect.parent_tid"),
    ("exit-signal-sigchld", {"size": 88, "exit_signal": "SIGUSR1"}, "effect.exit_signal"),
    ("pidfd-dropped", {"size": 88, "flags": "CLONE_PIDFD", "pidfd": "scratch"}, "effect.pidfd"),
    ("set-tid-shifted", {"size": 88, "set_tid": [7012]}, "effect.set_tid"),
    ("parent-tid-unasked", {"size": 88, "parent_tid": "scratch"}, "effect.untouched"),
    ("vfork-ignored", {"size": 88, "flags": "CLONE_VFORK"}, "effect.vfork"),
    ("cgroup-ignored", {"size": 88, "flags": "CLONE_INTO_CGROUP", "cgroup": "cgroup2"}, "effect.cgroup"),
]


@pytest.mark.parametrize("fault,obj,rule", FAULTS, ids=[f for f, _, _ in FAULTS])
def test_each_planted_fault_of_effects_is_named_by_its_rule(fault: str, obj: dict[str, Any], rule: str,
                                                             live: profiles.Profile) -> None:
    """The errno is right every time; what the call did is not."""
    case = parse(obj)
    if case.needs_cgroup and not live.cgroup2_usable:
        pytest.skip("no usable cgroup v2 here")
    with Sandbox(fault=fault) as faulty:
        results = evaluate([("x", case)] * 3, faulty, live).results
    assert [r.outcome.observed for r in results] == ["success"] * 3
    assert [(r.verdict, r.rule) for r in results] == [("discrepancy", rule)] * 3


def test_relations_compare_effects_across_sizes(sandbox: Sandbox, live: profiles.Profile) -> None:
    """Zero extension and truncation keep the words written and the signal, not only the errno."""
    sources = [parse({"size": size, "flags": "CLONE_PIDFD|CLONE_PARENT_SETTID|CLONE_VM|CLONE_CHILD_SETTID",
                      "pidfd": "scratch", "parent_tid": "scratch", "child_tid": "scratch", "exit_signal": 12})
               for size in (64, 72, 88, 200)]
    evaluation = evaluate([(str(c.size), c) for c in sources], sandbox, live, relations=True)
    compared = [c for c in evaluation.checks if c.relation in ("zero_extension", "truncation")]
    assert len(compared) == 4 and evaluation.clean and not evaluation.flaky
    assert {r.observed for r in evaluation.results} == {"success{pidfd=child,child_tid=pid,parent_tid=pid,signal=SIGUSR2}"}
