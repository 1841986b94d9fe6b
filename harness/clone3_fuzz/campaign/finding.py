"""A finding as data and as text: what disagreed, its stable signature, and the words a
kernel developer pastes into a mail. Pure: nothing here runs a case.

The signature is the first disagreeing rule (or the relation) and the minimized case's
*shape* (its size class, the fields it sets, the flags by name, tail and placement): the
same on every run and machine, so that reports can be compared, and blind to what a broken
kernel happened to answer next.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from ..model import abi
from ..model import profile as profiles
from ..model.case import Case
from ..model.oracle import RULES, SUCCESS, predict
from ..model.profile import Profile
from ..model.relations import EXPECTED, RELATIONS, SAME, Violation
from ..model.verdict import Result

CONFIRMED, UNCONFIRMED = "confirmed", "unconfirmed"


def size_class(size: int, page: int) -> str:
    """The size class a signature names: under-ver0, ver0/1/2, between-versions, tail or over-page."""
    if size < abi.CLONE_ARGS_SIZE_VER0:
        return "under-ver0"
    if size in (64, 80, 88):
        return f"ver{(64, 80, 88).index(size)}"
    if size < abi.STRUCT_SIZE:
        return "between-versions"
    if size <= page:
        return "tail"
    return "over-page"


def shape(case: Case, page: int) -> str:
    """What a minimized case is made of, without its incidental values."""
    parts = [size_class(case.size, page)]
    for name in abi.FIELDS:
        if name in case.refs:
            parts.append(name)  # a pointer named by its resource is a pointer all the same
        elif name == "flags" and case.field_value(name):
            names = abi.flag_names(case.field_value(name))
            parts.append("+".join(sorted({n if not n.startswith("0x") else "unnamed" for n in names})))
        elif case.field_value(name):
            parts.append(name)
    if case.tail or (case.hex is not None and any(case.hex[abi.STRUCT_SIZE:])):
        parts.append("tail")
    if case.memory != "mapped":
        parts.append(case.memory)
    return ",".join(parts)


def _safe(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.+=,-]", "_", text)
    if len(name) <= 150:
        return name
    return f"{name[:120]}-{hashlib.sha1(name.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Finding:
    """One disagreement: ``case`` gave ``observed`` where ``expected`` was due. A relation's
    ``case`` is its variant; ``source`` is the case it was derived from, with ``params``."""

    kind: str  # "oracle" or "relation"
    name: str  # the oracle's first disagreeing rule, or "relation.<name>"
    case: Case
    observed: str
    expected: tuple[str, ...]
    source: Case | None = None
    source_observed: str | None = None
    params: tuple[int | str, ...] = ()

    @property
    def relation(self) -> str | None:
        """The relation's name for a relation finding, None for an oracle one."""
        return self.name.removeprefix("relation.") if self.kind == "relation" else None

    @property
    def compare(self) -> bool:
        """The expectation is "the source's outcome": the reproducer runs and compares both."""
        return self.relation is not None and EXPECTED.get(self.relation, SAME) == SAME

    def signature(self, page: int) -> str:
        """The stable name of the root cause: the rule (or relation) and the shape of the
        case (of the source, for a relation), safe as a folder name."""
        subject = self.source if self.source is not None else self.case
        return _safe(f"{self.name}--{shape(subject, page)}")

    def raw_key(self, page: int) -> tuple[str, ...]:
        """What identifies a sighting before minimization: the rule, the answers and the
        size classes. Minimizing every sighting would cost a sandbox run per shrinking step
        for each, and sightings of one fault come by the thousand."""
        return (self.name, self.observed, self.source_observed or "", size_class(self.case.size, page),
                size_class(self.source.size, page) if self.source else "")


def from_result(result: Result) -> Finding:
    """An oracle finding from a result that disagreed: the first disagreeing rule, and
    every outcome the oracle allowed as the expectation."""
    return Finding("oracle", result.rule, result.case, result.observed, tuple(result.prediction.outcomes))


def from_violation(v: Violation) -> Finding:
    """A relation finding from a broken relation: the variant, what was due, its source."""
    return Finding("relation", f"relation.{v.check.relation}", v.check.variant, v.variant_observed,
                   (v.expected,), v.check.source, v.source_observed, v.check.params)


# --- minimization ---------------------------------------------------------------------

def expectation_problem(finding: Finding, profile: Profile) -> str | None:
    """Why the finding's expectation is not what the oracle predicts for the running
    release, or None when it is."""
    version = profiles.version_of(profile)
    due = predict(finding.case, version)
    if finding.kind == "oracle":
        if tuple(due.outcomes) != finding.expected:
            return f"the expectation {', '.join(finding.expected)} is not {version.release}'s ({', '.join(due.outcomes)})"
        return None
    assert finding.source is not None
    if finding.compare:
        source_due = predict(finding.source, version)
        if due.outcomes != source_due.outcomes:
            return (f"the oracle predicts the difference ({', '.join(source_due.outcomes)} and "
                    f"{', '.join(due.outcomes)}): the relation or the model is wrong, not the kernel")
        return None
    if finding.expected[0] not in due.rules:
        return f"the oracle predicts {', '.join(due.outcomes)} for the variant, not {finding.expected[0]}"
    return None


