"""Running cases for real: batches of cases through the sandboxed C executor.

:class:`Sandbox` is the one way the rest of clone3-fuzz calls clone3. It splits work into
batches, gives each batch a fresh process tree (see ``harness/c/sandbox.c``), provides the
resources cases name (a scratch cgroup v2 directory), and never loses an outcome: a batch
cut short by a signal is resumed, and ^C raises :class:`Interrupted` carrying every
outcome obtained so far. Nothing here forks from Python, so it is safe under atheris.
"""

from __future__ import annotations

import errno
import itertools
import os
import time
from typing import Callable, Sequence

from ..exit_status import HarnessError
from ..model.case import Case
from ..model.outcome import Outcome
from ._executor import ffi, lib
from .executor import decode_outcome, encode_batch

ISOLATION = {lib.C3_ISO_PIDNS: "pidns", lib.C3_ISO_USERNS: "userns+pidns", lib.C3_ISO_SUBREAPER: "subreaper"}
DEFAULT_TIMEOUT_MS = 2000
DEFAULT_BATCH = 4096

Progress = Callable[[int, int], None]


class Interrupted(KeyboardInterrupt):
    """^C during a run; ``outcomes`` holds every outcome obtained (None for the rest)."""

    def __init__(self, outcomes: list[Outcome | None]) -> None:
        super().__init__("interrupted")
        self.outcomes = outcomes


def cgroup2_mount() -> str | None:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup`` or, on hybrid
    systems, ``/sys/fs/cgroup/unified``), or None."""
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return left.split()[4]
    except OSError:
        pass
    return None


class ScratchCgroup:
    """A cgroup v2 directory made for one run and removed after it; ``fd`` is open on it.
    Given ``path``, an existing directory is used (and kept) instead."""

    _serial = itertools.count()

    def __init__(self, path: str | None = None) -> None:
        self.owned = path is None
        if path is not None:
            try:
                self.path, self.fd = path, os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as e:
                raise HarnessError(f"cgroup: {path}: {e.strerror}") from None
            return
        mount = cgroup2_mount()
        if mount is None:
            raise HarnessError("cgroup2: no cgroup v2 hierarchy is mounted (needed by \"cgroup\": \"cgroup2\")")
        own = ""
        try:
            with open("/proc/self/cgroup") as f:
                own = next((line.split("::", 1)[1].strip() for line in f if line.startswith("0::")), "")
        except OSError:
            pass
        name = f"clone3-fuzz-{os.getpid()}-{next(self._serial)}"
        # Our own cgroup first (it may be delegated to us), then the root of the hierarchy.
        for parent in dict.fromkeys((os.path.join(mount, own.lstrip("/")), mount)):
            _remove_orphans(parent)
            path = os.path.join(parent, name)
            try:
                os.mkdir(path)
            except OSError:
                continue
            self.path = path
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            return
        raise HarnessError(f"cgroup2: cannot create a scratch directory under {mount} (needed by \"cgroup\": \"cgroup2\")")

    def close(self) -> None:
        """Closes the fd and, for a scratch directory, removes it once the kernel lets go."""
        os.close(self.fd)
        if not self.owned:
            return
        # The batch's processes are gone, but the kernel may take a moment to notice.
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except OSError as e:
                if e.errno != errno.EBUSY:
                    return
                time.sleep(0.01)


#: Where a limit of the caller's own cgroups, not the kernel under test, answers a call:
#: (events file, counter, the errno it makes clone3 give, the harness outcome it becomes).
LIMITS = (("pids.events", "max", "EAGAIN", "harness-pids-limit"),
          ("memory.events", "oom_kill", "ENOMEM", "harness-memory-limit"))


def _own_cgroups() -> list[str]:
    """The caller's cgroup folders, v2 and v1 alike, each with its ancestors: a limit set
    on any of them counts."""
    mounts: dict[str, str] = {}  # controller (or "" for v2) -> mount point
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                kind, options = right.split()[0], right.split()[-1]
                if kind == "cgroup2":
                    mounts.setdefault("", left.split()[4])
                elif kind == "cgroup":
                    for option in options.split(","):
                        mounts.setdefault(option, left.split()[4])
        with open("/proc/self/cgroup") as f:
            lines = [line.strip().split(":", 2) for line in f]
    except OSError:
        return []
    folders = []
    for _, controllers, path in lines:
        for controller in controllers.split(",") if controllers else [""]:
            mount = mounts.get(controller)
            if mount is None:
                continue
            parts = [p for p in path.split("/") if p]
            folders += [os.path.join(mount, *parts[:depth]) for depth in range(len(parts), -1, -1)]
    return list(dict.fromkeys(folders))


def limit_events() -> dict[str, int]:
    """How often each limit of the caller's cgroups was hit so far (summed over them)."""
    counts = {events: 0 for events, _, _, _ in LIMITS}
    for folder in _own_cgroups():
        for events, counter, _, _ in LIMITS:
            try:
                with open(os.path.join(folder, events)) as f:
                    for line in f:
                        name, _, value = line.partition(" ")
                        if name == counter:
                            counts[events] += int(value)
            except (OSError, ValueError):
                continue
    return counts


