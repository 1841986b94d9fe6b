"""The executor's protocol, Python side: cases in as one encoded blob, outcomes out.

The C executor (``harness/c/executor.c``) reads the blob and writes ``struct c3_outcome``
records; this module builds the one and reads the other. How the executor's process is
started is the sandbox's business (:mod:`harness.sandbox`).
"""

from __future__ import annotations

import errno
import os
import signal
import struct
from dataclasses import dataclass
from typing import Iterable

from . import abi
from ._executor import ffi, lib
from .case import CGROUP_RESOURCE, MAX_IMAGE, MAX_SET_TID, SET_TID_LIST, Case

SUCCESS = "success"
HARNESS_CRASH = "harness-crash"
HARNESS_TIMEOUT = "harness-timeout"

_MEMORY = {"mapped": lib.C3_MEM_MAPPED, "guard": lib.C3_MEM_GUARD, "null": lib.C3_MEM_NULL, "unmapped": lib.C3_MEM_UNMAPPED}
_REF = {
    "scratch": lib.C3_REF_SCRATCH,
    "unmapped": lib.C3_REF_UNMAPPED,
    "kernel": lib.C3_REF_KERNEL,
    SET_TID_LIST: lib.C3_REF_SET_TID_LIST,
    CGROUP_RESOURCE: lib.C3_REF_CGROUP2,
}
_HEADER = struct.Struct("=QIIHH11sB")
assert _HEADER.size == ffi.sizeof("struct c3_case")
assert (MAX_IMAGE, MAX_SET_TID, len(abi.FIELDS)) == (lib.C3_MAX_IMAGE, lib.C3_MAX_SET_TID, lib.C3_NFIELDS)


def _pad8(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 8)


def encode_case(case: Case) -> bytes:
    """One wire record: the header, the struct image (without its trailing zeros, which
    the executor supplies) and the set_tid pids."""
    image = case.image().rstrip(b"\0")
    refs = bytes(_REF.get(case.refs.get(name, ""), lib.C3_REF_LITERAL) for name in abi.FIELDS)
    readable = case.placed_readable if case.memory == "guard" else 0
    header = _HEADER.pack(case.size, len(image), readable, _MEMORY[case.memory], len(case.set_tid_pids), refs,
                          sum(r != lib.C3_REF_LITERAL for r in refs))
    pids = struct.pack(f"={len(case.set_tid_pids)}i", *case.set_tid_pids)
    return header + _pad8(image) + _pad8(pids)


def encode_batch(cases: Iterable[Case]) -> bytes:
    return b"".join(encode_case(c) for c in cases)


@dataclass(frozen=True)
class Outcome:
    """What one call did: ``observed`` is ``"success"``, an errno name such as
    ``"E2BIG"``, ``"harness-crash"`` or ``"harness-timeout"``; ``detail`` says more
    (the child's pid, the signal that killed the executor)."""

    observed: str
    detail: str = ""


def errno_name(number: int) -> str:
    return errno.errorcode.get(number, f"errno-{number}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def decode_outcome(raw: ffi.CData) -> Outcome | None:
    """An :class:`Outcome` from a ``struct c3_outcome``; None for a case never run."""
    if raw.kind == lib.C3_OUT_RETURNED:
        if raw.ret > 0:
            return Outcome(SUCCESS, f"pid {raw.ret}")
        return Outcome(errno_name(-raw.ret))
    if raw.kind == lib.C3_OUT_KILLED_BY_CHILD:
        return Outcome(SUCCESS, "the child's exit_signal SIGKILL killed the executor")
    if raw.kind == lib.C3_OUT_CRASH:
        status = raw.status
        how = f"killed by {_signal_name(os.WTERMSIG(status))}" if os.WIFSIGNALED(status) else f"exit status {os.WEXITSTATUS(status)}"
        return Outcome(HARNESS_CRASH, f"executor {how}")
    if raw.kind == lib.C3_OUT_TIMEOUT:
        return Outcome(HARNESS_TIMEOUT, "no progress within the per-case timeout")
    return None
