"""The ``clone3-fuzz`` command line: one function per command, each option only on the
commands that use it, and the exit statuses of :mod:`.exit_status` for all of them.

``--json`` means the same everywhere: JSON on stdout instead of text (JSON Lines where a
command prints one record per case), every object carrying ``tool_version`` and
``schema_version``. Relative paths are the current directory's. Whatever goes wrong in a
way the tool did not foresee ends in one line and exit status 2; the traceback is kept in
a log file that the line names.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import shlex
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, NoReturn, Sequence

from . import SCHEMA_VERSION, __version__
from .campaign import repro, triage
from .campaign import supervisor as campaign
from .campaign.findings import Store
from .campaign.worker import Worker
from .exit_status import EPILOG, KSELFTEST, ExitStatus, HarnessError
from .model import oracle, seccomp
from .model import profile as profiles
from .model.case import Case, CaseError, read_jsonl
from .model.verdict import DISCREPANCY, Result, evaluate, judge, violation_json
from .outputs import bench, ci, report
from .runtime import probe, supervise
from .runtime import target as targets
from .runtime.program import Program
from .runtime.vm import VM
from .runtime.sandbox import (
    DEFAULT_BATCH,
    DEFAULT_TIMEOUT_MS,
    FAULTS,
    Interrupted,
    Sandbox,
)

WIDTH = 79  # progress lines fit an 80-column terminal


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """A usage error: one line naming it, and exit status 2."""
        self.exit(ExitStatus.HARNESS, f"{self.prog}: error: {message} (see --help)\n")


def _die(message: str, status: ExitStatus = ExitStatus.HARNESS) -> NoReturn:
    print(f"clone3-fuzz: {message}", file=sys.stderr)
    raise SystemExit(status)


def emit(obj: dict[str, Any], indent: int | None = None) -> None:
    """One JSON object on stdout, stamped with the tool's and the schema's versions."""
    print(json.dumps({**obj, "tool_version": __version__, "schema_version": SCHEMA_VERSION}, indent=indent))


def _status_line(text: str, final: bool = False) -> None:
    """A progress line on stderr: rewritten in place on a terminal, one per call elsewhere."""
    text = text[:WIDTH]
    if sys.stderr.isatty():
        print(f"\r{text:<{WIDTH}}", end="\n" if final else "", file=sys.stderr, flush=True)
    else:
        print(text, file=sys.stderr, flush=True)


def _case_progress(label: str) -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None
    return lambda done, total: _status_line(f"{label}: {done}/{total} cases", final=done == total)


def _sandbox(args: argparse.Namespace, label: str) -> Sandbox | Program:
    spec = _target_spec(args)
    if spec:
        return _start(args, spec, tempfile.mkdtemp(prefix="clone3-fuzz-target-"))
    return Sandbox(timeout_ms=args.timeout_ms, batch_size=args.batch, progress=_case_progress(label),
                   cgroup=args.cgroup)


def _target_spec(args: argparse.Namespace) -> dict[str, Any] | None:
    """--kernel-image or --target as a target's description (runtime/target.py)."""
    image, wrapper = getattr(args, "kernel_image", None), getattr(args, "target", None)
    profile = getattr(args, "seccomp_profile", None)
    if sum(bool(x) for x in (image, wrapper, profile)) > 1:
        _die("--kernel-image, --target and --seccomp-profile: one target at a time")
    if profile:
        caps = (seccomp.DOCKER_CAPS | set(args.cap_add)) - set(args.cap_drop)
        return {"seccomp_profile": str(Path(profile).resolve()), "caps": sorted(caps), "runc": args.runc}
    if getattr(args, "cap_add", None) or getattr(args, "cap_drop", None) or getattr(args, "runc", False):
        _die("--cap-add, --cap-drop and --runc: only with --seccomp-profile")
    if image:
        if not os.path.isfile(image):
            _die(f"--kernel-image: {image}: no such file")
        return {"kernel_image": str(Path(image).resolve()), "initrd": args.initrd, "qemu_args": args.qemu_arg}
    if wrapper:
        try:
            return {"wrapper": shlex.split(wrapper)}
        except ValueError as e:
            _die(f"--target: {e}")
    return None


