"""The ``clone3-fuzz`` command line.

Exit status: 0 when the work ran and everything agreed; 1 when an outcome disagreed with
the oracle or a relation; 2 on bad input or a harness failure (one line on stderr naming
the culprit); 3 when clone3 is unavailable here (ENOSYS, perhaps from a seccomp filter);
130 after ^C, with every result obtained so far printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Callable, Iterable, NoReturn, Sequence

import time
from pathlib import Path

from . import bench, campaign, ci, oracle, probe, repro, triage
from . import profile as profiles
from .case import Case, CaseError, loads, read_jsonl
from .sandbox import DEFAULT_BATCH, DEFAULT_TIMEOUT_MS, FAULTS, HarnessError, Interrupted, Sandbox
from .findings import Store
from .verdict import DISCREPANCY, Result, evaluate, judge, violation_json
from .worker import Worker

EXIT_OK, EXIT_DISCREPANCY, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _die(message: str) -> NoReturn:
    print(f"clone3-fuzz: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _progress(label: str) -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        print(f"\r{label}: {done}/{total} cases", end=end, file=sys.stderr, flush=True)

    return show


def _sandbox(args: argparse.Namespace, label: str) -> Sandbox:
    return Sandbox(timeout_ms=args.timeout_ms, batch_size=args.batch, progress=_progress(label), cgroup=args.cgroup)


def _gather(args: argparse.Namespace) -> list[tuple[str, Case]]:
    """Every case named on the command line, or the error of each bad one."""
    found: list[tuple[str, Case | CaseError]] = []
    for number, text in enumerate(args.cases, 1):
        if text == "-":
            found.extend(read_jsonl(sys.stdin, "<stdin>"))
            continue
        try:
            found.append((f"arg:{number}", loads(text)))
        except CaseError as e:
            found.append((f"arg:{number}", e.located(f"arg:{number}")))
    for path in args.file:
        try:
            with open(path) as stream:
                found.extend(read_jsonl(stream, path))
        except OSError as e:
            _die(f"{path}: {e.strerror}")
    errors = [item for _, item in found if isinstance(item, CaseError)]
    for error in errors:
        print(f"clone3-fuzz: {error}", file=sys.stderr)
    if errors:
        raise SystemExit(EXIT_USAGE)
    if not found:
        _die(f"{args.command}: no cases given (CASE_JSON, -f FILE or - for stdin)")
    return found  # type: ignore[return-value]  # no CaseError is left


def _unavailable(cause: str | None) -> str:
    return f"clone3 is unavailable here: {cause}"


def _require_clone3(sandbox: Sandbox) -> None:
    """A one-line error and exit 3 when clone3 is missing: a campaign against ENOSYS would
    only ever agree with itself. One call; the workers probe the kernel in full."""
    _, cause = probe.availability(sandbox)
    if cause:
        print(f"clone3-fuzz: {_unavailable(cause)}", file=sys.stderr)
        raise SystemExit(EXIT_UNAVAILABLE)


def _profile(args: argparse.Namespace, sandbox: Sandbox) -> profiles.Profile:
    live = profiles.live(sandbox)
    return profiles.named(args.kernel, live) if args.kernel else live


def _print_results(results: Iterable[Result], as_json: bool) -> None:
    for result in results:
        if as_json:
            print(json.dumps(result.to_json()))
            continue
        line = f"{result.observed:<16} {result.verdict:<12} {result.rule:<30} {result.case.dumps()}"
        if result.verdict == DISCREPANCY:
            line += f"  (predicted {', '.join(result.prediction.outcomes)})"
        if result.observed.startswith("harness"):
            line += f"  ({result.outcome.detail})"
        print(line)


def cmd_run(args: argparse.Namespace) -> int:
    named = _gather(args)
    sandbox = _sandbox(args, "run")
    profile = _profile(args, sandbox)
    try:
        evaluation = evaluate(named, sandbox, profile, relations=args.relations)
    except Interrupted as stop:
        _print_results(judge(named, stop.outcomes, profile), args.json)
        done = sum(o is not None for o in stop.outcomes[:len(named)])
        print(f"clone3-fuzz: interrupted after {done} of {len(named)} cases", file=sys.stderr)
        return EXIT_INTERRUPTED
    _print_results(evaluation.results, args.json)
    if profile.source == "live" and profile.clone3 != "available":
        print(f"clone3-fuzz: clone3 is unavailable here (every call gave {profile.clone3})", file=sys.stderr)
        return EXIT_UNAVAILABLE
    for violation in evaluation.violations:
        if args.json:
            print(json.dumps(violation_json(violation)))
        else:
            print(f"{violation.variant_observed:<16} {DISCREPANCY:<12} relation.{violation.check.relation:<21} "
                  f"{violation.check.variant.dumps()}  (expected {violation.expected}, "
                  f"as for {violation.check.source.dumps()})")
    return EXIT_OK if evaluation.clean else EXIT_DISCREPANCY


def cmd_predict(args: argparse.Namespace) -> int:
    profile = _profile(args, _sandbox(args, "probe"))
    for where, case in _gather(args):
        prediction = oracle.predict(case, profile)
        if args.json:
            print(json.dumps({"where": where, "case": case.to_json(), "predicted": prediction.outcomes,
                              "rule": prediction.rule, "rules": dict(prediction.rules), "kernel": profile.release}))
        else:
            print(f"{','.join(prediction.outcomes):<16} {prediction.rule:<30} {case.dumps()}")
    return EXIT_OK


def _campaign_progress(label: str, seconds: int) -> Callable[[campaign.Stats], None]:
    last = [0.0]
    tty = sys.stderr.isatty()

    def show(stats: campaign.Stats) -> None:
        if not tty and time.monotonic() - last[0] < 10:
            return
        last[0] = time.monotonic()
        line = (f"{label}: {max(0, seconds - stats.seconds):4.0f}s left  {stats.rate:8.0f} calls/s  "
                f"({stats.cases} cases, {stats.checks} relation variants)  corpus {stats.corpus}  "
                f"findings {len(stats.findings)}")
        print(f"\r{line}" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

    return show


def _campaign(args: argparse.Namespace, out: Path, corpus: Path, fault: str | None, label: str) -> campaign.Stats:
    stats = campaign.run(args.time, args.jobs, corpus, out, args.seed, kernel=getattr(args, "kernel", None),
                         fault=fault, progress=_campaign_progress(label, args.time))
    if sys.stderr.isatty():
        print(file=sys.stderr)
    for problem in stats.corpus_problems:
        print(f"clone3-fuzz: {problem}", file=sys.stderr)
    for index in stats.failed_workers:
        print(f"clone3-fuzz: worker {index} failed; the end of {out}/logs/worker-{index}.log:\n"
              f"{campaign.worker_log_tail(out, index)}", file=sys.stderr)
    return stats


def _default_out() -> Path:
    return Path("reports") / time.strftime("%Y%m%d-%H%M%S")


def cmd_fuzz(args: argparse.Namespace) -> int:
    _require_clone3(Sandbox())
    out = Path(args.out) if args.out else _default_out()
    corpus = Path(args.corpus) if args.corpus else Path("reports") / "corpus"
    stats = _campaign(args, out, corpus, None, "fuzz")
    print(f"campaign: {stats.cases} cases and {stats.checks} relation variants in {stats.seconds:.0f}s "
          f"({stats.rate:.0f}/s), corpus {stats.corpus} in {corpus}, {len(stats.findings)} findings")
    for signature in stats.findings:
        print(f"  {out}/findings/{signature}/")
    print(f"report: {out}")
    if stats.failed_workers:
        return EXIT_USAGE
    return EXIT_DISCREPANCY if stats.findings else EXIT_OK


def cmd_selftest(args: argparse.Namespace) -> int:
    faults = args.faults.split(",") if args.faults else list(FAULTS)
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        _die(f"selftest: unknown fault {unknown[0]!r} (known: {', '.join(FAULTS)})")
    _require_clone3(Sandbox())
    out = Path(args.out) if args.out else _default_out() / "selftest"
    missed, false_reproducers = [], []
    for fault in faults:
        stats = _campaign(args, out / fault, out / fault / "corpus", fault, f"selftest {fault}")
        first = stats.confirmed[0] if stats.confirmed else "-"
        healthy = [_passes_without_fault(out / fault / "findings" / s) for s in stats.confirmed]
        false_reproducers += [s for s, ok in zip(stats.confirmed, healthy) if not ok]
        print(f"{'detected' if stats.confirmed else 'MISSED':<9} {fault:<24} {len(stats.findings):>2} findings, "
              f"{len(stats.confirmed)} confirmed, {sum(healthy)}/{len(healthy)} pass without the fault  {first}")
        if not stats.confirmed:
            missed.append(fault)
    print(f"selftest: {len(faults) - len(missed)} of {len(faults)} planted faults detected; "
          f"{len(false_reproducers)} reproducers fail without their fault; report: {out}")
    return EXIT_DISCREPANCY if missed or false_reproducers else EXIT_OK


def _passes_without_fault(folder: Path) -> bool:
    """A planted fault's reproducer must pass on the real kernel (exit 0)."""
    binary = repro.build(folder / "repro.c")
    if isinstance(binary, repro.Check):
        return False
    status, _ = repro.run(binary, None, "repro.healthy.out")
    binary.unlink(missing_ok=True)
    return status == 0


