"""Triage of saved findings: what changed between two runs, and what still reproduces.

Both work on the stable signatures of :mod:`.findings`, so two reports from other
runs, machines or kernels compare signature by signature.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exit_status import HarnessError
from ..model import profile as profiles
from ..model.case import CaseError, parse
from ..model.oracle import predict
from ..model.outcome import Runner
from ..model.profile import Profile
from ..model.relations import EXPECTED, SAME
from ..model.verdict import REPEATS
from .finding import CONFIRMED, list_signatures


def _findings_root(path: Path) -> Path:
    """A report or campaign folder, or its ``findings/`` folder itself."""
    return path / "findings" if (path / "findings").is_dir() else path


def load(path: Path) -> dict[str, dict[str, Any]]:
    """signature -> finding.json, from a folder (report, campaign or findings) or a
    report.json. Raises HarnessError naming what it cannot read."""
    if path.is_file():
        try:
            report = json.loads(path.read_text())
            return {f["signature"]: f for f in report["findings"]}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise HarnessError(f"{path}: not a clone3-fuzz report.json ({e})") from None
    if not path.is_dir():
        raise HarnessError(f"{path}: no such report, campaign or findings folder")
    root = _findings_root(path)
    found = {}
    for signature in list_signatures(str(root)):
        try:
            found[signature] = json.loads((root / signature / "finding.json").read_text())
        except (OSError, ValueError) as e:
            raise HarnessError(f"{root / signature / 'finding.json'}: unreadable ({e})") from None
    return found


@dataclass(frozen=True)
class Comparison:
    """Standing findings of two runs, by signature: new in the later, fixed, or in both."""

    new: list[str]
    fixed: list[str]
    still: list[str]

    def to_json(self) -> dict[str, list[str]]:
        """The three lists as JSON."""
        return {"new": self.new, "fixed": self.fixed, "still": self.still}


def compare(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> Comparison:
    """Standing findings only: a finding its own reproducer refuted is no finding here."""
    def standing(found: dict[str, dict[str, Any]]) -> set[str]:
        return {s for s, f in found.items() if f.get("status", CONFIRMED) == CONFIRMED or not f.get("checked", True)}

    before, after = standing(old), standing(new)
    return Comparison(sorted(after - before), sorted(before - after), sorted(before & after))


@dataclass(frozen=True)
class Recheck:
    """A saved finding replayed on the running kernel."""

    signature: str
    reproduces: bool
    observed: list[str]  # what each of the REPEATS runs gave (for a relation: "source -> variant")
    expected: str


def recheck(path: Path, sandbox: Runner, profile: Profile) -> list[Recheck]:
    """Replays each saved finding on the running kernel, REPEATS times; it reproduces when
    every run still disagrees with the running release's own prediction (a relation: is
    still broken)."""
    root = _findings_root(path)
    version = profiles.version_of(profile)
    out = []
    for signature, meta in load(path).items():
        try:
            case = parse(meta["case"])
            source = parse(meta["source"]) if "source" in meta else None
        except (CaseError, KeyError) as e:
            raise HarnessError(f"{root / signature / 'finding.json'}: {e}") from None
        if source is None:
            due = predict(case, version)
            seen = [o.key for o in sandbox.run([case] * REPEATS)]
            out.append(Recheck(signature, all(o not in due.rules for o in seen), seen, ", ".join(due.outcomes)))
            continue
        relation = meta["rule"].removeprefix("relation.")
        outcomes = [o.key for o in sandbox.run([source, case] * REPEATS)]
        pairs = list(zip(outcomes[::2], outcomes[1::2]))
        same = EXPECTED.get(relation, SAME) == SAME
        broken = [v != (s if same else EXPECTED[relation]) for s, v in pairs]
        out.append(Recheck(signature, all(broken), [f"{s} -> {v}" for s, v in pairs],
                           "the source's outcome" if same else EXPECTED[relation]))
    return out
