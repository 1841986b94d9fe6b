"""What a process leaves behind, counted from /proc."""

from __future__ import annotations

import os
from dataclasses import dataclass


def _stat(pid: str) -> tuple[int, str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), fields[0]  # ppid, state


@dataclass(frozen=True)
class Footprint:
    descendants: int  # processes below this one
    zombies: int  # zombies anywhere on the machine whose parent is one of ours or init
    threads: int
    fds: int


def footprint() -> Footprint:
    table = {pid: st for pid in os.listdir("/proc") if pid.isdigit() and (st := _stat(pid))}
    ours = {os.getpid()}
    grew = True
    while grew:
        below = {int(pid) for pid, (ppid, _) in table.items() if ppid in ours}
        grew = not below <= ours
        ours |= below
    zombies = sum(1 for ppid, state in table.values() if state == "Z" and ppid in ours | {1})
    return Footprint(len(ours) - 1, zombies, len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd")))
