"""Effects: what a call did besides its return value, in the words the executor uses
(``c3_effects_text()`` in ``runtime/c/executor.c``), and what the kernel must have done.

An outcome's effects are items ``name=value`` joined by commas, in this order:

- ``pidfd``, ``child_tid``, ``parent_tid``: a "scratch" output slot the kernel wrote. It
  starts as a marker, so an item is there only where something was written. ``pidfd``
  says what the written fd names: ``child``, ``gone`` (a reaped task), ``closed`` (written,
  then released on an error path), ``notpidfd``, ``other`` (another task), or ``fd``
  where /proc cannot tell. The pid words say ``pid`` (the child's pid, as clone3 returned
  it), ``0``, ``1``, ``other``, or ``clobbered`` (more than the 4 bytes of a pid written).
- ``pid``: ``set_tid`` where the child got the pid set_tid asked for at the caller's level,
  ``other`` where not.
- ``signal``: what the caller received when the child exited (``none``, ``SIGCHLD``...).
- ``vfork``: ``waited`` where a CLONE_VFORK call returned only once the child was exiting.
- ``cgroup``: ``in`` where a CLONE_INTO_CGROUP child is in the cgroup it asked for.
- ``ns``: the namespaces a CLONE_NEWPID/CLONE_NEWUSER child does not share with the caller.

A child that shares the caller's signal handlers (CLONE_SIGHAND) and is init of a new pid
namespace sets SIGCHLD to SIG_IGN on its way out, for both (zap_pid_ns_processes()): with
a SIGCHLD exit_signal the kernel then reaps it itself and sends nothing (do_notify_parent()).

What cannot be seen: the child runs no code of ours (it must not touch memory, see
``c3_clone3``), and a child that has exited has lost its nsproxy in do_exit(), so its
mount, UTS, IPC, network, cgroup and time namespaces are gone before anyone can look; its
pid and user namespaces stay visible (they hang off its pid and credentials). A thread or a
CLONE_PARENT child may be reaped by somebody else at any moment, so for them only the words
and the pidfd are looked at, and the pidfd may name a task already gone.

Sources: kernel/fork.c (copy_process: the pidfd's put_user before cgroup_can_fork();
kernel_clone: parent_tid's put_user after the task exists; schedule_tail and mm_release:
child_tid's set and clear, in the child's mm), kernel/signal.c (do_notify_parent), kernel/pid.c
(alloc_pid with set_tid), fs/pidfs.c (a pidfd's fdinfo).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

from . import abi
from .case import CGROUP_RESOURCE, SET_TID_LIST, Case
from .constants import SIGNAL_NAMES

#: The items, in the order the executor writes them, each with the rule that predicts it.
ITEMS = {
    "pidfd": "effect.pidfd",
    "child_tid": "effect.child_tid",
    "parent_tid": "effect.parent_tid",
    "pid": "effect.set_tid",
    "signal": "effect.exit_signal",
    "vfork": "effect.vfork",
    "cgroup": "effect.cgroup",
    "ns": "effect.namespaces",
}
WORDS = ("pidfd", "child_tid", "parent_tid")
UNTOUCHED = "effect.untouched"
SIGKILL, SIGCHLD, SIGSTOP = 9, 17, 19

_C = abi.CLONE
_SHARED_PARENT = _C["CLONE_THREAD"] | _C["CLONE_PARENT"]  # reaped by someone else: see above
PIDFD_FDINFO = (5, 5, 0)  # fs/pidfs.c's ancestor, kernel/pid.c: a pidfd's fdinfo shows Pid and NSpid


def signal_name(number: int) -> str:
    """``SIGCHLD`` for 17, as the executor names signals; ``SIG34`` past the named ones."""
    return f"SIG{SIGNAL_NAMES[number - 1]}" if 0 < number <= len(SIGNAL_NAMES) else f"SIG{number}"


def parse(text: str) -> dict[str, str]:
    """``{"parent_tid": "pid", "signal": "SIGCHLD"}`` from ``parent_tid=pid,signal=SIGCHLD``."""
    return dict(item.split("=", 1) for item in text.split(",") if item)


def render(items: Mapping[str, str]) -> str:
    """The text of ``items``, in the executor's order."""
    return ",".join(f"{name}={items[name]}" for name in ITEMS if name in items)


def effects_of(key: str) -> str:
    """The effects of an outcome key (``success{signal=none}``): ``signal=none``."""
    return key.partition("{")[2].rstrip("}")


