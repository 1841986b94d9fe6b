"""Campaigns for real: atheris workers, planted faults, findings and their reproducers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clone3_fuzz.runtime.sandbox import FAULTS, exec_filtered, exec_with_fault

from ..command import ROOT
from ..command import clone3_fuzz as _clone3_fuzz


def clone3_fuzz(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return _clone3_fuzz(*args, timeout=timeout)


def _complete(folder: Path) -> bool:
    return all((folder / name).exists() for name in ("case.json", "finding.json", "repro.c"))


def test_a_campaign_starts_and_stops(tmp_path: Path) -> None:
    done = clone3_fuzz("fuzz", "--time", "6", "--out", str(tmp_path / "out"), "--corpus", str(tmp_path / "corpus"))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "out" / "campaign.json").read_text())
    assert summary["cases"] > 0 and summary["findings"] == [] and summary["failed_workers"] == []
    assert summary["corpus"] >= 90  # the JSON seeds, and whatever the fuzzer added


def test_two_jobs_share_a_corpus(tmp_path: Path) -> None:
    done = clone3_fuzz("fuzz", "--time", "6", "--jobs", "2", "--out", str(tmp_path / "out"),
                       "--corpus", str(tmp_path / "corpus"))
    assert done.returncode == 0, done.stdout + done.stderr
    stats = sorted(p.name for p in (tmp_path / "out" / "stats").iterdir())
    assert stats == ["worker-0.json", "worker-1.json"]
    assert all(json.loads((tmp_path / "out" / "stats" / s).read_text())["cases"] > 0 for s in stats)


def test_corrupt_corpus_entries_are_named_and_skipped(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "bad").write_text('{"size": 88, "bogus": 1}\n')
    (corpus / "good").write_text('{"size": 4097}\n')
    done = clone3_fuzz("fuzz", "--time", "5", "--out", str(tmp_path / "out"), "--corpus", str(corpus))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"clone3-fuzz: {corpus}/bad:1: bogus: unknown key (skipped)" in done.stderr.splitlines()
    assert json.loads((tmp_path / "out" / "campaign.json").read_text())["cases"] > 0


def test_sigint_loses_no_corpus_entry_or_finding(tmp_path: Path) -> None:
    out = tmp_path / "st"
    # A shell that started us in the background may have left SIGINT ignored: undo that
    # for the campaign, as a terminal would have it.
    process = subprocess.Popen([sys.executable, "-m", "clone3_fuzz", "selftest", "--faults", "undersize-e2big",
                                "--time", "120", "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    findings, corpus = out / "undersize-e2big" / "findings", out / "undersize-e2big" / "corpus"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (findings.exists() and any(_complete(f) for f in findings.iterdir())):
        time.sleep(0.2)
    time.sleep(1)
    seen_corpus = {p.name for p in corpus.iterdir()}
    seen_findings = {p.name for p in findings.iterdir() if _complete(p)}
    process.send_signal(signal.SIGINT)
    try:
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert seen_findings, stderr
    assert seen_corpus <= {p.name for p in corpus.iterdir()}
    assert seen_findings <= {p.name for p in findings.iterdir() if _complete(p)}
    assert "detected" in stdout and process.returncode == 130, stdout + stderr  # ^C: what was done, and 130


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_a_finding_round_trip(tmp_path: Path) -> None:
    """Planted fault -> finding -> minimized case -> a C reproducer that compiles and
    reproduces under the fault, and passes on the real kernel."""
    done = clone3_fuzz("selftest", "--faults", "oversize-einval", "--time", "10", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    folder = tmp_path / "oversize-einval" / "findings" / "size.over_page--over-page"
    case = json.loads((folder / "case.json").read_text())
    assert set(case) == {"size"} and case["size"] > os.sysconf("SC_PAGESIZE")  # minimized to the size alone
    meta = json.loads((folder / "finding.json").read_text())
    assert (meta["observed"], meta["expected"], meta["rule"], meta["status"]) == ("EINVAL", ["E2BIG"], "size.over_page",
                                                                                  "confirmed")
    binary = tmp_path / "repro"
    subprocess.run(["cc", "-o", str(binary), str(folder / "repro.c")], check=True)
    assert os.waitstatus_to_exitcode(exec_with_fault([str(binary)], "oversize-einval")) == 1
    assert subprocess.run([str(binary)], capture_output=True, text=True).stdout == "E2BIG\n"


def test_selftest_detects_every_planted_fault(tmp_path: Path) -> None:
    """Each fault found, with at most two findings, each confirmed by a reproducer that
    fails under the fault and passes without it."""
    done = clone3_fuzz("selftest", "--time", "10", "--out", str(tmp_path), timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.split()[:1] in (["detected"], ["MISSED"])]
    assert len(lines) == len(FAULTS) >= 15
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    for fault in FAULTS:
        folders = list((tmp_path / fault / "findings").glob("[!.]*"))
        assert 1 <= len(folders) <= 2, (fault, [f.name for f in folders])
        assert all(json.loads((f / "finding.json").read_text())["status"] == "confirmed" for f in folders), fault
    assert "0 reproducers fail without their fault" in done.stdout


def test_libfuzzer_merge_by_hand_uses_this_interpreter(tmp_path: Path) -> None:
    """-merge (like -fork and -jobs) starts argv[0] again: it must be this Python, with
    atheris, not whatever `env python3` finds."""
    seeds, merged = tmp_path / "in", tmp_path / "out"
    seeds.mkdir()
    merged.mkdir()
    (seeds / "a").write_text('{"size": 88}\n')
    (seeds / "b").write_text('{"size": 4097}\n')
    done = subprocess.run([sys.executable, str(ROOT / "fuzz" / "clone3_target.py"), "-merge=1", str(merged), str(seeds)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "CLONE3_FUZZ_OUT": str(tmp_path / "findings")})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "No module named" not in done.stderr and len(list(merged.iterdir())) == 2


def test_an_opt_in_crash_leaves_an_artifact_that_fails_alone(tmp_path: Path) -> None:
    """With CLONE3_FUZZ_CRASH_ON_FINDING=1, a confirmed finding crashes the target as
    libFuzzer expects; replayed alone, the artifact fails again under the same fault, and
    passes on the healthy kernel."""
    target, artifacts = ROOT / "fuzz" / "clone3_target.py", tmp_path / "artifacts"
    corpus = tmp_path / "corpus"
    artifacts.mkdir()
    shutil.copytree(ROOT / "fuzz" / "clone3_target_seed_corpus", corpus)
    env = {**os.environ, "CLONE3_FUZZ_CRASH_ON_FINDING": "1", "CLONE3_FUZZ_FAULT": "tail-ignored",
           "CLONE3_FUZZ_OUT": str(tmp_path / "out")}

    def target_run(*args: str, **changes: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(target), *args], env={**env, **changes}, cwd=tmp_path,
                              capture_output=True, text=True, timeout=180)

    done = target_run(str(corpus), "-max_total_time=90", f"-artifact_prefix={artifacts}/")
    assert done.returncode != 0 and "ConfirmedFinding: clone3:" in done.stdout + done.stderr, done.stderr[-2000:]
    [artifact] = list(artifacts.glob("crash-*"))
    again = target_run(str(artifact))
    assert again.returncode != 0 and "ConfirmedFinding: clone3:" in again.stdout + again.stderr, again.stderr[-2000:]
    healthy = target_run(str(artifact), CLONE3_FUZZ_FAULT="")
    assert healthy.returncode == 0, healthy.stderr[-2000:]


def test_the_target_under_a_container_s_default_profile_stops_in_one_line(tmp_path: Path) -> None:
    # Docker's default seccomp profile answers clone3 with ENOSYS.
    log = tmp_path / "log"
    status = exec_filtered(["/bin/sh", "-c", f'cd {tmp_path} && exec "$0" "$@" 2>{log}', sys.executable,
                            str(ROOT / "fuzz" / "clone3_target.py"), "-runs=1"], 38)
    assert os.WEXITSTATUS(status) == 3
    assert [line for line in log.read_text().splitlines() if not line.startswith("INFO:")] == [
        "clone3-fuzz: clone3 is unavailable here: probably a seccomp filter (Seccomp: 2 in /proc/self/status; "
        "clone3 gave ENOSYS)"]
