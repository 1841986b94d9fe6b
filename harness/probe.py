"""What the running kernel's clone3 does, measured with real calls, and who is calling.

Every answer here comes from the executor, never from the version number: stable
backports move behaviour between releases (see the kernel-checks reference, §5).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
from dataclasses import asdict, dataclass
from typing import Any, Callable

from . import abi
from .case import Case, parse
from .sandbox import HarnessError, Sandbox, ScratchCgroup, cgroup2_mount

CAP_SYS_ADMIN = 21
#: What a size-0 call gives where clone3 is missing or filtered (EPERM: older container profiles).
UNAVAILABLE = ("ENOSYS", "EPERM")
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

    def summary(self) -> str:
        """The caller in one line, as a finding's report names it."""
        return (f"uid {self.uid} (euid {self.euid}), CapEff {self.capabilities}, {self.user_namespace} user namespace, "
                f"executor isolated by {self.isolation or 'nothing'}"
                f"{' without capabilities' if not self.executor_cap_sys_admin else ''}")


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
    stack_checked: bool | None  # clone3_stack_valid() (5.4; 5.3.11)
    pidfd_parent_tid_checked: bool | None  # pidfd == parent_tid is EINVAL (5.9)
    exit_signal_late: bool | None  # valid_signal() in kernel_clone(), after set_tid's copy (7.1)
    user_ptr_limit: int | None  # the highest end of a range access_ok() accepts
    tls_limit: int | None  # the lowest CLONE_SETTLS tls that gives EPERM (None: no limit)
    pid_max: int | None  # the lowest set_tid pid out of range in the executor's pid namespace
    address_bits: int | None  # the user address width (47, or 56 with 5-level paging), measured without clone3
    privilege: Privilege

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.accepted_flags is not None:
            out["accepted_flags"] = hex(self.accepted_flags)
            out["accepted_flag_names"] = abi.flag_names(self.accepted_flags)
        for key in ("user_ptr_limit", "tls_limit"):
            out[key] = None if out[key] is None else hex(out[key])
        return out


MAP_FIXED_NOREPLACE = 0x100000
PROT_NONE = 0
#: Address widths by architecture, widest first: x86-64 with 5- or 4-level paging, arm64
#: with 52-, 48- or 39-bit virtual addresses.
ADDRESS_WIDTHS = {"x86_64": (56, 47), "aarch64": (52, 48, 39)}


def address_bits(arch: str) -> int | None:
    """The user address width, from where the kernel lets a mapping go: a hint above 47
    bits is honoured only with 5-level paging (and on arm64 above 48 only with 52-bit VAs).
    Measured without clone3, so that a clone3 that stops checking its limits cannot move
    the yardstick. None where the architecture is not known here."""
    widths = ADDRESS_WIDTHS.get(arch)
    if widths is None:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    page = mmap.PAGESIZE
    for bits in widths[:-1]:
        hint = (1 << (bits - 1)) + (1 << 40)  # well inside the wider space, past the narrower one
        got = libc.mmap(hint, page, PROT_NONE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0)
        if got not in (None, ctypes.c_void_p(-1).value):
            libc.munmap(got, page)
            if got == hint:
                return bits
    return widths[-1]


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


def _late_failure(**fields: Any) -> Case:
    """A struct that passes the early checks or not; past them, a bad pidfd pointer fails
    the call late (EFAULT), so nothing is created either way."""
    flags = abi.parse_flags(fields.pop("flags", "0")) | _C["CLONE_PIDFD"]
    return parse({"size": abi.STRUCT_SIZE, "pidfd": "unmapped", **fields, "flags": hex(flags)})


def _boundary(sandbox: Sandbox, make: Callable[[int], Case], rejected: str, hi: int = abi.U64_MAX) -> int | None:
    """The lowest value up to ``hi`` that ``make`` turns into a case answered ``rejected``,
    on the assumption that the answer flips once; None when even ``hi`` is not rejected."""
    lo = 0
    if sandbox.run([make(hi)])[0].observed != rejected:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if sandbox.run([make(mid)])[0].observed == rejected:
            hi = mid
        else:
            lo = mid
    return hi


