"""What the running kernel's clone3 does, measured with real calls, and who is calling.

Every answer here comes from the executor, never from the version number: stable
backports move behaviour between releases (see the kernel-checks reference, §5).
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from typing import Any

from . import abi
from .case import Case, parse
from .sandbox import HarnessError, Sandbox, ScratchCgroup, cgroup2_mount

CAP_SYS_ADMIN = 21
_C = abi.CLONE
#: Flags a bit needs beside it, so that only the flag mask can reject it.
_COMPANIONS = {
    _C["CLONE_THREAD"]: _C["CLONE_SIGHAND"] | _C["CLONE_VM"],
    _C["CLONE_SIGHAND"]: _C["CLONE_VM"],
    _C["CLONE_PIDFD_AUTOKILL"]: _C["CLONE_AUTOREAP"] | _C["CLONE_NNP"] | _C["CLONE_PIDFD"],
}


def _status_field(name: str) -> str | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == name:
                    return value.strip()
    except OSError:
        pass
    return None


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
    isolation: str | None  # how the sandbox ran the executor (see harness.sandbox.ISOLATION)
    executor_cap_sys_admin: bool  # the executor drops every capability in a user namespace
    cgroup2: str | None  # the cgroup v2 mount
    cgroup2_usable: bool  # a scratch cgroup could be made for CLONE_INTO_CGROUP


def privilege(isolation: str | None) -> Privilege:
    cap_eff = _status_field("CapEff") or "0"
    try:
        with open("/proc/self/uid_map") as f:
            initial = f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        initial = True
    try:
        ScratchCgroup().close()
        usable = True
    except HarnessError:
        usable = False
    admin = bool(int(cap_eff, 16) >> CAP_SYS_ADMIN & 1)
    return Privilege(
        uid=os.getuid(), euid=os.geteuid(), egid=os.getegid(), capabilities=cap_eff, cap_sys_admin=admin,
        user_namespace="initial" if initial else "nested", seccomp=_status_field("Seccomp"),
        isolation=isolation, executor_cap_sys_admin=admin and isolation != "userns+pidns",
        cgroup2=cgroup2_mount(), cgroup2_usable=usable,
    )


@dataclass(frozen=True)
class Probe:
    release: str
    arch: str
    page_size: int
    clone3: str  # "available", or what the existence call returned (ENOSYS, EPERM...)
    clone3_missing_cause: str | None
    struct_size: int | None  # the first tail offset whose nonzero byte gives E2BIG
    accepted_flags: int | None  # bits the flag mask lets through
    newtime_accepted: bool | None
    pidfd_thread_accepted: bool | None
    privilege: Privilege

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.accepted_flags is not None:
            out["accepted_flags"] = hex(self.accepted_flags)
            out["accepted_flag_names"] = abi.flag_names(self.accepted_flags)
        return out


def _missing_cause(observed: str, release: str, seccomp: str | None) -> str:
    if seccomp == "2":
        return f"probably a seccomp filter (Seccomp: 2 in /proc/self/status; clone3 gave {observed})"
    if observed == "ENOSYS":
        return f"the kernel ({release}) or this architecture has no clone3 (it came in 5.3)"
    return f"clone3 gave {observed} where any kernel gives EINVAL: an LSM or a sandbox answers for it"


def _tail_case(offset: int, size: int) -> Case:
    """A CLONE_DETACHED struct (so nothing is ever created) with one nonzero byte."""
    image = bytearray(abi.encode({"flags": _C["CLONE_DETACHED"]}, length=max(offset + 1, abi.STRUCT_SIZE)))
    image[offset] = 1
    return parse({"size": size, "hex": image.hex()})


def _mask_case(bit: int) -> Case:
    """A struct that the flag mask alone may reject (EINVAL). Past the mask, a bad pidfd
    pointer fails the call late (EFAULT), so nothing is created; CLONE_THREAD goes
    without CLONE_PIDFD, which kernels before 6.9 reject together with it."""
    flags = bit | _COMPANIONS.get(bit, 0)
    if bit != _C["CLONE_THREAD"]:
        flags |= _C["CLONE_PIDFD"]
    return parse({"size": abi.STRUCT_SIZE, "flags": hex(flags), "pidfd": "unmapped"})


def probe(sandbox: Sandbox | None = None) -> Probe:
    sandbox = sandbox or Sandbox()
    page = os.sysconf("SC_PAGESIZE")
    release = platform.release()
    exists = sandbox.run([parse({"size": 0, "memory": "null"})])[0].observed
    priv = privilege(sandbox.isolation)
    base = dict(release=release, arch=platform.machine(), page_size=page)
    if exists != "EINVAL":
        return Probe(**base, clone3=exists, clone3_missing_cause=_missing_cause(exists, release, priv.seccomp),
                     struct_size=None, accepted_flags=None, newtime_accepted=None,
                     pidfd_thread_accepted=None, privilege=priv)

    offsets = range(abi.CLONE_ARGS_SIZE_VER0, min(page, 65536))
    pidfd_thread = parse({"size": abi.STRUCT_SIZE, "pidfd": "unmapped", "flags": hex(
        _C["CLONE_PIDFD"] | _C["CLONE_THREAD"] | _C["CLONE_SIGHAND"] | _C["CLONE_VM"])})
    cases = [_tail_case(o, page) for o in offsets] + [_mask_case(1 << b) for b in range(64)] + [pidfd_thread]
    outcomes = [o.observed for o in sandbox.run(cases)]
    tail, mask, last = outcomes[:len(offsets)], outcomes[len(offsets):-1], outcomes[-1]
    struct_size = next((o for o, seen in zip(offsets, tail) if seen == "E2BIG"), None)
    accepted = sum(1 << b for b, seen in enumerate(mask) if seen != "EINVAL")
    return Probe(**base, clone3="available", clone3_missing_cause=None, struct_size=struct_size,
                 accepted_flags=accepted, newtime_accepted=bool(accepted & _C["CLONE_NEWTIME"]),
                 pidfd_thread_accepted=last != "EINVAL", privilege=priv)