def cmd_findings(args: argparse.Namespace) -> int:
    if args.action == "compare":
        result = triage.compare(triage.load(Path(args.old)), triage.load(Path(args.new)))
        if args.json:
            print(json.dumps(result.to_json(), indent=2))
        else:
            for word, signatures in (("new", result.new), ("fixed", result.fixed), ("still", result.still)):
                for signature in signatures:
                    print(f"{word:<6} {signature}")
            print(f"findings: {len(result.new)} new, {len(result.fixed)} fixed, {len(result.still)} still there")
        return EXIT_DISCREPANCY if result.new else EXIT_OK
    sandbox = Sandbox()
    _require_clone3(sandbox)
    checks = triage.recheck(Path(args.folder), sandbox, profiles.live(sandbox))
    for check in checks:
        if args.json:
            print(json.dumps({"signature": check.signature, "reproduces": check.reproduces,
                              "observed": check.observed, "expected": check.expected}))
        else:
            print(f"{'reproduces' if check.reproduces else 'gone':<11} {check.signature}  "
                  f"({', '.join(check.observed)}; expected {check.expected})")
    if not args.json:
        print(f"findings: {sum(c.reproduces for c in checks)} of {len(checks)} still reproduce on {os.uname().release}")
    return EXIT_DISCREPANCY if any(c.reproduces for c in checks) else EXIT_OK