def _start(args: argparse.Namespace, spec: dict[str, Any], workdir: str) -> Program:
    """The target started (a VM booted), saying what runs and how on stderr."""
    started = time.monotonic()
    print(f"clone3-fuzz: starting {targets.describe(spec)}", file=sys.stderr)
    runner = targets.start(spec, workdir, fault=getattr(args, "fault", None))
    how = f"under {runner.accel.upper()} " if isinstance(runner, VM) else ""
    print(f"clone3-fuzz: {runner.hello['release']} ({runner.hello['build']}) answers {how}"
          f"in {time.monotonic() - started:.1f} s{'; its console: ' + str(runner.console) if isinstance(runner, VM) else ''}",
          file=sys.stderr)
    return runner


STDIN_LIMIT = 1 << 30  # bytes of stdin spooled for two passes


def _sources(args: argparse.Namespace) -> list[tuple[str, Callable[[], IO[bytes]]]]:
    """Where the cases come from, each as a name and a way to open it again: the case
    arguments, stdin (spooled to a temporary file, so that it too can be read twice) and
    each -f FILE."""
    inline = "\n".join(t for t in args.cases if t != "-").encode("utf-8", "surrogateescape")
    sources: list[tuple[str, Callable[[], IO[bytes]]]] = []
    if inline:
        sources.append(("arg", lambda: io.BytesIO(inline)))
    if "-" in args.cases:
        if sys.stdin is None:
            _die("stdin: closed (nothing to read the cases from)")
        spool = tempfile.TemporaryFile()
        copied = 0
        while chunk := sys.stdin.buffer.read(1 << 20):
            copied += spool.write(chunk)
            if copied > STDIN_LIMIT:
                _die(f"<stdin>: more than {STDIN_LIMIT >> 30} GiB of cases")
        spool.flush()  # read again through another fd: nothing may stay in our buffer
        sources.append(("<stdin>", lambda: _reopen(spool)))
    for path in args.file:
        sources.append((path, lambda path=path: open(path, "rb")))
    return sources


def _reopen(spool: IO[bytes]) -> IO[bytes]:
    """The spooled stdin from its start, as a stream of its own to close."""
    stream = os.fdopen(os.dup(spool.fileno()), "rb")
    stream.seek(0)
    return stream


def _read(sources: list[tuple[str, Callable[[], IO[bytes]]]]) -> Iterator[tuple[str, Case | CaseError]]:
    for name, opener in sources:
        try:
            stream = opener()
        except OSError as e:
            _die(f"{name}: {e.strerror}")
        with stream:
            try:
                yield from read_jsonl(stream, name)
            except OSError as e:  # a directory, an unreadable file, a read error
                _die(f"{name}: {e.strerror}")


def _cases(args: argparse.Namespace) -> Iterator[list[tuple[str, Case]]]:
    """The cases named on the command line, ``--batch`` at a time, so that memory does not
    grow with the input. A first pass checks everything: one bad case (its line names
    the file, the line and the key) and nothing runs, exit 2."""
    sources = _sources(args)
    errors = count = 0
    for _, item in _read(sources):
        if isinstance(item, CaseError):
            errors += 1
            print(f"clone3-fuzz: {item}", file=sys.stderr)
        else:
            count += 1
    if errors:
        raise SystemExit(ExitStatus.HARNESS)
    if not count:
        _die(f"{args.command}: no cases given (CASE_JSON, -f FILE or - for stdin)")
    chunk: list[tuple[str, Case]] = []
    for where, item in _read(sources):
        chunk.append((where, item))  # type: ignore[arg-type]  # no CaseError is left
        if len(chunk) == getattr(args, "batch", DEFAULT_BATCH):
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _unavailable(cause: str | None) -> str:
    return f"clone3 is unavailable here: {cause}"


def _blocked(observed: str, cause: str | None) -> tuple[str, ExitStatus]:
    """The line and the exit status for a clone3 that refuses every call (probe.unavailable_status)."""
    status = probe.unavailable_status(observed)
    return (_unavailable(cause) if status == ExitStatus.UNAVAILABLE else f"clone3 is blocked here: {cause}"), status


def _require_clone3(sandbox: Sandbox) -> None:
    """A one-line error and exit 3 when clone3 is missing: a campaign against ENOSYS would
    only ever agree with itself. One call; the workers probe the kernel in full."""
    observed, cause = probe.availability(sandbox)
    if cause:
        _die(*_blocked(observed, cause))


def _profile(args: argparse.Namespace, sandbox: Sandbox) -> profiles.Profile:
    live = probe.live_profile(sandbox)
    return profiles.named(args.kernel, live) if args.kernel else live


# --- run and predict -----------------------------------------------------------------

