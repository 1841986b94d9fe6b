"""Emulators and sandboxes as targets (--target 'CMD ... {exe} ...'): the static executor
program under each, the target named and classified in the report. Each is skipped, with
the reason, where its tool is not installed (.ci/run installs them)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ..command import clone3_fuzz

BWRAP = "bwrap --bind / / --dev /dev --proc /proc --unshare-pid {exe}"


def needs(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (.ci/run installs it)")


@pytest.mark.parametrize("tool,target,emulator", [
    ("qemu-x86_64", "qemu-x86_64 {exe}", "QEMU"),  # qemu-user 7.2: no clone3
    ("valgrind", "valgrind -q {exe}", "valgrind"),  # valgrind 3.19: no clone3
])
def test_an_emulator_without_clone3_is_unavailable_and_named(tool: str, target: str, emulator: str,
                                                              tmp_path: Path) -> None:
    needs(tool)
    done = clone3_fuzz("ci", "--time", "10", "--target", target, "--report", str(tmp_path), timeout=300)
    assert done.returncode == 3, done.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "clone3-unavailable" and report["findings"] == []  # one verdict, not thousands
    assert report["target"]["command"].startswith(tool) and emulator in report["target"]["emulator"]
    assert report["target"]["classification"] == "ENOSYS for every call"
    assert "glibc falls back to clone()" in report["clone3_cause"]


def test_gvisor_s_runsc(tmp_path: Path) -> None:
    needs("runsc")
    done = clone3_fuzz("probe", "--target", "runsc --network=none --ignore-cgroups do {exe}", timeout=300)
    if done.returncode == 2:
        pytest.skip(f"runsc does not run here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 3 and "ENOSYS for every call" in done.stderr, done.stderr  # Debian's runsc (2022)


def test_a_sandbox_over_the_real_kernel_agrees(tmp_path: Path) -> None:
    needs("bwrap")
    done = clone3_fuzz("ci", "--time", "15", "--target", BWRAP, "--report", str(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["target"]["classification"] == "a real clone3 with a 88-byte struct"
    assert report["campaign"]["in"] == "target" and report["campaign"]["cases"] > 0


def test_a_campaign_s_workers_run_under_the_target(tmp_path: Path) -> None:
    needs("bwrap")
    done = clone3_fuzz("fuzz", "--time", "10", "--jobs", "1", "--target", BWRAP, "--out", str(tmp_path / "out"),
                       "--corpus", str(tmp_path / "corpus"), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "out" / "campaign.json").read_text())["cases"] > 0
    assert (tmp_path / "out" / "target-0" / "target.log").exists()


def test_a_wrapper_that_runs_a_shell_under_valgrind_is_caught() -> None:
    needs("valgrind")
    done = clone3_fuzz("probe", "--target", "valgrind -q sh -c 'exec \"$0\"' {exe}", timeout=300)
    assert done.returncode == 2 and done.stderr.splitlines()[-1] == (
        "clone3-fuzz: --target: valgrind did not run the executor under itself (the executor saw no emulator): "
        "is a shell in between?")


def test_a_target_that_names_no_executor_is_one_line() -> None:
    done = clone3_fuzz("probe", "--target", "true")
    assert done.returncode == 2 and done.stderr.splitlines()[-1] == (
        "clone3-fuzz: --target: 'true' does not name {exe}, the executor it is to run")


def test_a_target_that_will_not_start_says_why_in_one_line() -> None:
    # As docker does when its runtime refuses the container (crun 1.8 on hybrid cgroups).
    refusal = "docker: Error response from daemon: OCI runtime create failed"
    done = clone3_fuzz("probe", "--target", f"sh -c 'echo >&2; echo {refusal} >&2; echo more >&2; exit 125' {{exe}}")
    assert done.returncode == 2 and done.stderr.splitlines()[-1] == (
        f"clone3-fuzz: executor program: nothing came before it ended (its greeting); it exited with status 125; "
        f"it said: {refusal}")


#: clone3-fuzz itself inside a pid namespace with a /proc of its own, as in a container:
#: /proc shows no level above its own.
CONTAINED = ("unshare", "--pid", "--fork", "--mount-proc")


def test_run_inside_a_container_its_hidden_pid_levels_are_not_guessed(tmp_path: Path) -> None:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and util-linux's unshare")
    probe = clone3_fuzz("probe", "--json", prefix=CONTAINED)
    measured = json.loads(probe.stdout)
    assert measured["machine"]["outer_levels_known"] is False, probe.stdout
    # One level more than this /proc shows: three set_tid levels are not too many (the
    # sandbox adds one), and the outermost pid may be in use or free.
    case = '{"size": 88, "set_tid": [3000, 3001, 3002], "set_tid_size": 3}'
    done = clone3_fuzz("run", "--json", case, prefix=CONTAINED)
    assert done.returncode == 0 and json.loads(done.stdout)["verdict"] == "agree", done.stdout + done.stderr
    assert json.loads(clone3_fuzz("probe", "--json").stdout)["machine"]["outer_levels_known"] is True  # outside it


def test_a_wrapper_s_caller_is_the_one_judged(tmp_path: Path) -> None:
    """The program reports its own caller: here root without CAP_SYS_ADMIN, in a chroot,
    where no user namespace can be made (create_user_ns(): EPERM when chrooted). The
    profile of the caller outside (root with every capability) would call each namespace
    flag's EPERM a discrepancy."""
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("unshare", "setpriv", "chroot")):
        pytest.skip("needs root, util-linux's unshare and setpriv, and chroot")
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    wrapper = (f"unshare --mount sh -c 'mount --bind /proc {root}/proc && cp \"$0\" {root}/c3 && "
               f"exec setpriv --inh-caps=-sys_admin --bounding-set=-sys_admin chroot {root} /c3' {{exe}}")
    done = clone3_fuzz("ci", "--time", "15", "--target", wrapper, "--report", str(tmp_path / "report"), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert not report["profile"]["cap_sys_admin"] and report["profile"]["userns_denied"] is True
    assert report["rules"].get("userns.denied", 0) > 0 and report["rules"].get("perm.namespace", 0) > 0
