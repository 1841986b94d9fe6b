"""The kernel profile: everything the oracle needs to know about a kernel and its caller.

A live profile comes from the running machine: measured behaviour (a
:class:`.measurement.Measurement`, which :mod:`clone3_fuzz.runtime.probe` takes) and the
version number together. Stable backports only ever bring a feature to an older
release, so a measurement may add what the version lacks (CLONE_NEWTIME on a 5.15.y, say),
but never take away what the version promises: a 6.18 kernel that rejects CLONE_NEWTIME
has a regression, and the oracle must keep expecting it, or the fuzzer would learn the bug
as the norm. Facts no kernel changes (the deprecated bits, unknown bits) come from the ABI. A named profile (``--kernel 5.5``) predicts for another
kernel from the version alone, for this machine's architecture and caller.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..exit_status import HarnessError
from . import abi, effects, stable
from .measurement import Measurement

NAMESPACES = ("mnt", "uts", "ipc", "pid", "cgroup", "net", "time", "user")
Release = tuple[int, int, int]


@dataclass(frozen=True)
class Profile:
    """One kernel and one caller. Field comments name the check each field decides."""

    release: str
    version: Release
    source: str  # "live" or "named"
    arch: str
    page_size: int  # size.over_page
    nsig: int  # exit_signal.invalid: valid_signal() is exit_signal <= _NSIG
    clone3: str  # "available", or the errno every call gets (ENOSYS from a filter, say)
    struct_size: int  # the kernel's sizeof(struct clone_args): 64, 80 or 88
    accepted_flags: int  # clone3_args_valid's mask, CSIGNAL and DETACHED excluded
    pidfd_thread_accepted: bool  # 6.9: CLONE_PIDFD|CLONE_THREAD
    stack_checked: bool  # 5.4, 5.3.11: clone3_stack_valid()
    pidfd_parent_tid_checked: bool  # 5.9: kernel_clone() rejects pidfd == parent_tid
    exit_signal_late: bool  # 7.1: valid_signal() moved into kernel_clone()
    user_ptr_limit: int | None  # access_ok(): addr + size must not pass it (None: unknown)
    tls_limit: int | None  # CLONE_SETTLS: a tls at or above it gives EPERM (None: no check)
    cap_sys_admin: bool  # the executor's, in its own user namespace
    cap_checkpoint_restore: bool
    nproc_limited: bool  # RLIMIT_NPROC applies to the executor (EAGAIN possible)
    caller_is_pidns_init: bool
    pid_level: int  # the executor's pid namespace level
    pid_max: int  # set_tid: pids at the executor's level must be below it
    outer_pid_max: int  # ... and at the levels above it (the caller's)
    address_bits: int | None  # the user address width the limits follow (47, or 56 with 5-level paging)
    namespaces: frozenset[str]  # namespace types the kernel has (CONFIG_*_NS)
    exhausted_namespaces: frozenset[str]  # max_<type>_namespaces is 0
    cgroup2_usable: bool
    procfs_effects: bool = True  # the executor can look at a child through /proc (effects)
    outer_levels_known: bool = True  # set_tid: pid_level and outer_pid_max are exact (else at least / unknown)
    userns_denied: bool | None = False  # CLONE_NEWUSER: EPERM for this caller (None: unknown)
    pidfd_fdinfo: bool = True  # 5.5: a pidfd's fdinfo names its task (effect.pidfd)

    @property
    def has_autoreap(self) -> bool:
        """Whether the kernel knows 7.1's CLONE_AUTOREAP (and with it the other 7.1 flags)."""
        return bool(self.accepted_flags & abi.CLONE["CLONE_AUTOREAP"])

    def to_json(self) -> dict[str, Any]:
        """The profile as JSON: addresses and masks in hex."""
        out = asdict(self)
        out["version"] = ".".join(map(str, self.version))
        out["accepted_flags"] = hex(self.accepted_flags)
        for key in ("user_ptr_limit", "tls_limit"):
            out[key] = None if out[key] is None else hex(out[key])
        out["namespaces"] = sorted(self.namespaces)
        out["exhausted_namespaces"] = sorted(self.exhausted_namespaces)
        return out


