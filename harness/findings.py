"""Findings: discrepancies deduplicated by signature, minimized, and saved with a reproducer.

A finding lives in ``<out>/findings/<signature>/``: ``case.json`` (the minimized case),
``finding.json`` (what was observed and expected, the rule or relation, the kernel, when
it was first and last seen, how often), ``repro.c``, and ``hits`` (one line per sighting).
Folders are created with ``mkdir``, so workers sharing ``<out>`` never write one twice.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from . import abi, repro
from .case import Case
from .oracle import predict
from .profile import Profile
from .relations import SAME, Violation
from .sandbox import Sandbox
from .verdict import Result


def size_class(size: int, profile: Profile) -> str:
    if size < abi.CLONE_ARGS_SIZE_VER0:
        return "under-ver0"
    if size in (64, 80, 88):
        return f"ver{(64, 80, 88).index(size)}"
    if size < abi.STRUCT_SIZE:
        return "between-versions"
    if size <= profile.page_size:
        return "tail"
    return "over-page"


@dataclass(frozen=True)
class Finding:
    """One disagreement: ``case`` gave ``observed`` where ``expected`` was due."""

    kind: str  # "oracle" or "relation"
    name: str  # the oracle's rule, or the relation's name
    case: Case
    observed: str
    expected: tuple[str, ...]
    source: Case | None = None  # a relation's source case
    fixed: bool = True  # the expectation holds for the case alone (not "the source's outcome")

    def signature(self, profile: Profile) -> str:
        parts = [self.name, self.observed, "+".join(self.expected), size_class(self.case.size, profile)]
        return re.sub(r"[^A-Za-z0-9_.+-]", "_", "--".join(parts))


def from_result(result: Result) -> Finding:
    return Finding("oracle", result.rule, result.case, result.observed, tuple(result.prediction.outcomes))


def from_violation(v: Violation) -> Finding:
    return Finding("relation", f"relation.{v.check.relation}", v.check.variant, v.variant_observed,
                   (v.expected,), v.check.source, fixed=v.check.expected != SAME)


# --- minimization ---------------------------------------------------------------------

def _simpler(case: Case) -> list[Case]:
    """Each case one step simpler than ``case``."""
    out = []
    if case.hex is not None:
        image = case.hex
        out += [replace(case, hex=image[:n]) for n in (abi.STRUCT_SIZE, 64) if n < len(image)]
        out += [replace(case, hex=image[:i] + b"\0" + image[i + 1:]) for i in range(len(image)) if image[i]]
    for name, value in case.values.items():
        out.append(replace(case, values={k: v for k, v in case.values.items() if k != name}))
        if name == "flags":
            out += [replace(case, values={**case.values, "flags": value & ~(1 << b)})
                    for b in range(64) if value >> b & 1 and value != 1 << b]
    for name in case.refs:
        out.append(replace(case, refs={k: v for k, v in case.refs.items() if k != name},
                           set_tid_pids=() if name == "set_tid" else case.set_tid_pids))
    out += [replace(case, tail={k: v for k, v in case.tail.items() if k != offset}) for offset in case.tail]
    if case.memory != "mapped":
        out.append(replace(case, memory="mapped", readable=None))
    for size in (abi.STRUCT_SIZE, abi.CLONE_ARGS_SIZE_VER0, case.size // 2, case.size - 1):
        if 0 <= size < case.size:
            out.append(replace(case, size=size))
    return out


def minimize(finding: Finding, sandbox: Sandbox, profile: Profile, rounds: int = 40) -> Finding:
    """The simplest case, step by step, that still gives the same observation, against the
    same expectation. Each round runs every candidate in one batch."""
    def still(candidates: Sequence[Case]) -> list[bool]:
        observed = [o.observed for o in sandbox.run(candidates)]
        if finding.kind == "oracle":
            return [o == finding.observed and tuple(predict(c, profile).outcomes) == finding.expected
                    for c, o in zip(candidates, observed)]
        return [o == finding.observed for o in observed]

    if not finding.fixed:
        return finding  # its expectation comes from a source case that shrinking would change
    case = replace(finding.case, note="")
    for _ in range(rounds):
        candidates = _simpler(case)
        keep = next((c for c, ok in zip(candidates, still(candidates)) if ok), None) if candidates else None
        if keep is None:
            break
        case = keep
    return replace(finding, case=case)


# --- the store ------------------------------------------------------------------------

class Store:
    """The findings of a campaign, under ``<out>/findings/``."""

    def __init__(self, out: str, profile: Profile) -> None:
        self.root = os.path.join(out, "findings")
        self.profile = profile
        os.makedirs(self.root, exist_ok=True)

    def record(self, finding: Finding, minimizer: Callable[[Finding], Finding]) -> bool:
        """Saves a new finding (minimized first) or counts a sighting; True when new."""
        signature = finding.signature(self.profile)
        folder = os.path.join(self.root, signature)
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        try:
            os.mkdir(folder)
        except FileExistsError:
            with open(os.path.join(folder, "hits"), "a") as f:
                f.write(f"{now} {finding.case.dumps()}\n")
            return False
        small = minimizer(finding)
        meta: dict[str, Any] = {
            "signature": signature, "kind": small.kind, "rule": small.name, "observed": small.observed,
            "expected": list(small.expected), "size_class": size_class(small.case.size, self.profile),
            "first_seen": now, "kernel": self.profile.release, "profile": self.profile.source,
            "original": finding.case.to_json(), "case": small.case.to_json(),
        }
        if small.source is not None:
            meta["source"] = small.source.to_json()
        _write(os.path.join(folder, "case.json"), json.dumps(small.case.to_json()) + "\n")
        _write(os.path.join(folder, "repro.c"), repro.render(small.case, list(small.expected), signature))
        _write(os.path.join(folder, "finding.json"), json.dumps(meta, indent=2) + "\n")
        with open(os.path.join(folder, "hits"), "a") as f:
            f.write(f"{now} {finding.case.dumps()}\n")
        return True

    def signatures(self) -> list[str]:
        return sorted(d for d in os.listdir(self.root) if os.path.exists(os.path.join(self.root, d, "finding.json")))


def _write(path: str, text: str) -> None:
    """Whole or not at all: a reader never sees half a file."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
