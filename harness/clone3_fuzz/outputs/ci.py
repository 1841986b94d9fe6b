"""The CI job: one command that says whether this kernel (or sandbox, or emulator) keeps
the clone3 contract, within a time budget, with an exit status and a report.

In order: probe (a missing clone3 ends it here, exit 3); replay the corpus (the seeds and
the regressions) with every relation; draw the ABI map; fuzz for the time that is left.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from .. import SCHEMA_VERSION, __version__
from ..campaign import supervisor as campaign
from ..campaign.corpus import CGROUP2_SEEDS, SEEDS, Regression, read_regressions
from ..campaign.decode import decode
from ..campaign.finding import Finding, fails, from_result, from_violation
from ..campaign.findings import Store, gather
from ..campaign.minimize import minimize
from ..exit_status import ExitStatus, HarnessError
from ..model import abi
from ..model import profile as profiles
from ..model.case import Case, CaseError, parse, read_jsonl
from ..model.outcome import base, matches
from ..model.oracle import predict
from ..model.verdict import Evaluation, evaluate, violation_json
from ..runtime.probe import UNAVAILABLE, live_profile, probe, unavailable_status
from ..runtime.target import classify
from ..runtime.sandbox import FAULTS, Sandbox
from . import report

REPORT_MARGIN = 5  # seconds kept for writing the report
STARTUP = 15  # seconds of campaign after which one that ran no case is the harness's failure
TAIL_OFFSETS = ["none", 88, 95, 96, 128, 512, 1024, 2048, 4095]


#: The effects panel: each output a flag asks for, on a call that succeeds (label, case).
_WORDS = {"pidfd": "scratch", "child_tid": "scratch", "parent_tid": "scratch"}
EFFECT_PANEL: list[tuple[str, dict[str, Any]]] = [
    ("exit_signal 0", {"size": 88, **_WORDS}),
    ("exit_signal SIGCHLD", {"size": 88, "exit_signal": "SIGCHLD", **_WORDS}),
    ("exit_signal SIGUSR1", {"size": 88, "exit_signal": "SIGUSR1", **_WORDS}),
    ("exit_signal 34", {"size": 88, "exit_signal": 34, **_WORDS}),
    ("exit_signal 64", {"size": 88, "exit_signal": 64, **_WORDS}),
    ("CLONE_PIDFD", {"size": 88, "flags": "CLONE_PIDFD", "exit_signal": "SIGCHLD", **_WORDS}),
    ("CLONE_PARENT_SETTID", {"size": 88, "flags": "CLONE_PARENT_SETTID", "exit_signal": "SIGCHLD", **_WORDS}),
    ("CLONE_CHILD_SETTID", {"size": 88, "flags": "CLONE_CHILD_SETTID", "exit_signal": "SIGCHLD", **_WORDS}),
    ("CLONE_VM|CLONE_CHILD_SETTID", {"size": 88, "flags": "CLONE_VM|CLONE_CHILD_SETTID", "exit_signal": "SIGCHLD",
                                     **_WORDS}),
    ("CLONE_VM|CLONE_CHILD_CLEARTID", {"size": 88, "flags": "CLONE_VM|CLONE_CHILD_CLEARTID", "exit_signal": "SIGCHLD",
                                       **_WORDS}),
    ("CLONE_VFORK", {"size": 88, "flags": "CLONE_VFORK", "exit_signal": "SIGCHLD", **_WORDS}),
    ("a thread (pthread_create)", {"size": 88, "flags": "CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|"
                                   "CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID",
                                   "tls": "scratch", **_WORDS}),
    ("CLONE_PARENT|CLONE_PIDFD", {"size": 88, "flags": "CLONE_PARENT|CLONE_PIDFD", **_WORDS}),
    ("CLONE_NEWUSER|CLONE_NEWPID", {"size": 88, "flags": "CLONE_NEWUSER|CLONE_NEWPID", "exit_signal": "SIGCHLD"}),
    ("set_tid", {"size": 88, "set_tid": [4321], "exit_signal": "SIGCHLD"}),
    ("CLONE_INTO_CGROUP", {"size": 88, "flags": "CLONE_INTO_CGROUP|CLONE_PIDFD", "cgroup": "cgroup2",
                           "exit_signal": "SIGCHLD", **_WORDS}),
    ("EBADF after the pidfd", {"size": 88, "flags": "CLONE_INTO_CGROUP|CLONE_PIDFD", "cgroup": 999, **_WORDS}),
]


PANEL = "effects:"  # where the replay names the effects panel's cases
BYPASS = ("seccomp bypass: the profile denies {clone_denies} to clone by its flags argument, but clone3, whose "
          "flags sit behind a pointer no filter can read, went through with {clone3_lets_through}")


def effect_cases(profile: profiles.Profile) -> list[tuple[str, Case]]:
    """The effects panel's cases, named for the replay, which judges them like the corpus
    (the one with a scratch cgroup only where this caller can have one)."""
    return [(f"{PANEL}{label}", parse(case)) for label, case in EFFECT_PANEL
            if profile.cgroup2_usable or case.get("cgroup") != "cgroup2"]


def effects_panel(evaluation: Evaluation) -> list[dict[str, Any]]:
    """What each output flag produced on this kernel, beside what the oracle expects."""
    return [{"label": r.where.removeprefix(PANEL), "case": r.case.to_json(), "observed": r.observed,
             "expected": r.prediction.outcomes} for r in evaluation.results if r.where.startswith(PANEL)]


def _abi_sizes(page: int) -> list[int]:
    return [0, 32, 63, 64, 72, 80, 84, 88, 96, 128, 512, 1024, 2048, page - 1, page, page + 1, 2 * page]


def abi_map(sandbox: Sandbox, profile: profiles.Profile) -> dict[str, Any]:
    """Outcomes over size x tail offset, and for each flag bit alone: this kernel at a
    glance, beside what the oracle expects of each cell."""
    sizes = _abi_sizes(profile.page_size)
    grid_cases = [parse({"size": s, **({} if o == "none" else {"tail": {str(o): 1}})})
                  for s in sizes for o in TAIL_OFFSETS]
    flag_cases = [parse({"size": abi.STRUCT_SIZE, "flags": hex(1 << bit)}) for bit in range(64)]
    cases = grid_cases + flag_cases
    outcomes = [o.observed for o in sandbox.run(cases)]
    expected = [predict(c, profile).bases for c in cases]
    width = len(TAIL_OFFSETS)
    grid = [outcomes[i * width:(i + 1) * width] for i in range(len(sizes))]
    grid_expected = [expected[i * width:(i + 1) * width] for i in range(len(sizes))]
    flags = [{"bit": bit, "name": (abi.flag_names(1 << bit) or [""])[0], "observed": outcomes[len(grid_cases) + bit],
              "expected": expected[len(grid_cases) + bit]} for bit in range(64)]
    return {"sizes": sizes, "tail_offsets": TAIL_OFFSETS, "grid": grid, "expected": grid_expected, "flags": flags}


def _replay_cases(seeds: list[Path]) -> tuple[list[tuple[str, Case]], list[Regression], list[str]]:
    named: list[tuple[str, Case]] = []
    problems = []
    for path in seeds:
        with open(path, "rb") as stream:
            for where, item in read_jsonl(stream, path.name):
                if isinstance(item, CaseError):
                    problems.append(f"{item} (skipped)")
                else:
                    named.append((where, item))
    regressions = []
    for entry in read_regressions():
        if isinstance(entry, CaseError):
            problems.append(f"{entry} (skipped)")
        else:
            regressions.append(entry)
            named.append((entry.where, entry.case))
    return named, regressions, problems


def _record(evaluation: Evaluation, runner: Any, profile: profiles.Profile, store: Store, data: dict[str, Any]) -> None:
    """What disagrees becomes a finding like a campaign's (minimized, its reproducer
    checked), and each raw discrepancy names its finding; flaky results and what the harness
    could not run are kept too."""
    def record(finding: Finding, raw: dict[str, Any]) -> dict[str, Any]:
        store.record(finding, lambda f: minimize(f, runner, profile, known=store.known))
        return {**raw, "signature": store.signature_of[finding.raw_key(profile.page_size)]}

    data["discrepancies"] += [record(from_result(r), r.to_json())
                              for r in evaluation.discrepancies + evaluation.variant_discrepancies]
    data["discrepancies"] += [record(from_violation(v), violation_json(v)) for v in evaluation.violations]
    data["flaky"] += [f.to_json() for f in evaluation.flaky]
    harness = data.setdefault("harness", {})
    for cause in (f"{r.observed}: {r.outcome.detail}" for r in evaluation.harness):
        harness[cause] = harness.get(cause, 0) + 1
    store.flush()


def _fuzz_target(runner: Any, profile: profiles.Profile, store: Store, data: dict[str, Any], until: float,
                 progress: Callable[[str], object]) -> Evaluation:
    """Random inputs through the campaign's decoder, run in ``runner`` (another kernel's),
    each batch judged with every relation; what disagrees is recorded like the replay's.
    Returns everything judged, as one evaluation."""
    rng, started = random.Random(0), time.monotonic()
    judged = Evaluation([])
    while time.monotonic() < until:
        cases = [case for _ in range(8) for case in decode(rng.randbytes(rng.randrange(16, 512)), profile.page_size)]
        named = [(f"fuzz:{len(judged.results) + i}", case) for i, case in enumerate(cases)]
        evaluation = evaluate(named, runner, profile, relations=True, rng=rng)
        _record(evaluation, runner, profile, store, data)
        judged.results += evaluation.results
        judged.checks += evaluation.checks
        progress(f"ci: fuzzing in the target, {max(0.0, until - time.monotonic()):3.0f}s left, "
                 f"{len(judged.results)} cases")
    seconds = time.monotonic() - started
    data["campaign"] = {"jobs": 1, "seconds": seconds, "cases": len(judged.results), "relation_checks": len(judged.checks),
                        "rate": (len(judged.results) + len(judged.checks)) / max(seconds, 1e-9), "in": "target",
                        "samples": []}
    return judged


def _blocked_finding(profile: profiles.Profile, measured: Any, out: Path, fault: str | None,
                     elsewhere: str | None) -> None:
    """One finding for a clone3 that gives the same errno (not ENOSYS) to every call: the
    probe's size-0 call, due EINVAL on any kernel with clone3, and a reproducer that runs
    under the same filter where it is this process's (its children inherit it); behind a
    target's (``elsewhere``) it is written, not run here."""
    case = parse({"size": 0, "memory": "null"})
    store = Store(str(out), profile, fault=fault, caller=measured.privilege.summary(), elsewhere=elsewhere)
    store.record(Finding("oracle", "entry.blocked", case, measured.clone3, ("EINVAL",)), lambda finding: finding)
    store.flush()


