"""Bytes -> cases, for coverage-guided fuzzers: every byte string decodes to a batch.

An input that starts with ``{`` is JSON Lines of cases (so the JSON seed corpus doubles
as a fuzzer corpus; lines that do not parse are skipped, and an input with no line that
parses, as most mutations of one leave it, is read as binary). Any other input is read as
a stream of small binary records, one case each, drawn from the same classes as
:mod:`.strategies`. Running out of bytes reads as zeros, which pick the most common
class: a short input is a plain case, not an error.
"""

from __future__ import annotations

import json

from ..model import abi
from ..model.case import MAX_IMAGE, Case, CaseError, parse
from ..model.memo import Memo
from .strategies import (
    COMBINATIONS,
    DEPRECATED_BITS,
    LEGACY_BITS,
    OUTPUTS,
    UNKNOWN_BITS,
    UNMAPPABLE,
    VERSION_BITS,
)

MAX_CASES = 64
PAGE = 4096
_RESOURCES = ["scratch", "unmapped", "kernel"]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    @property
    def left(self) -> int:
        """Bytes not read yet."""
        return len(self.data) - self.pos

    def take(self, n: int) -> int:
        """The next ``n`` bytes as a little-endian number; past the end they read as zeros."""
        chunk = self.data[self.pos:self.pos + n].ljust(n, b"\0")
        self.pos += n
        return int.from_bytes(chunk, "little")

    def pick(self, options: list) -> object:
        """One of ``options``, chosen by the next byte."""
        return options[self.take(1) % len(options)]


def _size(r: _Reader, page: int) -> int:
    kind = r.take(1) % 8
    if kind <= 1:
        return [88, 64, 80][r.take(1) % 3]
    if kind == 2:
        return 65 + r.take(1) % 23  # between versions
    if kind == 3:
        return 89 + r.take(2) % (page - 88)  # a tail, up to a page
    if kind == 4:
        return r.take(1) % 64  # under VER0
    if kind == 5:
        return page + 1 + r.take(2) % page  # over a page
    if kind == 6:
        return page
    return r.take(8)  # anything


def _flags(r: _Reader) -> int:
    kind = r.take(1) % 10
    singles = LEGACY_BITS + VERSION_BITS
    return [
        0,
        r.pick(singles),
        r.pick(DEPRECATED_BITS),
        r.pick(UNKNOWN_BITS),
        r.pick(COMBINATIONS),
        r.pick(COMBINATIONS) | r.pick(singles),  # type: ignore[operator]
        r.take(4),  # legacy bits at random
        r.take(8),
        r.pick(OUTPUTS),  # calls that succeed and write: the effects
        r.pick(OUTPUTS),
    ][kind]  # type: ignore[return-value]


def _exit_signal(r: _Reader) -> int:
    kind = r.take(1) % 6
    if kind <= 1:
        return [0, 17][kind]
    if kind == 2:
        return 1 + r.take(1) % 64
    if kind == 3:
        return 65 + r.take(1) % 191
    return r.take(8)


def _pointer(r: _Reader) -> object:
    # Mostly scratch: an output written where it can be read back is an effect to judge.
    return r.pick(["scratch"] * 3 + _RESOURCES + UNMAPPABLE)


def _case(r: _Reader, page: int, cgroup2: bool) -> Case:
    size = _size(r, page)
    obj: dict[str, object] = {"size": size, "flags": hex(_flags(r)), "exit_signal": _exit_signal(r)}
    extras = r.take(1)
    for bit, name in enumerate(("pidfd", "child_tid", "parent_tid", "tls")):
        if extras >> bit & 1:
            obj[name] = _pointer(r)
    if extras >> 4 & 1:
        obj["stack"] = r.pick(["scratch", "kernel", 0, "0x7fffffffe000", hex(abi.U64_MAX - 8)])
        obj["stack_size"] = r.pick([0, 1, 4096, 8192, 1 << 40])
    if extras >> 5 & 1:
        count = r.take(1) % 4
        obj["set_tid"] = [r.pick([1, 2, 3, 300, 70000, -1, 0x7FFFFFFF]) for _ in range(count)]
        if r.take(1) % 4 == 0:
            obj["set_tid_size"] = r.take(1) % 40
    if extras >> 6 & 1:
        obj["cgroup"] = r.pick([0, 1, 999, 0x80000000, *(["cgroup2"] if cgroup2 else [])])
    elif cgroup2 and int(str(obj["flags"]), 16) & abi.CLONE["CLONE_INTO_CGROUP"]:
        obj["cgroup"] = "cgroup2"  # CLONE_INTO_CGROUP into a cgroup it can land in: the effect is judged
    if extras >> 7 & 1:
        offset = abi.STRUCT_SIZE + r.take(2) % (min(max(size, abi.STRUCT_SIZE + 1), MAX_IMAGE) - abi.STRUCT_SIZE)
        obj["tail"] = {str(offset): 1 + r.take(1) % 255}
    placement = r.take(1) % 8
    if placement == 5:
        obj["memory"] = "guard"
    elif placement == 6:
        obj.update(memory="guard", readable=r.take(2) % (min(size, PAGE) + 1))
    elif placement == 7:
        obj["memory"] = r.pick(["null", "unmapped"])
    return parse(obj)


#: Binary records already decoded: (page, cgroup2, the record's first bytes) -> [(record, case)].
#: libFuzzer's mutations leave most records of an input as they were, and decoding one
#: costs more than running it. A record is what _case() consumed, so the same bytes
#: always decode to the same case; one that ran past the end of its input (read as zeros)
#: is not kept.
_SEEN: Memo[tuple[int, bool, bytes], list[tuple[bytes, Case]]] = Memo()
_KEY = 12


def _binary_case(reader: _Reader, page: int, cgroup2: bool) -> Case:
    start, data = reader.pos, reader.data
    known = _SEEN.get((page, cgroup2, data[start:start + _KEY]), list)
    for record, case in known:
        if data.startswith(record, start):
            reader.pos += len(record)
            return case
    case = _case(reader, page, cgroup2)
    if reader.pos <= len(data):
        known.append((data[start:reader.pos], case))
    return case


def decode(data: bytes, page: int = PAGE, cgroup2: bool = False) -> list[Case]:
    """The batch of cases ``data`` stands for (at most :data:`MAX_CASES`); ``cgroup2``
    lets a case name the scratch cgroup v2 directory (a caller that can have one; a JSON
    case that names it is dropped elsewhere, as one that does not parse is)."""
    if data.startswith(b"{"):
        cases = []
        for line in data.decode("utf-8", "replace").splitlines()[:MAX_CASES]:
            try:
                case = parse(json.loads(line))
            except (CaseError, ValueError):
                continue
            if cgroup2 or not case.needs_cgroup:
                cases.append(case)
        if cases:
            return cases
    reader = _Reader(data)
    cases = [_binary_case(reader, page, cgroup2)]
    while reader.left > 0 and len(cases) < MAX_CASES:
        cases.append(_binary_case(reader, page, cgroup2))
    return cases