def _print_results(results: Iterable[Result], as_json: bool) -> None:
    for result in results:
        if as_json:
            emit(result.to_json())
            continue
        line = f"{result.observed:<16} {result.verdict:<12} {result.rule:<30} {result.case.dumps()}"
        if result.verdict == DISCREPANCY:
            line += f"  (predicted {', '.join(result.prediction.outcomes)})"
        if result.observed.startswith("harness"):
            line += f"  ({result.outcome.detail})"
        print(line)


def cmd_run(args: argparse.Namespace) -> int:
    """``clone3-fuzz run``: the cases for real, each judged (and, with --relations, its
    variants)."""
    chunks = _cases(args)
    first = next(chunks)
    sandbox = _sandbox(args, "run")
    profile = _profile(args, sandbox)
    clean, done = True, 0
    for named in itertools.chain([first], chunks):
        try:
            evaluation = evaluate(named, sandbox, profile, relations=args.relations)
        except Interrupted as stop:
            _print_results(judge(named, stop.outcomes, profile), args.json)
            done += sum(o is not None for o in stop.outcomes[:len(named)])
            print(f"clone3-fuzz: interrupted after {done} cases", file=sys.stderr)
            return ExitStatus.INTERRUPTED
        done += len(named)
        _print_results(evaluation.results, args.json)
        if profile.source == "live" and profile.clone3 != "available":
            line, status = _blocked(profile.clone3, f"every call gave {profile.clone3}")
            print(f"clone3-fuzz: {line}", file=sys.stderr)
            return status
        for violation in evaluation.violations:
            if args.json:
                emit(violation_json(violation))
            else:
                print(f"{violation.variant_observed:<16} {DISCREPANCY:<12} relation.{violation.check.relation:<21} "
                      f"{violation.check.variant.dumps()}  (expected {violation.expected}, "
                      f"as for {violation.check.source.dumps()})")
        clean &= evaluation.clean
    return ExitStatus.AGREE if clean else ExitStatus.DISAGREE


def cmd_predict(args: argparse.Namespace) -> int:
    """``clone3-fuzz predict``: the oracle's answer for each case; nothing is run."""
    chunks = _cases(args)
    first = next(chunks)
    profile = _profile(args, Sandbox())
    for named in itertools.chain([first], chunks):
        for where, case in named:
            prediction = oracle.predict(case, profile)
            if args.json:
                emit({"where": where, "case": case.to_json(), "predicted": prediction.outcomes,
                      "rule": prediction.rule, "rules": dict(prediction.rules), "kernel": profile.release})
            else:
                print(f"{','.join(prediction.outcomes):<16} {prediction.rule:<30} {case.dumps()}")
    return ExitStatus.AGREE


# --- campaigns -----------------------------------------------------------------------

def _campaign_progress(label: str, seconds: int) -> Callable[[campaign.Stats], None]:
    last = [0.0]

    def show(stats: campaign.Stats) -> None:
        if not sys.stderr.isatty() and time.monotonic() - last[0] < 10:
            return
        last[0] = time.monotonic()
        _status_line(f"{label}: {max(0, seconds - stats.seconds):3.0f}s left, {stats.rate:6.0f} calls/s, "
                     f"corpus {stats.corpus}, findings {len(stats.findings)}")

    return show


def _campaign(args: argparse.Namespace, out: Path, corpus: Path, fault: str | None, label: str) -> campaign.Stats:
    target = _target_spec(args)
    stats = campaign.run(args.time, args.jobs, corpus, out, args.seed, kernel=getattr(args, "kernel", None),
                         fault=fault, progress=_campaign_progress(label, args.time), target=target)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    for problem in stats.corpus_problems:
        print(f"clone3-fuzz: {problem}", file=sys.stderr)
    for index in stats.failed_workers:
        print(f"clone3-fuzz: worker {index} failed; the end of {out}/logs/worker-{index}.log:\n"
              f"{campaign.worker_log_tail(out, index)}", file=sys.stderr)
    return stats


def _report_folder(base: Path) -> Path:
    """A folder no other run shares: the time, then the pid."""
    return base / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def _stats_json(stats: campaign.Stats) -> dict[str, Any]:
    return {"seconds": stats.seconds, "cases": stats.cases, "relation_checks": stats.checks, "rate": stats.rate,
            "corpus": stats.corpus, "findings": stats.findings, "confirmed": stats.confirmed, "flaky": stats.flaky,
            "failed_workers": stats.failed_workers}


