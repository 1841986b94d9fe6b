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
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from . import abi, environment, repro
from . import profile as profiles
from .case import SET_TID_LIST, Case
from .oracle import RULES, predict
from .profile import Profile
from .relations import EXPECTED, RELATIONS, SAME, Violation, variant_of
from .sandbox import Sandbox
from .verdict import Result, determined

CONFIRMED, UNCONFIRMED = "confirmed", "unconfirmed"
EXAMPLES = 5  # raw cases kept from the first and from the latest sightings


def size_class(size: int, page: int) -> str:
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
        return self.name.removeprefix("relation.") if self.kind == "relation" else None

    @property
    def compare(self) -> bool:
        """The expectation is "the source's outcome": the reproducer runs and compares both."""
        return self.relation is not None and EXPECTED.get(self.relation, SAME) == SAME

    def signature(self, page: int) -> str:
        subject = self.source if self.source is not None else self.case
        return _safe(f"{self.name}--{shape(subject, page)}")

    def raw_key(self, page: int) -> tuple[str, ...]:
        """What identifies a sighting before minimization: the rule, the answers and the
        size classes. Minimizing every sighting would cost a sandbox run per shrinking step
        for each, and sightings of one fault come by the thousand."""
        return (self.name, self.observed, self.source_observed or "", size_class(self.case.size, page),
                size_class(self.source.size, page) if self.source else "")


def from_result(result: Result) -> Finding:
    return Finding("oracle", result.rule, result.case, result.observed, tuple(result.prediction.outcomes))


def from_violation(v: Violation) -> Finding:
    return Finding("relation", f"relation.{v.check.relation}", v.check.variant, v.variant_observed,
                   (v.expected,), v.check.source, v.source_observed, v.check.params)


# --- minimization ---------------------------------------------------------------------

