"""Running cases for real: batches of cases through the sandboxed C executor.

:class:`Sandbox` is the one way the rest of clone3-fuzz calls clone3. It splits work into
batches, runs them in one process tree that stays up between them (see ``c/sandbox.c``),
provides the resources cases name (a scratch cgroup v2 directory), and never loses an
outcome: a batch cut short by a signal is resumed, and ^C raises :class:`Interrupted`
carrying every outcome obtained so far. Nothing here forks from Python, so it is safe under atheris.
"""

from __future__ import annotations

import errno
import functools
import itertools
import os
import threading
import time
import weakref
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
        name = f"clone3-fuzz-{os.getpid()}-{next(self._serial)}"
        for parent in _scratch_parents(mount):
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


def _own_cgroups(membership: str) -> list[str]:
    """The caller's cgroup folders (``membership`` is /proc/self/cgroup), v2 and v1
    alike, each with its ancestors: a limit set on any of them counts."""
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
    except OSError:
        return []
    folders = []
    for line in membership.splitlines():
        _, controllers, path = line.strip().split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            mount = mounts.get(controller)
            if mount is None:
                continue
            parts = [p for p in path.split("/") if p]
            folders += [os.path.join(mount, *parts[:depth]) for depth in range(len(parts), -1, -1)]
    return list(dict.fromkeys(folders))


def own_cgroups() -> list[str]:
    """The caller's cgroup folders, v2 and v1 alike, each with its ancestors."""
    try:
        with open("/proc/self/cgroup") as f:
            return _own_cgroups(f.read())
    except OSError:
        return []


@functools.lru_cache(maxsize=4)
def _event_files(membership: str) -> list[tuple[str, str, str]]:
    """(events file, counter, path) for each limit's events file among the caller's
    cgroups. Found once per membership: the search reads mountinfo, which costs more than
    a batch of cases."""
    return [(events, counter, path) for folder in _own_cgroups(membership) for events, counter, _, _ in LIMITS
            if os.path.exists(path := os.path.join(folder, events))]


def limit_events() -> dict[str, int]:
    """How often each limit of the caller's cgroups was hit so far (summed over them)."""
    counts = {events: 0 for events, _, _, _ in LIMITS}
    try:
        with open("/proc/self/cgroup") as f:
            membership = f.read()
    except OSError:
        return counts
    for events, counter, path in _event_files(membership):
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == counter:
                        counts[events] += int(value)
        except (OSError, ValueError):
            continue
    return counts


def _scratch_parents(mount: str) -> list[str]:
    """Where scratch cgroups are made: our own cgroup first (it may be delegated to us),
    then the root of the hierarchy."""
    own = ""
    try:
        with open("/proc/self/cgroup") as f:
            own = next((line.split("::", 1)[1].strip() for line in f if line.startswith("0::")), "")
    except OSError:
        pass
    return list(dict.fromkeys((os.path.join(mount, own.lstrip("/")), mount)))


def remove_orphan_cgroups() -> None:
    """Removes the scratch cgroups of runs that were killed (a worker's SIGKILL) before
    they could remove their own."""
    mount = cgroup2_mount()
    for parent in _scratch_parents(mount) if mount else []:
        _remove_orphans(parent)


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


BLOB_CAP = 1 << 20  # a first tree's room for one batch's blob; a larger batch gets a larger tree


class _Tree:
    """The executor's process tree (``c/sandbox.c``), kept up across batches: started on
    first use, replaced when it dies or a batch outgrows it, stopped by :meth:`close`."""

    def __init__(self, timeout_ms: int, fault: int) -> None:
        self.timeout_ms, self.fault = timeout_ms, fault
        self.handle: ffi.CData | None = None
        self.cgroup_fd = -1
        self.room = (0, 0)  # blob bytes, cases
        self.thread = 0  # the native id of the thread that started it

    def ready(self, cgroup_fd: int, length: int, count: int) -> ffi.CData:
        """A running tree that takes a batch of ``count`` cases in ``length`` bytes, with
        ``cgroup_fd`` (if not -1) as the cgroup its cases name."""
        # A tree dies with the thread that started it (PR_SET_PDEATHSIG is per thread):
        # another thread gets a tree of its own.
        if self.handle is not None and ((cgroup_fd >= 0 and cgroup_fd != self.cgroup_fd) or length > self.room[0]
                                        or count > self.room[1] or self.thread != threading.get_native_id()):
            self.close()
        if self.handle is None:
            self.room = (max(BLOB_CAP, 2 * length), max(256, 2 * count))
            self.cgroup_fd, self.thread = cgroup_fd, threading.get_native_id()
            env = ffi.new("struct c3_env *", {"cgroup_fd": cgroup_fd, "timeout_ms": self.timeout_ms,
                                              "fault": self.fault})
            err = ffi.new("int *")
            handle = lib.c3_tree_start(env, self.room[0], self.room[1], err)
            if handle == ffi.NULL:
                raise HarnessError(f"sandbox: cannot start the executor's process tree: {os.strerror(-err[0])}")
            self.handle = ffi.gc(handle, lib.c3_tree_free)
        return self.handle

    def close(self) -> None:
        """Stops the tree (whatever runs in it dies with it)."""
        if self.handle is not None:
            ffi.release(self.handle)
            self.handle = None