def describe(case: Case) -> str:
    """A case in words, as a title would say it."""
    words = [f"a {case.size}-byte struct" if case.size <= 1 << 20 else f"size {case.size:#x}"]
    flags = case.field_value("flags")
    if flags:
        words.append("|".join(abi.flag_names(flags)))
    for name in abi.FIELDS[1:]:
        if name in case.refs:
            words.append(f"{name} {case.refs[name]}" if name != "set_tid" else f"set_tid {list(case.set_tid_pids)}")
        elif case.field_value(name):
            words.append(f"{name} {case.field_value(name):#x}" if name in abi.POINTER_FIELDS
                         else f"{name} {case.field_value(name)}")
    tail = sorted(case.tail) if case.tail else [i for i in range(abi.STRUCT_SIZE, len(case.hex or b""))
                                                 if (case.hex or b"")[i]]
    if tail:
        words.append(f"nonzero byte at offset {tail[0]}" + (f" (+{len(tail) - 1} more)" if len(tail) > 1 else ""))
    if case.memory != "mapped":
        words.append(f"memory {case.memory}" + (f" ({case.readable} readable)" if case.readable is not None else ""))
    return ", ".join(words)


def title(finding: Finding, release: str) -> str:
    """The one-line title of a mail about ``finding`` on ``release``."""
    outcome, _, did = finding.observed.partition("{")
    seen = "accepted" if outcome == SUCCESS else f"gave {outcome}"
    if did:
        seen += f" and did {{{did}"
    want = " or ".join(finding.expected)
    return f"clone3: {describe(finding.case)} {seen}, expected {want} ({finding.name}), {release}"


def c_initializer(case: Case) -> str:
    """The case as a ``struct clone_args`` initializer, the way a selftest would write it."""
    lines = ["struct clone_args args = {"]
    for name in abi.FIELDS:
        if name in case.refs:
            lines.append(f"\t.{name} = 0, /* {case.refs[name]}: filled in at run time, see repro.c */")
        elif case.field_value(name):
            value = case.field_value(name)
            comment = f" /* {' | '.join(abi.flag_names(value))} */" if name == "flags" else ""
            lines.append(f"\t.{name} = {value:#x}ULL,{comment}")
    lines.append("};")
    tail = case.tail or {i: b for i, b in enumerate(case.hex or b"") if i >= abi.STRUCT_SIZE and b}
    for offset, byte in sorted(tail.items()):
        lines.append(f"/* past the struct: byte {offset} of the buffer = {byte:#x} */")
    lines.append(f"syscall(__NR_clone3, &args, {case.size}); /* size {case.size}, memory {case.memory} */")
    return "\n".join(lines)


def markdown(meta: dict[str, Any], sightings: dict[str, Any]) -> str:
    """``finding.md``: a finding as a kernel developer pastes it into a mail."""
    env, rule = meta["environment"], RULES.get(meta["rule"])
    lines = [meta["title"], "", f"Status: {meta['status']} ({meta['reason']})", "",
             f"Kernel: {meta['kernel']}", f"Caller: {meta['caller']}", ""]
    if rule is not None:
        lines += [f"Rule: {meta['rule']} ({rule.function}, expected of every kernel since {rule.since})",
                  f"  {rule.text}", ""]
    elif meta["kind"] == "relation":
        lines += [f"Relation: {meta['rule']}: {RELATIONS[meta['rule'].removeprefix('relation.')]}", ""]
    lines += [f"Observed: {meta['observed']}", f"Expected: {', '.join(meta['expected'])}", "",
              "Environment:", f"  uname -r -v -m: {env['uname']}", f"  compiler: {env['compiler']}",
              f"  libc: {env['libc']}"]
    lines += [f"  {line}" for line in env["config"]] or ["  (no kernel config found)"]
    if "source" in meta:
        lines += ["", "Source case (JSON):", "", "    " + json.dumps(meta["source"]),
                  "", "Variant case (JSON):", "", "    " + json.dumps(meta["case"])]
    else:
        lines += ["", "Case (JSON):", "", "    " + json.dumps(meta["case"])]
    lines += ["", "As C:", "", *("    " + line for line in meta["c_initializer"].splitlines()), "",
              f"Reproducer: {meta['repro']} (cc -o repro repro.c && ./repro; exit 1 reproduces)", ""]
    lines += [f"Seen {sightings.get('count', 0)} times, first {sightings.get('first_seen', '-')}, "
              f"last {sightings.get('last_seen', '-')}.", ""]
    return "\n".join(lines)


def fails(meta: dict[str, Any]) -> bool:
    """Whether a saved finding fails a run: a confirmed one, or one that could not be
    checked at all (an unchecked finding is not dismissed either)."""
    return meta.get("status") == CONFIRMED or not meta.get("checked", True)


def read_sightings(folder: str) -> dict[str, Any]:
    """A finding folder's ``sightings.json``; empty where it is missing or unreadable."""
    try:
        with open(os.path.join(folder, "sightings.json")) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def list_signatures(root: str) -> list[str]:
    """The whole findings under ``root`` (a folder being built starts with a dot)."""
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root)
                  if not d.startswith(".") and os.path.exists(os.path.join(root, d, "finding.json")))


