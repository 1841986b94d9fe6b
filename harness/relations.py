"""Metamorphic relations: what the kernel must answer for a variant of a case, given only
what it answered for the case itself. They need no model of the checks, so they catch
what the oracle never foresaw.

Each relation derives variants from a source case; :func:`violations` compares the live
outcomes. The sizes involved come from the profile (the page size, the kernel's struct
size as measured), never from the oracle.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

from . import abi
from .case import Case
from .profile import Profile

#: name -> the promise it checks
RELATIONS: dict[str, str] = {
    "zero_extension": "a case and the same bytes zero-extended to any size up to a page give the same outcome",
    "truncation": "a size between 64 and the kernel's struct behaves like the full struct with the bytes past size zeroed",
    "tail_position": "a single nonzero byte past the kernel's struct gives E2BIG whatever its offset",
    "no_read_past_size": "a buffer that ends at an unmapped page gives the same outcome as one in mapped memory",
    "precedence": "a size over a page gives E2BIG whatever the contents or the pointer",
}
SAME = "same"  # the variant must give the source's outcome


@dataclass(frozen=True)
class Check:
    relation: str
    source: Case
    variant: Case
    expected: str  # an outcome, or SAME


@dataclass(frozen=True)
class Violation:
    check: Check
    source_observed: str
    variant_observed: str

    @property
    def expected(self) -> str:
        return self.source_observed if self.check.expected == SAME else self.check.expected


def _cut(case: Case, size: int) -> Case | None:
    """``case`` with every byte at or past ``size`` zeroed (None where a resource would
    be cut in half: its value is not known)."""
    if case.hex is not None:
        return replace(case, hex=case.hex[:size])
    values, refs = {}, {}
    for name in abi.FIELDS:
        offset = abi.OFFSETS[name]
        if offset + 8 <= size:
            values[name] = case.values.get(name, 0)
            if name in case.refs:
                refs[name] = case.refs[name]
        elif offset < size:
            if name in case.refs:
                return None
            values[name] = case.values.get(name, 0) & ((1 << (8 * (size - offset))) - 1)
    values = {k: v for k, v in values.items() if v}
    pids = case.set_tid_pids if "set_tid" in refs else ()
    tail = {k: v for k, v in case.tail.items() if k < size}
    return replace(case, values=values, refs=refs, set_tid_pids=pids, tail=tail)


def derive(case: Case, profile: Profile, rng: random.Random) -> list[Check]:
    """The checks that apply to ``case``, each with one variant drawn with ``rng``."""
    page, ksize, size = profile.page_size, profile.struct_size, case.size
    checks = []
    mapped = case.memory == "mapped"
    if mapped and ksize <= size < page and (cut := _cut(case, size)):
        longer = rng.choice([size + 1, min(size + 8, page), page, rng.randint(size + 1, page)])
        checks.append(Check("zero_extension", case, replace(cut, size=longer), SAME))
    if mapped and abi.CLONE_ARGS_SIZE_VER0 <= size < ksize and (cut := _cut(case, size)):
        # CLONE_INTO_CGROUP is the one documented exception: it needs size >= VER2.
        if not cut.field_value("flags") & abi.CLONE["CLONE_INTO_CGROUP"]:
            checks.append(Check("truncation", case, replace(cut, size=ksize), SAME))
    if mapped and abi.CLONE_ARGS_SIZE_VER0 <= size <= page and ksize < page:
        # The head as passed (resources read as zero: the tail decides first), one byte after.
        longer = max(size, rng.randint(ksize + 1, page))
        offset = rng.randrange(ksize, longer)
        image = bytearray(case.image()[:min(size, ksize)].ljust(offset + 1, b"\0"))
        image[offset] = rng.randint(1, 255)
        variant = Case(size=longer, hex=bytes(image), note=case.note)
        checks.append(Check("tail_position", case, variant, "E2BIG"))
    if mapped and size <= page:
        checks.append(Check("no_read_past_size", case, replace(case, memory="guard", readable=None), SAME))
    huge = rng.choice([page + 1, 2 * page, (1 << 32) + (size & 0xFFFF), abi.U64_MAX])
    memory = rng.choice(["mapped", "null", "unmapped", "guard"])
    checks.append(Check("precedence", case, replace(case, size=huge, memory=memory, readable=None), "E2BIG"))
    return checks


def violations(checks: Sequence[Check], source_observed: Iterable[str], variant_observed: Iterable[str]) -> list[Violation]:
    """The checks whose variant did not answer as its relation promises. Cases the harness
    could not run (``harness-*``) prove nothing either way and are left out."""
    found = []
    for check, src, var in zip(checks, source_observed, variant_observed):
        if src.startswith("harness") or var.startswith("harness"):
            continue
        expected = src if check.expected == SAME else check.expected
        if var != expected:
            found.append(Violation(check, src, var))
    return found
