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
#: The relations whose variant has an outcome of its own, whatever the source gives.
EXPECTED = {"tail_position": "E2BIG", "precedence": "E2BIG"}


@dataclass(frozen=True)
class Check:
    """One relation applied to one source. ``params`` are what was drawn to build the
    variant: :func:`variant_of` rebuilds it from them, for any other source."""

    relation: str
    source: Case
    variant: Case
    expected: str  # an outcome, or SAME
    params: tuple[int | str, ...] = ()


@dataclass(frozen=True)
class Violation:
    """A check whose variant did not answer as its relation promises."""

    check: Check
    source_observed: str
    variant_observed: str

    @property
    def expected(self) -> str:
        """What the variant should have given: the source's outcome, or the relation's own."""
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


def variant_of(relation: str, params: tuple[int | str, ...], case: Case, profile: Profile) -> Case | None:
    """The variant ``relation`` makes of ``case`` with ``params``, or None where the
    relation does not apply to this case."""
    page, ksize, size = profile.page_size, profile.struct_size, case.size
    mapped = case.memory == "mapped"
    if relation == "zero_extension":
        cut = _cut(case, size) if mapped and ksize <= size < page else None
        return replace(cut, size=min(page, max(int(params[0]), size + 1))) if cut else None
    if relation == "truncation":
        cut = _cut(case, size) if mapped and abi.CLONE_ARGS_SIZE_VER0 <= size < ksize else None
        # CLONE_INTO_CGROUP is the one documented exception: it needs size >= VER2.
        if cut is None or cut.field_value("flags") & abi.CLONE["CLONE_INTO_CGROUP"]:
            return None
        return replace(cut, size=ksize)
    if relation == "tail_position":
        longer, offset, byte = (int(p) for p in params)
        if not (mapped and abi.CLONE_ARGS_SIZE_VER0 <= size <= page and ksize <= offset < page):
            return None
        # The head as passed (resources read as zero: the tail decides first), one byte after.
        image = bytearray(case.image()[:min(size, ksize)].ljust(offset + 1, b"\0"))
        image[offset] = byte
        return Case(size=max(size, longer, offset + 1), hex=bytes(image), note=case.note)
    if relation == "no_read_past_size":
        return replace(case, memory="guard", readable=None) if mapped and size <= page else None
    if relation == "precedence":
        huge, memory = int(params[0]), str(params[1])
        return replace(case, size=max(huge, page + 1), memory=memory, readable=None)
    raise ValueError(f"unknown relation {relation!r}")


def _draw(relation: str, case: Case, profile: Profile, rng: random.Random) -> tuple[int | str, ...]:
    page, ksize, size = profile.page_size, profile.struct_size, case.size
    if relation == "zero_extension":
        return (rng.choice([size + 1, min(size + 8, page), page, rng.randint(min(size + 1, page), page)]),)
    if relation == "tail_position":
        longer = max(size, rng.randint(ksize + 1, page))
        return (longer, rng.randrange(ksize, longer), rng.randint(1, 255))
    if relation == "precedence":
        return (rng.choice([page + 1, 2 * page, (1 << 32) + (size & 0xFFFF), abi.U64_MAX]),
                rng.choice(["mapped", "null", "unmapped", "guard"]))
    return ()


def derive(case: Case, profile: Profile, rng: random.Random) -> list[Check]:
    """The checks that apply to ``case``, each with one variant drawn with ``rng``."""
    checks = []
    for relation in RELATIONS:
        if relation == "tail_position" and profile.struct_size >= profile.page_size:
            continue
        params = _draw(relation, case, profile, rng)
        variant = variant_of(relation, params, case, profile)
        if variant is not None:
            checks.append(Check(relation, case, variant, EXPECTED.get(relation, SAME), params))
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