def _sighted(out: Path) -> dict[str, int]:
    """How often each finding already in ``out`` was seen: a reused report folder keeps
    earlier runs' findings, and only what this run sees again is its verdict's."""
    return {meta["signature"]: meta["sightings"].get("count", 0) for meta in gather(str(out / "findings"))}


def _findings(out: Path, before: dict[str, int], data: dict[str, Any]) -> None:
    """This run's findings (new, or seen again: their count grew), each with its
    reproducer's text, into ``data["findings"]``; those of earlier runs that this one did
    not see (under another planted fault, say) into ``data["earlier_findings"]``, listed
    in the report and never failing the run."""
    data["findings"], data["earlier_findings"] = [], []
    for meta in gather(str(out / "findings")):
        if meta["sightings"].get("count", 0) <= before.get(meta["signature"], -1):
            data["earlier_findings"].append({key: meta.get(key) for key in ("signature", "title", "status", "fault")}
                                            | {"last_seen": meta["sightings"].get("last_seen")})
            continue
        repro = out / "findings" / meta["signature"] / "repro.c"
        data["findings"].append({**meta, "repro_path": str(repro), "repro": repro.read_text() if repro.exists() else ""})


def _replay(named: list[tuple[str, Case]], sandbox: Sandbox, profile: profiles.Profile, store: Store,
            data: dict[str, Any]) -> Evaluation:
    """The corpus with every relation, recorded (:func:`_record`)."""
    evaluation = evaluate(named, sandbox, profile, relations=True)
    _record(evaluation, sandbox, profile, store, data)
    return evaluation


