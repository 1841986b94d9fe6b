"""Hypothesis strategies for clone3 cases, class by class.

Every class the kernel's checks distinguish has its own strategy (sizes, tails, flags,
exit signals, stacks, set_tid, cgroup, pointers, placements), and :func:`cases` draws a
whole case from them. Pointers are only ever resources the executor owns, NULL, or
addresses that cannot be mapped: a random literal address could be the executor's own
memory, and a call that writes there (CLONE_CHILD_SETTID, CLONE_PIDFD) would corrupt it.
"""

from __future__ import annotations

import signal
from typing import Any

from hypothesis import strategies as st

from ..model import abi
from ..model.case import MAX_SET_TID, Case, parse
from ..model.constants import C as C3

C = abi.CLONE
PAGE = 4096
LEGACY_BITS = [f.value for f in abi.FLAGS if f.value <= 0xFFFFFFFF]
DEPRECATED_BITS = [C["CLONE_DETACHED"], *(1 << b for b in range(7))]
#: Bits outside the legacy 32, grouped by the version that introduced them.
VERSION_BITS = [f.value for f in abi.FLAGS if f.value > 0xFFFFFFFF]
UNKNOWN_BITS = [1 << b for b in range(38, 64)]
COMBINATIONS = [
    C["CLONE_THREAD"] | C["CLONE_SIGHAND"] | C["CLONE_VM"],
    C["CLONE_SIGHAND"] | C["CLONE_VM"],
    C["CLONE_VM"] | C["CLONE_VFORK"],
    C["CLONE_PIDFD"] | C["CLONE_PARENT_SETTID"],
    C["CLONE_PIDFD"] | C["CLONE_THREAD"] | C["CLONE_SIGHAND"] | C["CLONE_VM"],
    C["CLONE_NEWUSER"] | C["CLONE_NEWNS"],
    C["CLONE_NEWUSER"] | C["CLONE_NEWPID"],
    C["CLONE_NEWNS"] | C["CLONE_FS"],
    C["CLONE_NEWUSER"] | C["CLONE_FS"],
    C["CLONE_SIGHAND"] | C["CLONE_CLEAR_SIGHAND"] | C["CLONE_VM"],
    C["CLONE_NEWIPC"] | C["CLONE_SYSVSEM"],
    C["CLONE_THREAD"] | C["CLONE_SIGHAND"] | C["CLONE_VM"] | C["CLONE_NEWPID"],
    C["CLONE_PARENT"] | C["CLONE_VFORK"],
    C["CLONE_AUTOREAP"] | C["CLONE_PIDFD"] | C["CLONE_PIDFD_AUTOKILL"] | C["CLONE_NNP"],
    C["CLONE_EMPTY_MNTNS"] | C["CLONE_FS"],
]
#: Flag sets that succeed for any caller (privilege aside) and ask the kernel for an output
#: or an effect: the words it writes, a pidfd, the vfork wait, a thread's or a CLONE_PARENT
#: child's exit, new pid and user namespaces, a cgroup.
OUTPUTS = [
    C["CLONE_PIDFD"],
    C["CLONE_PARENT_SETTID"],
    C["CLONE_PIDFD"] | C["CLONE_PARENT_SETTID"],
    C["CLONE_VM"] | C["CLONE_CHILD_SETTID"],
    C["CLONE_VM"] | C["CLONE_CHILD_CLEARTID"],
    C["CLONE_VM"] | C["CLONE_CHILD_SETTID"] | C["CLONE_CHILD_CLEARTID"],
    C["CLONE_CHILD_SETTID"] | C["CLONE_CHILD_CLEARTID"],  # in the child's own mm: unseen
    C["CLONE_VFORK"],
    C["CLONE_VM"] | C["CLONE_VFORK"] | C["CLONE_CHILD_SETTID"],
    C["CLONE_THREAD"] | C["CLONE_SIGHAND"] | C["CLONE_VM"] | C["CLONE_PIDFD"] | C["CLONE_CHILD_CLEARTID"]
    | C["CLONE_PARENT_SETTID"],
    C["CLONE_PARENT"] | C["CLONE_PIDFD"] | C["CLONE_PARENT_SETTID"],
    C["CLONE_NEWUSER"] | C["CLONE_NEWPID"] | C["CLONE_PIDFD"],
    C["CLONE_NEWUSER"] | C["CLONE_VM"] | C["CLONE_CHILD_SETTID"],
    C["CLONE_INTO_CGROUP"] | C["CLONE_PIDFD"],
]
#: Addresses no mapping can have: NULL, the first page, the kernel half.
UNMAPPABLE = [0, 8, 0xFFF, 0xFFFFFFFF80000000, 0xFFFFFFFFFFFFF000]
POINTERS = st.one_of(st.sampled_from(["scratch", "unmapped", "kernel"]), st.sampled_from(UNMAPPABLE))