def parse_release(text: str) -> Release:
    """(major, minor, patch) from a release string such as ``6.18.44-fc-v669`` or ``5.7``."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        raise ValueError(f"not a kernel version: {text!r}")
    return int(match[1]), int(match[2]), int(match[3] or 0)


def version_mask(version: Release) -> int:
    """The flags clone3 accepts on a kernel of this version, stable backports included
    (CLONE_NEWTIME from 5.10.175, 5.15.103, 6.1.20, 6.2.7: :mod:`.stable`)."""
    mask = sum(f.value for f in abi.FLAGS if f.clone3 is not None and f.clone3 <= version[:2])
    return mask | (abi.CLONE["CLONE_NEWTIME"] if stable.reached("newtime", version) else 0)


def version_struct_size(version: Release) -> int:
    """sizeof(struct clone_args) on a mainline kernel of this version: 64, 80 or 88."""
    return max(size for since, size in abi.VERSION_SIZES if since <= version[:2])


def _version_features(version: Release) -> dict[str, Any]:
    return dict(
        struct_size=version_struct_size(version),
        accepted_flags=version_mask(version),
        pidfd_thread_accepted=stable.reached("pidfd_thread_accepted", version),
        stack_checked=stable.reached("stack_checked", version),
        pidfd_parent_tid_checked=stable.reached("pidfd_parent_tid_checked", version),
        exit_signal_late=stable.reached("exit_signal_late", version),
        pidfd_fdinfo=version >= effects.PIDFD_FDINFO,
    )


def _environment(measured: Measurement) -> dict[str, Any]:
    """The caller's side: the same whatever kernel is named."""
    priv, machine = measured.privilege, measured.machine
    cap_eff = int(priv.capabilities, 16)
    dropped = priv.isolation == "userns+pidns"
    privileged = priv.euid == 0 and not dropped
    return dict(
        arch=measured.arch, page_size=measured.page_size,
        nsig=128 if measured.arch.startswith("mips") else 64,
        cap_sys_admin=priv.executor_cap_sys_admin,
        cap_checkpoint_restore=bool(cap_eff >> 40 & 1) and not dropped,
        nproc_limited=machine.nproc_near_limit and not privileged,
        caller_is_pidns_init=False,  # the sandbox never runs cases from its reaper
        pid_level=machine.caller_pid_level + (priv.isolation in ("pidns", "userns+pidns")),
        outer_pid_max=machine.outer_pid_max, address_bits=measured.address_bits,
        namespaces=machine.namespaces, exhausted_namespaces=machine.exhausted_namespaces,
        cgroup2_usable=priv.cgroup2_usable, procfs_effects=machine.procfs_effects,
        outer_levels_known=machine.outer_levels_known, userns_denied=machine.userns_denied,
    )


# --- the limits the probe calibrates, held to what the kernel promises ---------------

RESERVED_PIDS = 300  # include/linux/threads.h: pid_max can never be set this low


def pid_max_limit(arch: str) -> int:
    """PID_MAX_LIMIT (include/linux/threads.h): 4 Mi pids where a long has 64 bits, 32 Ki elsewhere."""
    return 4 * 1024 * 1024 if arch in ("x86_64", "aarch64", "ppc64le", "ppc64", "s390x", "riscv64", "loongarch64",
                                       "mips64", "sparc64") else 32768


def promised_limits(arch: str, address_bits: int | None, page: int) -> dict[str, int | None] | None:
    """What the architecture promises for the access_ok() and CLONE_SETTLS limits, or None
    where nothing is known here (the measurement then stands alone).

    x86-64: both are TASK_SIZE_MAX, one page below the top of the user half (47 bits, or
    56 with 5-level paging): access_ok() through valid_user_address(), CLONE_SETTLS through
    do_arch_prctl_64(ARCH_SET_FS)'s ``>= TASK_SIZE_USER64``. arm64: access_ok() takes up
    to TASK_SIZE_64 (``1 << vabits``); copy_thread() sets any TLS unchecked."""
    if address_bits is None:
        return None
    if arch == "x86_64":
        task_size_max = (1 << address_bits) - page
        return {"user_ptr_limit": task_size_max, "tls_limit": task_size_max}
    if arch == "aarch64":
        return {"user_ptr_limit": 1 << address_bits, "tls_limit": None}
    return None


