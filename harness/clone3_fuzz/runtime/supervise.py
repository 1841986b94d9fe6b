"""``clone3-fuzz exec``: a program, and everything it starts, with every clone3 answered as
another kernel (or a container profile) would answer it. A seccomp user-notification
filter hands each call to this process (``c3_exec_supervised``, c/faults.c); the struct is
read from the caller's memory, the answer decided by :mod:`..model.emulation`, and the call
either failed with that errno or let through to the real kernel.

Limits: the struct is read when the call is notified, and the kernel reads it again when
the call goes on: a thread that changes it in between is not seen (a time-of-check race).
What the real kernel rejects stays rejected. Only clone3 is emulated: clone, fork and vfork
are the real kernel's.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Callable, Sequence

from ..exit_status import HarnessError
from ..model import abi
from ..model.case import MAX_IMAGE, Case, parse
from ..model.emulation import Answer, as_version, forced
from ..model import profile as profiles
from ..model.profile import Profile
from ._executor import ffi, lib

PAGE = os.sysconf("SC_PAGESIZE")


def read_case(pid: int, address: int, size: int) -> Case:
    """The call as the kernel is about to see it: the bytes of ``pid``'s struct (as many as
    are readable, up to what the kernel would read), placed as they lie."""
    if address == 0:
        return parse({"size": size, "memory": "null"})
    want = min(size, PAGE + 1, MAX_IMAGE)
    data = b""
    try:
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
            mem.seek(address)
            while len(data) < want:
                chunk = mem.read(want - len(data))
                if not chunk:
                    break
                data += chunk
    except OSError:
        pass  # unmapped from the first byte, or a task gone already
    if len(data) >= want:
        return parse({"size": size, "hex": data.hex()})
    if not data:
        return parse({"size": size, "memory": "unmapped"})
    return parse({"size": size, "hex": data.hex(), "memory": "guard", "readable": len(data)})


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


@dataclass
class Supervisor:
    """Decides each call (``decide(case) -> Answer``), logging it as a JSON line to ``log``."""

    decide: Callable[[Case], Answer]
    log: IO[str] | None = None
    rules: Counter[str] = field(default_factory=Counter)

    def answer(self, pid: int, address: int, size: int) -> int:
        """The C side's callback: -errno, or 0 for the real kernel. It never raises (an
        exception here would be lost in C): a call it cannot judge goes to the real kernel."""
        try:
            case = read_case(pid, address, size)
            answer = self.decide(case)
        except Exception as e:  # noqa: BLE001 - see above
            answer = Answer(None, f"not judged: {e}", False)
            case = None
        self.rules[answer.rule] += 1
        if self.log is not None:
            flags = case.field_value("flags") if case is not None and case.size >= 8 and case.memory != "null" else 0
            line = {"pid": pid, "comm": _comm(pid), "size": size, "flags": abi.flag_names(flags),
                    "answer": answer.errno or "success", "rule": answer.rule, "emulated": answer.emulated}
            self.log.write(json.dumps({**line, "note": answer.note} if answer.note else line) + "\n")
            self.log.flush()
        return -getattr(errno, answer.errno) if answer.errno else 0


def run(argv: Sequence[str], decide: Callable[[Case], Answer], log: IO[str] | None = None) -> tuple[int, Counter[str]]:
    """Runs ``argv`` under the supervisor; its wait status and the count of each rule."""
    supervisor = Supervisor(decide, log)
    callback = ffi.callback("int(uint32_t, uint64_t, uint64_t)", supervisor.answer)
    args = [ffi.new("char[]", a.encode()) for a in argv]
    status = lib.c3_exec_supervised(ffi.new("char *[]", [*args, ffi.NULL]), callback)
    if status < 0:
        raise HarnessError(f"exec: cannot run {argv[0]}: {os.strerror(-status)}")
    return status, supervisor.rules


def decider(profile: Profile | None, errno_name: str | None, running: Profile | None = None) -> Callable[[Case], Answer]:
    """As a kernel version answers (``profile``; ``running``, this kernel, notes what it
    cannot grant), or always ``errno_name``."""
    if errno_name is not None:
        answer = forced(errno_name)
        return lambda case: answer
    assert profile is not None
    return lambda case: as_version(case, profile, running)


@dataclass(frozen=True)
class Execution:
    """What ``exec_as`` ran: the program's ``exit_code`` (128 + N for a signal N), every
    clone3 it made (``calls``, as the log's lines have them) and the count of each rule."""

    exit_code: int
    calls: list[dict[str, object]]
    rules: Counter[str]


def exec_as(argv: Sequence[str], kernel: str | None = None, clone3: str | None = None,
            log: IO[str] | None = None) -> Execution:
    """Runs ``argv`` (a path, or a name on PATH) with every clone3 of it and its descendants
    answered as the kernel ``kernel`` ("5.5") or a profile failing every call with ``clone3``
    ("ENOSYS", "EPERM") would. Raises HarnessError for a bad version, errno or program."""
    if (kernel is None) == (clone3 is None):
        raise HarnessError("exec: one of a kernel version and a clone3 errno")
    errno_name = clone3.upper() if clone3 else None
    if errno_name is not None and not hasattr(errno, errno_name):
        raise HarnessError(f"--clone3: {clone3}: no such errno (enosys, eperm, or any E... name)")
    from . import probe  # a sandbox and a probe, for --kernel only: the caller the version judges

    live = probe.live_profile() if kernel else None
    profile = profiles.named(kernel, live) if kernel and live else None
    path = argv[0] if "/" in argv[0] else shutil.which(argv[0])
    if path is None:
        raise HarnessError(f"exec: {argv[0]}: no such program")
    lines = io.StringIO()
    status, rules = run([path, *argv[1:]], decider(profile, errno_name, live), lines)
    calls = [json.loads(line) for line in lines.getvalue().splitlines()]
    if log is not None:
        log.write(lines.getvalue() + json.dumps({"summary": dict(rules)}) + "\n")
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    return Execution(code, calls, rules)
