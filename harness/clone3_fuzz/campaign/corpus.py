"""The regression corpus: minimized cases with the outcome expected on each kernel.

``corpus/regressions/*.jsonl``, one entry per line::

    {"case": {...}, "expected": {"5.3": ["E2BIG"], "6.3": ["success"]}, "note": "why"}

``expected`` maps a kernel version to the outcomes the kernel may give there (for a root
caller; the case is chosen so that privilege does not matter, or the note says so). On a
kernel between two listed versions, the nearest lower one applies; a listed stable
release (``6.1.20``) applies within its own series only, where a backport landed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from ..model.case import Case, CaseError, parse, strict_json
from ..model.profile import Release, parse_release


def corpus_path(name: str) -> Path:
    """A file of the shipped corpus: inside the installed package (``clone3_fuzz/corpus/``,
    copied there by the build), or in the checkout's ``corpus/``, its source."""
    here = Path(__file__).resolve()
    shipped = here.parent.parent / "corpus" / name
    return shipped if shipped.exists() else here.parents[3] / "corpus" / name


SEEDS = corpus_path("seeds.jsonl")
#: Seeds naming the scratch cgroup (``"cgroup": "cgroup2"``): replayed and fuzzed only
#: where the caller can have one, so that ``run -f seeds.jsonl`` works everywhere.
CGROUP2_SEEDS = corpus_path("seeds-cgroup2.jsonl")
REGRESSIONS = corpus_path("regressions")


@dataclass(frozen=True)
class Regression:
    """One regression entry: a case and the outcomes due on each listed kernel version."""

    where: str
    case: Case
    expected: Mapping[str, list[str]]
    note: str

    def expected_on(self, version: Release) -> list[str] | None:
        """The outcomes due on ``version``: those of the nearest listed release of its own
        stable series at or below it (``6.1.20`` for 6.1.192: a backport), else of the
        nearest listed mainline version (``6.2`` for 6.2.3, which the backport had not
        reached)."""
        known = sorted((parse_release(v), outcomes) for v, outcomes in self.expected.items())
        series = [outcomes for v, outcomes in known if v[:2] == version[:2] and v[2] and v <= version]
        mainline = [outcomes for v, outcomes in known if not v[2] and v[:2] <= version[:2]]
        return (series or mainline or [None])[-1]


def _entry(obj: object, where: str) -> Regression:
    if not isinstance(obj, dict) or set(obj) - {"case", "expected", "note"} or "case" not in obj:
        raise CaseError("regression", "expected {\"case\": {...}, \"expected\": {VERSION: [OUTCOME, ...]}, \"note\": ...}",
                        where)
    expected = obj.get("expected", {})
    if not isinstance(expected, dict) or not all(isinstance(v, list) for v in expected.values()):
        raise CaseError("expected", "expected {VERSION: [OUTCOME, ...]}", where)
    for version in expected:
        try:
            parse_release(version)
        except ValueError as e:
            raise CaseError("expected", str(e), where) from None
    try:
        case = parse(obj["case"])
    except CaseError as e:
        raise e.located(where) from None
    return Regression(where, case, expected, str(obj.get("note", "")))


def read_regressions(folder: Path = REGRESSIONS) -> Iterator[Regression | CaseError]:
    """Every entry of every file, or the located error in its place (the rest still loads)."""
    for path in sorted(folder.glob("*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            where = f"{path.name}:{number}"
            try:
                yield _entry(strict_json(line), where)
            except CaseError as e:
                yield e if e.where else e.located(where)
