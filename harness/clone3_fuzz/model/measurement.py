"""What the probe measured: the running kernel's behaviour and the caller's context, as
plain data. :mod:`clone3_fuzz.runtime.probe` fills it in; :mod:`.profile` turns it into a
profile without looking at the machine again."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from . import abi


CAP_SYS_ADMIN = 21  # include/uapi/linux/capability.h


@dataclass(frozen=True)
class Privilege:
    """The caller's context, which decides EPERM, EAGAIN and EACCES outcomes."""

    uid: int
    euid: int
    egid: int
    capabilities: str  # CapEff, hex
    cap_sys_admin: bool
    user_namespace: str  # "initial" or "nested"
    seccomp: str | None  # the Seccomp line of /proc/self/status: 0 none, 1 strict, 2 filter
    isolation: str | None  # how the sandbox ran the executor (see runtime.sandbox.ISOLATION)
    executor_cap_sys_admin: bool  # the executor drops every capability in a user namespace
    cgroup2: str | None  # the cgroup v2 mount
    cgroup2_usable: bool  # a scratch cgroup could be made for CLONE_INTO_CGROUP

    @classmethod
    def of(cls, uid: int, euid: int, egid: int, cap_eff: int, initial_userns: bool, seccomp: str | None,
           isolation: str | None, cgroup2: str | None, cgroup2_usable: bool) -> Privilege:
        """The context of a caller with effective capabilities ``cap_eff`` whose sandbox
        isolated the executor by ``isolation``: in a user namespace of its own the
        executor holds no capability that counts outside it."""
        admin = bool(cap_eff >> CAP_SYS_ADMIN & 1)
        return cls(uid=uid, euid=euid, egid=egid, capabilities=f"{cap_eff:016x}", cap_sys_admin=admin,
                   user_namespace="initial" if initial_userns else "nested", seccomp=seccomp, isolation=isolation,
                   executor_cap_sys_admin=admin and isolation != "userns+pidns", cgroup2=cgroup2,
                   cgroup2_usable=cgroup2_usable)

    def summary(self) -> str:
        """The caller in one line, as a finding's report names it."""
        return (f"uid {self.uid} (euid {self.euid}), CapEff {self.capabilities}, {self.user_namespace} user namespace, "
                f"executor isolated by {self.isolation or 'nothing'}"
                f"{' without capabilities' if not self.executor_cap_sys_admin else ''}")


@dataclass(frozen=True)
class Machine:
    """Facts of the machine (not of clone3) that some outcomes hang on."""

    caller_pid_level: int  # the caller's pid namespace level (NSpid entries - 1)
    nproc_near_limit: bool  # RLIMIT_NPROC is within reach of what a batch creates
    outer_pid_max: int  # /proc/sys/kernel/pid_max: the caller's namespace's
    namespaces: frozenset[str]  # namespace types the kernel has (/proc/self/ns)
    exhausted_namespaces: frozenset[str]  # user.max_<type>_namespaces is 0
    procfs_effects: bool = True  # /proc shows NSpid, so the executor can look at a child through it
    # The caller's pid level and outer pid_max are this machine's as seen from here. Under a
    # wrapper (bwrap, a container), or run inside a container, the executor may sit in pid
    # namespaces that no /proc it can read shows (a container's /proc starts at its own
    # level): not known.
    outer_levels_known: bool = True
    # Whether creating a user namespace is refused to this caller (EPERM from unshare(2):
    # a chroot, no uid mapping in the parent, an LSM, a distribution's sysctl); None where
    # a seccomp filter, which may treat unshare otherwise than clone3, refused it.
    userns_denied: bool | None = False


@dataclass(frozen=True)
class Measurement:
    """The running kernel's clone3 as measured; None where a measure could not be made."""

    release: str
    arch: str
    page_size: int
    clone3: str  # "available", or what the existence call returned (ENOSYS, EPERM...)
    clone3_missing_cause: str | None
    struct_size: int | None  # the first tail offset whose nonzero byte gives E2BIG
    accepted_flags: int | None  # bits the flag mask lets through
    newtime_accepted: bool | None
    pidfd_thread_accepted: bool | None
    stack_checked: bool | None  # clone3_stack_valid() (5.4; 5.3.11)
    pidfd_parent_tid_checked: bool | None  # pidfd == parent_tid is EINVAL (5.9)
    exit_signal_late: bool | None  # valid_signal() in kernel_clone(), after set_tid's copy (7.1)
    user_ptr_limit: int | None  # the highest end of a range access_ok() accepts
    tls_limit: int | None  # the lowest CLONE_SETTLS tls that gives EPERM (None: no limit)
    pid_max: int | None  # the lowest set_tid pid out of range in the executor's pid namespace
    address_bits: int | None  # the user address width (47, or 56 with 5-level paging), measured without clone3
    privilege: Privilege
    machine: Machine
    build: str = ""  # uname -v: where a distribution's kernel names its upstream version (stable.upstream)

    def to_json(self) -> dict[str, Any]:
        """The measurement as JSON: numbers that are addresses or masks in hex."""
        out = asdict(self)
        if self.accepted_flags is not None:
            out["accepted_flags"] = hex(self.accepted_flags)
            out["accepted_flag_names"] = abi.flag_names(self.accepted_flags)
        for key in ("user_ptr_limit", "tls_limit"):
            out[key] = None if out[key] is None else hex(out[key])
        machine = out.pop("machine")
        out["machine"] = {**machine, "namespaces": sorted(machine["namespaces"]),
                          "exhausted_namespaces": sorted(machine["exhausted_namespaces"])}
        return out
