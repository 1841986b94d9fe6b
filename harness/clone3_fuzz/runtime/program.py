"""The executor as a program of its own (``c/standalone.c``), and a runner that speaks to
it: for where no Python runs beside the kernel under test (a VM's init, an emulator, a
container). It is the very executor and sandbox of the in-process runner, built static.

:func:`program` finds the binary: shipped inside the package (a wheel builds it), or
compiled once from the package's own C files into a cache folder (a checkout).
:class:`Program` runs cases through it over any byte stream: a pipe to the program, under
whatever wrapper the caller names.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path
from typing import IO, Any, Sequence

from ..exit_status import HarnessError
from ..model.case import Case
from ..model.constants import read_strings
from ..model.effects import signal_name
from ..model.measurement import Machine, Privilege
from ..model.outcome import Outcome
from ._executor import ffi, lib
from .executor import decode_outcome, encode_batch
from .probe import address_bits
from .sandbox import DEFAULT_BATCH, DEFAULT_TIMEOUT_MS, ISOLATION, exec_program

C_DIR = Path(__file__).resolve().parent / "c"
SOURCES = ("standalone.c", "executor.c", "sandbox.c", "faults.c")
NAME = "clone3-fuzz-executor"
NS_NAMES = read_strings()["C3_NS_NAMES"].split()
SHIPPED = Path(__file__).resolve().parent / NAME


def build(target: Path, cc: str | None = None) -> Path:
    """Compiles the static program into ``target``; raises HarnessError in one line (no
    compiler, no static libc) with the compiler's first complaint."""
    cc = cc or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise HarnessError("executor program: no C compiler (cc) to build it with")
    target.parent.mkdir(parents=True, exist_ok=True)
    log, partial = target.with_suffix(".log"), target.with_name(f".{target.name}.{os.getpid()}")
    argv = [cc, "-static", "-O2", "-std=gnu11", "-I", str(C_DIR), "-o", str(partial),
            *(str(C_DIR / name) for name in SOURCES)]
    status = exec_program(["/bin/sh", "-c", 'log=$1; shift; exec "$@" >"$log" 2>&1', "sh", str(log), *argv])
    if os.waitstatus_to_exitcode(status) != 0:
        first = (log.read_text(errors="replace").splitlines() or ["?"])[0]
        raise HarnessError(f"executor program: {cc} -static failed: {first} (a static libc is needed: libc6-dev)")
    os.replace(partial, target)  # whole or not at all: two builds at once each finish their own
    return target


def program() -> Path:
    """The static executor program: the package's own, or one built from its C files into
    ``$XDG_CACHE_HOME/clone3-fuzz`` (``~/.cache``), named by a hash of the sources."""
    if SHIPPED.exists():
        return SHIPPED
    digest = hashlib.sha1(b"".join((C_DIR / name).read_bytes() for name in (*SOURCES, "c3.h"))).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clone3-fuzz"
    target = cache / f"{NAME}-{digest}"
    return target if target.exists() else build(target)


_ZEROS = re.compile(b"\x00{1,255}")
_CODED = re.compile(b"\x00(.)|[^\x00]+", re.S)


def encode(data: bytes) -> bytes:
    """Zero-run-length coding, as the program reads a blob: a 0 byte then a count of zeros."""
    return _ZEROS.sub(lambda run: b"\x00" + bytes([len(run[0])]), data)


def decode(data: bytes) -> tuple[bytes, bytes]:
    """The bytes ``data`` codes for, and its unfinished end (a 0 whose count has not come)."""
    out, end = [], 0
    for token in _CODED.finditer(data):
        out.append(b"\x00" * token[1][0] if token[1] is not None else token[0])
        end = token.end()
    return b"".join(out), data[end:]


def _read_coded(stream: IO[bytes], size: int, what: str) -> bytes:
    """``size`` bytes of coded input, read no further than they go."""
    out, pending = bytearray(), b""
    while len(out) < size:
        chunk = stream.read1(1 << 16)  # type: ignore[attr-defined]  # a BufferedReader's
        if not chunk:
            raise HarnessError(f"executor program: it ended before {what} ({len(out)} of {size} bytes)")
        done, pending = decode(pending + chunk)
        out += done
    if len(out) != size or pending:
        raise HarnessError(f"executor program: {what} is not coded as the protocol says")
    return bytes(out)


def _struct(kind: str, data: bytes) -> ffi.CData:
    value = ffi.new(f"{kind} *")
    ffi.memmove(value, data, ffi.sizeof(kind))
    return value