class Sandbox:
    """Runs cases through the executor, ``batch_size`` cases per batch, in one process tree
    that stays up across batches and runs (:meth:`close` stops it; so does garbage
    collection, and the death of this process).

    ``timeout_ms`` bounds one case: an executor that makes no progress for that long is
    killed and its case recorded as ``harness-timeout``. ``progress(done, total)`` is
    called after each batch. ``cgroup`` names the directory that ``"cgroup": "cgroup2"``
    opens; by default a scratch one is made on first need and removed by :meth:`close`.
    ``fault`` plants one of :data:`FAULTS` (for the selftest: every call then goes through
    a misbehaving filter).
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
        self._tree = _Tree(timeout_ms, self.fault)
        self._scratch: list[ScratchCgroup] = []  # the cgroup cases name, once one has
        self._closer = weakref.finalize(self, _close, self._tree, self._scratch)

    def close(self) -> None:
        """Stops the process tree and removes the scratch cgroup; the next run starts anew."""
        self._closer()
        self._closer = weakref.finalize(self, _close, self._tree, self._scratch)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, cases: Sequence[Case]) -> list[Outcome]:
        """One outcome per case, in order. Raises :class:`HarnessError` or
        :class:`Interrupted`."""
        results: list[Outcome | None] = [None] * len(cases)
        if any(c.needs_cgroup for c in cases) and not self._scratch:
            self._scratch.append(ScratchCgroup(self.cgroup))
        cgroup_fd = self._scratch[0].fd if self._scratch else -1
        try:
            for start in range(0, len(cases), self.batch_size):
                chunk = range(start, min(start + self.batch_size, len(cases)))
                self._run_batch(cases, chunk, results, cgroup_fd)
                if self.progress:
                    self.progress(chunk.stop, len(cases))
        except KeyboardInterrupt:
            raise Interrupted(results) from None
        return results  # type: ignore[return-value]  # every slot is filled by now

    def run_encoded(self, blob: bytes, out: ffi.CData, info: ffi.CData, cgroup_fd: int = -1) -> None:
        """One encoded batch through the tree, its outcomes into ``out`` (a ``struct
        c3_outcome[]`` as long as the batch) and ``info``.

        Signals for this process are handled while the batch runs; one whose handler raises
        (^C) stops the tree, and ``out`` then holds every outcome obtained before it.
        Raises :class:`HarnessError` when the tree cannot start.
        """
        count = len(out)
        # A tree may die between two batches, or just as one is posted (killed from
        # outside): then a fresh tree runs the batch, as long as no case of it had run.
        for attempt in range(2):
            tree = self._tree.ready(cgroup_fd, len(blob), count)
            if lib.c3_tree_post(tree, blob, len(blob), count):
                self._tree.close()
                continue
            try:
                # Python runs pending signal handlers between two waits; the batch goes on.
                while (status := lib.c3_tree_wait(tree)) == -errno.EINTR:
                    pass
            except BaseException:
                lib.c3_tree_stop(tree)
                lib.c3_tree_collect(tree, out, info)
                self._tree.close()
                raise
            lib.c3_tree_collect(tree, out, info)
            if status or info.error:
                self._tree.close()  # dead, or it ended on a harness failure: the next batch starts anew
            if not (status and info.done == 0 and attempt == 0):
                return
        raise HarnessError("sandbox: the executor's process tree keeps dying before its first case")

    @staticmethod
    def _blame_limits(before: dict[str, int], indices: range, results: list[Outcome | None]) -> None:
        """Where one of the caller's cgroup limits was hit during the batch, its errno in
        that batch is the harness's trouble, not the kernel's: the outcome says which.
        ``before`` was read before the batch; after it, the counters are read again only
        when the batch saw an errno that a limit gives."""
        suspects = {errno_name for _, _, errno_name, _ in LIMITS}
        if not any((seen := results[i]) is not None and seen.observed in suspects for i in indices):
            return
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
        before = limit_events()
        try:
            self.run_encoded(blob, out, info, cgroup_fd)
        finally:
            # Before any KeyboardInterrupt propagates: keep what the batch found.
            for j, i in enumerate(indices):
                results[i] = decode_outcome(out[j])
        self.isolation = ISOLATION.get(info.isolation, self.isolation)
        self.executors += info.executors
        self._blame_limits(before, indices, results)
        if info.error:
            after = limit_events()
            hit = [f"{events} {counter}" for events, counter, _, _ in LIMITS if after[events] > before[events]]
            why = f" (the caller's cgroup limit was hit: {', '.join(hit)} rose)" if hit else ""
            raise HarnessError(f"executor: {os.strerror(info.error)}{why}")
        if info.done != len(indices):
            raise HarnessError(f"executor: stopped with {len(indices) - info.done} cases not run")


def _close(tree: _Tree, scratch: list[ScratchCgroup]) -> None:
    tree.close()
    while scratch:
        scratch.pop().close()