def cmd_ci(args: argparse.Namespace) -> int:
    folder = Path(args.report) if args.report else _default_out()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _die(f"--report: {folder}: {e.strerror}")
    if not args.report:
        latest = Path("reports") / "latest"
        if latest.is_symlink() or not latest.exists():
            latest.unlink(missing_ok=True)
            latest.symlink_to(folder.name)
    return ci.run(args.time, folder, args.junit, kernel=args.kernel, fault=args.fault)


def cmd_probe(args: argparse.Namespace) -> int:
    measured = probe.probe(_sandbox(args, "probe"))
    status = EXIT_OK if measured.clone3 == "available" else EXIT_UNAVAILABLE
    if status:
        print(f"clone3-fuzz: {_unavailable(measured.clone3_missing_cause)}", file=sys.stderr)
    result = measured.to_json()
    if args.json:
        print(json.dumps(result, indent=2))
        return status
    privilege = result.pop("privilege")
    for key, value in [*result.items(), *privilege.items()]:
        print(f"{key + ':':<26}{' '.join(value) if isinstance(value, list) else value}")
    return status


def cmd_bench(args: argparse.Namespace) -> int:
    measures = bench.run(args.scale)
    with tempfile.TemporaryDirectory() as out:
        sandbox = Sandbox()
        live = profiles.live(sandbox)
        worker = Worker(sandbox, live, Store(out, live), os.path.join(out, "stats.json"))
        campaigns = [bench.measure_campaign(mix, 5 * args.scale, worker) for mix in bench.MIXES]
    if args.json:
        print(json.dumps({
            "kinds": {m.kind: {"cases": m.cases, "raw_rate": m.raw_rate, "encode_rate": m.encode_rate,
                               "batch_rate": m.batch_rate, "decode_rate": m.decode_rate} for m in measures},
            "campaign": {c.mix: {"cases": c.cases, "calls": c.calls, "case_rate": c.case_rate,
                                 "naive_rate": c.naive_rate} for c in campaigns},
            "ratios": {**{m.kind: m.ratio for m in measures}, **{f"{c.mix}/naive": c.ratio for c in campaigns}},
            "targets": {**{m.kind: m.target for m in measures}, "campaign-rejected/naive": 10.0},
        }, indent=2))
        return EXIT_OK
    print(f"{'kind':<18}{'cases':>8}{'raw/s':>12}{'batch/s':>12}{'ratio':>7}{'target':>8}{'encode/s':>11}{'decode/s':>11}")
    for m in measures:
        print(f"{m.kind:<18}{m.cases:>8}{m.raw_rate:>12.0f}{m.batch_rate:>12.0f}{m.ratio:>7.2f}"
              f"{m.target:>8.2f}{m.encode_rate:>11.0f}{m.decode_rate:>11.0f}")
    print(f"\n{'campaign mix':<18}{'cases':>8}{'calls':>9}{'cases/s':>10}{'naive/s':>10}{'ratio':>7}")
    for c in campaigns:
        print(f"{c.mix:<18}{c.cases:>8}{c.calls:>9}{c.case_rate:>10.0f}{c.naive_rate:>10.0f}{c.ratio:>7.1f}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="clone3-fuzz", description="Check the running kernel's clone3 against its contract.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        sub.add_argument("--timeout-ms", type=int, default=DEFAULT_TIMEOUT_MS, metavar="MS",
                         help=f"kill a case's executor after MS without progress (default {DEFAULT_TIMEOUT_MS})")
        sub.add_argument("--batch", type=int, default=DEFAULT_BATCH, metavar="N",
                         help=f"cases per executor process tree (default {DEFAULT_BATCH})")
        sub.add_argument("--cgroup", metavar="DIR",
                         help="the cgroup v2 directory that \"cgroup\": \"cgroup2\" opens (default: a scratch one)")
        return sub

    command("probe", "what this kernel's clone3 does, and who is calling").set_defaults(func=cmd_probe)
    run = command("run", "run cases for real and judge each outcome against the oracle")
    predict = command("predict", "the oracle's prediction for cases, without running them")
    for sub in (run, predict):
        sub.add_argument("cases", nargs="*", metavar="CASE_JSON", help="a case as a JSON object; - reads JSON Lines from stdin")
        sub.add_argument("-f", "--file", action="append", default=[], metavar="FILE", help="a JSON Lines file of cases")
        sub.add_argument("--kernel", metavar="VERSION",
                         help="predict for this kernel version (5.3 ... 7.1) instead of the running one, as measured")
    run.add_argument("--relations", action="store_true", help="also run a variant of each case for every relation")
    run.set_defaults(func=cmd_run)
    predict.set_defaults(func=cmd_predict)
    fuzz = command("fuzz", "a coverage-guided campaign (atheris); findings minimized, with C reproducers")
    selftest = command("selftest", "short campaigns against planted faults: does the fuzzer catch them?")
    for sub in (fuzz, selftest):
        sub.add_argument("--time", type=int, default=60, metavar="S", help="seconds per campaign (default 60)")
        sub.add_argument("--jobs", type=int, default=1, metavar="N", help="parallel workers (default 1)")
        sub.add_argument("--out", metavar="DIR", help="where findings and logs go (default reports/<time>/)")
        sub.add_argument("--seed", type=int, default=0, help="libFuzzer's seed for worker 0 (default 0)")
    fuzz.add_argument("--corpus", metavar="DIR", help="libFuzzer corpus, kept between campaigns (default reports/corpus)")
    fuzz.add_argument("--kernel", metavar="VERSION", help="judge as this kernel version instead of the running one")
    fuzz.set_defaults(func=cmd_fuzz)
    selftest.add_argument("--faults", metavar="A,B", help=f"which faults (default all: {', '.join(FAULTS)})")
    selftest.set_defaults(func=cmd_selftest)
    job = command("ci", "the CI job: replay the corpus, check the relations, fuzz; a report and an exit status")
    job.add_argument("--time", type=int, default=60, metavar="S", help="the whole job's budget in seconds (default 60)")
    job.add_argument("--junit", metavar="FILE", help="also write JUnit XML here")
    job.add_argument("--report", metavar="DIR", help="the report folder (default reports/<time>/, and reports/latest)")
    job.add_argument("--kernel", metavar="VERSION", help="judge as this kernel version instead of the running one")
    job.add_argument("--fault", choices=list(FAULTS), help="plant a fault (to see the job fail)")
    job.set_defaults(func=cmd_ci)
    found = command("findings", "compare saved findings between two runs, or replay them on this kernel")
    actions = found.add_subparsers(dest="action", required=True, parser_class=_Parser)
    compare = actions.add_parser("compare", help="which findings are new, fixed or still there (exit 1: new ones)")
    compare.add_argument("old", metavar="OLD", help="a report or campaign folder, a findings folder or a report.json")
    compare.add_argument("new", metavar="NEW", help="the same, from the later run")
    recheck = actions.add_parser("recheck", help="replay saved findings on the running kernel (exit 1: some reproduce)")
    recheck.add_argument("folder", metavar="DIR", help="a report or campaign folder, or its findings folder")
    for sub in (compare, recheck):
        sub.add_argument("--json", action="store_true", help="machine-readable output")
    found.set_defaults(func=cmd_findings)
    b = command("bench", "executor and campaign speed beside baselines, in one run")
    b.add_argument("--scale", type=float, default=1.0, help="multiply the case counts (default 1.0)")
    b.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.timeout_ms < 1 or args.batch < 1 or getattr(args, "time", 1) < 1 or getattr(args, "jobs", 1) < 1:
        _die("--timeout-ms, --batch, --time and --jobs take a positive number")
    try:
        return int(args.func(args))
    except HarnessError as e:
        _die(str(e))
    except KeyboardInterrupt:
        print("clone3-fuzz: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