def _weighted(*pairs: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Each strategy drawn in proportion to its weight. Hypothesis leans towards the first
    alternative (it shrinks towards it), so the common class goes first."""
    picks = [i for i, (weight, _) in enumerate(pairs) for _ in range(weight)]
    return st.sampled_from(picks).flatmap(lambda i: pairs[i][1])


def sizes(page: int = PAGE) -> st.SearchStrategy[int]:
    # Most sizes pass the size checks, so that the checks behind them get exercised.
    """Size arguments, by class: the struct versions, between them, a tail, under VER0,
    over a page, exactly a page, or any u64."""
    return _weighted(
        (6, st.sampled_from([88, 64, 80])),  # exactly a version
        (2, st.integers(65, 87)),  # between versions
        (3, st.integers(89, page)),  # a tail, up to a page
        (1, st.just(page)),
        (1, st.integers(0, abi.CLONE_ARGS_SIZE_VER0 - 1)),  # under VER0
        (1, st.integers(page + 1, 2 * page)),  # over a page
        (1, st.sampled_from([1 << 32, (1 << 32) + 64, (1 << 32) + 88, 1 << 63, abi.U64_MAX])),  # huge
    )


def flags() -> st.SearchStrategy[int]:
    """Flag words: none, one known bit, a deprecated or unknown bit, a combination the
    kernel checks, or bits at random."""
    single = st.sampled_from(LEGACY_BITS + VERSION_BITS)
    legacy_union = st.lists(st.sampled_from(LEGACY_BITS), max_size=4).map(sum)
    return st.one_of(
        st.just(0),
        single,
        st.sampled_from(DEPRECATED_BITS),
        st.sampled_from(UNKNOWN_BITS),
        st.sampled_from(COMBINATIONS),
        st.builds(lambda a, b: a | b, st.sampled_from(COMBINATIONS), single),
        st.builds(lambda a, b: a | b, legacy_union, st.sampled_from([0, *VERSION_BITS, *DEPRECATED_BITS])),
    )


def exit_signals() -> st.SearchStrategy[int]:
    """exit_signal values: 0, SIGCHLD, any valid signal, past _NSIG, or any u64."""
    return _weighted(
        (8, st.sampled_from([0, int(signal.SIGCHLD)])),
        (2, st.integers(1, 64)),  # every valid signal, SIGKILL and SIGSTOP among them
        (1, st.integers(65, 255)),  # inside CSIGNAL, past _NSIG
        (1, st.sampled_from([0x100, 0x111, 1 << 32 | 17, abi.U64_MAX])),  # high bits
    )


@st.composite
def stacks(draw: Any) -> dict[str, Any]:
    """The stack and stack_size keys of a case: none, half of the pair, a valid scratch
    stack, one past the user address limit, or an overflowing range."""
    kind = draw(st.sampled_from(["none"] * 8 + ["size only", "stack only", "scratch", "scratch", "kernel", "edge",
                                                 "overflow"]))
    size = draw(st.sampled_from([1, 4096, C3["C3_SCRATCH_SLOT"], 1 << 20]))  # ... a whole scratch slot ...
    if kind == "none":
        return {}
    if kind == "size only":
        return {"stack_size": size}
    if kind == "stack only":
        return {"stack": draw(st.sampled_from(["scratch", "0x10000"]))}
    if kind == "scratch":
        return {"stack": "scratch", "stack_size": size}
    if kind == "kernel":
        return {"stack": "kernel", "stack_size": size}
    if kind == "edge":  # around the end of the user address space (x86-64: 0x7ffffffff000)
        end = draw(st.sampled_from([1 << 47, (1 << 47) - 4096, 1 << 56, 1 << 63]))
        return {"stack": hex(end - size + draw(st.integers(-2, 2))), "stack_size": size}
    return {"stack": hex(abi.U64_MAX - 10), "stack_size": size}


@st.composite
def set_tids(draw: Any) -> dict[str, Any]:
    """The set_tid and set_tid_size keys of a case: a pid list, a resource, or a size alone."""
    kind = draw(st.sampled_from(["none"] * 10 + ["list", "list", "size only", "scratch", "unmapped", "too many"]))
    if kind == "none":
        return {}
    if kind == "list":
        pids = draw(st.lists(st.one_of(st.sampled_from([1, 2, 3, 300, 4194304]), st.integers(-5, 70000)),
                             min_size=1, max_size=3))
        extra = draw(st.sampled_from([{}, {}, {"set_tid_size": draw(st.integers(0, 4))}]))
        return {"set_tid": pids, **extra}
    if kind == "size only":
        return {"set_tid_size": draw(st.integers(1, 40))}
    if kind == "scratch":
        return {"set_tid": "scratch", "set_tid_size": draw(st.integers(0, 3))}
    if kind == "unmapped":
        return {"set_tid": "unmapped", "set_tid_size": draw(st.integers(1, 3))}
    return {"set_tid": [1] * MAX_SET_TID, "set_tid_size": draw(st.integers(33, 64))}


def cgroups(cgroup2: bool) -> st.SearchStrategy[dict[str, Any]]:
    """The cgroup key (and CLONE_INTO_CGROUP) of a case; ``cgroup2`` allows the scratch
    cgroup v2 fd."""
    values: list[Any] = [0, 999, 0x80000000, 1 << 40, 1]
    if cgroup2:
        values.append("cgroup2")
    return _weighted((4, st.just({})), (1, st.sampled_from(values).map(lambda v: {"cgroup": v})))


@st.composite
def tails(draw: Any, size: int) -> dict[str, Any]:
    """Tail bytes: none, one, or a few, inside size or just past it."""
    hi = min(max(size, abi.STRUCT_SIZE + 1), 8192)
    kind = draw(st.sampled_from(["none"] * 6 + ["one", "few", "past size"]))
    if kind == "none" or hi <= abi.STRUCT_SIZE:
        return {}
    if kind == "past size" and size < 8192:
        offset = draw(st.integers(max(size, abi.STRUCT_SIZE), max(size, abi.STRUCT_SIZE) + 16))
        return {"tail": {str(offset): draw(st.integers(1, 255))}}
    count = min(1 if kind == "one" else draw(st.integers(2, 4)), hi - abi.STRUCT_SIZE)
    offsets = draw(st.lists(st.integers(abi.STRUCT_SIZE, hi - 1), min_size=count, max_size=count, unique=True))
    return {"tail": {str(o): draw(st.integers(1, 255)) for o in offsets}}


@st.composite
def placements(draw: Any, size: int) -> dict[str, Any]:
    """The memory and readable keys: where the struct lies for the call."""
    memory = draw(st.sampled_from(["mapped"] * 12 + ["guard", "guard", "null", "unmapped"]))
    if memory != "guard":
        return {} if memory == "mapped" else {"memory": memory}
    readable = draw(st.one_of(st.just(None), st.integers(0, min(size, PAGE) + 16)))
    return {"memory": "guard"} if readable is None else {"memory": "guard", "readable": readable}


@st.composite
def effect_cases(draw: Any, page: int = PAGE, cgroup2: bool = False) -> Case:
    """A call meant to succeed that asks for outputs (:data:`OUTPUTS`), with the words in
    scratch slots, an exit signal of 0, SIGCHLD or any of 1..64, and now and then a set_tid
    pid: what the effects rules judge."""
    flags = draw(st.sampled_from(OUTPUTS))
    if draw(st.integers(0, 3)) == 0:
        flags |= draw(st.sampled_from(OUTPUTS)) & ~(C["CLONE_THREAD"] | C["CLONE_PARENT"])
    shared_parent = flags & (C["CLONE_THREAD"] | C["CLONE_PARENT"])
    signal_ = 0 if shared_parent else draw(_weighted((3, st.sampled_from([0, int(signal.SIGCHLD)])),
                                                     (2, st.integers(1, 64))))
    size = draw(st.one_of(st.sampled_from([88, 64, 80]), st.integers(88, page)))
    obj: dict[str, Any] = {"size": size, "flags": hex(flags), "exit_signal": signal_}
    for name in ("pidfd", "child_tid", "parent_tid"):
        if draw(st.integers(0, 4)):
            obj[name] = "scratch"
    if flags & C["CLONE_INTO_CGROUP"]:
        obj["cgroup"] = "cgroup2" if cgroup2 else 999
    if not shared_parent and draw(st.integers(0, 4)) == 0:
        pid = draw(st.integers(2, 30000))
        obj["set_tid"] = [1, pid] if flags & C["CLONE_NEWPID"] else [pid]
    return parse(obj)


@st.composite
def cases(draw: Any, page: int = PAGE, cgroup2: bool = False) -> Case:
    """A whole case; ``cgroup2`` allows ``"cgroup": "cgroup2"`` (needs a usable cgroup v2).
    One in five is an :func:`effect_cases` call."""
    if draw(st.integers(0, 4)) == 0:
        return draw(effect_cases(page, cgroup2))
    size = draw(sizes(page))
    obj: dict[str, Any] = {"size": size, "flags": hex(draw(flags())), "exit_signal": draw(exit_signals())}
    for name in ("pidfd", "child_tid", "parent_tid"):
        if draw(st.integers(0, 3)) == 0:
            obj[name] = draw(POINTERS)
    if draw(st.integers(0, 3)) == 0:
        obj["tls"] = draw(st.one_of(POINTERS, st.sampled_from(["0x7ffffffff000", "0x7fffffffefff", "0x10000"])))
    for part in (stacks(), set_tids(), cgroups(cgroup2), tails(size), placements(size)):
        obj.update(draw(part))
    return parse(obj)


def batches(page: int = PAGE, cgroup2: bool = False, size: int = 200) -> st.SearchStrategy[list[Case]]:
    """Many cases at once: one sandbox run per example keeps the kernel busy, not Python."""
    return st.lists(cases(page, cgroup2), min_size=size, max_size=size)