def _remove_orphans(parent: str) -> None:
    """Scratch cgroups whose run was killed before it could remove them (SIGKILL): the
    pid in their name is gone, and so are their processes."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) == 4 and name.startswith("clone3-fuzz-") and parts[2].isdigit():
            if not os.path.exists(f"/proc/{parts[2]}"):
                try:
                    os.rmdir(os.path.join(parent, name))
                except OSError:
                    pass


def _fault_names() -> dict[str, tuple[int, str]]:
    entries = (ffi.string(lib.c3_fault_name(i)).decode() for i in range(1, lib.C3_NFAULTS))
    return {name: (i, text) for i, (name, _, text) in enumerate((e.partition(": ") for e in entries), 1)}


#: Planted faults for the selftest: name -> (id, what the buggy kernel does).
FAULTS = _fault_names()


def _exec(argv: list[str], run: Callable[[ffi.CData], int]) -> int:
    args = [ffi.new("char[]", a.encode()) for a in argv]
    status = run(ffi.new("char *[]", [*args, ffi.NULL]))
    if status < 0:
        raise HarnessError(f"cannot run {argv[0]}: {os.strerror(-status)}")
    return status


def exec_program(argv: list[str]) -> int:
    """Runs a program (a compiler, a reproducer) and returns its wait status. The fork
    happens in C: a forked interpreter under atheris would leave false crash artifacts."""
    return _exec(argv, lambda args: lib.c3_fault_exec(args, lib.C3_FAULT_NONE))


def exec_with_fault(argv: list[str], fault: str) -> int:
    """Runs a program (a reproducer, say) with clone3 misbehaving as ``fault`` says;
    returns its wait status."""
    return _exec(argv, lambda args: lib.c3_fault_exec(args, FAULTS[fault][0]))


def exec_filtered(argv: list[str], err: int) -> int:
    """Runs a program under a seccomp filter that fails every clone3 with ``err`` (as a
    container's default profile does with ENOSYS); returns its wait status."""
    return _exec(argv, lambda args: lib.c3_exec_filtered(args, err))


def run_blob(blob: bytes, out: ffi.CData, info: ffi.CData, cgroup_fd: int = -1,
             timeout_ms: int = DEFAULT_TIMEOUT_MS, fault: int = 0) -> None:
    """One encoded batch through one sandboxed executor tree, outcomes into ``out`` (a
    ``struct c3_outcome[]`` as long as the batch) and ``info``.

    Signals for this process are handled while the batch runs; one whose handler raises
    (^C) stops the batch, and ``out`` then holds every outcome obtained before it.
    Raises :class:`HarnessError` when the tree cannot start.
    """
    env = ffi.new("struct c3_env *", {"cgroup_fd": cgroup_fd, "timeout_ms": timeout_ms, "fault": fault})
    err = ffi.new("int *")
    tree = lib.c3_tree_start(blob, len(blob), len(out), env, err)
    if tree == ffi.NULL:
        raise HarnessError(f"sandbox: cannot start the executor's process tree: {os.strerror(-err[0])}")
    stop = 1
    try:
        # Python runs pending signal handlers between two waits; the batch goes on.
        while lib.c3_tree_wait(tree) == -errno.EINTR:
            pass
        stop = 0
    finally:
        lib.c3_tree_finish(tree, out, info, stop)


class Sandbox:
    """Runs cases through the executor, ``batch_size`` cases per executor process tree.

    ``timeout_ms`` bounds one case: an executor that makes no progress for that long is
    killed and its case recorded as ``harness-timeout``. ``progress(done, total)`` is
    called after each batch. ``cgroup`` names the directory that ``"cgroup": "cgroup2"``
    opens; by default a scratch one is made for each run. ``fault`` plants one of
    :data:`FAULTS` (for the selftest: every call then goes through a misbehaving filter).
    """

    def __init__(self, timeout_ms: int = DEFAULT_TIMEOUT_MS, batch_size: int = DEFAULT_BATCH,
                 progress: Progress | None = None, cgroup: str | None = None, fault: str | None = None) -> None:
        if timeout_ms < 1 or batch_size < 1:
            raise ValueError("timeout_ms and batch_size must be positive")
        if fault is not None and fault not in FAULTS:
            raise HarnessError(f"fault: unknown fault {fault!r} (known: {', '.join(FAULTS)})")
        self.fault = FAULTS[fault][0] if fault else 0
        self.timeout_ms = timeout_ms
        self.batch_size = batch_size
        self.progress = progress
        self.cgroup = cgroup
        self.isolation: str | None = None
        self.executors = 0
        self._limits = limit_events()  # the cgroup limit counters before the batch in hand

    def run(self, cases: Sequence[Case]) -> list[Outcome]:
        """One outcome per case, in order. Raises :class:`HarnessError` or
        :class:`Interrupted`."""
        results: list[Outcome | None] = [None] * len(cases)
        cgroup = ScratchCgroup(self.cgroup) if any(c.needs_cgroup for c in cases) else None
        try:
            for start in range(0, len(cases), self.batch_size):
                chunk = range(start, min(start + self.batch_size, len(cases)))
                self._limits = limit_events()
                self._run_batch(cases, chunk, results, cgroup.fd if cgroup else -1)
                self._blame_limits(self._limits, chunk, results)
                if self.progress:
                    self.progress(chunk.stop, len(cases))
        except KeyboardInterrupt:
            raise Interrupted(results) from None
        finally:
            if cgroup:
                cgroup.close()
        return results  # type: ignore[return-value]  # every slot is filled by now

    @staticmethod
    def _blame_limits(before: dict[str, int], indices: range, results: list[Outcome | None]) -> None:
        """Where one of the caller's cgroup limits was hit during the batch, its errno in
        that batch is the harness's trouble, not the kernel's: the outcome says which."""
        after = limit_events()
        for events, counter, errno_name, outcome in LIMITS:
            if after[events] <= before[events]:
                continue
            for i in indices:
                if (seen := results[i]) is not None and seen.observed == errno_name:
                    results[i] = Outcome(outcome, f"{errno_name}: {events} {counter} rose during the batch")

    def _run_batch(self, cases: Sequence[Case], indices: range, results: list[Outcome | None], cgroup_fd: int) -> None:
        blob = encode_batch(cases[i] for i in indices)
        out = ffi.new("struct c3_outcome[]", len(indices))
        info = ffi.new("struct c3_batch_info *")
        try:
            run_blob(blob, out, info, cgroup_fd, self.timeout_ms, self.fault)
        finally:
            # Before any KeyboardInterrupt propagates: keep what the batch found.
            for j, i in enumerate(indices):
                results[i] = decode_outcome(out[j])
        self.isolation = ISOLATION.get(info.isolation, self.isolation)
        self.executors += info.executors
        if info.error:
            hit = [f"{events} {counter}" for events, counter, _, _ in LIMITS if limit_events()[events] > self._limits[events]]
            why = f" (the caller's cgroup limit was hit: {', '.join(hit)} rose)" if hit else ""
            raise HarnessError(f"executor: {os.strerror(info.error)}{why}")
        if info.done != len(indices):
            raise HarnessError(f"executor: stopped with {len(indices) - info.done} cases not run")
