"""Whatever a call creates stays inside the sandbox, and nothing outlives its batch."""

from __future__ import annotations

import itertools
import signal
from dataclasses import replace
from typing import Any

from clone3_fuzz.model import abi
from clone3_fuzz.model.case import parse
from clone3_fuzz.runtime.sandbox import Sandbox

from .proc import footprint

EXIT_SIGNALS = [0, signal.SIGCHLD, signal.SIGKILL, signal.SIGSTOP, 32, 33]


def test_every_flag_bit_and_legacy_pair_leaves_nothing_behind() -> None:
    singles = [1 << b for b in range(64)]
    pairs = [(1 << a) | (1 << b) for a, b in itertools.combinations(range(32), 2)]
    cases = [parse({"size": 88, "flags": hex(f), "exit_signal": int(s), "pidfd": "scratch",
                    "child_tid": "scratch", "parent_tid": "scratch"})
             for f in singles + pairs for s in EXIT_SIGNALS]
    before = footprint()
    sandbox = Sandbox()
    outcomes = sandbox.run(cases)
    # The tree stays up for the next batch: its reaper and executor, and nothing else.
    assert footprint() == replace(before, descendants=before.descendants + 2)
    sandbox.close()
    assert footprint() == before
    observed = {o.observed for o in outcomes}
    assert "success" in observed and "EINVAL" in observed
    assert not {o for o in observed if o.startswith("harness")}
    # Each SIGKILL exit_signal of a successful call cost one executor, and only those.
    killed = sum(o.detail.startswith("the child's exit_signal SIGKILL") for o in outcomes)
    assert killed > 0 and sandbox.executors >= killed + 1


def test_sigkill_and_sigstop_exit_signals_keep_their_outcome(observe: Any) -> None:
    cases = [{"size": 88, "exit_signal": s} for s in ("SIGKILL", "SIGSTOP", 32, 33, 64)]
    cases += [{"size": 88, "exit_signal": "SIGKILL", "flags": "CLONE_DETACHED"}]
    assert observe(cases) == ["success"] * 5 + ["EINVAL"]


def test_clone_vm_children_never_touch_the_executor(observe: Any) -> None:
    vm = abi.CLONE["CLONE_VM"]
    cases = [
        {"size": 88, "flags": "CLONE_VM|CLONE_VFORK", "exit_signal": 17},
        {"size": 88, "flags": "CLONE_VM", "exit_signal": 17, "stack": "0x1000", "stack_size": 4096},
        {"size": 88, "flags": "CLONE_VM|CLONE_SETTLS", "tls": "0xdead0000", "exit_signal": 17},
        {"size": 88, "flags": "CLONE_VM|CLONE_SIGHAND|CLONE_THREAD|CLONE_SETTLS", "tls": "0x1000"},
        {"size": 88, "flags": "CLONE_VM|CLONE_SIGHAND|CLONE_THREAD|CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID",
         "child_tid": "scratch"},
        {"size": 88, "flags": hex(vm | abi.CLONE["CLONE_VFORK"] | abi.CLONE["CLONE_PARENT"])},
    ]
    assert observe(cases) == ["success"] * len(cases)
