"""How fast the executor and a campaign run cases, next to baselines measured in the same run.

Absolute rates mean little on a shared machine; the ratios do. For each kind of case:
the baseline (a C loop calling clone3, in a process of the executor's shape), the
encoding of the batch (Python), the executor's batch (C, process tree included) and the
decoding of its outcomes (Python). For campaigns: the worker's own loop (decode, run,
judge, relations; atheris's instrumentation aside) on a rejected-path and a success-path
mix, beside the naive way: a Python loop that forks a child per case and calls clone3
through ctypes. Then real atheris campaigns (``clone3-fuzz fuzz``'s own supervisor) with
one job and with every core, and the time each takes to its first finding under three
planted faults, from an empty corpus.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..campaign import supervisor
from ..exit_status import HarnessError
from ..model.case import Case, parse
from ..runtime._executor import ffi, lib
from ..runtime.executor import decode_outcome, encode_batch
from ..runtime.sandbox import Sandbox

#: kind -> (case, whether it succeeds, so that the baseline must reap a child)
KINDS: dict[str, tuple[dict[str, Any], bool]] = {
    "rejected-size": ({"size": 4097}, False),
    "rejected-tail": ({"size": 96, "tail": {"88": 1}}, False),
    "rejected-detached": ({"size": 88, "flags": "CLONE_DETACHED"}, False),
    "success": ({"size": 88, "exit_signal": "SIGCHLD"}, True),
}
TARGETS = {"rejected": 0.5, "success": 0.8}
PER_CORE_TARGET = 20_000.0  # a real campaign's calls per second per job
SPEEDUP_PER_JOB = 0.9  # N jobs over one: at least 0.9 N (1.8 for two)


@dataclass(frozen=True)
class Measure:
    """One kind of case through the raw loop and through the executor."""

    kind: str
    cases: int
    raw_rate: float  # baseline calls per second
    encode_rate: float  # cases encoded per second
    batch_rate: float  # cases per second through the sandboxed executor
    decode_rate: float  # outcomes decoded per second

    @property
    def ratio(self) -> float:
        """The executor's rate over its baseline's."""
        return self.batch_rate / self.raw_rate

    @property
    def target(self) -> float:
        """The ratio this kind must keep."""
        return TARGETS["success" if self.kind == "success" else "rejected"]


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def measure(kind: str, count: int, rounds: int = 3) -> Measure:
    """Best of ``rounds`` for the baseline and for the batch alike: on a shared machine the
    best round is the one least disturbed by others."""
    spec, reap = KINDS[kind]
    case: Case = parse(spec)
    image = ffi.from_buffer(bytearray(case.image().ljust(8192, b"\0")))
    raw_ns = min(lib.c3_baseline(image, case.size, count, int(reap)) for _ in range(rounds))
    if raw_ns < 0:
        raise HarnessError(f"bench: the baseline process failed (errno {-raw_ns})")
    blob, encode_s = _timed(lambda: encode_batch([case] * count))
    out = ffi.new("struct c3_outcome[]", count)
    info = ffi.new("struct c3_batch_info *")
    with Sandbox() as sandbox:
        sandbox.run_encoded(encode_batch([case]), out[0:1], info)  # starting the tree is the first batch's cost only
        batch_s = min(_timed(lambda: sandbox.run_encoded(blob, out, info))[1] for _ in range(rounds))
    if info.error or info.done != count:
        raise HarnessError(f"bench: the {kind} batch did not complete (errno {info.error})")
    outcomes, decode_s = _timed(lambda: [decode_outcome(out[i]) for i in range(count)])
    if reap and any(o is None or o.observed != "success" for o in outcomes):
        raise HarnessError(f"bench: {kind} cases did not all succeed")
    return Measure(kind, count, count / (raw_ns / 1e9), count / encode_s, count / batch_s, count / decode_s)


#: Mixes for the campaign rates: 64 cases per input, as the fuzzer's long inputs decode.
MIXES: dict[str, list[dict[str, Any]]] = {
    "campaign-rejected": [{"size": 4097}, {"size": 96, "tail": {"88": 1}}, {"size": 88, "flags": "CLONE_DETACHED"},
                          {"size": 63}] * 16,
    "campaign-success": [{"size": 88, "exit_signal": "SIGCHLD"}, {"size": 64}] * 32,
}


@dataclass(frozen=True)
class CampaignMeasure:
    """A campaign loop on one mix of cases beside the naive fork-per-case loop."""

    mix: str
    cases: int
    calls: int  # cases and their relation variants
    case_rate: float
    naive_rate: float  # the naive loop on the same mix

    @property
    def ratio(self) -> float:
        """The executor's rate over its baseline's."""
        return self.case_rate / self.naive_rate


def naive_rate(cases: list[Case], count: int) -> float:
    """Cases per second the naive way: fork per case, clone3 through ctypes, wait."""
    libc = ctypes.CDLL(None, use_errno=True)
    buffers = [(ctypes.create_string_buffer(case.image().ljust(8192, b"\0")), case.size) for case in cases]
    start = time.perf_counter()
    for i in range(count):
        buf, size = buffers[i % len(buffers)]
        pid = os.fork()
        if pid == 0:
            libc.syscall(435, buf, ctypes.c_uint64(size))
            os._exit(0)  # in the child, and in a grandchild that clone3 made
        os.waitpid(pid, 0)
    return count / (time.perf_counter() - start)


def measure_campaign(mix: str, seconds: float, worker: Any) -> CampaignMeasure:
    """The worker's loop on ``mix`` for ``seconds``, beside the naive loop on the same cases."""
    cases = [parse(c) for c in MIXES[mix]]
    data = "\n".join(c.dumps() for c in cases).encode()
    before_cases, before_checks = worker.cases, worker.checks
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        worker.test_one_input(data)
    elapsed = time.perf_counter() - start
    done, checks = worker.cases - before_cases, worker.checks - before_checks
    naive = naive_rate(cases, max(200, int(seconds * 300)))
    return CampaignMeasure(mix, done, done + checks, done / elapsed, naive)