def _held_limits(measured: Measurement, version: Release, isolation: str | None, outer_pid_max: int) -> dict[str, Any]:
    """The calibrated limits, each kept only where it agrees with what the kernel promises.

    A kernel that stops checking one of them measures as "no limit" (or a far one), and a
    profile that took that measurement would learn the bug as the norm. So a measurement
    stands only inside the promise (a page's slack for how the arch rounds), and the promise
    replaces it otherwise; the oracle then expects the check, and the missing check shows up
    as a discrepancy."""
    promise = promised_limits(measured.arch, measured.address_bits, measured.page_size)
    held: dict[str, Any] = {"user_ptr_limit": measured.user_ptr_limit, "tls_limit": measured.tls_limit}
    if promise is not None:
        for key, due in promise.items():
            seen = held[key]
            inside = due is not None and seen is not None and due - measured.page_size <= seen <= due
            held[key] = seen if inside else due
    # pid_max: any working value lies in (RESERVED_PIDS, PID_MAX_LIMIT]. Without a valid
    # measurement: the caller's sysctl where the namespace does not have its own (before
    # 6.14, or no pid namespace around the executor), else the bound no kernel passes.
    limit = pid_max_limit(measured.arch)
    if measured.pid_max is not None and RESERVED_PIDS < measured.pid_max <= limit:
        held["pid_max"] = measured.pid_max
    elif not stable.reached("pid_max_per_namespace", version) or isolation not in ("pidns", "userns+pidns"):
        held["pid_max"] = outer_pid_max
    else:
        held["pid_max"] = limit
    return held


#: Flags a backport may bring to an older kernel: CLONE_NEWTIME and the named high bits.
BACKPORTABLE_FLAGS = abi.CLONE["CLONE_NEWTIME"] | sum(f.value for f in abi.FLAGS if f.value > abi.CLONE_LEGACY_FLAGS)


def from_measurement(measured: Measurement) -> Profile:
    """The running kernel: its version's behaviour, plus what backports added as measured."""
    version = parse_release(stable.upstream(measured.release, measured.build))
    features = _version_features(version)
    if measured.clone3 == "available":
        features.update(
            # No kernel has a struct past VER2: a bigger measure is a kernel ignoring a tail.
            struct_size=max(features["struct_size"], min(measured.struct_size or 0, abi.STRUCT_SIZE)),
            accepted_flags=features["accepted_flags"] | (measured.accepted_flags or 0) & BACKPORTABLE_FLAGS,
            pidfd_thread_accepted=features["pidfd_thread_accepted"] or bool(measured.pidfd_thread_accepted),
            stack_checked=features["stack_checked"] or bool(measured.stack_checked),
            pidfd_parent_tid_checked=features["pidfd_parent_tid_checked"] or bool(measured.pidfd_parent_tid_checked),
            exit_signal_late=features["exit_signal_late"] or bool(measured.exit_signal_late),
        )
    environment = _environment(measured)
    limits = _held_limits(measured, version, measured.privilege.isolation, environment["outer_pid_max"])
    return Profile(release=measured.release, version=version, source="live", clone3=measured.clone3,
                   **features, **environment, **limits)


def named(version_text: str, base: Profile) -> Profile:
    """Another kernel, by version: its checks, this machine's architecture and caller."""
    try:
        version = parse_release(version_text)
    except ValueError as e:
        raise HarnessError(f"--kernel: {e}") from None
    if version[:2] < (5, 3):
        return replace(base, release=version_text, version=version, source="named", clone3="ENOSYS")
    # Before 6.14 every pid namespace shares the global pid_max.
    pid_max = base.pid_max if stable.reached("pid_max_per_namespace", version) else base.outer_pid_max
    return replace(base, release=version_text, version=version, source="named", clone3="available",
                   pid_max=pid_max, **_version_features(version))


def version_of(profile: Profile) -> Profile:
    """The running release as its version alone promises it (no backports learned): what a
    finding's expectation must rest on, so that a reproducer states the version's contract."""
    return named(profile.release, profile) if profile.source == "live" else profile
