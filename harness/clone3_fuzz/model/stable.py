"""Stable backports: which of clone3's changes reached a stable series, and from which
patch level, so that a version such as 6.1.192 is judged by what it really has.

Each entry names the commit, the mainline release that brought it, and the first release
of each stable series that carries it, with where that was read. A change listed with no
series reached none (so far as the stable queues and release mails show); the version
model then takes it from the mainline version alone.

A distribution's kernel may name itself by its ABI (Debian's ``6.1.0-47-amd64``); the
upstream version it is built from is in ``uname -v`` (``... Debian 6.1.192-1 ...``), and
:func:`upstream` reads it there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

Release = tuple[int, int, int]
Series = tuple[int, int]


@dataclass(frozen=True)
class Change:
    """One change of clone3's behaviour: ``mainline`` brought it; ``stable`` maps a series
    to its first patch level with the change; ``sources`` says where each was read."""

    name: str
    commit: str
    subject: str
    mainline: Release
    stable: Mapping[Series, int] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    def reached(self, version: Release) -> bool:
        """Whether a kernel of ``version`` has the change."""
        if version >= self.mainline:
            return True
        first = self.stable.get(version[:2])
        return first is not None and version[2] >= first


_REVIEW = "the stable review mail '[PATCH {series} 000/{n}] {release}-rc{rc} review' ({date}), shortlog"
CHANGES: dict[str, Change] = {change.name: change for change in (
    Change("newtime", "a402f1e35313", "fork: allow CLONE_NEWTIME in clone3 flags", (6, 3, 0),
           {(5, 10): 175, (5, 15): 103, (6, 1): 20, (6, 2): 7},
           {"5.10.175": _REVIEW.format(series="5.10", n=104, release="5.10.175", rc=1, date="2023-03-15"),
            "5.15.103": _REVIEW.format(series="5.15", n=145, release="5.15.103", rc=1, date="2023-03-15"),
            "6.1.20": _REVIEW.format(series="6.1", n=140, release="6.1.20", rc=2, date="2023-03-16"),
            "6.2.7": "released the same week (2023-03-17); measured on Debian's kernels, issue 13"}),
    Change("stack_checked", "fa729c4df558", "clone3: validate stack arguments", (5, 4, 0), {(5, 3): 11},
           {"5.3.11": "the kernel-checks reference, section 2.3 (5.4; 5.3.11)"}),
    # No stable series carries these (the reference's section 2.3, and no stable review
    # mail names them): the mainline version decides.
    Change("pidfd_parent_tid_checked", "(fork-v5.9 pull)", "fork: fold legacy_clone_args_valid() into _do_fork()",
           (5, 9, 0)),
    Change("pidfd_thread_accepted", "83b290c9e3b5", "pidfd: clone: allow CLONE_THREAD | CLONE_PIDFD together",
           (6, 9, 0)),
    Change("pid_max_per_namespace", "(6.14 merge window)", "pid: allow pid_max to be set per pid namespace",
           (6, 14, 0)),
    Change("exit_signal_late", "09e7827e7857", "kernel/fork: validate exit_signal in kernel_clone()", (7, 1, 0)),
)}


def reached(name: str, version: Release) -> bool:
    """Whether a kernel of ``version`` has the change ``name`` (a key of :data:`CHANGES`)."""
    return CHANGES[name].reached(version)


_DISTRO_UPSTREAM = re.compile(r"\bDebian (\d+\.\d+(?:\.\d+)?)")


def upstream(release: str, build: str) -> str:
    """The upstream version a kernel is built from: Debian's is in ``uname -v``
    (``#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-1 (2026-...)``) while ``uname -r`` names
    its ABI (``6.1.0-47-amd64``); anything else is ``uname -r`` itself."""
    match = _DISTRO_UPSTREAM.search(build)
    return match[1] if match else release