def cmd_fuzz(args: argparse.Namespace) -> int:
    """``clone3-fuzz fuzz``: a campaign; exit 1 when a finding was confirmed."""
    _require_clone3(Sandbox())
    out = Path(args.out).resolve() if args.out else _report_folder(Path("reports").resolve())
    corpus = Path(args.corpus).resolve() if args.corpus else Path("reports", "corpus").resolve()
    stats = _campaign(args, out, corpus, None, "fuzz")
    if args.json:
        emit({"out": str(out), "corpus_dir": str(corpus), **_stats_json(stats)}, indent=2)
    else:
        print(f"campaign: {stats.cases} cases and {stats.checks} relation variants in {stats.seconds:.0f}s "
              f"({stats.rate:.0f}/s), corpus {stats.corpus} in {corpus}, {len(stats.findings)} findings "
              f"({len(stats.confirmed)} confirmed)")
        for signature in stats.findings:
            print(f"  {out}/findings/{signature}/")
        print(f"report: {out}")
    if stats.interrupted:
        return ExitStatus.INTERRUPTED
    if stats.failed_workers:
        return ExitStatus.HARNESS
    return ExitStatus.DISAGREE if stats.confirmed else ExitStatus.AGREE


def _passes_without_fault(folder: Path) -> bool:
    """A planted fault's reproducer must pass on the real kernel (exit 0)."""
    binary = repro.build(folder / "repro.c")
    if isinstance(binary, repro.Check):
        return False
    status, _ = repro.run(binary, None, "repro.healthy.out")
    binary.unlink(missing_ok=True)
    return status == 0


def cmd_selftest(args: argparse.Namespace) -> int:
    """``clone3-fuzz selftest``: a campaign against each planted fault; exit 1 when one
    went undetected or a reproducer failed without its fault."""
    faults = args.faults.split(",") if args.faults else list(FAULTS)
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        _die(f"selftest: unknown fault {unknown[0]!r} (known: {', '.join(FAULTS)})")
    _require_clone3(Sandbox())
    out = Path(args.out).resolve() if args.out else _report_folder(Path("reports").resolve()) / "selftest"
    missed, false_reproducers, rows = [], [], []
    for fault in faults:
        stats = _campaign(args, out / fault, out / fault / "corpus", fault, f"selftest {fault}")
        healthy = [_passes_without_fault(out / fault / "findings" / s) for s in stats.confirmed]
        false_reproducers += [s for s, ok in zip(stats.confirmed, healthy) if not ok]
        rows.append({"fault": fault, "detected": bool(stats.confirmed), "findings": stats.findings,
                     "confirmed": stats.confirmed, "pass_without_fault": sum(healthy)})
        if not args.json:
            first = stats.confirmed[0] if stats.confirmed else "-"
            print(f"{'detected' if stats.confirmed else 'MISSED':<9} {fault:<24} {len(stats.findings):>2} findings, "
                  f"{len(stats.confirmed)} confirmed, {sum(healthy)}/{len(healthy)} pass without the fault  {first}")
        if not stats.confirmed:
            missed.append(fault)
        if stats.interrupted:
            break
    if args.json:
        emit({"out": str(out), "faults": rows, "missed": missed, "false_reproducers": false_reproducers}, indent=2)
    else:
        print(f"selftest: {len(faults) - len(missed)} of {len(faults)} planted faults detected; "
              f"{len(false_reproducers)} reproducers fail without their fault; report: {out}")
    if rows and stats.interrupted:
        return ExitStatus.INTERRUPTED
    return ExitStatus.DISAGREE if missed or false_reproducers else ExitStatus.AGREE


# --- the CI job, findings, probe, bench ----------------------------------------------

def _point_latest(base: Path, folder: Path) -> None:
    """``base/latest`` names the newest report, replaced atomically: a reader never finds
    it missing, and two runs racing for it both succeed."""
    link = base / f".latest-{os.getpid()}"
    link.unlink(missing_ok=True)
    link.symlink_to(folder.name)
    os.replace(link, base / "latest")


def cmd_ci(args: argparse.Namespace) -> int:
    """``clone3-fuzz ci``: the CI job (see :mod:`.outputs.ci`)."""
    base = Path("reports").resolve()
    folder = Path(args.report).resolve() if args.report else _report_folder(base)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        held = campaign.hold(folder, "ci", "--report")  # two jobs would write over each other's reports
        if not args.report:
            _point_latest(base, folder)
    except OSError as e:
        _die(f"--report: {folder}: {e.strerror}")
    except HarnessError as e:
        _die(str(e))
    junit = str(Path(args.junit).resolve()) if args.junit else None
    lines: list[str] = []
    quiet = args.json or args.ktap  # stdout is the document's
    spec = _target_spec(args)
    target = (lambda: _start(args, spec, str(folder / "target"))) if spec else None
    code = ci.run(args.time, folder, junit, kernel=args.kernel, fault=args.fault, jobs=args.jobs, target=target,
                  log=(lambda text: print(text, file=sys.stderr)) if args.ktap else lines.append if args.json else print,
                  progress=_status_line, warn=lambda text: print(f"clone3-fuzz: warning: {text}", file=sys.stderr))
    if quiet:
        report_json = (folder / "report.json").read_text()
        print(report.ktap(json.loads(report_json)) if args.ktap else report_json, end="")
    held.close()
    return KSELFTEST.get(code, code) if args.ktap else code