def run(seconds: int, report_dir: Path, junit: str | None, kernel: str | None = None, fault: str | None = None,
        jobs: int = 1, log: Callable[[str], object] = print, progress: Callable[[str], object] = lambda text: None,
        warn: Callable[[str], object] = lambda text: None, target: Callable[[], Any] | None = None) -> int:
    """The CI job into ``report_dir``, fuzzing with ``jobs`` workers; returns its exit status. ``log`` gets the closing
    summary lines, ``progress`` a line at each step and every few seconds of the campaign,
    ``warn`` what was repaired on the way (each also in the report's problems). ``target``
    starts the runner of another kernel (a VM, :mod:`..runtime.vm`) instead of this
    machine's sandbox: the probe, the replay, the relations and the ABI map run there;
    the campaign's workers do not yet, and the report says so."""
    started = time.monotonic()
    deadline = started + seconds
    data: dict[str, Any] = {"tool": "clone3-fuzz", "tool_version": __version__, "schema_version": SCHEMA_VERSION,
                            "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "kernel": os.uname().release,
                            "fault": fault, "fault_description": FAULTS[fault][1] if fault else None,
                            "discrepancies": [], "findings": [], "earlier_findings": [], "flaky": [], "rules": {}, "relation_counts": {},
                            "counts": {"cases": 0, "relation_checks": 0, "discrepancies": 0}, "problems": [],
                            "phases": {}}
    phase_started = [started]

    def phase_done(name: str) -> None:
        """How long the step just ended took (its tests' times in JUnit and KTAP)."""
        now = time.monotonic()
        data["phases"][name] = round(now - phase_started[0], 3)
        phase_started[0] = now

    def finish(status: str, code: int) -> int:
        data.update(status=status, exit_code=code, seconds=time.monotonic() - started)
        report.write_all(data, str(report_dir), junit)
        shown = data["problems"] if code == ExitStatus.HARNESS else [p for p in data["problems"] if p.startswith("seccomp")]
        for problem in shown:
            log(f"problem: {problem}")
        log(f"{report._headline(data)}")
        log(f"report: {report_dir}/report.html (report.json, report.md{', ' + junit if junit else ''})")
        return code

    try:
        before = _sighted(report_dir)
        if target is not None:
            progress("ci: starting the target")
        sandbox = target() if target is not None else Sandbox(fault=fault)
        describe = getattr(sandbox, "describe", None)
        if describe:
            data["target"] = describe()
        # Reproducers run on this machine's kernel as it is: a target's findings are not checked here.
        elsewhere = (data["target"].get("command") or data["target"].get("image")) if "target" in data else None
        progress("ci: probing the kernel's clone3")
        measured = probe(sandbox)
        phase_done("probe")
        data["clone3"] = measured.clone3
        if "target" in data:
            data["target"]["classification"] = classify(measured)
        bypass = getattr(sandbox, "bypass", None)
        if bypass is not None and measured.clone3 == "available":
            data["bypass"] = bypass()
        if measured.clone3 != "available":
            data["clone3_cause"] = measured.clone3_missing_cause
            data["profile"] = measured.to_json()
            if unavailable_status(measured.clone3) == ExitStatus.UNAVAILABLE:
                return finish("clone3-unavailable", ExitStatus.UNAVAILABLE)
            _blocked_finding(live_profile(sandbox, measured), measured, report_dir, fault, elsewhere)
            _findings(report_dir, before, data)
            return finish("discrepancy", ExitStatus.DISAGREE)
        live = live_profile(sandbox, measured)
        profile = profiles.named(kernel, live) if kernel else live
        data.update(profile=profile.to_json(), kernel=profile.release)
        named, regressions, problems = _replay_cases([SEEDS, *([CGROUP2_SEEDS] if profile.cgroup2_usable else [])])
        named += effect_cases(profile)
        data["problems"] = problems
        if data.get("bypass"):
            data["problems"].append(BYPASS.format(**{k: ", ".join(v) for k, v in data["bypass"].items()}))
        store = Store(str(report_dir), profile, fault=fault, caller=measured.privilege.summary(), elsewhere=elsewhere)
        for warning in store.warnings:
            warn(warning)
            data["problems"].append(warning)
        progress(f"ci: replaying {len(named)} corpus cases with every relation")
        evaluation = _replay(named, sandbox, profile, store, data)
        phase_done("replay")
        if "target" in data:  # an emulator that refuses what the kernel would not
            refused = sorted({base(d["observed"]) for d in data["discrepancies"]
                              if base(str(d.get("observed"))) in UNAVAILABLE})
            data["target"]["classification"] = classify(measured, refused)
        # A regression entry is judged on what repeated: a flaky outcome says nothing.
        observed = {r.where: r.observed for r in evaluation.results if not r.flaky}
        if profile.cap_sys_admin and not kernel:
            for entry in regressions:
                due = entry.expected_on(profile.version)
                if due is not None and entry.where in observed and not any(matches(observed[entry.where], e) for e in due):
                    data["regressions_failed"] = data.get("regressions_failed", 0) + 1
                    data["discrepancies"].append({"where": entry.where, "rule": "regression", "case": entry.case.to_json(),
                                                  "observed": observed[entry.where], "expected": due,
                                                  "note": entry.note})
        rules = evaluation.rule_counts()
        data["relation_counts"] = dict(Counter(c.relation for c in evaluation.checks))
        progress("ci: drawing the ABI map")
        data["abi_map"] = abi_map(sandbox, profile)
        data["effects"] = effects_panel(evaluation)
        phase_done("abi_map")
        counts = {"cases": len(named), "relation_checks": len(evaluation.checks)}

        def tally() -> None:
            data["rules"] = dict(rules)
            _findings(report_dir, before, data)
            data["counts"] = {**counts, "discrepancies": len(data["discrepancies"])}

        # What is known so far, kept should the campaign end badly (a full disk, a kill).
        tally()
        data.update(status="running", seconds=time.monotonic() - started)
        report.write_json(data, str(report_dir))
        left = int(deadline - time.monotonic() - REPORT_MARGIN)
        if left < 2:
            progress(f"ci: no time left to fuzz (--time {seconds}; {REPORT_MARGIN} s are kept for the report)")
        if "target" in data:
            # The target that is up (a booted VM, say) takes the rest of the time itself:
            # random inputs through the campaign's decoder, judged with every relation.
            fuzzed = _fuzz_target(sandbox, profile, store, data, deadline - REPORT_MARGIN, progress)
            rules.update(fuzzed.rule_counts())
            counts = {"cases": counts["cases"] + len(fuzzed.results),
                      "relation_checks": counts["relation_checks"] + len(fuzzed.checks)}
            tally()
            phase_done("campaign")
        # The workers have trees of their own: this one's processes would count against
        # the caller's pids limit meanwhile.
        sandbox.close()
        if "target" not in data and left >= 2:
            samples: list[list[float]] = []
            def sample(stats: campaign.Stats) -> None:
                samples.append([round(stats.seconds, 1), stats.cases + stats.checks])
                if len(samples) % 10 == 1:
                    progress(f"ci: fuzzing, {max(0, left - stats.seconds):3.0f}s left, {stats.rate:6.0f} calls/s, "
                             f"findings {len(stats.findings)}")

            stats = campaign.run(left, jobs, report_dir / "corpus", report_dir, 0, kernel=kernel, fault=fault,
                                 progress=sample)
            rules.update(stats.rules)
            counts = {"cases": counts["cases"] + stats.cases, "relation_checks": counts["relation_checks"] + stats.checks}
            data["campaign"] = {"jobs": jobs, "seconds": stats.seconds, "cases": stats.cases, "relation_checks": stats.checks,
                                "rate": stats.rate, "corpus": stats.corpus, "samples": samples,
                                "failed_workers": stats.failed_workers, "flaky": stats.flaky,
                                "restarts": stats.restarts, "interrupted": stats.interrupted,
                                "harness": dict(stats.harness)}
            for cause, count in stats.harness.items():
                data["harness"][cause] = data["harness"].get(cause, 0) + count
            # Long enough for a worker to start (it probes first), and still no case run.
            if stats.cases == 0 and not stats.interrupted and left >= STARTUP:
                data["harness"][f"the campaign ran no case ({'; '.join(stats.restarts) or 'see its logs'})"] = 1
            if stats.failed_workers:
                data["problems"].append(f"campaign workers failed: {stats.failed_workers} ({'; '.join(stats.restarts)})")
            tally()
            phase_done("campaign")
    except HarnessError as e:
        data["problems"].append(str(e))
        return finish("harness-error", ExitStatus.HARNESS)
    except KeyboardInterrupt:
        data["problems"].append("interrupted: the report holds what was done")
        return finish("interrupted", ExitStatus.INTERRUPTED)
    if data.get("campaign", {}).get("interrupted"):
        data["problems"].append("interrupted: the report holds what was done")
        return finish("interrupted", ExitStatus.INTERRUPTED)
    if data.get("harness"):
        # The harness's own trouble (a cgroup limit, an executor killed from outside) is
        # never the kernel's: no verdict, and the report says why.
        causes = "; ".join(f"{count} x {cause}" for cause, count in sorted(data["harness"].items(), key=lambda x: -x[1]))
        data["problems"].append(f"cases the harness could not run, so not judged: {causes}")
        return finish("harness-error", ExitStatus.HARNESS)
    if data.get("campaign", {}).get("failed_workers"):
        return finish("harness-error", ExitStatus.HARNESS)
    if data.get("regressions_failed") or data.get("bypass") or any(fails(f) for f in data["findings"]):
        return finish("discrepancy", ExitStatus.DISAGREE)
    return finish("agree", ExitStatus.AGREE)
