"""The oracle: what clone3 must answer for a case, on a profile's kernel, for its caller.

:func:`predict` walks the kernel's checks in the kernel's order (``SYSCALL_DEFINE2(clone3)``
-> ``copy_clone_args_from_user`` -> ``clone3_args_valid`` -> ``kernel_clone`` ->
``copy_process``); the first check that fails decides the errno, and each check has a
stable rule id (:data:`RULES`) that a finding quotes. Sources: kernel/fork.c,
kernel/pid.c, kernel/nsproxy.c, lib/usercopy.c, as summarised in
``../shared/reference/clone3-kernel-checks.md`` (section numbers below refer to it).

Where the answer hangs on something a case does not pin down (whether a literal pointer
is mapped, whether a pid is taken, RLIMIT_NPROC) the walk takes both branches, and the
prediction is every outcome the kernel may legitimately give.

An outcome is keyed with its effects (:mod:`.effects`): ``success{parent_tid=pid,signal=SIGCHLD}``.
A call that gave the right errno but did the wrong thing disagrees by an ``effect.*`` rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, NamedTuple, Union

from . import abi, effects
from .case import CGROUP_RESOURCE, MAX_IMAGE, SET_TID_LIST, Case
from .constants import C
from .memo import Memo
from .outcome import base
from .profile import Profile, pid_max_limit

SUCCESS = "success"
AGREE, DISCREPANCY = "agree", "discrepancy"

class Rule(NamedTuple):
    """One check: what it decides (with its section of the reference), the kernel function
    it models, and the earliest release that must behave so."""

    text: str
    function: str
    since: str


#: Every rule, in the kernel's order. The ids are stable: findings and reports quote them.
RULES: dict[str, Rule] = {
    "entry.unavailable": Rule("clone3 is missing or filtered (ENOSYS from the arch, a seccomp filter...)",
                "SYSCALL_DEFINE2(clone3)", "5.3"),
    "entry.blocked": Rule("every clone3 gets one errno other than ENOSYS (a seccomp profile, an LSM): glibc falls "
                "back to clone() on ENOSYS only, so pthread_create and posix_spawn fail", "SYSCALL_DEFINE2(clone3)", "5.3"),
    "size.over_page": Rule("1.2a: size > PAGE_SIZE is E2BIG",
                "copy_clone_args_from_user", "5.3"),
    "size.under_ver0": Rule("1.2b: size < CLONE_ARGS_SIZE_VER0 (64) is EINVAL",
                "copy_clone_args_from_user", "5.3"),
    "copy.tail_nonzero": Rule("1.3: a nonzero byte past the kernel's struct, read before any fault, is E2BIG",
                "copy_struct_from_user", "5.3"),
    "copy.tail_fault": Rule("1.3: the tail runs into unreadable memory before any nonzero byte: EFAULT",
                "copy_struct_from_user", "5.4"),
    "copy.head_fault": Rule("1.3: the struct itself (up to min(size, ksize)) is unreadable: EFAULT",
                "copy_struct_from_user", "5.3"),
    "set_tid.size_over_max": Rule("1.2d: set_tid_size > MAX_PID_NS_LEVEL (32) is EINVAL",
                "copy_clone_args_from_user", "5.5"),
    "set_tid.size_without_array": Rule("1.2e: set_tid_size without set_tid is EINVAL",
                "copy_clone_args_from_user", "5.5"),
    "set_tid.array_without_size": Rule("1.2f: set_tid without set_tid_size is EINVAL",
                "copy_clone_args_from_user", "5.5"),
    "exit_signal.high_bits": Rule("1.2g: exit_signal outside CSIGNAL is EINVAL",
                "copy_clone_args_from_user", "5.3"),
    "exit_signal.invalid": Rule("1.2g' (1.5#3 from 7.1): exit_signal > _NSIG is EINVAL",
                "copy_clone_args_from_user (kernel_clone from 7.1)", "5.3"),
    "cgroup.bad_fd_or_size": Rule("1.2h: CLONE_INTO_CGROUP with cgroup > INT_MAX or size < VER2 is EINVAL",
                "copy_clone_args_from_user", "5.7"),
    "set_tid.fault": Rule("1.2i: the set_tid array is unreadable: EFAULT",
                "copy_clone_args_from_user", "5.5"),
    "flags.unknown": Rule("1.4: a flag this kernel does not know is EINVAL",
                "clone3_args_valid", "5.3"),
    "flags.deprecated": Rule("1.4: CLONE_DETACHED or a CSIGNAL bit (CLONE_NEWTIME aside, from 6.3) is EINVAL",
                "clone3_args_valid", "5.3"),
    "flags.sighand_and_clear_sighand": Rule("1.4: CLONE_SIGHAND with CLONE_CLEAR_SIGHAND is EINVAL",
                "clone3_args_valid", "5.5"),
    "exit_signal.thread_or_parent": Rule("1.4: an exit_signal with CLONE_THREAD or CLONE_PARENT is EINVAL",
                "clone3_args_valid", "5.3"),
    "stack.invalid": Rule("1.4: clone3_stack_valid(): size without stack, stack without size, or !access_ok",
                "clone3_stack_valid", "5.4 (5.3.11)"),
    "pidfd.is_parent_tid": Rule("1.5#2 (5.9): CLONE_PIDFD|CLONE_PARENT_SETTID with pidfd == parent_tid is EINVAL",
                "kernel_clone", "5.9"),
    "flags.newns_and_fs": Rule("1.6: CLONE_NEWNS with CLONE_FS is EINVAL",
                "copy_process", "5.3"),
    "flags.newuser_and_fs": Rule("1.6: CLONE_NEWUSER with CLONE_FS is EINVAL",
                "copy_process", "5.3"),
    "flags.thread_without_sighand": Rule("1.6: CLONE_THREAD without CLONE_SIGHAND is EINVAL",
                "copy_process", "5.3"),
    "flags.sighand_without_vm": Rule("1.6: CLONE_SIGHAND without CLONE_VM is EINVAL",
                "copy_process", "5.3"),
    "flags.parent_from_init": Rule("1.6: CLONE_PARENT from a (pid namespace) init is EINVAL",
                "copy_process", "5.3"),
    "flags.thread_and_new_ns": Rule("1.6: CLONE_THREAD with CLONE_NEWUSER or CLONE_NEWPID is EINVAL",
                "copy_process", "5.3"),
    "flags.pidfd_and_thread": Rule("1.6 (before 6.9): CLONE_PIDFD with CLONE_THREAD is EINVAL",
                "copy_process", "5.3 (until 6.8)"),
    "flags.autoreap": Rule("1.6 (7.1): CLONE_AUTOREAP with CLONE_THREAD, CLONE_PARENT or an exit_signal is EINVAL",
                "copy_process", "7.1"),
    "flags.nnp_and_thread": Rule("1.6 (7.1): CLONE_NNP with CLONE_THREAD is EINVAL",
                "copy_process", "7.1"),
    "flags.autokill": Rule("1.6 (7.1): CLONE_PIDFD_AUTOKILL without CLONE_PIDFD and CLONE_AUTOREAP, or with CLONE_THREAD",
                "copy_process", "7.1"),
    "perm.autokill": Rule("1.6 (7.1): CLONE_PIDFD_AUTOKILL without CLONE_NNP or CAP_SYS_ADMIN is EPERM",
                "copy_process", "7.1"),
    "userns.limit": Rule("1.7#3: max_user_namespaces is 0: ENOSPC",
                "create_user_ns", "5.3"),
    "userns.denied": Rule("1.7#3: a user namespace refused to this caller (a chroot, no uid mapping in the parent, "
                          "an LSM, a distribution's sysctl): EPERM",
                "create_user_ns", "5.3"),
    "rlimit.nproc": Rule("1.7#4: RLIMIT_NPROC reached: EAGAIN",
                "copy_process", "5.3"),
    "perm.namespace": Rule("1.7#7: a new namespace without CAP_SYS_ADMIN in the child's user namespace is EPERM",
                "copy_namespaces", "5.3"),
    "flags.newipc_and_sysvsem": Rule("1.7#7: CLONE_NEWIPC with CLONE_SYSVSEM is EINVAL (after the EPERM check)",
                "copy_namespaces", "5.3"),
    "ns.not_configured": Rule("1.7#7: a namespace type the kernel lacks (!CONFIG_*_NS) is EINVAL",
                "copy_namespaces", "5.3"),
    "ns.limit": Rule("1.7#7: max_<type>_namespaces is 0: ENOSPC",
                "copy_namespaces", "5.3"),
    "tls.out_of_range": Rule("1.7#8: CLONE_SETTLS with a tls past the user address space is EPERM (x86-64)",
                "copy_thread (do_arch_prctl_64)", "5.3"),
    "set_tid.too_many_levels": Rule("1.7#9: set_tid_size > the child's pid namespace level + 1 is EINVAL",
                "alloc_pid", "5.5"),
    "set_tid.out_of_range": Rule("1.7#9: a set_tid pid < 1 or >= pid_max is EINVAL",
                "alloc_pid", "5.5"),
    "set_tid.needs_init": Rule("1.7#9: a new pid namespace's first pid must be 1: EINVAL",
                "alloc_pid", "5.5"),
    "perm.set_tid": Rule("1.7#9: set_tid without CAP_SYS_ADMIN/CAP_CHECKPOINT_RESTORE over that level is EPERM",
                "alloc_pid", "5.5"),
    "set_tid.in_use": Rule("1.7#9: a set_tid pid already taken is EEXIST",
                "alloc_pid", "5.5"),
    "pidfd.fault": Rule("1.7#10: the pidfd pointer is unwritable: EFAULT (late, nothing is created)",
                "copy_process (put_user of the pidfd)", "5.3"),
    "cgroup.bad_fd": Rule("1.7#11: the cgroup fd is no cgroup v2 directory: EBADF",
                "cgroup_css_set_fork", "5.7"),
    "cgroup.thread_other_domain": Rule("1.7#11: CLONE_THREAD into a cgroup of another domain than the caller's is EOPNOTSUPP",
                "cgroup_attach_permissions (threadgroup false)", "5.7"),
    "success": Rule("every check passed: a task was created",
                "kernel_clone", "5.3"),
    # What a call did besides its return value (model/effects.py), in the order it is done.
    "effect.pidfd": Rule("CLONE_PIDFD: the pidfd slot holds an fd that names the child",
                "copy_process (pidfd_prepare, put_user)", "5.3"),
    "effect.child_tid": Rule("CLONE_CHILD_SETTID/CLEARTID with CLONE_VM: the child's tid is set, then cleared at exit",
                "schedule_tail, mm_release", "5.3"),
    "effect.parent_tid": Rule("CLONE_PARENT_SETTID: the parent_tid slot holds the child's pid",
                "kernel_clone (put_user(nr, parent_tid))", "5.3"),
    "effect.set_tid": Rule("set_tid: the child has the pid it asked for at the caller's level",
                "alloc_pid", "5.5"),
    "effect.exit_signal": Rule("the caller receives exit_signal when the child exits (none for 0, a thread or CLONE_PARENT)",
                "do_notify_parent", "5.3"),
    "effect.vfork": Rule("CLONE_VFORK: the call returns only once the child is exiting",
                "kernel_clone (wait_for_vfork_done)", "5.3"),
    "effect.cgroup": Rule("CLONE_INTO_CGROUP: the child is in the cgroup it asked for",
                "cgroup_post_fork", "5.7"),
    "effect.namespaces": Rule("CLONE_NEWPID/CLONE_NEWUSER: the child is in a pid/user namespace of its own",
                "copy_namespaces, copy_creds", "5.3"),
    "effect.untouched": Rule("nothing is written where no flag asked for it (nor on an early error path)",
                "copy_process, kernel_clone", "5.3"),
}

_C = abi.CLONE
_NS_FLAGS = (  # copy_namespaces() creation order, with their /proc/self/ns names
    ("mnt", _C["CLONE_NEWNS"]), ("uts", _C["CLONE_NEWUTS"]), ("ipc", _C["CLONE_NEWIPC"]),
    ("pid", _C["CLONE_NEWPID"]), ("cgroup", _C["CLONE_NEWCGROUP"]), ("net", _C["CLONE_NEWNET"]),
    ("time", _C["CLONE_NEWTIME"]),
)
_NS_ALL = sum(flag for _, flag in _NS_FLAGS)
_SCRATCH_SLOT = C["C3_SCRATCH_SLOT"]  # bytes of executor memory behind a "scratch" pointer
INT_MAX = (1 << 31) - 1
CGROUP_FD = C["C3_CGROUP_FD"]  # where the sandbox puts the batch's cgroup fd


class _Opaque:
    """A value the case does not pin down: a resource address cut short by ``size``."""

    def __repr__(self) -> str:
        return "opaque"


OPAQUE = _Opaque()
#: A field as the kernel sees it: a number, a resource the executor resolves, or opaque.
Value = Union[int, str, _Opaque]


@dataclass(frozen=True)
class Prediction:
    """The outcomes the kernel may give, each with the rule that decides it."""

    rules: Mapping[str, str]  # outcome -> rule id, in the order they were found

    @property
    def outcomes(self) -> list[str]:
        """The allowed outcomes, sorted."""
        return sorted(self.rules)

    @property
    def rule(self) -> str:
        """The rule of the first (most specific) path."""
        return next(iter(self.rules.values()))

    @property
    def bases(self) -> list[str]:
        """The allowed errnos (or ``success``), effects aside, sorted."""
        return sorted({base(key) for key in self.rules})

    def rule_for(self, observed: str) -> str:
        """The rule that explains ``observed``, or, in a discrepancy, the first that said
        otherwise: an ``effect.*`` rule where only the effects differ."""
        if observed in self.rules:
            return self.rules[observed]
        due = [effects.effects_of(key) for key in self.rules if base(key) == base(observed)]
        if not due:
            return self.rule
        return effects.first_difference(effects.effects_of(observed), due)

    def verdict(self, observed: str) -> str:
        """``agree`` when ``observed`` is allowed, ``discrepancy`` otherwise."""
        return AGREE if observed in self.rules else DISCREPANCY


class _Walk:
    """One path through the checks. :meth:`either` answers an open question True and
    leaves the False branch for a later walk."""

    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.taken: list[bool] = []
        self.branches: list[list[bool]] = []

    def either(self) -> bool:
        """The answer to the next open question of this walk."""
        if len(self.taken) < len(self.answers):
            answer = self.answers[len(self.taken)]
        else:
            answer = True
            self.branches.append(self.taken + [False])
        self.taken.append(answer)
        return answer


class _Stop(Exception):
    def __init__(self, outcome: str, rule: str) -> None:
        self.outcome, self.rule = outcome, rule


def _fail(outcome: str, rule: str) -> _Stop:
    assert rule in RULES, rule
    return _Stop(outcome, rule)


def predict(case: Case, profile: Profile) -> Prediction:
    """Every outcome the profile's kernel may give for ``case``, with its rule."""
    rules: dict[str, str] = {}
    todo: list[list[bool]] = [[]]
    while todo:
        walk = _Walk(todo.pop(0))
        try:
            outcome, rule = _checks(case, profile, walk), "success"
        except _Stop as stop:
            outcome, rule = stop.outcome, stop.rule
        rules.setdefault(outcome, rule)
        todo.extend(walk.branches)
    return Prediction(rules)


