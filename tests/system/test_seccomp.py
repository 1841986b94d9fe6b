"""The CI job behind real seccomp profiles, compiled with libseccomp and loaded by the
executor program: ENOSYS is the fallback path, EPERM breaks glibc, and filtering clone by
its flags while clone3 goes through is a bypass."""

from __future__ import annotations

import ctypes.util
import json
from pathlib import Path

import pytest

from ..command import clone3_fuzz

DATA = Path(__file__).resolve().parents[1] / "data" / "seccomp"
pytestmark = pytest.mark.skipif(ctypes.util.find_library("seccomp") is None,
                                reason="libseccomp is not installed (.ci/run installs libseccomp2)")


def ci(profile: str, folder: Path, *options: str) -> tuple[int, dict]:
    done = clone3_fuzz("ci", "--time", "10", "--seccomp-profile", str(DATA / f"{profile}.json"), *options, "--report",
                       str(folder), timeout=300)
    return done.returncode, json.loads((folder / "report.json").read_text())


def test_docker_s_default_is_unavailable(tmp_path: Path) -> None:
    code, report = ci("docker-default", tmp_path)
    assert code == 3 and report["target"]["classification"] == "ENOSYS for every call"
    assert "glibc falls back to clone()" in report["clone3_cause"]


def test_docker_s_default_with_cap_sys_admin_is_the_kernel_s_clone3(tmp_path: Path) -> None:
    # moby's clone3 and clone rules exclude CAP_SYS_ADMIN: docker run --cap-add SYS_ADMIN.
    code, report = ci("docker-default", tmp_path, "--cap-add", "sys_admin")
    assert code == 0 and report["target"]["classification"].startswith("a real clone3")
    assert report["target"]["command"].endswith("docker-default.json (+CAP_SYS_ADMIN)")


def test_a_capability_linux_does_not_have_is_one_line() -> None:
    done = clone3_fuzz("probe", "--seccomp-profile", str(DATA / "docker-default.json"), "--cap-add", "CAP_WIZARD")
    assert done.returncode == 2 and "'CAP_WIZARD' is not a Linux capability" in done.stderr.splitlines()[-1]


def test_podman_s_default_is_the_kernel_s_clone3(tmp_path: Path) -> None:
    code, report = ci("podman-default", tmp_path)
    assert code == 0 and report["target"]["classification"].startswith("a real clone3")
    assert report["findings"] == [] and report.get("bypass") is None and report["problems"] == []


@pytest.mark.parametrize("profile", ["docker-default-2016", "docker-default-before-clone3-enosys"])
def test_an_eperm_profile_is_the_fallback_finding(profile: str, tmp_path: Path) -> None:
    code, report = ci(profile, tmp_path)
    assert code == 1 and report["target"]["classification"] == "EPERM for every call"
    assert "glibc does not fall back on EPERM; pthread_create and posix_spawn fail" in report["clone3_cause"]
    assert [f["rule"] for f in report["findings"]] == ["entry.blocked"]


def test_runc_s_enosys_stub_turns_the_2016_eperm_into_the_fallback(tmp_path: Path) -> None:
    # runc (1.0.0-rc93 on) answers ENOSYS above the largest syscall a profile names:
    # Docker 20.10 under the 2016 profile gives clone3 ENOSYS (measured), while a profile
    # naming newer syscalls than clone3 (faccessat2 and on) still gives it EPERM.
    code, report = ci("docker-default-2016", tmp_path / "2016", "--runc")
    assert code == 3 and report["target"]["classification"] == "ENOSYS for every call"
    assert report["target"]["command"].endswith("(as runc applies it)")
    code, report = ci("docker-default-before-clone3-enosys", tmp_path / "derived", "--runc")
    assert code == 1 and report["target"]["classification"] == "EPERM for every call"


def test_filtering_clone_by_flags_but_not_clone3_is_a_bypass(tmp_path: Path) -> None:
    code, report = ci("clone-newuser-only", tmp_path)
    assert code == 1 and report["bypass"] == {"clone_denies": ["CLONE_NEWUSER"], "clone3_lets_through": ["CLONE_NEWUSER"]}
    assert any(problem.startswith("seccomp bypass") for problem in report["problems"])


def test_a_profile_that_does_not_parse_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    done = clone3_fuzz("probe", "--seccomp-profile", str(tmp_path / "bad.json"))
    assert done.returncode == 2 and "not an OCI seccomp profile" in done.stderr.splitlines()[-1]


def _own(folder: Path, rule: dict) -> Path:
    """A profile that allows everything but answers clone3 by ``rule``."""
    path = folder / "profile.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["clone3"], **rule}]}))
    return path


@pytest.mark.parametrize("rule,answer", [
    ({"action": "SCMP_ACT_KILL_PROCESS"}, "SIGSYS"),
    ({"action": "SCMP_ACT_TRAP"}, "SIGSYS"),
    ({"action": "SCMP_ACT_ERRNO", "errnoRet": 95}, "ENOTSUP"),  # any errno but ENOSYS
], ids=["kill", "trap", "eopnotsupp"])
def test_a_profile_that_refuses_every_clone3_otherwise_is_the_blocked_finding(rule: dict, answer: str,
                                                                             tmp_path: Path) -> None:
    done = clone3_fuzz("ci", "--time", "10", "--seccomp-profile", str(_own(tmp_path, rule)), "--report",
                       str(tmp_path / "report"), timeout=300)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert done.returncode == 1 and report["target"]["classification"] == f"{answer} for every call", done.stderr
    assert "glibc does not fall back" in report["clone3_cause"] or "the caller is killed (SIGSYS)" in report["clone3_cause"]
    assert [f["rule"] for f in report["findings"]] == ["entry.blocked"] and not report.get("harness")


def test_a_profile_that_refuses_only_large_structs_is_partial(tmp_path: Path) -> None:
    # Argument 1 is the size: EPERM above 88 bytes (a profile written for one struct).
    rule = {"action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [{"index": 1, "value": 88, "op": "SCMP_CMP_GT"}]}
    done = clone3_fuzz("ci", "--time", "10", "--seccomp-profile", str(_own(tmp_path, rule)), "--report",
                       str(tmp_path / "report"), timeout=300)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    classification = report["target"]["classification"]
    assert done.returncode == 1 and classification.startswith("partial: ") and "(EPERM)" in classification
    assert "glibc does not fall back on EPERM" in classification
    assert report["findings"] and all(f["observed"] == "EPERM" for f in report["findings"])
    assert f"Target: the seccomp profile {tmp_path / 'profile.json'}: partial" in (tmp_path / "report" / "report.md").read_text()
