"""The executor's protocol, Python side: cases in as one encoded blob, outcomes out.

The C executor (``c/executor.c``) reads the blob and writes ``struct c3_outcome`` records;
this module builds the one and reads the other, with the layouts of ``c/c3.h`` as cffi
knows them (no layout is written down twice). How the executor's process is started is
the sandbox's business (:mod:`.sandbox`).
"""

from __future__ import annotations

import errno
import os
from typing import Iterable

from ..model import abi
from ..model.case import CGROUP_RESOURCE, SET_TID_LIST, Case
from ..model.effects import signal_name
from ..model.memo import Memo
from ..model.outcome import HARNESS_CRASH, HARNESS_TIMEOUT, SIGSYS, SUCCESS, Outcome
from ._executor import ffi, lib

_MEMORY = {"mapped": lib.C3_MEM_MAPPED, "guard": lib.C3_MEM_GUARD, "null": lib.C3_MEM_NULL, "unmapped": lib.C3_MEM_UNMAPPED}
_REF = {
    "scratch": lib.C3_REF_SCRATCH,
    "unmapped": lib.C3_REF_UNMAPPED,
    "kernel": lib.C3_REF_KERNEL,
    SET_TID_LIST: lib.C3_REF_SET_TID_LIST,
    CGROUP_RESOURCE: lib.C3_REF_CGROUP2,
}
assert len(abi.FIELDS) == lib.C3_NFIELDS


def _pad8(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 8)


_ENCODED: Memo[tuple[object, ...], bytes] = Memo()  # case.key -> record: campaigns repeat cases


def encode_case(case: Case) -> bytes:
    """One wire record: the header, the struct image (without its trailing zeros, which
    the executor supplies) and the set_tid pids."""
    return _ENCODED.get(case.key, lambda: _encode(case))


def _encode(case: Case) -> bytes:
    image = case.image().rstrip(b"\0")
    refs = [_REF.get(case.refs.get(name, ""), lib.C3_REF_LITERAL) for name in abi.FIELDS]
    header = ffi.new("struct c3_case *", {
        "size": case.size, "nbytes": len(image), "memory": _MEMORY[case.memory],
        "readable": case.placed_readable if case.memory == "guard" else 0,
        "nset_tid": len(case.set_tid_pids), "ref": refs, "nrefs": sum(r != lib.C3_REF_LITERAL for r in refs),
    })
    pids = ffi.new("int32_t[]", list(case.set_tid_pids)) if case.set_tid_pids else None
    return bytes(ffi.buffer(header)) + _pad8(image) + (_pad8(bytes(ffi.buffer(pids))) if pids is not None else b"")


def encode_batch(cases: Iterable[Case]) -> bytes:
    """The records of ``cases``, one after the other: what c3_execute() reads."""
    return b"".join(encode_case(c) for c in cases)


def errno_name(number: int) -> str:
    """``EINVAL`` for 22 (this machine's numbering), ``errno-N`` for a number it lacks."""
    return errno.errorcode.get(number, f"errno-{number}")


_TEXT = ffi.new("char[]", lib.C3_EFFECTS_TEXT)


def _effects(raw: ffi.CData) -> str:
    """The effects the executor saw, in the words the oracle predicts (c3_effects_text)."""
    return ffi.string(lib.c3_effects_text(ffi.addressof(raw), _TEXT, len(_TEXT))).decode()


def decode_outcome(raw: ffi.CData) -> Outcome | None:
    """An :class:`Outcome` from a ``struct c3_outcome``; None for a case never run. Only a
    call that had effects pays for putting them in words."""
    if raw.kind == lib.C3_OUT_RETURNED:
        effects = _effects(raw) if raw.seen else ""
        if raw.ret > 0:
            return Outcome(SUCCESS, f"pid {raw.ret}", effects)
        return Outcome(errno_name(-raw.ret), "", effects)
    if raw.kind == lib.C3_OUT_KILLED_BY_CHILD:
        return Outcome(SUCCESS, "the child's exit_signal SIGKILL killed the executor", _effects(raw))
    if raw.kind == lib.C3_OUT_CRASH:
        status = raw.status
        how = f"killed by {signal_name(os.WTERMSIG(status))}" if os.WIFSIGNALED(status) else f"exit status {os.WEXITSTATUS(status)}"
        return Outcome(HARNESS_CRASH, f"executor {how}")
    if raw.kind == lib.C3_OUT_SIGSYS:
        return Outcome(SIGSYS, "a seccomp filter killed the caller in clone3 (SCMP_ACT_KILL or SCMP_ACT_TRAP)")
    if raw.kind == lib.C3_OUT_TIMEOUT:
        return Outcome(HARNESS_TIMEOUT, "no progress within the per-case timeout")
    return None
