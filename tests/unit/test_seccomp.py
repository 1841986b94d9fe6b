"""OCI/Docker seccomp profiles read as a container runtime applies them: which rules hold
for an architecture and a set of capabilities, and what they leave clone3."""

from __future__ import annotations

from pathlib import Path

import pytest
from clone3_fuzz.model import abi, seccomp
from clone3_fuzz.model.case import CaseError

DATA = Path(__file__).resolve().parents[1] / "data" / "seccomp"


def profile(name: str, caps: frozenset[str] = seccomp.DOCKER_CAPS, machine: str = "x86_64",
            release: str = "6.18.44") -> seccomp.Profile:
    return seccomp.load((DATA / f"{name}.json").read_text(), machine, release, caps)


def test_docker_s_default_answers_enosys_to_clone3_and_filters_clone_by_flags() -> None:
    # moby's default.json: clone3 is ERRNO 38 unless CAP_SYS_ADMIN; clone is allowed only
    # with none of the namespace flags (MASKED_EQ 0x7e020000 == 0).
    docker = profile("docker-default")
    assert docker.clone3() == "errno 38" and docker.clone_flags_denied() == 0x7E020000
    assert docker.clone_flags_denied() & abi.CLONE["CLONE_NEWUSER"]
    admin = profile("docker-default", seccomp.DOCKER_CAPS | {"CAP_SYS_ADMIN"})
    assert admin.clone3() == "allow" and admin.clone_flags_denied() == 0


def test_before_moby_42681_clone3_fell_to_the_default_eperm() -> None:
    assert profile("docker-default-before-clone3-enosys").clone3() == "errno 1"
    # The 2016 profile, one rule a syscall: EPERM for all it does not name, clone3 among
    # them, and clone's mask from before CLONE_NEWCGROUP was in it.
    old = profile("docker-default-2016")
    assert old.clone3() == "errno 1" and old.clone_flags_denied() == 0x7C020000
    assert not old.clone_flags_denied() & abi.CLONE["CLONE_NEWCGROUP"]


def test_podman_s_default_lets_clone3_and_clone_through_unfiltered() -> None:
    # containers-common's seccomp.json allows both by name, with no flag argument rule, and
    # answers ENOSYS (38), not EPERM, to the syscalls it does not know.
    podman = profile("podman-default")
    assert podman.clone3() == "allow" and podman.clone_flags_denied() == 0


def test_a_profile_that_filters_clone_only_leaves_clone3_open() -> None:
    bypass = profile("clone-newuser-only")
    assert bypass.clone3() == "allow" and bypass.clone_flags_denied() == abi.CLONE["CLONE_NEWUSER"]


def test_arch_rules_follow_the_machine() -> None:
    names = {rule.name for rule in profile("docker-default").rules}
    assert "arch_prctl" in names and "set_tls" not in names
    assert "set_tls" in {rule.name for rule in profile("docker-default", machine="aarch64").rules}


def test_a_file_that_is_no_profile_is_named() -> None:
    with pytest.raises(CaseError, match="bad.json: seccomp: not an OCI seccomp profile"):
        seccomp.load("{}", "x86_64", "6.18", where="bad.json")


def test_min_kernel_rules_follow_the_kernel_they_are_applied_on() -> None:
    # moby's default allows ptrace from 4.8 on (includes.minKernel); excludes.minKernel
    # drops a rule from that version on (moby's seccomp_linux.go).
    assert "ptrace" in {rule.name for rule in profile("docker-default").rules}
    assert "ptrace" not in {rule.name for rule in profile("docker-default", release="4.4.0-210-generic").rules}
    text = ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", '
            '"errnoRet": 38, "excludes": {"minKernel": "5.3"}}]}')
    assert seccomp.load(text, "x86_64", "5.2.21").clone3() == "errno 38"
    assert seccomp.load(text, "x86_64", "5.3.0").clone3() == "allow"
    with pytest.raises(CaseError, match="p.json: seccomp: excludes.minKernel 'new' is not a kernel version"):
        seccomp.load(text.replace('"5.3"', '"new"'), "x86_64", "6.18", where="p.json")
