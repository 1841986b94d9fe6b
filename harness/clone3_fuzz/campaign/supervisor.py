"""Campaigns: atheris workers on a shared corpus, findings gathered as they come.

``run`` starts ``jobs`` workers (``fuzz/clone3_target.py``, one process each, libFuzzer's
own flags), shows live progress from the stats files they write, and stops them at the
time limit or on ^C. Nothing is lost on the way out: libFuzzer writes each new corpus
entry when it finds it, and a worker saves each finding (minimized, with its reproducer)
before it moves on.
"""

from __future__ import annotations

import fcntl
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
from typing import Any, Callable, TextIO

from ..atomic import write_text
from ..exit_status import HarnessError
from ..model.case import CaseError, read_jsonl
from ..runtime.program import die_with_parent
from ..runtime.sandbox import own_cgroups, remove_orphan_cgroups
from . import libfuzzer
from .corpus import SEEDS
from .finding import CONFIRMED, list_signatures
from .findings import gather
from .worker import TARGET_ENV

TARGET = "clone3_fuzz.campaign.target"  # run with -m: the same in a checkout and installed


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
    restarts: list[str] = field(default_factory=list)  # each worker death, with its cause
    interrupted: bool = False  # ^C, SIGTERM or SIGHUP ended it
    harness: Counter[str] = field(default_factory=Counter)  # cases no worker could run, by cause
    failed_workers: list[int] = field(default_factory=list)
    corpus_problems: list[str] = field(default_factory=list)
    rules: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        """Calls per second: cases and relation variants."""
        return (self.cases + self.checks) / self.seconds if self.seconds else 0.0


def _quota(folder: Path) -> float | None:
    """The CPUs a cgroup folder's own limit allows (v2 cpu.max, v1 cfs quota), or None."""
    try:
        quota, _, period = (folder / "cpu.max").read_text().partition(" ")
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        return None if quota < 0 else quota / int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError, ZeroDivisionError):
        return None


def available_cores() -> int:
    """The cores this process may run on: its affinity mask, cut by any CPU limit of its
    cgroups (v2 cpu.max, v1 cpu.cfs_quota_us, on the folder or an ancestor). At least 1."""
    limits = [limit for folder in own_cgroups() if (limit := _quota(Path(folder))) is not None]
    return max(1, int(min([float(len(os.sched_getaffinity(0))), *limits])))


def _seed(corpus: Path, seeds: bool = True) -> list[str]:
    """An empty corpus starts from the JSON seeds, one case per file (unless ``seeds`` is
    false). Returns a line for each corpus entry written as JSON that does not parse: the
    fuzzer skips those cases (any other bytes decode to cases), and the user should hear
    of it."""
    corpus.mkdir(parents=True, exist_ok=True)
    if seeds and not any(corpus.iterdir()) and SEEDS.exists():
        for name, data in libfuzzer.seed_inputs().items():
            (corpus / name).write_bytes(data)
    problems = []
    for path in sorted(corpus.iterdir()):
        try:
            data = path.read_bytes()
        except OSError as e:  # a subdirectory, a dangling or looping link, an unreadable file
            problems.append(f"{path}: {e.strerror} (skipped)")
            continue
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
        stats.harness.update(data.get("harness", {}))
    stats.corpus = sum(1 for _ in corpus.iterdir())
    stats.findings = list_signatures(str(out / "findings"))
    stats.confirmed = [s for s in stats.findings if _status(out / "findings" / s) == CONFIRMED]
    return stats


GRACE = 5.0  # seconds a worker gets to finish its input after SIGINT (it may be saving a finding)
STALL = 30.0  # seconds without a stats update, or without starting, before a worker counts as stalled
#: ... for a worker that boots a VM first: a KVM attempt that hangs, then TCG (runtime/vm.py).
VM_STALL = 240.0
RESTARTS = 3  # restarts per worker and campaign: a worker that keeps dying has a cause to report

