"""A seccomp profile compiled with libseccomp (Debian's libseccomp2, through ctypes) into
the classic BPF program the kernel loads: the executor program loads it into itself before
it greets (``--seccomp-bpf FILE``), as a container's runtime would before its first process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import tempfile

from ..exit_status import HarnessError
from ..model.seccomp import Profile

#: libseccomp's actions (seccomp.h) by the profiles' names; SCMP_ACT_ERRNO takes an errno.
ACTIONS = {"SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000, "SCMP_ACT_KILL_PROCESS": 0x80000000,
           "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
           "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000}
#: enum scmp_compare.
OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6,
       "SCMP_CMP_MASKED_EQ": 7}
#: Past the last syscall number any architecture has (x86_64 is near 470): where runc's
#: stub stops being emulated.
SYSCALL_CEILING = 1024


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def _libseccomp() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        raise HarnessError("--seccomp-profile: libseccomp is not installed (Debian: libseccomp2)") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p  # a malloc'd name, or NULL
    lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def _action(name: str, number: int | None) -> int:
    if name not in ACTIONS:
        raise HarnessError(f"--seccomp-profile: unknown action {name}")
    return ACTIONS[name] | ((number if number is not None else errno.EPERM) & 0xFFFF if name == "SCMP_ACT_ERRNO" else 0)


_LIBC = ctypes.CDLL(None)


def _known(lib: ctypes.CDLL, number: int) -> bool:
    name = lib.seccomp_syscall_resolve_num_arch(0, number)  # 0: SCMP_ARCH_NATIVE
    if name:
        _LIBC.free(ctypes.c_void_p(name))
    return bool(name)


def compile_bpf(profile: Profile, runc: bool = False) -> bytes:
    """The profile's rules as the BPF program libseccomp makes of them, for this machine's
    architecture. Rules for syscalls it does not know here are left out, as runc does.

    ``runc`` adds what runc (since 1.0.0-rc93, runc#2750) puts before the profile: ENOSYS
    for every syscall numbered above the largest one the profile names, so that a syscall
    newer than the profile falls back (glibc's clone3 among them) instead of getting the
    default EPERM. runc compares numbers in a stub of its own; here each such number
    libseccomp knows gets an ENOSYS rule, which is the same for every real syscall."""
    lib = _libseccomp()
    default = _action(profile.default_action, profile.default_errno)
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise HarnessError("--seccomp-profile: libseccomp could not start a filter")
    try:
        named: set[int] = set()  # the numbers the profile names here, for runc's stub
        for rule in profile.rules:
            number = lib.seccomp_syscall_resolve_name(rule.name.encode())
            if number >= 0:
                named.add(number)
            action = _action(rule.action, rule.errno)
            if number < 0 or action == default:
                continue  # unknown here, or what the default does anyway (libseccomp refuses those)
            args = (_ArgCmp * max(1, len(rule.args)))(*[_ArgCmp(i, OPS[op], a, b) for i, op, a, b in rule.args])
            failed = lib.seccomp_rule_add_array(ctx, action, number, len(rule.args), args)
            if failed:
                raise HarnessError(f"--seccomp-profile: libseccomp refused the rule for {rule.name}: "
                                   f"{os.strerror(-failed)}")
        enosys = ACTIONS["SCMP_ACT_ERRNO"] | errno.ENOSYS
        if runc and named and default not in (ACTIONS["SCMP_ACT_ALLOW"], ACTIONS["SCMP_ACT_LOG"], enosys):
            for number in range(max(named) + 1, SYSCALL_CEILING):
                if _known(lib, number) and lib.seccomp_rule_add_array(ctx, enosys, number, 0, None):
                    raise HarnessError(f"--seccomp-profile: libseccomp refused runc's ENOSYS for syscall {number}")
        with tempfile.TemporaryFile() as out:
            if lib.seccomp_export_bpf(ctx, out.fileno()):
                raise HarnessError("--seccomp-profile: libseccomp could not export the filter")
            out.seek(0)
            return out.read()
    finally:
        lib.seccomp_release(ctx)