class Oracle:
    """:func:`predict` for one profile, remembering each call's prediction: a campaign
    sees the same cases again and again (libFuzzer's mutations keep most of an input;
    relation variants repeat their sources). At most ``capacity`` are kept."""

    def __init__(self, profile: Profile, capacity: int = 1 << 16) -> None:
        self.profile = profile
        self._seen: Memo[tuple[object, ...], Prediction] = Memo(capacity)

    def predict(self, case: Case) -> Prediction:
        """The same as ``predict(case, self.profile)``."""
        return self._seen.get(case.key, lambda: predict(case, self.profile))


# --- what the kernel reads -----------------------------------------------------------

def _readable_extent(case: Case) -> int:
    """How many bytes from the struct's start can be read."""
    if case.memory == "mapped":
        return MAX_IMAGE + 4096  # past any size the kernel reads (size <= PAGE_SIZE)
    if case.memory == "guard":
        return case.placed_readable
    return 0


def _field(case: Case, name: str, passed: int) -> Value:
    """A field as copied: zero when not passed, the low bytes when cut short by size."""
    offset = abi.OFFSETS[name]
    if offset >= passed:
        return 0
    ref = case.refs.get(name)
    if ref == CGROUP_RESOURCE:
        return ref  # the fd number (3) sits in the low byte: any cut keeps it
    if ref is not None:
        return ref if offset + 8 <= passed else OPAQUE
    value = case.field_value(name)
    if offset + 8 > passed:
        value &= (1 << (8 * (passed - offset))) - 1
    return value


