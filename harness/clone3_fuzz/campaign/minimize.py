"""Minimization: the simplest form of a finding that is still true. It runs cases through
any :class:`~clone3_fuzz.model.outcome.Runner` and judges them with the model alone."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

from ..model import abi
from ..model import profile as profiles
from ..model.case import SET_TID_LIST, Case
from ..model.oracle import predict
from ..model.outcome import Runner
from ..model.profile import Profile
from ..model.relations import variant_of
from ..model.verdict import determined
from .finding import Finding


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
    # Fields the kernel checks as a pair go as a pair: half of one fails a check of its own
    # (or, for pidfd == parent_tid, no longer meets the other half).
    for pair in (("stack", "stack_size"), ("set_tid", "set_tid_size"), ("pidfd", "parent_tid")):
        if all(name in case.values or name in case.refs for name in pair):
            out.append(replace(case, values={k: v for k, v in case.values.items() if k not in pair},
                               refs={k: v for k, v in case.refs.items() if k not in pair},
                               set_tid_pids=() if "set_tid" in pair else case.set_tid_pids))
    out += [replace(case, tail={k: v for k, v in case.tail.items() if k != offset}) for offset in case.tail]
    if case.memory != "mapped":
        out.append(replace(case, memory="mapped", readable=None))
    if case.memory == "guard" and case.placed_readable:
        out += [replace(case, readable=n) for n in (0, case.placed_readable // 2)]  # fewer bytes mapped
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


def minimize(finding: Finding, sandbox: Runner, profile: Profile, rounds: int = 120,
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
    rule = due.rule_for(observed)
    for _ in range(rounds):
        if known(replace(finding, case=case, name=rule)):
            break
        candidates = _simpler(case)
        if not candidates:
            break
        seen = [o.key for o in sandbox.run(candidates)]
        # The same wrong answer may come from an earlier rule (a check that pre-empts the
        # others); the same rule may give another wrong answer (what the broken check lets
        # through is then judged by later ones). Either way it is the same fault.
        keep = next(((c, o) for c, o in zip(candidates, seen) if _excluded(c, o, (profile, version))
                     and (o == observed or predict(c, version).rule_for(o) == rule)), None)
        if keep is None:
            break
        case, observed = keep
        rule = predict(case, version).rule_for(observed)
    due = predict(case, version)
    return replace(finding, case=case, observed=observed, name=due.rule_for(observed), expected=tuple(due.outcomes))


def _minimize_relation(finding: Finding, sandbox: Runner, profile: Profile, rounds: int,
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
        outcomes = [o.key for o in sandbox.run([case for pair in pairs for case in pair])]
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


