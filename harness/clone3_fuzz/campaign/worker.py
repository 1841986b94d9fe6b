"""One fuzzing worker: what the atheris target does with each input.

Kept apart from the target script so that it can be driven without atheris (tests,
corpus replay) and instrumented with it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field

from ..atomic import write_text
from ..exit_status import ExitStatus, HarnessError
from ..model import profile as profiles
from ..model.oracle import Oracle
from ..model.verdict import evaluate
from ..runtime.probe import live_profile, probe, unavailable_status
from ..runtime.sandbox import Sandbox
from ..runtime.program import Program
from ..runtime.target import describe, start
from .decode import decode
from .finding import from_result, from_violation, title
from .findings import Store
from .minimize import minimize

STATS_EVERY = 1.0
#: Set to 1, a confirmed finding crashes the target (after it is saved), so that libFuzzer
#: and ClusterFuzzLite write the input as an artifact; replayed alone, the input fails again.
CRASH_ON_FINDING = "CLONE3_FUZZ_CRASH_ON_FINDING"


#: JSON describing the target a worker fuzzes instead of this machine's kernel
#: (runtime/target.py). The supervisor sets it (supervisor.run).
TARGET_ENV = "CLONE3_FUZZ_TARGET"

class ConfirmedFinding(Exception):
    """Raised out of the target, with CLONE3_FUZZ_CRASH_ON_FINDING=1, for an input whose
    cases disagreed with the oracle or a relation on every run."""


@dataclass
class Worker:
    """One fuzzing worker: decodes each input to a batch, runs it with every relation,
    records each confirmed discrepancy as a finding, and keeps its statistics."""

    sandbox: Sandbox | Program
    profile: profiles.Profile
    store: Store
    stats_path: str
    inputs: int = 0
    cases: int = 0
    checks: int = 0
    new_findings: int = 0
    flaky: int = 0
    stopping: bool = False
    crash_on_finding: bool = False
    oracle: Oracle = field(init=False)  # the profile's, remembering predictions across inputs
    harness: Counter[str] = field(default_factory=Counter)  # cases the harness could not run, by cause
    rules: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    written: float = 0.0

    @classmethod
    def from_environment(cls) -> Worker:
        """A worker set up from the CLONE3_FUZZ_* variables (see :mod:`.target`): its
        sandbox, the profile measured through the planted fault if any, and the store."""
        # SIGINT (the supervisor's stop, or a terminal's ^C to the whole group) and SIGTERM
        # end the worker after its current input, even while it is still probing: a
        # KeyboardInterrupt raised inside it would reach atheris as an uncaught exception
        # and leave a crash artifact.
        stopping: list[bool] = []
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, lambda *_: stopping.append(True))
        out = os.environ.get("CLONE3_FUZZ_OUT", os.path.join("reports", "manual"))
        index = os.environ.get("CLONE3_FUZZ_WORKER", "0")
        # A planted fault stands for the kernel under test: the profile is measured through it,
        # as ci does (and what a fault changes, the profile refuses to learn as normal).
        fault = os.environ.get("CLONE3_FUZZ_FAULT") or None
        target = json.loads(os.environ.get(TARGET_ENV) or "null")
        sandbox: Sandbox | Program = (start(target, os.path.join(out, f"target-{index}"), fault=fault)
                                      if target else Sandbox(fault=fault))
        measured = probe(sandbox)
        if measured.clone3 != "available":
            # A campaign against ENOSYS (a container's default seccomp profile) would only
            # ever agree with itself.
            status = unavailable_status(measured.clone3)
            how = "unavailable" if status == ExitStatus.UNAVAILABLE else "blocked"
            print(f"clone3-fuzz: clone3 is {how} here: {measured.clone3_missing_cause}", file=sys.stderr)
            sys.exit(status)
        live = live_profile(sandbox, measured)
        kernel = os.environ.get("CLONE3_FUZZ_KERNEL")
        profile = profiles.named(kernel, live) if kernel else live
        os.makedirs(os.path.join(out, "stats"), exist_ok=True)
        store = Store(out, profile, fault=fault, caller=measured.privilege.summary(),
                      elsewhere=describe(target) if target else None)
        for warning in store.warnings:
            print(f"clone3-fuzz: warning: {warning}", file=sys.stderr, flush=True)
        worker = cls(sandbox, profile, store, os.path.join(out, "stats", f"worker-{index}.json"), stopping=bool(stopping),
                     crash_on_finding=os.environ.get(CRASH_ON_FINDING) == "1")
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, worker.stop)
        return worker

    def __post_init__(self) -> None:
        self.oracle = Oracle(self.profile)

    def stop(self, number: int, frame: object) -> None:
        """A signal handler: stop after the input in hand (or now, between inputs)."""
        self.stopping = True

    def test_one_input(self, data: bytes) -> None:
        """libFuzzer's callback: one input, every case and relation variant in it judged.
        It never raises on a discrepancy, so one campaign collects every finding."""
        cases = decode(data, self.profile.page_size, self.profile.cgroup2_usable)
        named = [(f"input:{i}", case) for i, case in enumerate(cases)]
        rng = random.Random(zlib.crc32(data))
        try:
            evaluation = evaluate(named, self.sandbox, self.profile, relations=True, rng=rng, oracle=self.oracle)
        except HarnessError as e:
            # The sandbox could not run the batch (a pids or memory limit, say): the
            # harness's trouble, counted with its cause, never a finding or a crash.
            self.harness[str(e)] += len(cases)
            self.write_stats()
            if self.stopping:
                os._exit(0)
            return
        found = [from_result(r) for r in evaluation.discrepancies + evaluation.variant_discrepancies]
        found += [from_violation(v) for v in evaluation.violations]
        self.flaky += len(evaluation.flaky)
        self.harness.update(f"{r.observed}: {r.outcome.detail}" for r in evaluation.harness)
        for finding in found:
            self.new_findings += self.store.record(finding, lambda f: minimize(
                f, self.sandbox, self.profile, known=self.store.known))
        self.inputs += 1
        self.cases += len(cases)
        self.checks += len(evaluation.checks)
        self.rules.update(evaluation.rule_counts())
        if self.stopping or time.monotonic() - self.written > STATS_EVERY:
            self.write_stats()
        if self.stopping:
            os._exit(0)  # libFuzzer's own exit would run its crash-detecting exit callbacks
        if found and self.crash_on_finding:
            self.write_stats()
            raise ConfirmedFinding("; ".join(dict.fromkeys(title(f, self.profile.release) for f in found)))

    def write_stats(self) -> None:
        """Writes the stats file the supervisor reads (whole, by rename), after the
        sightings counted since the last time."""
        self.written = time.monotonic()
        self.store.flush()
        stats = {"inputs": self.inputs, "cases": self.cases, "checks": self.checks,
                 "new_findings": self.new_findings, "flaky": self.flaky,
                 "harness": dict(self.harness.most_common(20)), "seconds": self.written - self.started,
                 "executors": self.sandbox.executors, "rules": dict(self.rules)}
        write_text(self.stats_path, json.dumps(stats))
