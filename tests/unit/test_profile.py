"""How a live profile merges measurements with the version: backports add, never remove."""

from __future__ import annotations

import dataclasses

from clone3_fuzz.model import abi
from clone3_fuzz.model import profile as profiles
from clone3_fuzz.model.measurement import Machine, Measurement, Privilege

C = abi.CLONE
MACHINE = Machine(caller_pid_level=0, nproc_near_limit=False, outer_pid_max=32768,
                  namespaces=frozenset(profiles.NAMESPACES), exhausted_namespaces=frozenset())
PRIVILEGE = Privilege(uid=0, euid=0, egid=0, capabilities="1ffffffffff", cap_sys_admin=True, user_namespace="initial",
                      seccomp="0", isolation="pidns", executor_cap_sys_admin=True, cgroup2=None, cgroup2_usable=False)


def measured(release: str, **changes: object) -> Measurement:
    version = profiles.parse_release(release)
    base = Measurement(release=release, arch="x86_64", page_size=4096, clone3="available", clone3_missing_cause=None,
                 struct_size=profiles.version_struct_size(version), accepted_flags=profiles.version_mask(version),
                 newtime_accepted=version >= (6, 3, 0), pidfd_thread_accepted=version >= (6, 9, 0), stack_checked=True,
                 pidfd_parent_tid_checked=version >= (5, 9, 0), exit_signal_late=False, user_ptr_limit=0x7FFFFFFFF000,
                 tls_limit=0x7FFFFFFFF000, pid_max=4194304, address_bits=47, privilege=PRIVILEGE, machine=MACHINE)
    return dataclasses.replace(base, **changes)


def test_a_backport_adds_a_feature() -> None:
    # 5.15.y got "fork: allow CLONE_NEWTIME in clone3 flags" in March 2023 (reference §2.2).
    live = profiles.from_measurement(measured("5.15.100", accepted_flags=profiles.version_mask((5, 15, 0)) | C["CLONE_NEWTIME"]))
    assert live.accepted_flags & C["CLONE_NEWTIME"]


def test_a_regression_never_becomes_the_norm() -> None:
    broken = measured("6.18.0", accepted_flags=profiles.version_mask((6, 18, 0)) & ~C["CLONE_NEWTIME"] | C["CLONE_DETACHED"]
                      | 1 << 50, struct_size=96, pidfd_thread_accepted=False, stack_checked=False)
    live = profiles.from_measurement(broken)
    assert live.accepted_flags == profiles.version_mask((6, 18, 0))
    assert live.struct_size == 88 and live.pidfd_thread_accepted and live.stack_checked


def test_a_missing_clone3_is_kept() -> None:
    assert profiles.from_measurement(measured("6.18.0", clone3="ENOSYS")).clone3 == "ENOSYS"


# The limits the probe calibrates are held to what the architecture promises: x86-64's
# TASK_SIZE_MAX (arch/x86/include/asm/page_64_types.h: (1 << 47 or 56) - PAGE_SIZE) for
# access_ok() and do_arch_prctl_64(ARCH_SET_FS); PID_MAX_LIMIT (include/linux/threads.h)
# for pid_max. A kernel that stops checking one measures as None (no limit found).
TASK_SIZE_MAX_4 = (1 << 47) - 4096


def test_a_missing_limit_check_is_not_learned() -> None:
    live = profiles.from_measurement(measured("6.18.0", user_ptr_limit=None, tls_limit=None, pid_max=None))
    assert (live.user_ptr_limit, live.tls_limit) == (TASK_SIZE_MAX_4, TASK_SIZE_MAX_4)
    assert live.pid_max == 4 * 1024 * 1024  # a fresh pid namespace: the bound no kernel passes


def test_a_limit_past_the_promise_is_not_learned() -> None:
    live = profiles.from_measurement(measured("6.18.0", user_ptr_limit=1 << 50, tls_limit=1 << 63, pid_max=1 << 30))
    assert (live.user_ptr_limit, live.tls_limit, live.pid_max) == (TASK_SIZE_MAX_4, TASK_SIZE_MAX_4, 4194304)


def test_a_measured_limit_inside_the_promise_stands() -> None:
    live = profiles.from_measurement(measured("6.18.0", user_ptr_limit=TASK_SIZE_MAX_4 - 4096, pid_max=32768))
    assert live.user_ptr_limit == TASK_SIZE_MAX_4 - 4096 and live.pid_max == 32768


def test_five_level_paging_moves_the_promise() -> None:
    live = profiles.from_measurement(measured("6.18.0", address_bits=56, user_ptr_limit=None, tls_limit=(1 << 56) - 4096))
    assert live.user_ptr_limit == live.tls_limit == (1 << 56) - 4096


def test_arm64_promises_no_tls_check() -> None:
    # arch/arm64/kernel/process.c copy_thread(): tpidr_el0 = tls, unchecked.
    live = profiles.from_measurement(measured("6.18.0", arch="aarch64", address_bits=48, tls_limit=1 << 40))
    assert live.tls_limit is None and live.user_ptr_limit == 1 << 48


def test_pid_max_is_global_before_6_14() -> None:
    # 6.14 made pid_max a property of each pid namespace; before, every one has the sysctl's.
    live = profiles.from_measurement(measured("6.1.0", pid_max=None))
    assert live.pid_max == live.outer_pid_max
    modern = profiles.from_measurement(measured("6.18.0"))
    assert profiles.named("6.1", modern).pid_max == modern.outer_pid_max
    assert profiles.named("6.14", modern).pid_max == modern.pid_max