def _tail_nonzero(case: Case, image: bytes, start: int, stop: int, walk: _Walk) -> bool:
    """Whether the placed buffer holds a nonzero byte in [start, stop)."""
    for name, ref in case.refs.items():
        lo = abi.OFFSETS[name]
        if lo + 8 <= start or lo >= stop:
            continue
        if ref == CGROUP_RESOURCE:
            if lo >= start:
                return True  # the fd, 3, in its low byte
        elif (lo >= start and lo + 8 <= stop) or walk.either():
            return True  # an executor address is nonzero; a piece of one may be zero
    end = min(stop, len(image))
    return start < end and image.count(0, start, end) != end - start


def _nonzero(value: Value, walk: _Walk) -> bool:
    if isinstance(value, _Opaque):
        return walk.either()
    return value != 0 if isinstance(value, int) else True


def _accessible(value: Value, nbytes: int, profile: Profile, walk: _Walk) -> bool:
    """Whether the kernel can read (or write) ``nbytes`` at the address ``value``."""
    if value in ("unmapped", "kernel") or value == 0:
        return False
    if value in ("scratch", SET_TID_LIST):
        return nbytes <= _SCRATCH_SLOT or walk.either()
    if isinstance(value, int) and profile.user_ptr_limit is not None and value + nbytes > profile.user_ptr_limit:
        return False
    return walk.either()  # a literal address, or an opaque one: mapped or not


