"""clone3-fuzz as uid 65534: the probe, cases, the CI job, a selftest and the live oracle
suite, where namespaces and set_tid answer EPERM."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from ..command import NOBODY, ROOT, clone3_fuzz


def _nobody_can_run() -> str | None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return "needs root and setpriv to switch to uid 65534"
    done = subprocess.run([*NOBODY, sys.executable, "-c", "import clone3_fuzz.runtime._executor"], capture_output=True, text=True,
                          cwd=ROOT)
    return None if done.returncode == 0 else f"uid 65534 cannot import the checkout: {done.stderr.strip()[-200:]}"


@pytest.fixture(scope="module")
def nobody() -> tuple[str, ...]:
    reason = _nobody_can_run()
    if reason:
        pytest.skip(reason)
    return tuple(NOBODY)


def test_unprivileged_probe(nobody: tuple[str, ...]) -> None:
    done = clone3_fuzz("probe", "--json", prefix=nobody)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert probe["privilege"]["euid"] == 65534 and not probe["privilege"]["cap_sys_admin"]
    assert not probe["privilege"]["executor_cap_sys_admin"]
    assert probe["clone3"] == "available" and probe["struct_size"] == 88


def test_unprivileged_batch(nobody: tuple[str, ...]) -> None:
    cases = ['{"size": 4097}', '{"size": 88, "exit_signal": 17}', '{"size": 88, "flags": "CLONE_NEWNET"}',
             '{"size": 88, "flags": "CLONE_NEWUSER|CLONE_NEWNET"}', '{"size": 88, "set_tid": [7]}',
             '{"size": 88, "exit_signal": "SIGKILL"}']
    done = clone3_fuzz("run", "--json", "--relations", *cases, prefix=nobody)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["observed"] for r in rows] == ["E2BIG", "success{signal=SIGCHLD}", "EPERM", "success{signal=none,ns=user}",
                                             "EPERM", "success{signal=SIGKILL}"]
    assert {r["verdict"] for r in rows} == {"agree"}


def test_unprivileged_seed_corpus_agrees(nobody: tuple[str, ...]) -> None:
    done = clone3_fuzz("run", "--json", "--relations", "-f", "corpus/seeds.jsonl", prefix=nobody)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {json.loads(line)["verdict"] for line in done.stdout.splitlines()} == {"agree"}


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder uid 65534 may write (pytest's own tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="clone3-fuzz-nobody-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_unprivileged_ci_job(nobody: tuple[str, ...], shared_dir: Path) -> None:
    done = clone3_fuzz("ci", "--time", "10", "--report", str(shared_dir / "report"), prefix=nobody)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((shared_dir / "report" / "report.json").read_text())
    assert report["status"] == "agree" and report["campaign"]["cases"] > 0
    assert not report["profile"]["cap_sys_admin"] and report["rules"].get("perm.namespace", 0) > 0


def test_unprivileged_selftest(nobody: tuple[str, ...], shared_dir: Path) -> None:
    done = clone3_fuzz("selftest", "--time", "5", "--faults", "oversize-einval", "--out", str(shared_dir), prefix=nobody)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 of 1 planted faults detected" in done.stdout


def test_unprivileged_oracle_properties(nobody: tuple[str, ...]) -> None:
    """The live oracle and relation tests (a 1,000-case generated sweep among them) as uid
    65534, where namespaces and set_tid answer EPERM."""
    env = {**os.environ, "CLONE3_FUZZ_SWEEP": "1000"}
    done = subprocess.run([*nobody, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/live/test_oracle_live.py", "tests/live/test_regressions_live.py",
                           "tests/system/test_sweep.py"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1] and "failed" not in done.stdout.splitlines()[-1]
