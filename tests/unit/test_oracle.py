"""The oracle on kernels that behave differently, as pure Python. Each test cites where the
behaviour comes from (section numbers of ../shared/reference/clone3-kernel-checks.md);
tests/live/test_oracle_live.py checks the same cases against the running kernel."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from clone3_fuzz.model import abi
from clone3_fuzz.model import profile as profiles
from clone3_fuzz.model.case import parse
from clone3_fuzz.model.oracle import RULES, predict

ROOT = profiles.Profile(
    release="6.18.0", version=(6, 18, 0), source="named", arch="x86_64", page_size=4096, nsig=64,
    clone3="available", struct_size=88, accepted_flags=profiles.version_mask((6, 18, 0)),
    pidfd_thread_accepted=True, stack_checked=True, pidfd_parent_tid_checked=True, exit_signal_late=False,
    user_ptr_limit=0x7FFFFFFFF000, tls_limit=0x7FFFFFFFF000, cap_sys_admin=True, cap_checkpoint_restore=True,
    nproc_limited=False, caller_is_pidns_init=False, pid_level=1, pid_max=4194304, outer_pid_max=32768, address_bits=47,
    namespaces=frozenset(profiles.NAMESPACES), exhausted_namespaces=frozenset(), cgroup2_usable=True,
)
NOBODY = profiles.Profile(**{**ROOT.__dict__, "cap_sys_admin": False, "cap_checkpoint_restore": False})


def on(version: str, case: dict[str, Any], base: profiles.Profile = ROOT) -> tuple[list[str], str]:
    """The errnos (effects aside: tests/unit/test_effects.py) and the first rule."""
    prediction = predict(parse(case), profiles.named(version, base))
    return prediction.bases, prediction.rule


def test_every_rule_is_documented() -> None:
    assert all(rule.count(".") == 1 or rule == "success" for rule in RULES)


@pytest.mark.parametrize("version", ["5.3", "5.5", "5.7", "6.1", "6.9", "7.1"])
def test_the_size_checks_come_first_on_every_kernel(version: str) -> None:
    assert on(version, {"size": 4097, "flags": "CLONE_DETACHED", "memory": "null"}) == (["E2BIG"], "size.over_page")
    assert on(version, {"size": 63, "tail": {"100": 1}}) == (["EINVAL"], "size.under_ver0")


def test_5_3_has_a_64_byte_struct() -> None:
    # §2.2 and §5: ksize is 64 on 5.3-5.4, so set_tid (offset 64) is tail.
    assert on("5.3", {"size": 88, "set_tid": "0x1000", "set_tid_size": 1}) == (["E2BIG"], "copy.tail_nonzero")
    assert on("5.3", {"size": 72, "exit_signal": 17}) == (["success"], "success")
    # 5.3.0 predates fa729c4df558 "clone3: validate stack arguments" (5.4, 5.3.11).
    assert on("5.3", {"size": 64, "stack_size": 4096}) == (["success"], "success")
    assert on("5.3.11", {"size": 64, "stack_size": 4096}) == (["EINVAL"], "stack.invalid")


def test_5_5_has_an_80_byte_struct_and_no_cgroup() -> None:
    # §5: on 5.5/5.6 a nonzero cgroup is tail (E2BIG); a zero one leaves CLONE_INTO_CGROUP unknown.
    assert on("5.5", {"size": 88, "cgroup": 3}) == (["E2BIG"], "copy.tail_nonzero")
    assert on("5.5", {"size": 88, "flags": "CLONE_INTO_CGROUP"}) == (["EINVAL"], "flags.unknown")
    assert on("5.5", {"size": 88, "flags": "CLONE_CLEAR_SIGHAND", "exit_signal": 17}) == (["success"], "success")
    assert on("5.4", {"size": 88, "flags": "CLONE_CLEAR_SIGHAND"}) == (["EINVAL"], "flags.unknown")


def test_5_7_checks_the_cgroup_argument() -> None:
    # §1.2h (5.7-rc2): cgroup > INT_MAX or size < VER2 with CLONE_INTO_CGROUP.
    assert on("5.7", {"size": 88, "flags": "CLONE_INTO_CGROUP", "cgroup": "0x80000000"})[1] == "cgroup.bad_fd_or_size"
    assert on("5.7", {"size": 80, "flags": "CLONE_INTO_CGROUP"})[1] == "cgroup.bad_fd_or_size"
    assert on("5.7", {"size": 88, "flags": "CLONE_INTO_CGROUP", "cgroup": 999}) == (["EBADF"], "cgroup.bad_fd")


def test_newtime_is_a_csignal_bit_before_6_3() -> None:
    # §2.1: a402f1e35313 "fork: allow CLONE_NEWTIME in clone3 flags" (6.3, stable March 2023).
    case = {"size": 88, "flags": "CLONE_NEWTIME", "exit_signal": 17}
    assert on("6.2", case) == (["EINVAL"], "flags.deprecated")
    assert on("6.3", case) == (["success"], "success")
    assert on("6.3", case, NOBODY) == (["EPERM"], "perm.namespace")


def test_pidfd_with_thread_before_6_9() -> None:
    # §1.6: 83b290c9e3b5 "pidfd: clone: allow CLONE_THREAD | CLONE_PIDFD together" (6.9).
    case = {"size": 88, "flags": "CLONE_PIDFD|CLONE_THREAD|CLONE_SIGHAND|CLONE_VM", "pidfd": "scratch"}
    assert on("6.8", case) == (["EINVAL"], "flags.pidfd_and_thread")
    assert on("6.9", case) == (["success"], "success")


def test_pidfd_equal_to_parent_tid_from_5_9() -> None:
    # §2.2: "fork: fold legacy_clone_args_valid() into _do_fork()" (5.9); both NULL counts.
    case = {"size": 88, "flags": "CLONE_PIDFD|CLONE_PARENT_SETTID"}
    assert on("5.9", case) == (["EINVAL"], "pidfd.is_parent_tid")
    assert on("5.8", case) == (["EFAULT"], "pidfd.fault")


def test_the_7_1_flags() -> None:
    # §2.1 and §1.6: CLONE_AUTOREAP, CLONE_NNP, CLONE_PIDFD_AUTOKILL, CLONE_EMPTY_MNTNS (fork.c @7c8a4671).
    autoreap = {"size": 88, "flags": "CLONE_AUTOREAP|CLONE_PIDFD", "pidfd": "scratch"}
    assert on("7.0", autoreap) == (["EINVAL"], "flags.unknown")
    assert on("7.1", autoreap) == (["success"], "success")
    assert on("7.1", {**autoreap, "exit_signal": 17}) == (["EINVAL"], "flags.autoreap")
    autokill = {"size": 88, "flags": "CLONE_AUTOREAP|CLONE_PIDFD|CLONE_PIDFD_AUTOKILL", "pidfd": "scratch"}
    assert on("7.1", autokill, NOBODY) == (["EPERM"], "perm.autokill")
    assert on("7.1", {**autokill, "flags": autokill["flags"] + "|CLONE_NNP"}, NOBODY) == (["success"], "success")
    assert on("7.1", {"size": 88, "flags": "CLONE_PIDFD_AUTOKILL"}) == (["EINVAL"], "flags.autokill")
    assert on("7.1", {"size": 88, "flags": "CLONE_NNP|CLONE_THREAD|CLONE_SIGHAND|CLONE_VM"})[1] == "flags.nnp_and_thread"
    # EMPTY_MNTNS implies NEWNS, and with it NEWNS's checks.
    assert on("7.1", {"size": 88, "flags": "CLONE_EMPTY_MNTNS|CLONE_FS"}) == (["EINVAL"], "flags.newns_and_fs")
    assert on("7.1", {"size": 88, "flags": "CLONE_EMPTY_MNTNS"}, NOBODY) == (["EPERM"], "perm.namespace")
    assert abi.CLONE["CLONE_EMPTY_MNTNS"] == 1 << 37


def test_exit_signal_validity_moves_late_in_7_1() -> None:
    # §1.5#3: 09e7827e7857 moves valid_signal() after set_tid's copy: only EFAULT vs EINVAL shows it.
    case = {"size": 88, "exit_signal": 65, "set_tid": "unmapped", "set_tid_size": 1}
    assert on("7.0", case) == (["EINVAL"], "exit_signal.invalid")
    assert on("7.1", case) == (["EFAULT"], "set_tid.fault")
    assert on("7.1", {"size": 88, "exit_signal": 65}) == (["EINVAL"], "exit_signal.invalid")


def test_no_clone3_before_5_3() -> None:
    assert on("5.2", {"size": 88}) == (["ENOSYS"], "entry.unavailable")


def test_privilege_decides_namespaces_and_set_tid() -> None:
    # §1.7#7: EPERM without CAP_SYS_ADMIN in the child's user namespace; NEWUSER gives it.
    assert on("6.18", {"size": 88, "flags": "CLONE_NEWNET"}, NOBODY) == (["EPERM"], "perm.namespace")
    assert on("6.18", {"size": 88, "flags": "CLONE_NEWUSER|CLONE_NEWNET"}, NOBODY) == (["success"], "success")
    # §1.7#9: set_tid needs the capability over each level; a fresh NEWUSER|NEWPID level is the child's.
    assert on("6.18", {"size": 88, "set_tid": [7]}, NOBODY) == (["EPERM"], "perm.set_tid")
    fresh = {"size": 88, "flags": "CLONE_NEWUSER|CLONE_NEWPID", "set_tid": [1]}
    assert on("6.18", fresh, NOBODY) == (["success"], "success")
    assert on("6.18", {**fresh, "set_tid": [2]}, NOBODY) == (["EINVAL"], "set_tid.needs_init")
    # pid 1 of the caller's namespace is always taken; another pid may be.
    assert on("6.18", {"size": 88, "set_tid": [1]}) == (["EEXIST"], "set_tid.in_use")
    assert on("6.18", {"size": 88, "set_tid": [500]})[0] == ["EEXIST", "success"]


def test_order_tail_before_head_and_ipc_after_eperm() -> None:
    # §1.3: the tail is read before the head is copied; §1.7#7: NEWIPC|SYSVSEM comes after EPERM.
    assert on("6.18", {"size": 200, "memory": "guard", "readable": 150, "tail": {"120": 1}})[0] == ["E2BIG"]
    assert on("6.18", {"size": 88, "flags": "CLONE_NEWIPC|CLONE_SYSVSEM"}, NOBODY) == (["EPERM"], "perm.namespace")
    assert on("6.18", {"size": 88, "flags": "CLONE_NEWIPC|CLONE_SYSVSEM"}) == (["EINVAL"], "flags.newipc_and_sysvsem")


def test_an_unknown_pointer_allows_both_answers() -> None:
    assert on("6.18", {"size": 88, "flags": "CLONE_PIDFD", "pidfd": "0x10000"})[0] == ["EFAULT", "success"]
    assert on("6.18", {"size": 88, "flags": "CLONE_SETTLS", "tls": "kernel"}) == (["EPERM"], "tls.out_of_range")


def test_levels_above_a_wrapper_s_namespaces_are_not_guessed() -> None:
    # Under a wrapper with pid namespaces of its own (bwrap --unshare-pid), pid_level is a
    # lower bound and the outer pid_max unknown: set_tid past them allows either answer.
    unknown = dataclasses.replace(ROOT, outer_levels_known=False)
    deep = {"size": 88, "set_tid": [3, 300, 1], "set_tid_size": 3}
    assert on("6.18", deep) == (["EINVAL"], "set_tid.too_many_levels")
    assert "EINVAL" in on("6.18", deep, unknown)[0] and len(on("6.18", deep, unknown)[0]) > 1
    outer = {"size": 88, "set_tid": [5, 70000], "set_tid_size": 2}
    assert on("6.18", outer)[0] == ["EEXIST", "EINVAL"] and on("6.18", outer, unknown)[0] == ["EEXIST", "EINVAL", "success"]


def test_a_caller_refused_user_namespaces_gets_eperm_after_the_limit() -> None:
    # §1.7#3: create_user_ns() checks the count (ENOSPC) before current_chrooted() and the
    # uid mapping (EPERM), both before any capability check.
    denied = dataclasses.replace(ROOT, userns_denied=True)
    assert on("6.18", {"size": 88, "flags": "CLONE_NEWUSER|CLONE_NEWNET"}, denied) == (["EPERM"], "userns.denied")
    assert on("6.18", {"size": 88, "flags": "CLONE_NEWNET"}, denied)[0] == ["success"]  # no user namespace asked
    full = dataclasses.replace(denied, exhausted_namespaces=frozenset({"user"}))
    assert on("6.18", {"size": 88, "flags": "CLONE_NEWUSER"}, full) == (["ENOSPC"], "userns.limit")
    # Unknown (a filter refused unshare): either answer stands.
    unknown = dataclasses.replace(ROOT, userns_denied=None)
    assert set(on("6.18", {"size": 88, "flags": "CLONE_NEWUSER"}, unknown)[0]) == {"EPERM", "success"}