def availability(sandbox: Sandbox) -> tuple[str, str | None]:
    """What a size-0 call gives (EINVAL wherever clone3 exists: size < 64 is checked before
    any user access), and why clone3 is missing, or None when it is not. Only a refusal
    to run means no clone3; any other wrong answer is a clone3 to judge."""
    exists = sandbox.run([parse({"size": 0, "memory": "null"})])[0].observed
    if exists not in UNAVAILABLE:
        return exists, None
    return exists, _missing_cause(exists, platform.release(), _status_field("Seccomp"))


def probe(sandbox: Sandbox | None = None) -> Probe:
    sandbox = sandbox or Sandbox()
    page = os.sysconf("SC_PAGESIZE")
    exists, cause = availability(sandbox)
    priv = privilege(sandbox.isolation)
    base = dict(release=platform.release(), arch=platform.machine(), page_size=page)
    if cause:
        return Probe(**base, clone3=exists, clone3_missing_cause=cause,
                     struct_size=None, accepted_flags=None, newtime_accepted=None, pidfd_thread_accepted=None,
                     stack_checked=None, pidfd_parent_tid_checked=None, exit_signal_late=None,
                     user_ptr_limit=None, tls_limit=None, pid_max=None, address_bits=address_bits(base["arch"]),
                     privilege=priv)

    offsets = range(abi.CLONE_ARGS_SIZE_VER0, min(page, 65536))
    pidfd_thread = parse({"size": abi.STRUCT_SIZE, "pidfd": "unmapped", "flags": hex(
        _C["CLONE_PIDFD"] | _C["CLONE_THREAD"] | _C["CLONE_SIGHAND"] | _C["CLONE_VM"])})
    features = [
        pidfd_thread,
        _late_failure(stack_size=1),  # no stack, a size: EINVAL from clone3_stack_valid()
        _late_failure(flags="CLONE_PARENT_SETTID", parent_tid="unmapped"),  # the same pointer twice
        # An exit_signal past _NSIG with an unreadable set_tid: which check comes first?
        parse({"size": abi.STRUCT_SIZE, "exit_signal": 255, "set_tid": "unmapped", "set_tid_size": 1}),
    ]
    cases = [_tail_case(o, page) for o in offsets] + [_mask_case(1 << b) for b in range(64)] + features
    outcomes = [o.observed for o in sandbox.run(cases)]
    tail, mask = outcomes[:len(offsets)], outcomes[len(offsets):len(offsets) + 64]
    pidfd_thread_seen, stack_seen, same_pointer_seen, exit_signal_seen = outcomes[-len(features):]
    struct_size = next((o for o, seen in zip(offsets, tail) if seen == "E2BIG"), None)
    accepted = sum(1 << b for b, seen in enumerate(mask) if seen != "EINVAL")
    user_ptr_end = _boundary(sandbox, lambda x: _late_failure(stack=hex(x), stack_size=1), "EINVAL")
    tls_limit = _boundary(sandbox, lambda x: _late_failure(flags="CLONE_SETTLS", tls=hex(x)), "EPERM")
    # Per pid namespace since 6.14, and a new one need not inherit the caller's value.
    pid_max = _boundary(sandbox, lambda x: _late_failure(set_tid=[x]), "EINVAL", hi=(1 << 31) - 1)
    return Probe(**base, clone3="available", clone3_missing_cause=None, struct_size=struct_size,
                 accepted_flags=accepted, newtime_accepted=bool(accepted & _C["CLONE_NEWTIME"]),
                 pidfd_thread_accepted=pidfd_thread_seen != "EINVAL", stack_checked=stack_seen == "EINVAL",
                 pidfd_parent_tid_checked=same_pointer_seen == "EINVAL", exit_signal_late=exit_signal_seen == "EFAULT",
                 # the lowest rejected stack X (size 1) is the limit: X + 1 is the first end past it
                 user_ptr_limit=user_ptr_end,
                 tls_limit=tls_limit, pid_max=pid_max, address_bits=address_bits(base["arch"]), privilege=priv)
