"""Stable backports in the version model. Each expectation cites where the patch level was
read (model/stable.py keeps the same sources beside each entry)."""

from __future__ import annotations

import dataclasses

import pytest
from clone3_fuzz.model import abi, stable
from clone3_fuzz.model import profile as profiles
from clone3_fuzz.model.case import parse
from clone3_fuzz.model.oracle import predict

from .test_oracle import ROOT
from .test_profile import measured

NEWTIME = parse({"size": 88, "flags": "CLONE_NEWTIME", "exit_signal": 17})


@pytest.mark.parametrize("first,before", [
    ("5.10.175", "5.10.174"),  # [PATCH 5.10 000/104] 5.10.175-rc1 review, 2023-03-15
    ("5.15.103", "5.15.102"),  # [PATCH 5.15 000/145] 5.15.103-rc1 review, 2023-03-15
    ("6.1.20", "6.1.19"),  # [PATCH 6.1 000/140] 6.1.20-rc2 review, 2023-03-16
    ("6.2.7", "6.2.6"),  # the same week; Debian's kernels measured in issue 13
    ("6.3", "6.2"),  # a402f1e35313 in mainline
])
def test_clone_newtime_reached_each_stable_series(first: str, before: str) -> None:
    assert predict(NEWTIME, profiles.named(first, ROOT)).bases == ["success"]
    assert predict(NEWTIME, profiles.named(before, ROOT)).rules == {"EINVAL": "flags.deprecated"}


def test_debian_6_1_192_accepts_clone_newtime() -> None:
    # Issue 13: `predict --kernel 6.1.192` said EINVAL; the real 6.1.192 accepts it.
    assert predict(NEWTIME, profiles.named("6.1.192", ROOT)).bases == ["success"]
    # A series the backport never reached keeps the old answer: 5.4 has no 5.4.y entry.
    assert predict(NEWTIME, profiles.named("5.4.300", ROOT)).bases == ["EINVAL"]


def test_the_stack_check_reached_5_3_11() -> None:
    # fa729c4df558 "clone3: validate stack arguments": 5.4, and 5.3.11 (reference §2.3).
    case = parse({"size": 64, "stack_size": 4096})
    assert predict(case, profiles.named("5.3.11", ROOT)).bases == ["EINVAL"]
    assert predict(case, profiles.named("5.3.10", ROOT)).bases == ["success"]


def test_pid_max_is_per_namespace_from_6_14_only() -> None:
    namespaced = dataclasses.replace(ROOT, pid_max=4194304, outer_pid_max=32768)
    assert profiles.named("6.13", namespaced).pid_max == 32768
    assert profiles.named("6.14", namespaced).pid_max == 4194304


def test_every_change_names_its_commit_and_cites_each_stable_release() -> None:
    for change in stable.CHANGES.values():
        assert change.commit and change.subject and change.mainline
        assert {f"{s[0]}.{s[1]}.{level}" for s, level in change.stable.items()} <= set(change.sources)


def test_a_debian_kernel_is_judged_by_its_upstream_version() -> None:
    # Debian names the kernel by its ABI (uname -r) and the upstream version in uname -v.
    build = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-1 (2026-10-28)"
    assert stable.upstream("6.1.0-47-amd64", build) == "6.1.192"
    assert stable.upstream("6.18.44-fc-v669", "#1 SMP PREEMPT_DYNAMIC") == "6.18.44-fc-v669"
    live = profiles.from_measurement(measured("6.1.0-47-amd64", build=build,
                                              accepted_flags=profiles.version_mask((6, 1, 0))))
    assert live.version == (6, 1, 192) and live.accepted_flags & abi.CLONE["CLONE_NEWTIME"]