def run(scale: float = 1.0) -> list[Measure]:
    """Every kind; ``scale`` multiplies the case counts (200,000 rejected, 2,000 successful)."""
    return [measure(kind, max(1, int(scale * (2000 if reap else 200_000)))) for kind, (_, reap) in KINDS.items()]


@dataclass(frozen=True)
class RealCampaign:
    """A real atheris campaign: its calls per second once every worker runs (start-up,
    the probe of each worker, left out)."""

    jobs: int
    seconds: float
    calls: int  # cases and relation variants, start-up included
    rate: float  # calls per second in the steady state, all jobs together

    @property
    def per_core(self) -> float:
        """Calls per second per job."""
        return self.rate / self.jobs


def _steady_rate(samples: list[tuple[float, int]]) -> float:
    """Calls per second between the first sample with calls and the last."""
    moving = [(t, calls) for t, calls in samples if calls > 0]
    if len(moving) < 2 or moving[-1][0] <= moving[0][0]:
        return 0.0
    return (moving[-1][1] - moving[0][1]) / (moving[-1][0] - moving[0][0])


def real_campaign(seconds: int, jobs: int) -> RealCampaign:
    """``clone3-fuzz fuzz --time seconds --jobs jobs`` from the seeds, in a scratch folder."""
    samples: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory() as scratch:
        stats = supervisor.run(seconds, jobs, Path(scratch) / "corpus", Path(scratch) / "out", 0,
                               progress=lambda s: samples.append((s.seconds, s.cases + s.checks)))
    return RealCampaign(jobs, stats.seconds, stats.cases + stats.checks, _steady_rate(samples))


#: The planted faults timed to their first finding: a wrong errno for any oversized
#: struct (shallow), a nonzero tail accepted (one byte among thousands), and a pair of
#: flags refused that the kernel accepts together.
FIRST_FINDING_FAULTS = {"shallow": "oversize-einval", "tail": "tail-ignored", "flag-combination": "vm-vfork-einval"}


def first_finding(fault: str, limit: int, jobs: int) -> float | None:
    """Seconds from the start of a campaign under ``fault`` (empty corpus, so the fuzzer
    must find it, not the seeds) to its first finding; None if none within ``limit``."""
    with tempfile.TemporaryDirectory() as scratch:
        stats = supervisor.run(limit, jobs, Path(scratch) / "corpus", Path(scratch) / "out", 0, fault=fault,
                               until=lambda s: bool(s.findings), seeds=False)
    return stats.seconds if stats.findings else None
