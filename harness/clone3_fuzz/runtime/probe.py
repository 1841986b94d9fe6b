"""What the running kernel's clone3 does, measured with real calls, and who is calling.

Every answer here comes from the executor, never from the version number: stable
backports move behaviour between releases (see the kernel-checks reference, §5).
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import mmap
import os
import platform
import resource
from typing import Any, Callable

from ..exit_status import ExitStatus, HarnessError
from ..model import abi
from ..model import profile as profiles
from ..model.case import MAX_IMAGE, Case, parse
from ..model.measurement import Machine, Measurement, Privilege
from .sandbox import Sandbox, ScratchCgroup, cgroup2_mount

#: What a size-0 call gives where clone3 is missing or filtered (EPERM: older container
#: profiles; SIGSYS: a filter that kills the caller).
UNAVAILABLE = ("ENOSYS", "EPERM", "SIGSYS")
#: Calls a kernel answers in two ways before touching memory: EINVAL (size 0, a deprecated
#: flag) and E2BIG (over a page). One answer for all three is a blanket refusal.
_BLANKET = ({"size": 0, "memory": "null"}, {"size": 4097, "memory": "null"}, {"size": 88, "flags": "CLONE_DETACHED"})
#: The one errno glibc (2.34 and later) takes as "no clone3" and falls back to clone() on;
#: any other errno for every call makes pthread_create and posix_spawn fail (moby#42680).
FALLBACK = "ENOSYS"


def unavailable_status(observed: str) -> ExitStatus:
    """A kernel or filter that refuses every clone3: ENOSYS is the documented fallback
    path (exit 3, unavailable); any other errno breaks its callers (exit 1, a finding)."""
    return ExitStatus.UNAVAILABLE if observed == FALLBACK else ExitStatus.DISAGREE
_C = abi.CLONE
#: Flags a bit needs beside it, so that only the flag mask can reject it.
_COMPANIONS = {
    _C["CLONE_THREAD"]: _C["CLONE_SIGHAND"] | _C["CLONE_VM"],
    _C["CLONE_SIGHAND"]: _C["CLONE_VM"],
    _C["CLONE_PIDFD_AUTOKILL"]: _C["CLONE_AUTOREAP"] | _C["CLONE_NNP"] | _C["CLONE_PIDFD"],
}


def _status(pid: str = "self") -> dict[str, str]:
    """The fields of /proc/PID/status; none where it is unreadable (the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return {key: value.strip() for key, _, value in (line.partition(":") for line in f)}
    except OSError:
        return {}


def _status_field(name: str) -> str | None:
    return _status().get(name)


def privilege(isolation: str | None) -> Privilege:
    """The caller's context, as /proc/self shows it; ``isolation`` is the sandbox's."""
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
    return Privilege.of(os.getuid(), os.geteuid(), os.getegid(), int(_status_field("CapEff") or "0", 16), initial,
                        _status_field("Seccomp"), isolation, cgroup2_mount(), usable)


NPROC_HEADROOM = 64  # a batch holds a few processes at a time: only a limit this close can answer EAGAIN


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _processes_of(uid: int) -> int:
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            count += os.stat(f"/proc/{pid}").st_uid == uid
        except OSError:
            pass
    return count


#: The initial pid namespace's inode (include/linux/proc_ns.h, fixed since 3.8).
PROC_PID_INIT_INO = 0xEFFFFFFC


def _levels_known() -> bool:
    """Whether NSpid lists every level down from the initial pid namespace, that is,
    whether this /proc belongs to it. In a container /proc is the container's own: NSpid
    starts at its level and the levels above are not shown. The first process up our
    ancestry with a single NSpid entry lives in this /proc's namespace; where its
    namespace cannot be read (no ptrace rights over it), the answer is no."""
    pid = "self"
    for _ in range(64):  # MAX_PID_NS_LEVEL levels, and some ancestors within each
        status = _status(pid)
        nspid, parent = status.get("NSpid", "").split(), status.get("PPid", "0")
        if len(nspid) == 1:
            try:
                return os.stat(f"/proc/{pid}/ns/pid").st_ino == PROC_PID_INIT_INO
            except OSError:
                return False
        if not nspid or parent == "0":
            return False
        pid = parent
    return False


def _userns_denied(seccomp: str | None) -> bool | None:
    """Whether this caller may make a user namespace at all (a chroot, an LSM, a missing
    uid mapping refuse it), asked of unshare(2) in a child: it shares create_user_ns()
    with clone3 but not clone3's code. A filter may answer unshare otherwise, and a pids
    limit may leave no room for the child: unknown."""
    try:
        child = os.fork()
    except OSError:
        return None
    if child == 0:
        refused = ctypes.CDLL(None, use_errno=True).unshare(abi.CLONE["CLONE_NEWUSER"])
        os._exit(min(ctypes.get_errno(), 255) if refused else 0)
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != errno.EPERM:
        return False
    return None if seccomp == "2" else True


def machine() -> Machine:
    """The machine facts some outcomes hang on, from /proc and the rlimits."""
    nspid = (_status_field("NSpid") or "").split()
    soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    near = soft != resource.RLIM_INFINITY and soft - _processes_of(os.getuid()) < NPROC_HEADROOM
    return Machine(
        caller_pid_level=max(len(nspid) - 1, 0), nproc_near_limit=near,
        outer_pid_max=int(_read("/proc/sys/kernel/pid_max") or 32768),
        namespaces=frozenset(n for n in profiles.NAMESPACES if os.path.exists(f"/proc/self/ns/{n}")),
        exhausted_namespaces=frozenset(n for n in profiles.NAMESPACES
                                       if _read(f"/proc/sys/user/max_{n}_namespaces") == "0"),
        # The executor's own test (own_level() in executor.c): the same /proc, the same answer.
        procfs_effects=bool(nspid), outer_levels_known=_levels_known(),
        userns_denied=_userns_denied(_status_field("Seccomp")),
    )


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
    if observed != FALLBACK:
        who = "probably a seccomp filter (Seccomp: 2 in /proc/self/status)" if seccomp == "2" else "an LSM or a sandbox"
        return f"every clone3 gave {observed}, from {who}: {consequence(observed)}"
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


WAYS = 8  # points per round of a boundary search: a batch costs ~1.5 ms to start, a point (a partial fork) ~0.25 ms


def _boundary(sandbox: Sandbox, make: Callable[[int], Case], rejected: str, hi: int = abi.U64_MAX) -> int | None:
    """The lowest value up to ``hi`` that ``make`` turns into a case answered ``rejected``,
    on the assumption that the answer flips once; None when even ``hi`` is not rejected.
    Each round tries WAYS - 1 points in one batch, so a 64-bit range takes 22 rounds."""
    lo = 0
    if sandbox.run([make(hi)])[0].observed != rejected:
        return None
    while hi - lo > 1:
        points = sorted({lo + (hi - lo) * k // WAYS for k in range(1, WAYS)} - {lo, hi})
        seen = [o.observed == rejected for o in sandbox.run([make(p) for p in points])]
        first = next((i for i, hit in enumerate(seen) if hit), None)
        if first is None:
            lo = points[-1]
        else:
            hi, lo = points[first], points[first - 1] if first else lo
    return hi


def consequence(observed: str) -> str:
    """What a refusal of every clone3 does to its callers."""
    if observed == FALLBACK:
        return "glibc falls back to clone()"
    if observed == "SIGSYS":
        return "the caller is killed (SIGSYS), so glibc cannot fall back; pthread_create and posix_spawn kill their process"
    return f"glibc does not fall back on {observed}; pthread_create and posix_spawn fail"


def availability(sandbox: Sandbox) -> tuple[str, str | None]:
    """What a size-0 call gives (EINVAL wherever clone3 exists: size < 64 is checked before
    any user access), and why clone3 is missing, or None when it is not. Only a refusal
    to run means no clone3: an answer no kernel gives to size 0 (:data:`UNAVAILABLE`), or
    one answer to all of :data:`_BLANKET` (EOPNOTSUPP from a filter, say). Any other wrong
    answer is a clone3 to judge."""
    answers = [o.observed for o in sandbox.run([parse(case) for case in _BLANKET])]
    exists = answers[0]
    blanket = len(set(answers)) == 1 and exists != "EINVAL" and not exists.startswith("harness-")
    if exists not in UNAVAILABLE and not blanket:
        return exists, None
    target = getattr(sandbox, "describe", None)
    if target is not None:  # an emulator or a sandbox answers for the kernel
        what = target()
        return exists, f"{what.get('command') or what.get('image')} gives {exists} for every clone3: {consequence(exists)}"
    return exists, _missing_cause(exists, platform.release(), _status_field("Seccomp"))


def probe(sandbox: Sandbox | None = None) -> Measurement:
    """Measures the running kernel's clone3 through ``sandbox`` (a few hundred calls)."""
    sandbox = sandbox or Sandbox()
    exists, cause = availability(sandbox)
    # A runner of its own (a VM, a program under a wrapper) knows its caller's facts;
    # otherwise they are this process's.
    guest = getattr(sandbox, "facts", None)
    base, priv, mach, bits = guest() if guest else (
        dict(release=platform.release(), build=platform.version(), arch=platform.machine(),
             page_size=os.sysconf("SC_PAGESIZE")), privilege(sandbox.isolation), machine(), address_bits(platform.machine()))
    if not getattr(sandbox, "cgroups", True):  # a runner with no cgroup of ours to spawn into
        priv = dataclasses.replace(priv, cgroup2_usable=False)
    page = base["page_size"]
    if cause:
        return Measurement(**base, clone3=exists, clone3_missing_cause=cause,
                           struct_size=None, accepted_flags=None, newtime_accepted=None, pidfd_thread_accepted=None,
                           stack_checked=None, pidfd_parent_tid_checked=None, exit_signal_late=None,
                           user_ptr_limit=None, tls_limit=None, pid_max=None, address_bits=bits,
                           privilege=priv, machine=mach)

    offsets = range(abi.CLONE_ARGS_SIZE_VER0, min(page, MAX_IMAGE))  # as far as the executor can place a byte
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
    return Measurement(**base, clone3="available", clone3_missing_cause=None, struct_size=struct_size,
                 accepted_flags=accepted, newtime_accepted=bool(accepted & _C["CLONE_NEWTIME"]),
                 pidfd_thread_accepted=pidfd_thread_seen != "EINVAL", stack_checked=stack_seen == "EINVAL",
                 pidfd_parent_tid_checked=same_pointer_seen == "EINVAL", exit_signal_late=exit_signal_seen == "EFAULT",
                 # the lowest rejected stack X (size 1) is the limit: X + 1 is the first end past it
                 user_ptr_limit=user_ptr_end,
                       tls_limit=tls_limit, pid_max=pid_max, address_bits=bits, privilege=priv, machine=mach)


def live_profile(sandbox: Sandbox | None = None, measured: Measurement | None = None) -> profiles.Profile:
    """The running kernel's profile: measured through ``sandbox`` unless ``measured`` is given."""
    return profiles.from_measurement(measured or probe(sandbox))