def _access_ok(value: Value, size: int, profile: Profile, walk: _Walk) -> bool:
    """access_ok(): the range lies in the user half; nothing is read."""
    if value == "kernel":
        return False
    if profile.user_ptr_limit is None:
        return True
    if isinstance(value, int):
        return value + size <= min(profile.user_ptr_limit, abi.U64_MAX)
    if size >= profile.user_ptr_limit:
        return False
    # An executor address (or an opaque one) plus a size: fine while the size is small.
    return size <= 1 << 32 or walk.either()


def _same_pointer(a: Value, b: Value, walk: _Walk) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if a == b and a in ("unmapped", "kernel"):
        return True  # the executor resolves both to one address
    if a == b == "scratch" or 0 in (a, b):
        return False  # separate slots; an executor address is never 0
    return walk.either()


def _set_tid_pids(case: Case, set_tid: Value, count: int) -> list[int | None]:
    """The pids the kernel copies: a list is followed by zeros, scratch is zeroed."""
    if set_tid == SET_TID_LIST:
        pids = list(case.set_tid_pids)
        return (pids + [0] * count)[:count]
    if set_tid == "scratch":
        return [0] * count
    return [None] * count  # unknown memory


# --- the checks, in the kernel's order ----------------------------------------------

def _checks(case: Case, p: Profile, walk: _Walk) -> str:
    """Raises the first check that fails; returns the success key, with its effects."""
    if p.clone3 != "available":
        raise _fail(p.clone3, "entry.unavailable")
    size = case.size
    if size > p.page_size:
        raise _fail("E2BIG", "size.over_page")
    if size < abi.CLONE_ARGS_SIZE_VER0:
        raise _fail("EINVAL", "size.under_ver0")

    # copy_struct_from_user(): the tail first, word by word, stopping at the first nonzero
    # word; the words are aligned and a fault lies at a page boundary, so this reads as a
    # byte scan that ends at the first nonzero byte or the first unreadable one.
    ksize, readable = p.struct_size, _readable_extent(case)
    if size > ksize:
        if _tail_nonzero(case, case.image(), ksize, min(size, readable), walk):
            raise _fail("E2BIG", "copy.tail_nonzero")
        if readable < size:
            raise _fail("EFAULT", "copy.tail_fault")
    passed = min(size, ksize)
    if readable < passed:
        raise _fail("EFAULT", "copy.head_fault")

    args = {name: _field(case, name, passed) for name in abi.FIELDS}
    flags, exit_signal = args["flags"], args["exit_signal"]
    assert isinstance(flags, int) and isinstance(exit_signal, int)
    set_tid, set_tid_size = args["set_tid"], args["set_tid_size"]
    assert isinstance(set_tid_size, int)
    has_set_tid = ksize >= abi.CLONE_ARGS_SIZE_VER1
    if has_set_tid:
        if set_tid_size > abi.MAX_PID_NS_LEVEL:
            raise _fail("EINVAL", "set_tid.size_over_max")
        tid_given = _nonzero(set_tid, walk)
        if not tid_given and set_tid_size > 0:
            raise _fail("EINVAL", "set_tid.size_without_array")
        if tid_given and set_tid_size == 0:
            raise _fail("EINVAL", "set_tid.array_without_size")
    if exit_signal & ~abi.CSIGNAL:
        raise _fail("EINVAL", "exit_signal.high_bits")
    if not p.exit_signal_late and exit_signal > p.nsig:
        raise _fail("EINVAL", "exit_signal.invalid")
    cgroup = args["cgroup"]
    if ksize >= abi.CLONE_ARGS_SIZE_VER2 and flags & _C["CLONE_INTO_CGROUP"]:
        if (isinstance(cgroup, int) and cgroup > INT_MAX) or size < abi.CLONE_ARGS_SIZE_VER2:
            raise _fail("EINVAL", "cgroup.bad_fd_or_size")
    if has_set_tid and set_tid_size and not _accessible(set_tid, 4 * set_tid_size, p, walk):
        raise _fail("EFAULT", "set_tid.fault")

    # clone3_args_valid()
    rejected = ~p.accepted_flags & abi.U64_MAX
    if flags & rejected & ~abi.CLONE_LEGACY_FLAGS:
        raise _fail("EINVAL", "flags.unknown")
    if flags & rejected:
        raise _fail("EINVAL", "flags.deprecated")
    if flags & _C["CLONE_SIGHAND"] and flags & _C["CLONE_CLEAR_SIGHAND"]:
        raise _fail("EINVAL", "flags.sighand_and_clear_sighand")
    if flags & (_C["CLONE_THREAD"] | _C["CLONE_PARENT"]) and exit_signal:
        raise _fail("EINVAL", "exit_signal.thread_or_parent")
    if p.stack_checked:
        stack, stack_size = args["stack"], args["stack_size"]
        assert isinstance(stack_size, int)
        if _nonzero(stack, walk):
            if stack_size == 0 or not _access_ok(stack, stack_size, p, walk):
                raise _fail("EINVAL", "stack.invalid")
        elif stack_size:
            raise _fail("EINVAL", "stack.invalid")

    # kernel_clone()
    if p.has_autoreap and flags & _C["CLONE_EMPTY_MNTNS"]:
        flags |= _C["CLONE_NEWNS"]
    both = _C["CLONE_PIDFD"] | _C["CLONE_PARENT_SETTID"]
    if p.pidfd_parent_tid_checked and flags & both == both and _same_pointer(args["pidfd"], args["parent_tid"], walk):
        raise _fail("EINVAL", "pidfd.is_parent_tid")
    if p.exit_signal_late and exit_signal > p.nsig:
        raise _fail("EINVAL", "exit_signal.invalid")

    _copy_process(case, p, walk, args, flags, exit_signal)
    set_tid_size = args["set_tid_size"] if p.struct_size >= abi.CLONE_ARGS_SIZE_VER1 else 0
    assert isinstance(set_tid_size, int)
    done = effects.of_success(case, args, flags, exit_signal, set_tid_size, p.procfs_effects, p.pidfd_fdinfo,
                              walk.either)
    return effects.keyed(SUCCESS, done)