def _simpler(case: Case) -> list[Case]:
    """Each case one step simpler than ``case``, the boldest steps first."""
    bare = Case(size=case.size, memory=case.memory, readable=case.readable)
    out = [bare] if case != bare else []
    if case.hex is not None:
        image = case.hex
        tail = {i: b for i, b in enumerate(image) if i >= abi.STRUCT_SIZE and b}
        if len(tail) <= 8:  # the same bytes as fields and a tail, which shrink further
            values = {k: v for k, v in abi.decode(image).items() if v}
            out.append(Case(size=case.size, values=values, tail=tail, memory=case.memory, readable=case.readable))
        out += [replace(case, hex=image[:n]) for n in (abi.STRUCT_SIZE, 64) if n < len(image)]
    for name in case.values:
        out.append(replace(case, values={k: v for k, v in case.values.items() if k != name}))
    for name in case.refs:
        out.append(replace(case, refs={k: v for k, v in case.refs.items() if k != name},
                           set_tid_pids=() if name == "set_tid" else case.set_tid_pids))
    out += [replace(case, tail={k: v for k, v in case.tail.items() if k != offset}) for offset in case.tail]
    if case.memory != "mapped":
        out.append(replace(case, memory="mapped", readable=None))
    flags = case.values.get("flags", 0)
    bits = [1 << b for b in range(64) if flags >> b & 1]
    if len(bits) > 1:
        out += [replace(case, values={**case.values, "flags": bit}) for bit in bits]
    for size in (abi.STRUCT_SIZE, abi.CLONE_ARGS_SIZE_VER0, case.size // 2):
        if 0 <= size < case.size:
            out.append(replace(case, size=size))
    if len(case.tail) == 1 and case.size > abi.STRUCT_SIZE + 1:
        out.append(replace(case, size=abi.STRUCT_SIZE + 1, tail={abi.STRUCT_SIZE: next(iter(case.tail.values()))}))
    out += _simpler_set_tid(case)
    if len(bits) > 1:
        out += [replace(case, values={**case.values, "flags": flags & ~bit}) for bit in bits]
    if case.hex is not None:
        out += [replace(case, hex=case.hex[:i] + b"\0" + case.hex[i + 1:]) for i in range(len(case.hex)) if case.hex[i]]
    if case.tail:
        end = max(case.tail) + 1
        if end < case.size:
            out.append(replace(case, size=end))
        for offset, byte in case.tail.items():
            rest = {k: v for k, v in case.tail.items() if k != offset}
            if offset > abi.STRUCT_SIZE and abi.STRUCT_SIZE not in rest:
                out.append(replace(case, tail={**rest, abi.STRUCT_SIZE: byte}))  # the size shrinks next round
            if byte != 1:
                out.append(replace(case, tail={**rest, offset: 1}))
    if case.size > 0:
        out.append(replace(case, size=case.size - 1))  # the smallest step, the last resort
    return out


def _simpler_set_tid(case: Case) -> list[Case]:
    """A shorter pid list (with set_tid_size following it), and a smaller set_tid_size."""
    out = []
    pids, size = case.set_tid_pids, case.values.get("set_tid_size", 0)
    if case.refs.get("set_tid") == SET_TID_LIST and len(pids) > 1:
        for i in range(len(pids)):
            shorter = pids[:i] + pids[i + 1:]
            values = {**case.values, "set_tid_size": len(shorter)} if size == len(pids) else case.values
            out.append(replace(case, set_tid_pids=shorter, values=values))
    for smaller in sorted({1, len(pids)}):
        if 0 < smaller < size:
            out.append(replace(case, values={**case.values, "set_tid_size": smaller}))
    return out


def _excluded(case: Case, observed: str, profiles_: Sequence[Profile]) -> bool:
    return all(observed not in predict(case, p).rules for p in profiles_)


def minimize(finding: Finding, sandbox: Sandbox, profile: Profile, rounds: int = 120,
             known: Callable[[Finding], bool] = lambda f: False) -> Finding:
    """The simplest form of ``finding`` that is still true, one step at a time, each round's
    candidates in one batch.

    An oracle finding keeps a candidate only while the prediction still excludes what the
    kernel answers for it, both the live profile's and the running release's own
    (``profile.version_of``: the expectation a reproducer states is the version's), and
    while the first disagreeing rule stays the same: the root cause, not whatever a broken
    kernel happened to answer next (or while the answer stays the same and an earlier rule
    takes over). A relation finding shrinks its source and rebuilds
    the variant through the relation at each step, so both stay in the relation's terms;
    a step is kept while the relation still fails.

    It stops early where the finding has become one ``known`` already: the same root
    cause, seen before."""
    version = profiles.version_of(profile)
    if finding.kind == "relation":
        return _minimize_relation(finding, sandbox, profile, rounds, known)
    case, observed = replace(finding.case, note=""), finding.observed
    due = predict(case, version)
    if observed in due.rules:
        return replace(finding, case=case)  # only the live profile excludes it: the check will say so
    rule = due.rule
    for _ in range(rounds):
        if known(replace(finding, case=case, name=rule)):
            break
        candidates = _simpler(case)
        if not candidates:
            break
        seen = [o.observed for o in sandbox.run(candidates)]
        # The same wrong answer may come from an earlier rule (a check that pre-empts the
        # others); the same rule may give another wrong answer (what the broken check lets
        # through is then judged by later ones). Either way it is the same fault.
        keep = next(((c, o) for c, o in zip(candidates, seen) if _excluded(c, o, (profile, version))
                     and (o == observed or predict(c, version).rule == rule)), None)
        if keep is None:
            break
        case, observed = keep
        rule = predict(case, version).rule
    due = predict(case, version)
    return replace(finding, case=case, observed=observed, name=due.rule, expected=tuple(due.outcomes))


def _minimize_relation(finding: Finding, sandbox: Sandbox, profile: Profile, rounds: int,
                       known: Callable[[Finding], bool]) -> Finding:
    assert finding.source is not None and finding.relation is not None
    source, variant = replace(finding.source, note=""), finding.case
    for _ in range(rounds):
        if known(replace(finding, source=source, case=variant)):
            break
        pairs = []
        for candidate in _simpler(source):
            shrunk = variant_of(finding.relation, finding.params, candidate, profile)
            if shrunk is None or not determined(predict(shrunk, profile)):
                continue
            if finding.compare and not determined(predict(candidate, profile)):
                continue
            pairs.append((candidate, shrunk))
        if not pairs:
            break
        outcomes = [o.observed for o in sandbox.run([case for pair in pairs for case in pair])]
        keep = next((pair + (outcomes[2 * i], outcomes[2 * i + 1]) for i, pair in enumerate(pairs)
                     if _broken(finding, outcomes[2 * i], outcomes[2 * i + 1])), None)
        if keep is None:
            break
        source, variant, source_observed, observed = keep
        finding = replace(finding, source_observed=source_observed, observed=observed,
                          expected=(source_observed,) if finding.compare else finding.expected)
    return replace(finding, source=source, case=variant)


def _broken(finding: Finding, source_observed: str, variant_observed: str) -> bool:
    """Whether the relation still fails; harness outcomes prove nothing either way."""
    if source_observed.startswith("harness") or variant_observed.startswith("harness"):
        return False
    return variant_observed != (source_observed if finding.compare else finding.expected[0])


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


# --- the text for a mail ----------------------------------------------------------------

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
    seen = "accepted" if finding.observed == "success" else f"gave {finding.observed}"
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


# --- the store ------------------------------------------------------------------------

@dataclass
class _Pending:
    count: int = 0
    observed: Counter[str] = field(default_factory=Counter)
    first_seen: str = ""
    last_seen: str = ""
    examples: list[dict[str, Any]] = field(default_factory=list)


class Store:
    """The findings of a campaign, under ``<out>/findings/``. ``fault`` names the planted
    fault the kernel under test runs behind, if any: reproducers are checked through it."""

    def __init__(self, out: str, profile: Profile, fault: str | None = None, caller: str = "") -> None:
        self.root = os.path.join(out, "findings")
        self.profile = profile
        self.fault = fault
        self.caller = caller or f"uid {os.getuid()}"
        self.signature_of: dict[tuple[str, ...], str] = {}
        self.pending: dict[str, _Pending] = {}
        os.makedirs(self.root, exist_ok=True)

    def known(self, finding: Finding) -> bool:
        """Whether a finding of this signature is saved already (by any worker)."""
        return os.path.exists(os.path.join(self.root, finding.signature(self.profile.page_size), "finding.json"))

    def record(self, finding: Finding, minimizer: Callable[[Finding], Finding]) -> bool:
        """Saves a new finding (minimized, its reproducer checked) or counts a sighting of
        the one it reduces to; True when new."""
        key = finding.raw_key(self.profile.page_size)
        signature = self.signature_of.get(key)
        new = False
        if signature is None:
            small = minimizer(finding)
            signature = self.signature_of[key] = small.signature(self.profile.page_size)
            new = not os.path.exists(os.path.join(self.root, signature, "finding.json")) and self._save(signature, small)
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
        pending.examples = (pending.examples + [example])[-EXAMPLES:]

    def _save(self, signature: str, small: Finding) -> bool:
        folder = Path(tempfile.mkdtemp(prefix=f".{signature[:40]}-", dir=self.root))
        cases = [small.source, small.case] if small.compare and small.source is not None else [small.case]
        (folder / "case.json").write_text(json.dumps(small.case.to_json()) + "\n")
        if small.source is not None:
            (folder / "source.json").write_text(json.dumps(small.source.to_json()) + "\n")
        text = title(small, self.profile.release)
        (folder / "repro.c").write_text(repro.render(cases, list(small.expected), text, compare=small.compare))
        problem = expectation_problem(small, self.profile)
        checked = repro.check(folder / "repro.c", self.fault)
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
                merged.setdefault("first", pending.examples[:EXAMPLES])
                merged["last"] = (merged.get("last", []) + pending.examples)[-EXAMPLES:]
                _write(os.path.join(folder, "sightings.json"), json.dumps(merged, indent=2) + "\n")
            del self.pending[signature]

    def signatures(self) -> list[str]:
        return list_signatures(self.root)


def gather(root: str) -> list[dict[str, Any]]:
    """Every saved finding under ``root`` with its sightings, each ``finding.md`` rewritten
    with the final counts."""
    found = []
    for signature in list_signatures(root):
        folder = os.path.join(root, signature)
        with open(os.path.join(folder, "finding.json")) as f:
            meta = json.load(f)
        sightings = read_sightings(folder)
        _write(os.path.join(folder, "finding.md"), markdown(meta, sightings))
        found.append({**meta, "sightings": sightings})
    return found


def fails(meta: dict[str, Any]) -> bool:
    """Whether a saved finding fails a run: a confirmed one, or one that could not be
    checked at all (an unchecked finding is not dismissed either)."""
    return meta.get("status") == CONFIRMED or not meta.get("checked", True)


def read_sightings(folder: str) -> dict[str, Any]:
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


def _write(path: str, text: str) -> None:
    """Whole or not at all: a reader never sees half a file."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