def _cause(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


@dataclass
class _Slot:
    """One worker's place in the campaign: its process, its log and how often it died."""

    index: int
    log: TextIO
    stats: Path
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    done: bool = False
    failed: bool = False  # gave up on: it kept dying, or could not be started

    def progressed(self) -> float:
        """When the worker last wrote its stats (or started)."""
        try:
            return max(self.started, self.stats.stat().st_mtime)
        except OSError:
            return self.started


def run(seconds: int, jobs: int, corpus: Path, out: Path, seed: int, kernel: str | None = None,
        fault: str | None = None, progress: Callable[[Stats], None] | None = None,
        until: Callable[[Stats], bool] | None = None, seeds: bool = True,
        target: dict[str, Any] | None = None) -> Stats:
    """One campaign of ``seconds``; returns its statistics. ^C (and SIGTERM, SIGHUP, which
    the command line turns into it) ends it early, as cleanly: ``stats.interrupted``; so
    does ``until(stats)`` turning true (then not counted as interrupted). An empty corpus
    starts from the JSON seeds unless ``seeds`` is false. ``target`` (runtime/target.py)
    has each worker start it (boot a VM, say) and fuzz it instead."""
    out.mkdir(parents=True, exist_ok=True)
    lock = hold(out)
    (out / "logs").mkdir(exist_ok=True)
    (out / "artifacts").mkdir(exist_ok=True)
    problems = _seed(corpus, seeds)
    env = {**os.environ, "CLONE3_FUZZ_OUT": str(out), "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    env.pop("CLONE3_FUZZ_KERNEL", None)
    env.pop("CLONE3_FUZZ_FAULT", None)
    env.pop(TARGET_ENV, None)
    if target:
        env[TARGET_ENV] = json.dumps(target)
    if kernel:
        env["CLONE3_FUZZ_KERNEL"] = kernel
    if fault:
        env["CLONE3_FUZZ_FAULT"] = fault
    flags = libfuzzer.options(libfuzzer.installed_options())  # the target's own defaults, as ClusterFuzz runs it
    started = time.monotonic()
    deadline = started + seconds
    slots = [_Slot(i, open(out / "logs" / f"worker-{i}.log", "a"), out / "stats" / f"worker-{i}.json") for i in range(jobs)]
    restarts: list[str] = []
    interrupted = False

    def start(slot: _Slot) -> None:
        left = max(1, int(deadline - time.monotonic()))
        command = [sys.executable, "-m", TARGET, str(corpus), f"-max_total_time={left}",
                   f"-seed={seed + slot.index + 1000 * slot.restarts}", f"-artifact_prefix={out}/artifacts/",
                   "-timeout=60", "-rss_limit_mb=8192", "-print_final_stats=1",
                   # The worker stops itself cleanly on SIGINT and SIGTERM (see worker.py).
                   "-handle_int=0", "-handle_term=0",
                   *(f"-{key}={value}" for key, value in flags.items())]
        # The running interpreter, by /proc/self/exe: its path (sys.executable) may lie
        # behind a directory this user cannot search, and argv[0] still selects the venv.
        slot.started = time.time()
        try:
            slot.process = subprocess.Popen(command, executable="/proc/self/exe", stdout=slot.log,
                                            stderr=subprocess.STDOUT, env={**env, "CLONE3_FUZZ_WORKER": str(slot.index)},
                                            preexec_fn=die_with_parent)
        except OSError as e:  # EAGAIN under a pids limit, ENOMEM
            slot.process = None
            slot.done = slot.failed = True
            restarts.append(f"worker {slot.index}: could not start: {e.strerror}")

    try:
        for slot in slots:
            start(slot)
        while not all(slot.done for slot in slots) and time.monotonic() < deadline:
            time.sleep(0.5)
            for slot in slots:
                _watch(slot, deadline, restarts, start, VM_STALL if target else STALL)
            if progress or until:
                now = _collect(out, corpus, started)
                if progress:
                    progress(now)
                if until and until(now):
                    break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        _stop(slots)
        for slot in slots:
            slot.log.close()
        lock.close()
    remove_orphan_cgroups()  # a worker killed by SIGKILL could not remove its own
    stats = _collect(out, corpus, started)
    gather(str(out / "findings"))  # each finding.md gets its final counts
    stats.corpus_problems = problems
    stats.restarts = restarts
    stats.interrupted = interrupted
    stats.failed_workers = [slot.index for slot in slots if slot.failed]
    write_text(out / "campaign.json", json.dumps({
        "seconds": stats.seconds, "jobs": jobs, "seed": seed, "kernel": kernel, "fault": fault,
        "inputs": stats.inputs, "cases": stats.cases, "relation_checks": stats.checks, "rate": stats.rate,
        "corpus": stats.corpus, "corpus_dir": str(corpus), "findings": stats.findings,
        "confirmed": stats.confirmed, "flaky": stats.flaky, "rules": dict(stats.rules),
        "failed_workers": stats.failed_workers, "restarts": restarts, "interrupted": interrupted,
        "harness": dict(stats.harness),
    }, indent=2) + "\n")
    return stats


def _watch(slot: _Slot, deadline: float, restarts: list[str], start: Callable[[_Slot], None], stall: float) -> None:
    """A worker that died early is restarted (within RESTARTS); one that stopped making
    progress is killed first. The watchdog is this process, so a stopped worker, reaper
    or executor cannot hold it up."""
    if slot.done or slot.process is None:
        return
    if slot.process.poll() is None:
        if time.time() - slot.progressed() < stall:
            return
        slot.process.kill()  # SIGKILL works on a stopped process; its tree dies with it
        slot.process.wait()
        cause = f"stalled (no progress for {stall:.0f} s), killed"
    else:
        cause = _cause(slot.process.returncode)
        if slot.process.returncode == 0:
            slot.done = True  # libFuzzer's own time limit: the campaign's end
            return
    slot.restarts += 1
    restarts.append(f"worker {slot.index}: {cause}")
    if slot.restarts > RESTARTS or time.monotonic() > deadline - 1:
        slot.done = True
        slot.failed = slot.restarts > RESTARTS
        return
    start(slot)


def _stop(slots: list[_Slot]) -> None:
    """SIGINT to every worker still running (continued first, should it be stopped), then
    SIGKILL to those still there after GRACE."""
    alive = [slot.process for slot in slots if slot.process is not None and slot.process.poll() is None]
    for process in alive:
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGCONT)
    until = time.monotonic() + GRACE
    for process in alive:
        try:
            process.wait(max(0.1, until - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def hold(folder: Path, kind: str = "campaign", option: str = "--out") -> TextIO:
    """Holds ``folder`` for this ``kind`` of run (the lock goes with the returned file); a
    second one on the same folder would overwrite its stats and reports, so it is
    refused in one line that names ``option``, before it writes anything there."""
    lock = open(folder / f".{kind}.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise HarnessError(f"{option} {folder}: another {kind} is using it ({holder})") from None
    lock.truncate(0)
    lock.write(f"pid {os.getpid()}\n")
    lock.flush()
    return lock


def worker_log_tail(out: Path, index: int, lines: int = 5) -> str:
    """The last ``lines`` of a worker's log, to show why it failed."""
    path = out / "logs" / f"worker-{index}.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