def cmd_exec(args: argparse.Namespace) -> int:
    """``clone3-fuzz exec``: PROG and everything it starts, with every clone3 answered as
    another kernel (--kernel) or a container profile (--clone3) would; PROG's exit status."""
    argv = args.program[1:] if args.program[:1] == ["--"] else args.program
    if not argv:
        _die("exec: name the program to run after --")
    try:
        log = open(args.log, "w") if args.log else None
    except OSError as e:
        _die(f"--log: {args.log}: {e.strerror}")
    try:
        done = supervise.exec_as(argv, kernel=args.kernel, clone3=args.clone3, log=log)
    finally:
        if log is not None:
            log.close()
    counts = ", ".join(f"{rule} {n}" for rule, n in done.rules.most_common()) or "none"
    print(f"clone3-fuzz: exec: {len(done.calls)} clone3 calls ({counts})", file=sys.stderr)
    return done.exit_code


def cmd_findings(args: argparse.Namespace) -> int:
    """``clone3-fuzz findings compare|recheck``: saved findings across runs and kernels."""
    if args.action == "compare":
        result = triage.compare(triage.load(Path(args.old)), triage.load(Path(args.new)))
        if args.json:
            emit(result.to_json(), indent=2)
        else:
            for word, signatures in (("new", result.new), ("fixed", result.fixed), ("still", result.still)):
                for signature in signatures:
                    print(f"{word:<6} {signature}")
            print(f"findings: {len(result.new)} new, {len(result.fixed)} fixed, {len(result.still)} still there")
        return ExitStatus.DISAGREE if result.new else ExitStatus.AGREE
    sandbox = Sandbox()
    _require_clone3(sandbox)
    checks = triage.recheck(Path(args.folder), sandbox, probe.live_profile(sandbox))
    for check in checks:
        if args.json:
            emit({"signature": check.signature, "reproduces": check.reproduces, "observed": check.observed,
                  "expected": check.expected})
        else:
            print(f"{'reproduces' if check.reproduces else 'gone':<11} {check.signature}  "
                  f"({', '.join(check.observed)}; expected {check.expected})")
    if not args.json:
        print(f"findings: {sum(c.reproduces for c in checks)} of {len(checks)} still reproduce on {os.uname().release}")
    return ExitStatus.DISAGREE if any(c.reproduces for c in checks) else ExitStatus.AGREE


def cmd_probe(args: argparse.Namespace) -> int:
    """``clone3-fuzz probe``: what this kernel's clone3 does and who is calling; exit 3
    when clone3 is unavailable."""
    runner = _sandbox(args, "probe")
    measured = probe.probe(runner)
    if isinstance(runner, Program):
        print(f"clone3-fuzz: {targets.describe(_target_spec(args) or {})}: {targets.classify(measured)}", file=sys.stderr)
    status = ExitStatus.AGREE
    if measured.clone3 != "available":
        line, status = _blocked(measured.clone3, measured.clone3_missing_cause)
        print(f"clone3-fuzz: {line}", file=sys.stderr)
    result = measured.to_json()
    if args.json:
        emit(result, indent=2)
        return status
    for key, value in [*result.pop("privilege").items(), *result.pop("machine").items(), *result.items()]:
        print(f"{key + ':':<26}{' '.join(map(str, value)) if isinstance(value, list) else value}")
    return status


