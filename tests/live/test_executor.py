"""The executor's own failure paths, provoked for real: a killed executor, a case that
never finishes, signals for the caller in the middle of a batch."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace
from typing import Iterator

import pytest
from clone3_fuzz.model.case import parse
from clone3_fuzz.runtime.sandbox import (
    Interrupted,
    Sandbox,
    ScratchCgroup,
    cgroup2_mount,
)

from .proc import footprint

SUCCESS = parse({"size": 88, "exit_signal": 17})


def _executors() -> list[int]:
    """Pids of executor processes: grandchildren of this process."""
    me = os.getpid()
    kids = {p for p in os.listdir("/proc") if p.isdigit() and _ppid(p) == me}
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and str(_ppid(p)) in kids]


def _ppid(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
        return int(text[text.rindex(")") + 2:].split()[1])
    except (OSError, ValueError):
        return -1


def test_a_killed_executor_is_replaced_and_the_batch_completes() -> None:
    sandbox = Sandbox(batch_size=100_000)
    cases = [SUCCESS] * 6000
    result: list = []
    runner = threading.Thread(target=lambda: result.extend(sandbox.run(cases)))
    others = set(_executors())  # of trees that earlier tests' sandboxes still hold
    runner.start()
    deadline = time.monotonic() + 10
    while not (victims := [p for p in _executors() if p not in others]) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    os.kill(victims[0], signal.SIGKILL)
    runner.join()
    observed = [o.observed for o in result]
    assert len(observed) == len(cases)
    assert set(observed) <= {"success", "harness-crash"} and observed.count("harness-crash") <= 1
    assert sandbox.executors == 2


@pytest.fixture
def frozen_cgroup() -> Iterator[str]:
    if os.geteuid() != 0 or cgroup2_mount() is None:
        pytest.skip("needs root and a cgroup v2 mount to freeze a cgroup")
    scratch = ScratchCgroup()
    with open(os.path.join(scratch.path, "cgroup.freeze"), "w") as f:
        f.write("1")
    yield scratch.path
    scratch.close()


def test_a_case_that_never_finishes_times_out_and_the_batch_goes_on(frozen_cgroup: str) -> None:
    # A child born into a frozen cgroup never runs, so it never exits: waiting for it hangs.
    hang = parse({"size": 88, "flags": "CLONE_INTO_CGROUP", "cgroup": "cgroup2", "exit_signal": 17})
    before = footprint()
    sandbox = Sandbox(timeout_ms=100, cgroup=frozen_cgroup)
    outcomes = sandbox.run([SUCCESS, hang, SUCCESS])
    assert [o.observed for o in outcomes] == ["success", "harness-timeout", "success"]
    assert sandbox.executors == 2
    # The frozen child died with its executor; the tree (reaper and executor) stays up,
    # with the cgroup's fd that its cases name.
    assert footprint() == replace(before, descendants=before.descendants + 2, fds=before.fds + 1)
    sandbox.close()
    assert footprint() == before


def test_a_signal_for_the_caller_loses_no_outcome() -> None:
    ticks = []
    old = signal.signal(signal.SIGALRM, lambda *_: ticks.append(1))
    signal.setitimer(signal.ITIMER_REAL, 0.005, 0.005)
    sandbox = Sandbox(batch_size=100_000)
    try:
        outcomes = sandbox.run([SUCCESS] * 3000)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert ticks, "the timer never fired during the batch"
    assert [o.observed for o in outcomes] == ["success"] * 3000
    assert sandbox.executors == 1  # handled in Python while the batch ran on


def test_interrupt_returns_every_outcome_so_far() -> None:
    # Started in the background, this process may have SIGINT ignored; ^C must raise here.
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(Interrupted) as stop:
            Sandbox(batch_size=500).run([SUCCESS] * 100_000)
    finally:
        timer.join()
        signal.signal(signal.SIGINT, old)
    done = [o for o in stop.value.outcomes if o is not None]
    assert 0 < len(done) < 100_000
    assert all(o.observed == "success" for o in done)


def test_one_tree_serves_every_batch_and_settles_each_case() -> None:
    sandbox = Sandbox(batch_size=7)
    before = footprint()
    for _ in range(20):
        assert {o.observed for o in sandbox.run([SUCCESS, parse({"size": 4097})] * 7)} == {"success", "E2BIG"}
        # Between batches: the reaper and its one executor, every case's child reaped.
        assert footprint() == replace(before, descendants=before.descendants + 2)
    assert sandbox.executors == 1
    sandbox.close()
    assert footprint() == before


def test_a_sandbox_used_from_thread_after_thread_loses_nothing() -> None:
    # A tree dies with the thread that started it (PR_SET_PDEATHSIG is per thread).
    sandbox = Sandbox()
    seen: list[str] = []
    for _ in range(4):
        runner = threading.Thread(target=lambda: seen.extend(o.observed for o in sandbox.run([SUCCESS] * 5)))
        runner.start()
        runner.join()
    assert seen == ["success"] * 20
    assert [o.observed for o in sandbox.run([SUCCESS])] == ["success"]