def first_difference(observed: str, expected: Sequence[str]) -> str:
    """The rule of the first item where ``observed`` differs from the closest of the
    ``expected`` effect texts (the one it agrees with longest): a word written where none
    was asked for is ``effect.untouched``."""
    seen = parse(observed)

    def differs_at(due: dict[str, str]) -> int:
        return next((i for i, name in enumerate(ITEMS) if seen.get(name) != due.get(name)), len(ITEMS))

    due = max((parse(text) for text in expected), key=differs_at)
    name = list(ITEMS)[min(differs_at(due), len(ITEMS) - 1)]
    return UNTOUCHED if name in WORDS and name not in due else ITEMS[name]


def requested_pid(case: Case, set_tid_size: int, flags: int) -> int:
    """The pid set_tid asks for at the caller's level (the innermost, or the next one out
    with CLONE_NEWPID); 0 where that level is left to the kernel or the list is unknown."""
    if case.refs.get("set_tid") != SET_TID_LIST:
        return 0
    level = 1 if flags & _C["CLONE_NEWPID"] else 0
    pids = case.set_tid_pids
    return pids[level] if set_tid_size > level and level < len(pids) else 0


def of_success(case: Case, refs: Mapping[str, object], flags: int, exit_signal: int, set_tid_size: int,
               procfs: bool, pidfd_fdinfo: bool, either: Callable[[], bool]) -> str:
    """What a successful call must have done, as the executor would write it. ``refs``
    are the pointer fields as the kernel was passed them ("scratch" where the executor reads
    the slot back); ``procfs`` whether /proc lets the caller look (the executor's NSpid);
    ``either`` picks between two legitimate effects (a task that someone else may reap)."""
    def has(name: str) -> bool:
        return bool(flags & _C[name])

    # Reaped by someone else at any moment: by our parent, by the thread group, or by the
    # kernel itself (see the module's docstring).
    autoreaped = has("CLONE_SIGHAND") and has("CLONE_NEWPID") and exit_signal == SIGCHLD
    shared_parent = bool(flags & _SHARED_PARENT) or autoreaped
    if exit_signal == SIGKILL and not shared_parent:
        return "signal=SIGKILL"  # the caller dies with its child: nothing else is seen
    items: dict[str, str] = {}
    if has("CLONE_PIDFD") and refs.get("pidfd") == "scratch":
        if not procfs:
            items["pidfd"] = "fd"
        elif not pidfd_fdinfo:
            items["pidfd"] = "notpidfd"
        else:
            items["pidfd"] = "gone" if shared_parent and either() else "child"
    # CLONE_CHILD_SETTID and _CLEARTID write in the child's mm: the caller's only with CLONE_VM.
    if refs.get("child_tid") == "scratch" and has("CLONE_VM"):
        if has("CLONE_CHILD_CLEARTID"):
            items["child_tid"] = "0"  # mm_release() at exit, after schedule_tail()'s set
        elif has("CLONE_CHILD_SETTID"):
            items["child_tid"] = "1" if has("CLONE_NEWPID") else "pid"  # its pid in its own namespace
    if has("CLONE_PARENT_SETTID") and refs.get("parent_tid") == "scratch":
        items["parent_tid"] = "pid"
    if requested_pid(case, set_tid_size, flags):
        items["pid"] = "set_tid"
    if shared_parent or exit_signal == 0:
        items["signal"] = "none"  # a thread signals nobody; a CLONE_PARENT child our parent
    elif exit_signal == SIGSTOP:
        # The caller stops; whoever resumes it sends SIGCONT, which may still be pending.
        items["signal"] = "SIGCONT" if either() else "none"
    else:
        items["signal"] = signal_name(exit_signal)
    if procfs and not shared_parent:
        if has("CLONE_VFORK"):
            items["vfork"] = "waited"
        if has("CLONE_INTO_CGROUP") and refs.get("cgroup") == CGROUP_RESOURCE:
            items["cgroup"] = "in"
        if flags & (_C["CLONE_NEWPID"] | _C["CLONE_NEWUSER"]):
            items["ns"] = "+".join(ns for ns, flag in (("pid", "CLONE_NEWPID"), ("user", "CLONE_NEWUSER")) if has(flag))
    return render(items)


def of_late_failure(refs: Mapping[str, object], flags: int, procfs: bool) -> str:
    """What a call that fails after copy_process() wrote the pidfd number has done: the
    number is there, and the fd was released again."""
    if flags & _C["CLONE_PIDFD"] and refs.get("pidfd") == "scratch":
        return render({"pidfd": "closed" if procfs else "fd"})
    return ""


def keyed(outcome: str, effects: str) -> str:
    """An outcome key: ``success{signal=none}``, or the bare outcome without effects."""
    return f"{outcome}{{{effects}}}" if effects else outcome