def cmd_bench(args: argparse.Namespace) -> int:
    """``clone3-fuzz bench``: the executor's and the campaign's rates beside their baselines,
    real campaigns with one job and every core, and the time to a first finding."""
    progress = (lambda text: None) if args.json else _status_line
    progress("bench: the raw loop and the executor's batches")
    measures = bench.run(args.scale)
    with tempfile.TemporaryDirectory() as out, Sandbox() as sandbox:
        live = probe.live_profile(sandbox)
        worker = Worker(sandbox, live, Store(out, live), os.path.join(out, "stats.json"))
        progress("bench: the worker's loop and the naive fork-per-case loop")
        campaigns = [bench.measure_campaign(mix, 5 * args.scale, worker) for mix in bench.MIXES]
    seconds, cores = max(4, int(15 * args.scale)), args.jobs
    real = []
    for jobs in dict.fromkeys((1, cores)):
        progress(f"bench: a real campaign of {seconds} s with {jobs} job{'s' if jobs > 1 else ''}")
        real.append(bench.real_campaign(seconds, jobs))
    speedup = real[-1].rate / real[0].rate if real[0].rate else 0.0
    limit = max(10, int(60 * args.scale))
    first = {}
    for kind, fault in bench.FIRST_FINDING_FAULTS.items():
        progress(f"bench: time to the first finding under {fault} (at most {limit} s)")
        first[kind] = bench.first_finding(fault, limit, cores)
    if args.json:
        emit({
            "kinds": {m.kind: {"cases": m.cases, "raw_rate": m.raw_rate, "encode_rate": m.encode_rate,
                               "batch_rate": m.batch_rate, "decode_rate": m.decode_rate} for m in measures},
            "campaign": {c.mix: {"cases": c.cases, "calls": c.calls, "case_rate": c.case_rate,
                                 "naive_rate": c.naive_rate} for c in campaigns},
            "real_campaigns": [{"jobs": r.jobs, "seconds": r.seconds, "calls": r.calls, "rate": r.rate,
                                "per_core": r.per_core} for r in real],
            "first_finding_seconds": {kind: {"fault": bench.FIRST_FINDING_FAULTS[kind], "seconds": t, "limit": limit}
                                      for kind, t in first.items()},
            "ratios": {**{m.kind: m.ratio for m in measures}, **{f"{c.mix}/naive": c.ratio for c in campaigns},
                       "jobs/1-job": speedup},
            "targets": {**{m.kind: m.target for m in measures}, "campaign-rejected/naive": 10.0,
                        "jobs/1-job": bench.SPEEDUP_PER_JOB * cores,
                        "per_core": bench.PER_CORE_TARGET},
        }, indent=2)
        return ExitStatus.AGREE
    print(f"{'kind':<18}{'cases':>8}{'raw/s':>12}{'batch/s':>12}{'ratio':>7}{'target':>8}{'encode/s':>11}{'decode/s':>11}")
    for m in measures:
        print(f"{m.kind:<18}{m.cases:>8}{m.raw_rate:>12.0f}{m.batch_rate:>12.0f}{m.ratio:>7.2f}"
              f"{m.target:>8.2f}{m.encode_rate:>11.0f}{m.decode_rate:>11.0f}")
    print(f"\n{'campaign mix':<18}{'cases':>8}{'calls':>9}{'cases/s':>10}{'naive/s':>10}{'ratio':>7}")
    for c in campaigns:
        print(f"{c.mix:<18}{c.cases:>8}{c.calls:>9}{c.case_rate:>10.0f}{c.naive_rate:>10.0f}{c.ratio:>7.1f}")
    print(f"\n{'real campaign':<18}{'seconds':>8}{'calls':>9}{'calls/s':>10}{'per job':>10}  (target per job "
          f"{bench.PER_CORE_TARGET:.0f})")
    for r in real:
        print(f"{f'{r.jobs} job' + ('s' if r.jobs > 1 else ''):<18}{r.seconds:>8.1f}{r.calls:>9}{r.rate:>10.0f}"
              f"{r.per_core:>10.0f}")
    if len(real) > 1:
        print(f"{'speed-up':<18}{speedup:>8.2f}x  (target {bench.SPEEDUP_PER_JOB * cores:.1f}x)")
    print(f"\n{'first finding':<18}{'fault':<22}{'seconds':>8}  ({cores} jobs, empty corpus, at most {limit} s)")
    for kind, t in first.items():
        print(f"{kind:<18}{bench.FIRST_FINDING_FAULTS[kind]:<22}{'none' if t is None else f'{t:.1f}':>8}")
    return ExitStatus.AGREE


# --- the parser ----------------------------------------------------------------------