def _read(stream: IO[bytes], size: int, what: str, within: float | None = None) -> bytes:
    """``size`` bytes, or HarnessError: the stream ended, or (with ``within``) that many
    seconds passed first (a VM that hangs at boot says nothing, and never closes it)."""
    if within is None:
        data = stream.read(size)
    else:
        data, deadline = b"", time.monotonic() + within
        while len(data) < size and select.select([stream], [], [], max(0.0, deadline - time.monotonic()))[0]:
            chunk = os.read(stream.fileno(), size - len(data))
            if not chunk:
                break
            data += chunk
    if len(data) != size:
        late = within is not None and len(data) < size and time.monotonic() >= deadline
        raise HarnessError(f"executor program: {'nothing' if not data else 'too little'} came "
                           f"{f'within {within:.0f} s' if late else 'before it ended'} ({what})")
    return data


PR_SET_PDEATHSIG = 1


def _first_line(log: Path, offset: int) -> str | None:
    """The first non-blank line written to ``log`` past ``offset``."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            return next((line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()), None)
    except OSError:
        return None


def die_with_parent() -> None:
    """In a child, before exec: SIGKILL when its parent dies, however it dies (a worker
    killed after its grace must not leave a VM or an emulator running). The signal comes
    when the thread that started the child ends: start children from the main thread."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Program:
    """A :class:`~clone3_fuzz.model.outcome.Runner` through the executor program, started
    as ``wrapper`` says (``["qemu-x86_64", "{exe}"]``; by default the program alone; a
    wrapper without ``{exe}`` runs it by itself, as a VM does). It must greet within
    ``greeting_s`` seconds.

    ``hello`` is what it said of the kernel it runs on (``release``, ``build``, ``machine``,
    ``page_size``...); ``isolation`` how its sandbox isolated the last batch. Cases that
    name the scratch cgroup are refused: the program has no cgroup of the caller's to use
    (``cgroups`` is false, and the profile says so)."""

    cgroups = False

    def __init__(self, wrapper: Sequence[str] = ("{exe}",), fault: str | None = None,
                 timeout_ms: int = DEFAULT_TIMEOUT_MS, batch_size: int = DEFAULT_BATCH, greeting_s: float = 60,
                 log: Path | None = None, name: str | None = None) -> None:
        from .sandbox import FAULTS  # a fault is planted by the program's own executor

        exe = str(program()) if any("{exe}" in part for part in wrapper) else ""
        self.argv = [part.replace("{exe}", exe) for part in wrapper]
        self.name = name or " ".join(self.argv)
        self.env = {"cgroup_fd": -1, "timeout_ms": timeout_ms, "fault": FAULTS[fault][0] if fault else 0, "pad": 0}
        self.batch_size, self.isolation, self.executors = batch_size, "", 0
        self.log, self.said = log, log.stat().st_size if log and log.exists() else 0  # where this start's words begin
        try:
            with open(log, "ab") if log else open(os.devnull, "wb") as errors:
                self.process = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                stderr=errors if log else None, preexec_fn=die_with_parent)
        except OSError as e:
            raise HarnessError(f"executor program: cannot start {self.argv[0]}: {e.strerror}") from None
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in, self._out = self.process.stdin, self.process.stdout
        try:
            # The magic and the version first: a program of another version greets with
            # another length, and would otherwise be waited for.
            head = _read(self._out, 8, "its greeting", within=greeting_s)
            magic, version = struct.unpack("=II", head)
            if magic != lib.C3_PROGRAM_MAGIC or version != lib.C3_PROGRAM_VERSION:
                raise HarnessError(f"executor program: {self.argv[0]} does not speak this version of the protocol "
                                   f"({'version ' + str(version) if magic == lib.C3_PROGRAM_MAGIC else 'no magic'}, "
                                   f"expected version {lib.C3_PROGRAM_VERSION})")
            greeting = head + _read(self._out, ffi.sizeof("struct c3_hello") - 8, "its greeting", within=greeting_s)
        except HarnessError as e:
            raise self._failed(e) from None
        hello = _struct("struct c3_hello", greeting)
        if hello.outcome_size != ffi.sizeof("struct c3_outcome"):
            raise HarnessError(f"executor program: {self.argv[0]} does not speak this version of the protocol")
        self.hello = {"release": ffi.string(hello.release).decode(), "build": ffi.string(hello.build).decode(),
                      "machine": ffi.string(hello.machine).decode(), "page_size": hello.page_size,
                      "namespaces": [name for bit, name in enumerate(NS_NAMES) if hello.namespaces >> bit & 1],
                      "pid_max": hello.pid_max, "emulator": ffi.string(hello.emulator).decode(errors="replace"),
                      "exhausted": [name for bit, name in enumerate(NS_NAMES) if hello.exhausted >> bit & 1],
                      "uid": hello.uid, "euid": hello.euid, "egid": hello.egid, "cap_eff": hello.cap_eff,
                      "seccomp": hello.seccomp, "userns_initial": bool(hello.userns_initial),
                      "pid_levels": hello.pid_levels, "userns_denied": {0: False, 1: True}.get(hello.userns)}

    def describe(self) -> dict[str, Any]:
        """What ran the cases, for a report: the command, and what the executor saw."""
        return {"kind": "wrapper", "command": self.name, "emulator": self.hello["emulator"],
                "release": self.hello["release"], "build": self.hello["build"]}

    def facts(self) -> tuple[dict[str, Any], Privilege, Machine, int | None]:
        """The program's side of a measurement (probe.probe), as it greeted: its kernel,
        and its own caller, which the wrapper chose (a container's capabilities, user
        namespace and filter). Its /proc may start below pid levels of the wrapper's, so
        those are not known; it has no cgroup of ours to spawn into."""
        hello = self.hello
        privilege = Privilege.of(hello["uid"], hello["euid"], hello["egid"], hello["cap_eff"], hello["userns_initial"],
                                 str(hello["seccomp"]), self.isolation or None, None, False)
        machine = Machine(caller_pid_level=max(hello["pid_levels"] - 1, 0), nproc_near_limit=False,
                          outer_pid_max=hello["pid_max"] or 32768, namespaces=frozenset(hello["namespaces"]),
                          exhausted_namespaces=frozenset(hello["exhausted"]), procfs_effects=hello["pid_levels"] > 0,
                          outer_levels_known=False, userns_denied=hello["userns_denied"])
        base = {"release": hello["release"], "build": hello["build"], "arch": hello["machine"],
                "page_size": hello["page_size"]}
        return base, privilege, machine, address_bits(hello["machine"])

    def run(self, cases: Sequence[Case]) -> list[Outcome]:
        """One outcome per case, in order, ``batch_size`` cases a request."""
        if any(c.needs_cgroup for c in cases):
            raise HarnessError("executor program: \"cgroup\": \"cgroup2\" needs the in-process sandbox")
        outcomes: list[Outcome] = []
        for start in range(0, len(cases), self.batch_size):
            outcomes += self._batch(cases[start:start + self.batch_size])
        return outcomes

    def _batch(self, cases: Sequence[Case]) -> list[Outcome]:
        blob = encode_batch(cases)
        request = ffi.new("struct c3_request *", {"magic": lib.C3_PROGRAM_MAGIC, "n": len(cases), "len": len(blob),
                                                  "env": self.env})
        try:
            self._in.write(bytes(ffi.buffer(request)) + encode(blob))
            self._in.flush()
        except BrokenPipeError:
            raise HarnessError(f"executor program: {self.argv[0]} stopped reading") from None
        try:
            reply = _struct("struct c3_reply", _read(self._out, ffi.sizeof("struct c3_reply"), "its answer"))
            coded = _read_coded(self._out, reply.n * ffi.sizeof("struct c3_outcome"), "its outcomes")
        except HarnessError as e:
            raise self._failed(e) from None
        out = ffi.new("struct c3_outcome[]", max(1, reply.n))
        ffi.memmove(out, coded, reply.n * ffi.sizeof("struct c3_outcome"))
        self.isolation = ISOLATION.get(reply.info.isolation, self.isolation)
        self.executors += reply.info.executors
        if reply.info.error:
            raise HarnessError(f"executor program: {os.strerror(reply.info.error)}")
        decoded = [decode_outcome(out[i]) for i in range(reply.n)]
        if any(o is None for o in decoded):
            raise HarnessError(f"executor program: {sum(o is None for o in decoded)} cases not run")
        return decoded  # type: ignore[return-value]  # none is None by now

    def _failed(self, error: HarnessError) -> HarnessError:
        """``error`` with how the program ended (a seccomp profile that kills it: SIGSYS)
        and the first line it wrote to its log (docker's "OCI runtime create failed"). A
        program that is still there is killed, and that ending is ours, not told."""
        try:
            ended = self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            ended = None
        words = [str(error)]
        if ended is not None:
            words.append(f"it was killed by {signal_name(-ended)}" if ended < 0 else f"it exited with status {ended}")
        first = _first_line(self.log, self.said) if self.log else None
        if first:
            words.append(f"it said: {first[:200]}")
        return HarnessError("; ".join(words))

    def close(self) -> None:
        """Ends the program (the end of its input) and waits for it."""
        if self.process.poll() is None:
            self._in.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Program:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
