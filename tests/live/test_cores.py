"""--jobs defaults to the cores this process may use: its affinity mask and its cgroups'
CPU limits, set for real on a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from clone3_fuzz.campaign.supervisor import available_cores

PRINT = "from clone3_fuzz.campaign.supervisor import available_cores; print(available_cores())"


def _cores(prefix: str = "") -> int:
    done = subprocess.run(["sh", "-c", f'{prefix}exec "$@"', "sh", sys.executable, "-c", PRINT],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_the_affinity_mask_counts() -> None:
    assert available_cores() == min(available_cores(), len(os.sched_getaffinity(0)))
    assert _cores(f"taskset -pc {min(os.sched_getaffinity(0))} $$ >/dev/null && ") == 1


def _cpu_folder() -> tuple[Path, str] | None:
    """A folder to make a limited group in, and the file that sets its quota."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        kind, options, mount = right.split()[0], right.split()[-1].split(","), Path(left.split()[4])
        if kind == "cgroup" and "cpu" in options:
            return mount, "cpu.cfs_quota_us"
        if kind == "cgroup2" and "cpu" in (mount / "cgroup.subtree_control").read_text().split():
            return mount, "cpu.max"
    return None


def test_a_cgroup_cpu_limit_counts(tmp_path: Path) -> None:
    found = _cpu_folder()
    if os.geteuid() != 0 or found is None or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs root, a cpu controller to set a quota with, and two cores to tell them apart")
    mount, knob = found
    group = mount / f"clone3-fuzz-test-cores-{os.getpid()}"
    group.mkdir()
    try:
        # One CPU's worth of time per period: 1 core, whatever the affinity says.
        (group / knob).write_text("100000 100000" if knob == "cpu.max" else "100000")
        assert _cores(f"echo $$ > {group}/cgroup.procs && ") == 1
    finally:
        group.rmdir()
