"""Campaigns: atheris workers on a shared corpus, findings gathered as they come.

``run`` starts ``jobs`` workers (``fuzz/clone3_target.py``, one process each, libFuzzer's
own flags), shows live progress from the stats files they write, and stops them at the
time limit or on ^C. Nothing is lost on the way out: libFuzzer writes each new corpus
entry when it finds it, and a worker saves each finding (minimized, with its reproducer)
before it moves on.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

from ..model.case import CaseError, read_jsonl
from .corpus import SEEDS
from .finding import CONFIRMED, list_signatures
from .findings import gather

TARGET = "clone3_fuzz.campaign.target"  # run with -m: the same in a checkout and installed
GRACE = 10.0  # seconds a worker gets to stop after SIGINT (it may be minimizing a finding)


@dataclass
class Stats:
    """A campaign's figures so far, summed over its workers' stats files."""

    seconds: float = 0.0
    inputs: int = 0
    cases: int = 0
    checks: int = 0
    corpus: int = 0
    findings: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)  # findings whose reproducer was checked true
    flaky: int = 0
    failed_workers: list[int] = field(default_factory=list)
    corpus_problems: list[str] = field(default_factory=list)
    rules: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        """Calls per second: cases and relation variants."""
        return (self.cases + self.checks) / self.seconds if self.seconds else 0.0


def _seed(corpus: Path) -> list[str]:
    """An empty corpus starts from the JSON seeds, one case per file. Returns a line for
    each corpus entry written as JSON that does not parse: the fuzzer skips those cases
    (any other bytes decode to cases), and the user should hear of it."""
    corpus.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()) and SEEDS.exists():
        for number, line in enumerate(SEEDS.read_text().splitlines()):
            if line.startswith("{"):
                (corpus / f"seed-{number:04d}").write_text(line + "\n")
    problems = []
    for path in sorted(corpus.iterdir()):
        data = path.read_bytes()
        if data.startswith(b"{"):
            with io.BytesIO(data) as stream:
                problems += [f"{error} (skipped)" for _, error in read_jsonl(stream, str(path))
                             if isinstance(error, CaseError)]
    return problems


def _status(folder: Path) -> str:
    try:
        return str(json.loads((folder / "finding.json").read_text()).get("status"))
    except (OSError, ValueError):
        return ""


def _collect(out: Path, corpus: Path, started: float) -> Stats:
    stats = Stats(seconds=time.monotonic() - started)
    for path in (out / "stats").glob("worker-*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        stats.inputs += data["inputs"]
        stats.cases += data["cases"]
        stats.checks += data["checks"]
        stats.rules.update(data.get("rules", {}))
        stats.flaky += data.get("flaky", 0)
    stats.corpus = sum(1 for _ in corpus.iterdir())
    stats.findings = list_signatures(str(out / "findings"))
    stats.confirmed = [s for s in stats.findings if _status(out / "findings" / s) == CONFIRMED]
    return stats


def run(seconds: int, jobs: int, corpus: Path, out: Path, seed: int, kernel: str | None = None,
        fault: str | None = None, progress: Callable[[Stats], None] | None = None) -> Stats:
    """One campaign; returns its statistics. ^C ends it early, cleanly."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    (out / "artifacts").mkdir(exist_ok=True)
    problems = _seed(corpus)
    env = {**os.environ, "CLONE3_FUZZ_OUT": str(out), "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    env.pop("CLONE3_FUZZ_KERNEL", None)
    env.pop("CLONE3_FUZZ_FAULT", None)
    if kernel:
        env["CLONE3_FUZZ_KERNEL"] = kernel
    if fault:
        env["CLONE3_FUZZ_FAULT"] = fault
    workers: list[tuple[subprocess.Popen[bytes], TextIO]] = []
    started = time.monotonic()
    try:
        for index in range(jobs):
            log = open(out / "logs" / f"worker-{index}.log", "w")
            command = [sys.executable, "-m", TARGET, str(corpus), f"-max_total_time={seconds}", f"-seed={seed + index}",
                       f"-artifact_prefix={out}/artifacts/", "-timeout=60", "-rss_limit_mb=8192", "-print_final_stats=1",
                       # Long inputs are batches of many cases: grow to them at once.
                       "-len_control=0", "-max_len=4096"]
            # The running interpreter, by /proc/self/exe: its path (sys.executable) may lie
            # behind a directory this user cannot search, and argv[0] still selects the venv.
            workers.append((subprocess.Popen(command, executable="/proc/self/exe", stdout=log,
                                             env={**env, "CLONE3_FUZZ_WORKER": str(index)},
                                             stderr=subprocess.STDOUT), log))
        while any(p.poll() is None for p, _ in workers):
            time.sleep(0.5)
            if progress:
                progress(_collect(out, corpus, started))
    except KeyboardInterrupt:
        for process, _ in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + GRACE
        for process, _ in workers:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        for _, log in workers:
            log.close()
    stats = _collect(out, corpus, started)
    gather(str(out / "findings"))  # each finding.md gets its final counts
    stats.corpus_problems = problems
    # libFuzzer exits 0 at the time limit and on ^C (-handle_int); anything else is ours.
    stats.failed_workers = [i for i, (p, _) in enumerate(workers) if p.returncode not in (0, -signal.SIGINT, 130)]
    (out / "campaign.json").write_text(json.dumps({
        "seconds": stats.seconds, "jobs": jobs, "seed": seed, "kernel": kernel, "fault": fault,
        "inputs": stats.inputs, "cases": stats.cases, "relation_checks": stats.checks, "rate": stats.rate,
        "corpus": stats.corpus, "corpus_dir": str(corpus), "findings": stats.findings,
        "confirmed": stats.confirmed, "flaky": stats.flaky, "rules": dict(stats.rules),
        "failed_workers": stats.failed_workers,
    }, indent=2) + "\n")
    return stats


def worker_log_tail(out: Path, index: int, lines: int = 5) -> str:
    """The last ``lines`` of a worker's log, to show why it failed."""
    path = out / "logs" / f"worker-{index}.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