def _copy_process(case: Case, p: Profile, walk: _Walk, args: dict[str, Value], flags: int, exit_signal: int) -> None:
    def has(*names: str) -> bool:
        return all(flags & _C[n] for n in names)

    # The flag combinations, before anything is allocated (1.6).
    if has("CLONE_NEWNS", "CLONE_FS"):
        raise _fail("EINVAL", "flags.newns_and_fs")
    if has("CLONE_NEWUSER", "CLONE_FS"):
        raise _fail("EINVAL", "flags.newuser_and_fs")
    if has("CLONE_THREAD") and not has("CLONE_SIGHAND"):
        raise _fail("EINVAL", "flags.thread_without_sighand")
    if has("CLONE_SIGHAND") and not has("CLONE_VM"):
        raise _fail("EINVAL", "flags.sighand_without_vm")
    if has("CLONE_PARENT") and p.caller_is_pidns_init:
        raise _fail("EINVAL", "flags.parent_from_init")
    if has("CLONE_THREAD") and flags & (_C["CLONE_NEWUSER"] | _C["CLONE_NEWPID"]):
        raise _fail("EINVAL", "flags.thread_and_new_ns")
    if has("CLONE_PIDFD", "CLONE_THREAD") and not p.pidfd_thread_accepted:
        raise _fail("EINVAL", "flags.pidfd_and_thread")
    if p.has_autoreap:
        if has("CLONE_AUTOREAP") and (flags & (_C["CLONE_THREAD"] | _C["CLONE_PARENT"]) or exit_signal):
            raise _fail("EINVAL", "flags.autoreap")
        if has("CLONE_NNP", "CLONE_THREAD"):
            raise _fail("EINVAL", "flags.nnp_and_thread")
        if has("CLONE_PIDFD_AUTOKILL"):
            if not has("CLONE_PIDFD", "CLONE_AUTOREAP") or has("CLONE_THREAD"):
                raise _fail("EINVAL", "flags.autokill")
            if not has("CLONE_NNP") and not p.cap_sys_admin:
                raise _fail("EPERM", "perm.autokill")

    # Credentials, limits and namespaces (1.7).
    new_user = has("CLONE_NEWUSER")
    if new_user and "user" in p.exhausted_namespaces:
        raise _fail("ENOSPC", "userns.limit")
    # Measured with unshare(2), the same create_user_ns(): unknown (None) where a seccomp
    # filter may have answered unshare otherwise than clone3.
    if new_user and (p.userns_denied or (p.userns_denied is None and walk.either())):
        raise _fail("EPERM", "userns.denied")
    if p.nproc_limited and walk.either():
        raise _fail("EAGAIN", "rlimit.nproc")
    admin_in_child_ns = new_user or p.cap_sys_admin
    if flags & _NS_ALL and not admin_in_child_ns:
        raise _fail("EPERM", "perm.namespace")
    if has("CLONE_NEWIPC", "CLONE_SYSVSEM"):
        raise _fail("EINVAL", "flags.newipc_and_sysvsem")
    for name, flag in _NS_FLAGS:
        if flags & flag and name not in p.namespaces:
            raise _fail("EINVAL", "ns.not_configured")
        if flags & flag and name in p.exhausted_namespaces:
            raise _fail("ENOSPC", "ns.limit")

    tls = args["tls"]
    if has("CLONE_SETTLS") and p.tls_limit is not None:
        out_of_range = tls == "kernel" or (isinstance(tls, int) and tls >= p.tls_limit)
        if out_of_range or (isinstance(tls, _Opaque) and walk.either()):
            raise _fail("EPERM", "tls.out_of_range")

    _alloc_pid(case, p, walk, args, flags)

    if has("CLONE_PIDFD") and not _accessible(args["pidfd"], 4, p, walk):
        raise _fail("EFAULT", "pidfd.fault")
    if has("CLONE_INTO_CGROUP") and p.struct_size >= abi.CLONE_ARGS_SIZE_VER2:
        cgroup = args["cgroup"]
        usable = (cgroup == CGROUP_RESOURCE and p.cgroup2_usable) or (cgroup == CGROUP_FD and walk.either())
        # After the pidfd's put_user: its number is written, and the fd released again.
        late = effects.of_late_failure(args, flags, p.procfs_effects)
        if not usable:
            raise _fail(effects.keyed("EBADF", late), "cgroup.bad_fd")
        # A thread stays in its process's domain; the scratch cgroup is a domain of its own
        # (EOPNOTSUPP, which Linux's errno table names ENOTSUP: the same number).
        if has("CLONE_THREAD"):
            raise _fail(effects.keyed("ENOTSUP", late), "cgroup.thread_other_domain")


