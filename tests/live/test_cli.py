"""The command line, as a user runs it: as this user and as uid 65534."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ..command import clone3_fuzz


def test_run_prints_outcome_verdict_rule_and_case() -> None:
    done = clone3_fuzz("run", '{"size": 4097}', '{"size": 64, "memory": "guard"}')
    assert done.returncode == 0, done.stderr
    assert [line.split() for line in done.stdout.splitlines()] == [
        ["E2BIG", "agree", "size.over_page", '{"size":4097}'],
        ["success{signal=none}", "agree", "success", '{"size":64,"memory":"guard"}'],
    ]


def test_a_discrepancy_exits_1_and_names_the_rule() -> None:
    # Judged as a 5.5 kernel, where CLONE_INTO_CGROUP does not exist yet, this kernel disagrees.
    done = clone3_fuzz("run", "--json", "--kernel", "5.5", '{"size": 88, "flags": "CLONE_INTO_CGROUP"}')
    assert done.returncode == 1, done.stderr
    row = json.loads(done.stdout)
    assert (row["observed"], row["predicted"], row["rule"], row["verdict"]) == (
        "EBADF", ["EINVAL"], "flags.unknown", "discrepancy")


def test_run_with_relations_checks_variants() -> None:
    done = clone3_fuzz("run", "--json", "--relations", '{"size": 100, "exit_signal": 17}')
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["verdict"] for line in done.stdout.splitlines()] == ["agree"]


def test_predict_runs_nothing_and_names_the_rule() -> None:
    done = clone3_fuzz("predict", "--json", "--kernel", "6.2", '{"size": 88, "flags": "CLONE_NEWTIME"}')
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert (row["predicted"], row["rule"], row["kernel"]) == (["EINVAL"], "flags.deprecated", "6.2")


def test_run_json_from_a_file_and_stdin(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text('# comment\n{"size": 63}\n{"size": 88, "flags": "CLONE_DETACHED"}\n')
    done = clone3_fuzz("run", "--json", "-f", str(cases), "-", stdin='{"size": 96, "tail": {"88": 1}}\n')
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["where"], r["observed"], r["verdict"]) for r in rows] == [
        ("<stdin>:1", "E2BIG", "agree"), (f"{cases}:2", "EINVAL", "agree"), (f"{cases}:3", "EINVAL", "agree")]
    assert rows[2]["case"] == {"size": 88, "flags": "CLONE_DETACHED"}


def test_bad_input_names_the_case_and_runs_nothing(tmp_path: Path) -> None:
    cases = tmp_path / "bad.jsonl"
    cases.write_text('{"size": 88}\n{"size": 88, "tail": {"80": 1}}\n{"size": \n')
    done = clone3_fuzz("run", "-f", str(cases))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"clone3-fuzz: {cases}:2: tail: offset 80 is outside [88, 65536)",
        f"clone3-fuzz: {cases}:3: json: Expecting value",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--frobnicate"), "unrecognized arguments: --frobnicate"),
        (("run", "-f", "/nonexistent.jsonl"), "/nonexistent.jsonl: No such file or directory"),
        (("run",), "no cases given"),
        (("run", "--timeout-ms", "0", "{}"), "argument --timeout-ms: 0 is not positive"),
        (("run", "--cgroup", "/nonexistent", '{"size": 88, "cgroup": "cgroup2"}'), "cgroup: /nonexistent"),
        (("predict", "--kernel", "banana", '{"size": 88}'), "--kernel: not a kernel version: 'banana'"),
    ],
)
def test_usage_errors_are_one_line(args: tuple[str, ...], message: str) -> None:
    done = clone3_fuzz(*args)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and message in done.stderr


def test_probe_json_describes_this_kernel() -> None:
    done = clone3_fuzz("probe", "--json")
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert probe["release"] == os.uname().release
    assert probe["clone3"] == "available"
    assert probe["struct_size"] == 88
    assert "CLONE_DETACHED" not in probe["accepted_flag_names"]
    assert {"CLONE_VM", "CLONE_CLEAR_SIGHAND", "CLONE_INTO_CGROUP"} <= set(probe["accepted_flag_names"])