def _capability(text: str) -> str:
    """A capability as docker run takes it (SYS_ADMIN or CAP_SYS_ADMIN, any case)."""
    name = text.upper() if text.upper().startswith("CAP_") else f"CAP_{text.upper()}"
    if name not in seccomp.CAPABILITIES:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Linux capability")
    return name


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def _sandbox_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--timeout-ms", type=_positive, default=DEFAULT_TIMEOUT_MS, metavar="MS",
                     help=f"kill a case's executor after MS without progress (default {DEFAULT_TIMEOUT_MS})")
    sub.add_argument("--batch", type=_positive, default=DEFAULT_BATCH, metavar="N",
                     help=f"cases per executor process tree (default {DEFAULT_BATCH})")
    sub.add_argument("--cgroup", metavar="DIR",
                     help="the cgroup v2 directory that \"cgroup\": \"cgroup2\" opens (default: a scratch one)")


def _target_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--kernel-image", metavar="VMLINUZ",
                     help="boot this kernel under qemu-system (KVM where it works, else TCG) and test its clone3")
    sub.add_argument("--initrd", metavar="FILE", help="with --kernel-image: an initramfs of your own (default: one "
                                                      "generated around the static executor)")
    sub.add_argument("--qemu-arg", action="append", default=[], metavar="ARG",
                     help="with --kernel-image: one more argument for qemu (repeat it)")
    sub.add_argument("--seccomp-profile", metavar="FILE",
                     help="test clone3 behind this OCI/Docker seccomp profile (compiled with libseccomp), as a "
                          "container with Docker's default capabilities has it")
    for option, verb in (("--cap-add", "with"), ("--cap-drop", "without")):
        sub.add_argument(option, type=_capability, action="append", default=[], metavar="CAP",
                         help=f"with --seccomp-profile: judge the profile's rules for a container {verb} this "
                              "capability too (SYS_ADMIN or CAP_SYS_ADMIN; repeat it), as docker run " + option)
    sub.add_argument("--runc", action="store_true",
                     help="with --seccomp-profile: apply it as runc (1.0.0-rc93 on, so Docker's and podman's) does: "
                          "ENOSYS for syscalls newer than any the profile names, not its default action")
    sub.add_argument("--target", metavar="'CMD ... {exe} ...'",
                     help="run the static executor program under this command (qemu-x86_64 {exe}, valgrind -q {exe}, "
                          "runsc ... do {exe}, bwrap ... {exe}) and test the clone3 it sees")


def _jobs_option(sub: argparse.ArgumentParser) -> None:
    # The default is found in main(), for the commands that fuzz only: it reads the
    # process's cgroups, which no other command needs at start-up.
    sub.add_argument("--jobs", type=_positive, metavar="N",
                     help="parallel fuzzing workers (default: the cores this process may use, by its affinity "
                          "and cgroup CPU limit)")


