"""Findings: confirmed discrepancies, one per root cause, minimized and saved with a
reproducer that has been checked.

A finding lives in ``<out>/findings/<signature>/``:

- ``case.json``: the minimized case (for a relation, the variant; ``source.json`` beside it);
- ``finding.json``: what was observed and expected, the rule or relation, the kernel, the
  reproducer's check (``status``: ``confirmed`` or ``unconfirmed``, with the reason);
- ``finding.md``: the same as a text a kernel developer can paste into a mail;
- ``repro.c`` (and ``repro.out``, what it printed on the kernel under test);
- ``sightings.json``: how often and when it was seen, with the first and last few raw cases.

The signature is the first disagreeing rule (or the relation) and the minimized case's
*shape* (its size class, the fields it sets, the flags by name, tail and placement): the
same on every run and machine, so that reports can be compared, and blind to what a broken
kernel happened to answer next. A folder is built under a temporary name and renamed into
place whole: readers, and other workers sharing ``<out>``, never see half of one.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..atomic import write_text
from ..model.profile import Profile
from . import environment, repro
from .finding import (
    CONFIRMED,
    UNCONFIRMED,
    Finding,
    c_initializer,
    expectation_problem,
    list_signatures,
    markdown,
    read_sightings,
    shape,
    size_class,
    title,
)

EXAMPLES = 5  # raw cases kept from the first and from the latest sightings


@dataclass
class _Pending:
    count: int = 0
    observed: Counter[str] = field(default_factory=Counter)
    first_seen: str = ""
    last_seen: str = ""
    first: list[dict[str, Any]] = field(default_factory=list)  # the first EXAMPLES sightings
    last: list[dict[str, Any]] = field(default_factory=list)  # the latest EXAMPLES


class Store:
    """The findings of a campaign, under ``<out>/findings/``. ``fault`` names the planted
    fault the kernel under test runs behind, if any: reproducers are checked through it.
    ``elsewhere`` names a kernel under test that is not this machine's (a VM's): its
    reproducers are written but not run here, and their findings stay unchecked (which
    fails a run all the same)."""

    def __init__(self, out: str, profile: Profile, fault: str | None = None, caller: str = "",
                 elsewhere: str | None = None) -> None:
        self.root = os.path.join(out, "findings")
        self.profile = profile
        self.fault = fault
        self.elsewhere = elsewhere
        self.caller = caller or f"uid {os.getuid()}"
        self.signature_of: dict[tuple[str, ...], str] = {}
        self.pending: dict[str, _Pending] = {}
        os.makedirs(self.root, exist_ok=True)
        self.warnings = self._set_aside_incomplete()

    def _set_aside_incomplete(self) -> list[str]:
        """A folder without its finding.json (left by an older version, or by hand) would
        swallow every later sighting of its signature: it is renamed aside, so that the
        finding is saved again, whole."""
        warnings = []
        for name in sorted(os.listdir(self.root)):
            folder = os.path.join(self.root, name)
            if name.startswith(".") or not os.path.isdir(folder) or _readable_finding(folder):
                continue
            aside = os.path.join(self.root, f".incomplete-{name}-{os.getpid()}")
            try:
                os.rename(folder, aside)
            except OSError:
                continue  # another worker moved it first
            warnings.append(f"{folder}: no readable finding.json; set aside as {aside}, to be saved again")
        return warnings

    def known(self, finding: Finding) -> bool:
        """Whether a finding of this signature is saved already (by any worker)."""
        return self._saved(finding.signature(self.profile.page_size))

    def _saved(self, signature: str) -> bool:
        return os.path.exists(os.path.join(self.root, signature, "finding.json"))

    def record(self, finding: Finding, minimizer: Callable[[Finding], Finding]) -> bool:
        """Saves a new finding (minimized, its reproducer checked) or counts a sighting of
        the one it reduces to; True when new."""
        key = finding.raw_key(self.profile.page_size)
        signature = self.signature_of.get(key)
        new = False
        if signature is None:
            small = minimizer(finding)
            signature = self.signature_of[key] = small.signature(self.profile.page_size)
            new = not self._saved(signature) and self._save(signature, small)
        self._sight(signature, finding)
        if new:
            self.flush()
        return new

    def _sight(self, signature: str, finding: Finding) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        pending = self.pending.setdefault(signature, _Pending(first_seen=now))
        pending.count += 1
        pending.observed[finding.observed] += 1
        pending.last_seen = now
        example = {"seen": now, "case": finding.case.to_json(), "observed": finding.observed}
        if len(pending.first) < EXAMPLES:
            pending.first.append(example)
        pending.last = (pending.last + [example])[-EXAMPLES:]

    def _save(self, signature: str, small: Finding) -> bool:
        folder = Path(tempfile.mkdtemp(prefix=f".{signature[:40]}-", dir=self.root))
        cases = [small.source, small.case] if small.compare and small.source is not None else [small.case]
        (folder / "case.json").write_text(json.dumps(small.case.to_json()) + "\n")
        if small.source is not None:
            (folder / "source.json").write_text(json.dumps(small.source.to_json()) + "\n")
        text = title(small, self.profile.release)
        (folder / "repro.c").write_text(repro.render(cases, list(small.expected), text, compare=small.compare))
        problem = expectation_problem(small, self.profile)
        checked = (repro.Check(False, f"not run: the kernel under test is {self.elsewhere}, not this machine's",
                               checked=False) if self.elsewhere else repro.check(folder / "repro.c", self.fault))
        status = CONFIRMED if checked.confirmed and problem is None else UNCONFIRMED
        meta: dict[str, Any] = {
            "signature": signature, "title": text, "kind": small.kind, "rule": small.name,
            "observed": small.observed, "expected": list(small.expected), "status": status,
            "reason": problem or checked.reason, "repro_exit_status": checked.exit_status,
            "checked": checked.checked or problem is not None,
            "size_class": size_class(small.case.size, self.profile.page_size),
            "shape": shape(small.source or small.case, self.profile.page_size),
            "kernel": self.profile.release, "profile": self.profile.source, "fault": self.fault,
            "caller": self.caller, "environment": environment.describe(), "case": small.case.to_json(),
            "c_initializer": c_initializer(small.case), "repro": "repro.c",
        }
        if small.source is not None:
            meta.update(source=small.source.to_json(), source_observed=small.source_observed,
                        params=list(small.params))
        (folder / "finding.json").write_text(json.dumps(meta, indent=2) + "\n")
        (folder / "finding.md").write_text(markdown(meta, {}))
        (folder / "repro").unlink(missing_ok=True)
        try:
            os.rename(folder, os.path.join(self.root, signature))
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)  # another worker saved it first
            return False
        return True

    def flush(self) -> None:
        """Adds the sightings counted since the last flush to each folder's
        ``sightings.json`` (under a lock: workers share ``<out>``)."""
        for signature, pending in list(self.pending.items()):
            folder = os.path.join(self.root, signature)
            if not os.path.isdir(folder):
                continue
            with open(os.path.join(folder, ".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                merged = read_sightings(folder)
                merged["count"] = merged.get("count", 0) + pending.count
                merged.setdefault("first_seen", pending.first_seen)
                merged["last_seen"] = pending.last_seen
                merged["observed"] = dict(Counter(merged.get("observed", {})) + pending.observed)
                merged.setdefault("first", pending.first)
                merged["last"] = (merged.get("last", []) + pending.last)[-EXAMPLES:]
                write_text(os.path.join(folder, "sightings.json"), json.dumps(merged, indent=2) + "\n")
            del self.pending[signature]

    def signatures(self) -> list[str]:
        """The signatures saved so far, by any worker sharing ``<out>``."""
        return list_signatures(self.root)


def _readable_finding(folder: str) -> bool:
    try:
        with open(os.path.join(folder, "finding.json")) as f:
            return isinstance(json.load(f), dict)
    except (OSError, ValueError):
        return False


def gather(root: str) -> list[dict[str, Any]]:
    """Every saved finding under ``root`` with its sightings, each ``finding.md`` rewritten
    with the final counts."""
    found = []
    for signature in list_signatures(root):
        folder = os.path.join(root, signature)
        if not _readable_finding(folder):
            continue  # broken since it was saved (by hand, a disk error): the next run redoes it
        with open(os.path.join(folder, "finding.json")) as f:
            meta = json.load(f)
        sightings = read_sightings(folder)
        write_text(os.path.join(folder, "finding.md"), markdown(meta, sightings))
        found.append({**meta, "sightings": sightings})
    return found