def _alloc_pid(case: Case, p: Profile, walk: _Walk, args: dict[str, Value], flags: int) -> None:
    """alloc_pid() with set_tid: the innermost level first, all checks per level."""
    size = args["set_tid_size"]
    assert isinstance(size, int)
    if p.struct_size < abi.CLONE_ARGS_SIZE_VER1 or not size:
        return
    new_pid_ns = bool(flags & _C["CLONE_NEWPID"])
    child_level = p.pid_level + new_pid_ns
    # Where levels of a wrapper's may sit above ours (outer_levels_known false), pid_level
    # is a lower bound, and what those levels allow is not known: both answers stand.
    if size > child_level + 1 and (p.outer_levels_known or walk.either()):
        raise _fail("EINVAL", "set_tid.too_many_levels")
    for depth, tid in enumerate(_set_tid_pids(case, args["set_tid"], size)):
        fresh = new_pid_ns and depth == 0  # the new namespace, which has no init yet
        if tid is None:
            if walk.either():
                raise _fail("EINVAL", "set_tid.out_of_range")
            tid = 1 if fresh else 2
        pid_max = p.pid_max if depth == new_pid_ns else p.outer_pid_max
        unknown = depth > new_pid_ns and not p.outer_levels_known and 1 <= tid < pid_max_limit(p.arch)
        if tid < 1 or (tid >= pid_max and not unknown) or (unknown and walk.either()):
            raise _fail("EINVAL", "set_tid.out_of_range")
        if tid != 1 and fresh:
            raise _fail("EINVAL", "set_tid.needs_init")
        # A new pid namespace belongs to the new user namespace, if any, where the child
        # holds every capability; the levels above it belong to the caller's.
        owner_is_new = fresh and bool(flags & _C["CLONE_NEWUSER"])
        if not (owner_is_new or p.cap_sys_admin or p.cap_checkpoint_restore):
            raise _fail("EPERM", "perm.set_tid")
        # pid 1 of an existing namespace is its init; any other pid may be taken.
        if not fresh and (tid == 1 or walk.either()):
            raise _fail("EEXIST", "set_tid.in_use")