def _campaign_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--time", type=_positive, default=60, metavar="S", help="seconds per campaign (default 60)")
    _jobs_option(sub)
    sub.add_argument("--out", metavar="DIR", help="where findings and logs go (default ./reports/<time>-<pid>/)")
    sub.add_argument("--seed", type=int, default=0, help="libFuzzer's seed for worker 0 (default 0)")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; every --help ends with the exit statuses."""
    parser = _Parser(prog="clone3-fuzz", description="Check a kernel's clone3 against its contract.", epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"clone3-fuzz {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text, epilog=EPILOG)
        sub.add_argument("--json", action="store_true", help="JSON on stdout instead of text")
        return sub

    probe_ = command("probe", "what this kernel's clone3 does, and who is calling")
    _sandbox_options(probe_)
    _target_options(probe_)
    probe_.set_defaults(func=cmd_probe)
    run = command("run", "run cases for real and judge each outcome against the oracle")
    predict = command("predict", "the oracle's prediction for cases, without running them")
    for sub in (run, predict):
        sub.add_argument("cases", nargs="*", metavar="CASE_JSON", help="a case as a JSON object; - reads JSON Lines from stdin")
        sub.add_argument("-f", "--file", action="append", default=[], metavar="FILE", help="a JSON Lines file of cases")
        sub.add_argument("--kernel", metavar="VERSION",
                         help="predict for this kernel version (5.3 ... 7.1) instead of the running one, as measured")
    _sandbox_options(run)
    _target_options(run)
    run.add_argument("--relations", action="store_true", help="also run a variant of each case for every relation")
    run.set_defaults(func=cmd_run)
    predict.set_defaults(func=cmd_predict)

    fuzz = command("fuzz", "a coverage-guided campaign (atheris); findings minimized, with checked C reproducers")
    _campaign_options(fuzz)
    fuzz.add_argument("--corpus", metavar="DIR", help="libFuzzer corpus, kept between campaigns (default ./reports/corpus)")
    fuzz.add_argument("--kernel", metavar="VERSION", help="judge as this kernel version instead of the running one")
    _target_options(fuzz)
    fuzz.set_defaults(func=cmd_fuzz)
    selftest = command("selftest", "short campaigns against planted faults: does the fuzzer catch them?")
    _campaign_options(selftest)
    selftest.add_argument("--faults", metavar="A,B", help=f"which faults (default all: {', '.join(FAULTS)})")
    selftest.set_defaults(func=cmd_selftest)

    job = command("ci", "the CI job: replay the corpus, check the relations, fuzz; a report and an exit status")
    job.add_argument("--time", type=_positive, default=60, metavar="S", help="the whole job's budget in seconds (default 60)")
    _jobs_option(job)
    job.add_argument("--junit", metavar="FILE", help="also write JUnit XML here")
    job.add_argument("--ktap", action="store_true",
                     help="KTAP on stdout, and a kselftest's exit status: 0 pass, 1 fail, 4 skip (no clone3)")
    job.add_argument("--report", metavar="DIR", help="the report folder (default ./reports/<time>-<pid>/, and reports/latest)")
    job.add_argument("--kernel", metavar="VERSION", help="judge as this kernel version instead of the running one")
    job.add_argument("--fault", choices=list(FAULTS), help="plant a fault (to see the job fail)")
    _target_options(job)
    job.set_defaults(func=cmd_ci)

    run_as = command("exec", "run a program with every clone3 answered as another kernel or a container profile would")
    run_as.add_argument("--kernel", metavar="VERSION", help="answer as this kernel version (5.3 ... 7.1) would")
    run_as.add_argument("--clone3", metavar="ERRNO", help="fail every clone3 with this errno (enosys, eperm, ...)")
    run_as.add_argument("--log", metavar="FILE", help="every clone3 as a JSON line (pid, comm, size, flags, answer, "
                                                      "rule, emulated), then a summary line")
    run_as.add_argument("program", nargs=argparse.REMAINDER, metavar="-- PROG [ARGS...]")
    run_as.set_defaults(func=cmd_exec)

    found = commands.add_parser("findings", help="compare saved findings between two runs, or replay them",
                                description="compare saved findings between two runs, or replay them", epilog=EPILOG)
    actions = found.add_subparsers(dest="action", required=True, parser_class=_Parser)
    compare = actions.add_parser("compare", help="which findings are new, fixed or still there (exit 1: new ones)",
                                 epilog=EPILOG)
    compare.add_argument("old", metavar="OLD", help="a report or campaign folder, a findings folder or a report.json")
    compare.add_argument("new", metavar="NEW", help="the same, from the later run")
    recheck = actions.add_parser("recheck", help="replay saved findings on the running kernel (exit 1: some reproduce)",
                                 epilog=EPILOG)
    recheck.add_argument("folder", metavar="DIR", help="a report or campaign folder, or its findings folder")
    for sub in (compare, recheck):
        sub.add_argument("--json", action="store_true", help="JSON on stdout instead of text")
    found.set_defaults(func=cmd_findings)

    b = command("bench", "executor and campaign speed beside baselines, in one run")
    b.add_argument("--scale", type=float, default=1.0, help="multiply the case counts and durations (default 1.0)")
    _jobs_option(b)
    b.set_defaults(func=cmd_bench)
    return parser


def _internal_error(error: BaseException) -> NoReturn:
    """One line for the user, the traceback in a log file for the developer."""
    log = Path(tempfile.gettempdir()) / f"clone3-fuzz-error-{os.getpid()}.log"
    try:
        log.write_text("".join(traceback.format_exception(error)))
        where = f" (traceback in {log})"
    except OSError:
        where = ""
    _die(f"internal error: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}{where}")


def _interrupt(number: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(number).name)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; returns its exit status (see :class:`.exit_status.ExitStatus`).
    SIGTERM and SIGHUP stop it as ^C does: cleanly, with what was done kept, exit 130."""
    args = build_parser().parse_args(argv)
    if "jobs" in args and args.jobs is None:
        args.jobs = campaign.available_cores()
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _interrupt)
    try:
        return int(args.func(args))
    except HarnessError as e:
        _die(str(e))
    except KeyboardInterrupt:
        print("clone3-fuzz: interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except OSError as e:  # a full disk, a read-only folder, too many open files...
        where = f"{e.filename}: " if e.filename else ""
        _die(f"{where}{e.strerror or e}; what was saved before is kept")
    except Exception as e:  # noqa: BLE001 - anything unforeseen still ends in one line
        _internal_error(e)
