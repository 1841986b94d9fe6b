"""How a live profile merges measurements with the version: backports add, never remove."""

from __future__ import annotations

import dataclasses

from harness import abi
from harness import profile as profiles
from harness.probe import Privilege, Probe

C = abi.CLONE
PRIVILEGE = Privilege(uid=0, euid=0, egid=0, capabilities="1ffffffffff", cap_sys_admin=True, user_namespace="initial",
                      seccomp="0", isolation="pidns", executor_cap_sys_admin=True, cgroup2=None, cgroup2_usable=False)


def measured(release: str, **changes: object) -> Probe:
    version = profiles.parse_release(release)
    base = Probe(release=release, arch="x86_64", page_size=4096, clone3="available", clone3_missing_cause=None,
                 struct_size=profiles.version_struct_size(version), accepted_flags=profiles.version_mask(version),
                 newtime_accepted=version >= (6, 3, 0), pidfd_thread_accepted=version >= (6, 9, 0), stack_checked=True,
                 pidfd_parent_tid_checked=version >= (5, 9, 0), exit_signal_late=False, user_ptr_limit=0x7FFFFFFFF000,
                 tls_limit=0x7FFFFFFFF000, pid_max=4194304, privilege=PRIVILEGE)
    return dataclasses.replace(base, **changes)


def test_a_backport_adds_a_feature() -> None:
    # 5.15.y got "fork: allow CLONE_NEWTIME in clone3 flags" in March 2023 (reference §2.2).
    live = profiles.live(measured=measured("5.15.100", accepted_flags=profiles.version_mask((5, 15, 0)) | C["CLONE_NEWTIME"]))
    assert live.accepted_flags & C["CLONE_NEWTIME"]


def test_a_regression_never_becomes_the_norm() -> None:
    broken = measured("6.18.0", accepted_flags=profiles.version_mask((6, 18, 0)) & ~C["CLONE_NEWTIME"] | C["CLONE_DETACHED"]
                      | 1 << 50, struct_size=96, pidfd_thread_accepted=False, stack_checked=False)
    live = profiles.live(measured=broken)
    assert live.accepted_flags == profiles.version_mask((6, 18, 0))
    assert live.struct_size == 88 and live.pidfd_thread_accepted and live.stack_checked


def test_a_missing_clone3_is_kept() -> None:
    assert profiles.live(measured=measured("6.18.0", clone3="ENOSYS")).clone3 == "ENOSYS"
