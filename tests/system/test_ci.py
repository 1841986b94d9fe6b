"""The CI job end to end: every exit status, the report files, and the HTML in a browser."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from clone3_fuzz.runtime.sandbox import exec_filtered

from ..command import clone3_fuzz
from ..unit.test_ktap import parse_ktap


def ci(*args: str) -> subprocess.CompletedProcess[str]:
    return clone3_fuzz("ci", *args, timeout=300)


@pytest.fixture(scope="module")
def agreeing(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    folder = tmp_path_factory.mktemp("ci")
    return ci("--time", "12", "--report", str(folder), "--junit", str(folder / "junit.xml")), folder


def test_exit_0_when_everything_agrees(agreeing: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, folder = agreeing
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.splitlines()[-2:]
    assert last[0].startswith("agree: ") and last[1] == f"report: {folder}/report.html (report.json, report.md, {folder}/junit.xml)"


def test_the_report_files_parse(agreeing: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, folder = agreeing
    report = json.loads((folder / "report.json").read_text())
    assert report["status"] == "agree" and report["exit_code"] == 0
    assert report["profile"]["struct_size"] == 88 and report["counts"]["cases"] > 90
    assert report["campaign"]["cases"] > 0 and len(report["campaign"]["samples"]) >= 2
    assert {"size.over_page", "copy.tail_nonzero", "success"} <= set(report["rules"])
    grid = report["abi_map"]["grid"]
    sizes = report["abi_map"]["sizes"]
    assert grid[sizes.index(0)] == ["EINVAL"] * len(grid[0])
    assert grid[sizes.index(4097)] == ["E2BIG"] * len(grid[0])
    assert grid[sizes.index(4096)][0] == "success" and set(grid[sizes.index(4096)][1:]) == {"E2BIG"}
    assert all(observed in expected for row, due in zip(grid, report["abi_map"]["expected"])
               for observed, expected in zip(row, due))
    assert (folder / "report.md").read_text().startswith("# clone3-fuzz report")
    suite = ET.parse(folder / "junit.xml").getroot()
    names = [case.get("name") for case in suite.iter("testcase")]
    assert "clone3.available" in names and "rules.size" in names and "relations.precedence" in names
    assert suite.get("failures") == "0" and suite.get("errors") == "0"


def test_exit_1_under_a_planted_fault(tmp_path: Path) -> None:
    done = ci("--time", "12", "--report", str(tmp_path), "--junit", str(tmp_path / "junit.xml"),
              "--fault", "oversize-einval")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "discrepancy" and report["findings"]
    finding = next(f for f in report["findings"] if f["rule"] == "size.over_page")
    assert (finding["observed"], finding["expected"], finding["status"]) == ("EINVAL", ["E2BIG"], "confirmed")
    assert "long c3_clone3(void *args, uint64_t size, const struct timespec *linger)" in finding["repro"]  # the executor's own code
    assert len(report["findings"]) <= 2 and report["fault"] == "oversize-einval"
    assert "oversize-einval" in (tmp_path / "report.md").read_text()
    assert 'class="unexpected"' in (tmp_path / "report.html").read_text()  # the map shows what was expected
    failures = [c.get("name") for c in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")
                if c.find("failure") is not None]
    assert any(name.startswith("finding.size.over_page") for name in failures)
    # The same folder again, without the fault: the earlier finding is listed, not this run's verdict.
    again = ci("--time", "3", "--report", str(tmp_path))
    assert again.returncode == 0, again.stdout + again.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["findings"] == [] and finding["signature"] in [f["signature"] for f in report["earlier_findings"]]
    assert "not seen in this run" in (tmp_path / "report.md").read_text()


def test_a_budget_the_replay_takes_whole_says_it_did_not_fuzz(tmp_path: Path) -> None:
    done = ci("--time", "3", "--report", str(tmp_path))
    assert done.returncode == 0 and "ci: no time left to fuzz (--time 3; 5 s are kept for the report)" in done.stderr
    assert json.loads((tmp_path / "report.json").read_text())["counts"]["cases"] > 0  # the replay still ran


def test_exit_2_on_a_harness_error() -> None:
    done = ci("--time", "5", "--report", "/proc/clone3-fuzz-report")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and "--report" in done.stderr


def test_exit_3_when_a_seccomp_filter_hides_clone3(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "clone3_fuzz", "ci", "--time", "5", "--report", str(tmp_path)]
    assert os.waitstatus_to_exitcode(exec_filtered(command, errno.ENOSYS)) == 3
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "clone3-unavailable" and report["clone3"] == "ENOSYS"
    assert "seccomp" in report["clone3_cause"]


def test_eperm_for_every_clone3_is_a_finding_not_unavailable(tmp_path: Path) -> None:
    """glibc falls back to clone() on ENOSYS only (moby#42680): a filter that answers EPERM
    breaks pthread_create, so ci fails (exit 1) with one finding, and so does probe."""
    command = [sys.executable, "-m", "clone3_fuzz", "ci", "--time", "5", "--report", str(tmp_path)]
    assert os.waitstatus_to_exitcode(exec_filtered(command, errno.EPERM)) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "discrepancy" and "glibc does not fall back on EPERM" in report["clone3_cause"]
    [finding] = report["findings"]
    assert (finding["rule"], finding["observed"], finding["status"]) == ("entry.blocked", "EPERM", "confirmed")
    probe = [sys.executable, "-m", "clone3_fuzz", "probe"]
    assert os.waitstatus_to_exitcode(exec_filtered(probe, errno.EPERM)) == 1


def test_ktap_exits_as_a_kselftest_does(tmp_path: Path) -> None:
    """0 pass, 1 fail (a planted fault), 4 skip (clone3 hidden by a seccomp filter); KTAP on
    stdout in every case."""
    failing = ci("--time", "12", "--ktap", "--report", str(tmp_path / "fault"), "--fault", "oversize-einval")
    assert failing.returncode == 1, failing.stderr
    results = parse_ktap(failing.stdout)
    assert results[0][:3] == (True, 1, "clone3.available") and any(not ok and name.startswith("finding.size.over_page")
                                              for ok, _, name, _ in results)
    out = tmp_path / "skip.ktap"
    command = ["/bin/sh", "-c", f'exec "$0" "$@" >{out}', sys.executable, "-m", "clone3_fuzz", "ci", "--time", "5",
               "--ktap", "--report", str(tmp_path / "skip")]
    assert os.waitstatus_to_exitcode(exec_filtered(command, errno.ENOSYS)) == 4
    assert parse_ktap(out.read_text()) == [(True, 1, "clone3.available", "SKIP")]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_the_html_report_opens_in_chromium(agreeing: tuple[subprocess.CompletedProcess[str], Path],
                                           tmp_path: Path) -> None:
    _, folder = agreeing
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    done = subprocess.run(["chromium", *flags, "--dump-dom", f"file://{folder}/report.html"], capture_output=True,
                          text=True, timeout=120)
    assert 'id="abi-map"' in done.stdout and 'id="flag-map"' in done.stdout and 'id="rule-coverage"' in done.stdout
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    shot = tmp_path / "report.png"
    subprocess.run(["chromium", *flags, f"--screenshot={shot}", "--window-size=1200,1600",
                    f"file://{folder}/report.html"], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000


@pytest.mark.parametrize("command", [["probe"], ["run", '{"size": 88}'], ["fuzz", "--time", "2"], ["selftest", "--time", "2"]])
def test_every_command_names_a_hidden_clone3(command: list[str], tmp_path: Path) -> None:
    """Under a container-style filter, each command says so in one line and exits 3."""
    log = tmp_path / "stderr"
    shell = f'exec "$@" 2>{log} >/dev/null'
    argv = ["/bin/sh", "-c", shell, "sh", sys.executable, "-m", "clone3_fuzz", *command]
    if command[0] in ("fuzz", "selftest"):
        argv += ["--out", str(tmp_path / "out")]
    assert os.waitstatus_to_exitcode(exec_filtered(argv, errno.ENOSYS)) == 3
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and "clone3 is unavailable here" in lines[0], lines
