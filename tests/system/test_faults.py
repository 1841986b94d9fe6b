"""The fault matrix: an operator's bad day, one row a test. Each injects the fault, then
checks the exit status, the message, that nothing is left behind (processes, zombies,
cgroups), and that what was found is intact."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from clone3_fuzz.runtime.sandbox import cgroup2_mount

from ..command import NOBODY, ROOT

WORKER = "clone3_fuzz.campaign.target"


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "clone3_fuzz", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _workers_left(out: Path) -> list[int]:
    """Processes of a campaign writing into ``out`` (workers, and the executors they fork)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if WORKER.encode() in cmdline and f"CLONE3_FUZZ_OUT={out}".encode() in environ:
            found.append(int(pid))
    return found


def _started(out: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not list((out / "stats").glob("worker-*.json")):
        time.sleep(0.2)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_ends_a_campaign_cleanly(tmp_path: Path, number: int) -> None:
    out = tmp_path / "out"
    process = _spawn("fuzz", "--time", "120", "--out", str(out), "--corpus", str(tmp_path / "corpus"))
    _started(out)
    process.send_signal(number)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stdout + stderr
    assert "campaign:" in stdout and json.loads((out / "campaign.json").read_text())["interrupted"]
    assert list((out / "artifacts").iterdir()) == []  # no crash artifact from the stop
    time.sleep(1)
    assert _workers_left(out) == []


def test_a_killed_campaign_leaves_nothing_running(tmp_path: Path) -> None:
    out = tmp_path / "out"
    process = _spawn("fuzz", "--time", "120", "--out", str(out), "--corpus", str(tmp_path / "corpus"))
    _started(out)
    process.kill()
    process.communicate(timeout=30)
    deadline = time.monotonic() + 5
    while _workers_left(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _workers_left(out) == []


def _descendants(pid: int) -> list[int]:
    below, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        below += kids
        todo += kids
    return below


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[0]


def test_a_worker_killed_mid_campaign_leaves_no_process_zombie_fd_or_cgroup(tmp_path: Path) -> None:
    out = tmp_path / "out"
    process = _spawn("fuzz", "--time", "20", "--jobs", "1", "--out", str(out), "--corpus", str(tmp_path / "corpus"))
    _started(out)
    worker = next(pid for pid in _children(process.pid) if pid in _workers_left(out))
    tree = _descendants(worker)  # its sandbox's reaper and executor, and their calls' children
    assert len(tree) >= 2, tree
    fds = len(os.listdir(f"/proc/{process.pid}/fd"))
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(_state(pid) is not None for pid in [worker, *tree]) and time.monotonic() < deadline:
        time.sleep(0.1)
    # Gone, not zombies: the tree died with its worker, and somebody reaped every process.
    assert {pid: _state(pid) for pid in [worker, *tree] if _state(pid) is not None} == {}
    while process.poll() is None and len(os.listdir(f"/proc/{process.pid}/fd")) != fds:
        time.sleep(0.1)
    assert process.poll() is not None or len(os.listdir(f"/proc/{process.pid}/fd")) == fds
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stdout + stderr
    summary = json.loads((out / "campaign.json").read_text())
    assert summary["restarts"] == ["worker 0: killed by SIGKILL"] and summary["cases"] > 0
    assert _workers_left(out) == []
    mount = cgroup2_mount()
    if mount:  # a scratch cgroup the killed worker made is removed by the campaign's end
        assert not list(Path(mount).rglob(f"clone3-fuzz-{worker}-*"))


def test_a_stopped_worker_does_not_stretch_the_time(tmp_path: Path) -> None:
    out = tmp_path / "out"
    began = time.monotonic()
    process = _spawn("fuzz", "--time", "12", "--out", str(out), "--corpus", str(tmp_path / "corpus"))
    _started(out)
    for pid in _workers_left(out):
        os.kill(pid, signal.SIGSTOP)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode in (0, 1), stdout + stderr
    assert time.monotonic() - began < 12 + 20  # start-up, the grace period, the summary
    assert _workers_left(out) == []


def _pids_controller() -> Path | None:
    """A folder where this test may set pids.max: a v1 pids hierarchy or cgroup v2."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        kind, options = right.split()[0], right.split()[-1]
        mount = Path(left.split()[4])
        if (kind == "cgroup" and "pids" in options.split(",")) or \
                (kind == "cgroup2" and "pids" in (mount / "cgroup.controllers").read_text().split()):
            return mount
    return None


def test_a_pids_limit_is_the_harness_s_trouble_not_the_kernel_s(tmp_path: Path) -> None:
    mount = _pids_controller()
    if os.geteuid() != 0 or mount is None:
        pytest.skip("needs root and a pids controller")
    group = mount / f"clone3-fuzz-test-{os.getpid()}"
    group.mkdir()
    try:
        # This process, its sandbox's reaper and executor: no room for any child a call makes.
        (group / "pids.max").write_text("3\n")
        script = f'echo $$ > {group}/cgroup.procs && exec "$@"'
        done = subprocess.run(["/bin/sh", "-c", script, "sh", sys.executable, "-m", "clone3_fuzz", "ci", "--time", "10",
                               "--report", str(tmp_path / "report")], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "pids.events max rose" in done.stdout and "not judged" in done.stdout
        report = json.loads((tmp_path / "report" / "report.json").read_text())
        assert report["findings"] == [] and report["status"] == "harness-error"
        assert list((tmp_path / "report" / "artifacts").iterdir()) == []
    finally:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                time.sleep(0.1)


@pytest.mark.parametrize(("content", "message"), [
    (b'{"size": 88, "size": 4097}\n', "size: duplicate key"),
    (b"[" * 3000 + b"]" * 3000 + b"\n", "nested more than 8 deep"),
    (b'{"size": ' + b"9" * 5000 + b"}\n", "an integer of 5000 digits"),
    (b'{"size": 88, "note": "\xff"}\n', "not UTF-8 at byte 22"),
])
def test_bad_case_files_are_one_line_and_exit_2(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_bytes(content)
    done = subprocess.run([sys.executable, "-m", "clone3_fuzz", "run", "-f", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.splitlines() == [f"clone3-fuzz: {path}:1: " + done.stderr.split(": ", 2)[2].strip()]
    assert message in done.stderr and done.stdout == ""


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (("run", "-f", "/dev/zero"), None, "line too long"),
    (("run", "-"), "closed", "stdin: closed"),
    (("run", "-f", "/"), None, "/: Is a directory"),
])
def test_bad_streams_are_one_line_and_exit_2(args: tuple[str, ...], stdin: str | None, message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "clone3_fuzz", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL if stdin is None else None,
                          **({"pass_fds": ()} if stdin is None else {"preexec_fn": lambda: os.close(0)}))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and message in done.stderr, done.stderr


def test_a_full_disk_is_one_line_and_keeps_what_was_saved(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(disk)], check=True)
    try:
        done = subprocess.run([sys.executable, "-m", "clone3_fuzz", "ci", "--time", "8", "--report", str(disk / "r")],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.splitlines()[-1].endswith("No space left on device; what was saved before is kept")
        assert not [p for p in (disk / "r").iterdir() if ".tmp" in p.name]  # no half-written file
        json.loads((disk / "r" / "report.json").read_text())  # the last good copy is whole
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_two_campaigns_never_share_an_out_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _spawn("fuzz", "--time", "20", "--out", str(out), "--corpus", str(tmp_path / "c1"))
    _started(out)
    second = subprocess.run([sys.executable, "-m", "clone3_fuzz", "fuzz", "--time", "5", "--out", str(out),
                             "--corpus", str(tmp_path / "c2")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=60)
    assert second.returncode == 2 and len(second.stderr.splitlines()) == 1
    assert "another campaign is using it" in second.stderr


def test_two_ci_jobs_never_share_a_report_folder(tmp_path: Path) -> None:
    report = tmp_path / "report"
    first = _spawn("ci", "--time", "20", "--report", str(report))
    deadline = time.monotonic() + 60
    while not (report / "report.json").exists() and time.monotonic() < deadline:  # past its replay
        time.sleep(0.2)
    second = subprocess.run([sys.executable, "-m", "clone3_fuzz", "ci", "--time", "5", "--report", str(report)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    stdout, stderr = first.communicate(timeout=120)
    assert second.returncode == 2 and second.stderr.splitlines() == [
        f"clone3-fuzz: --report {report}: another ci is using it (pid {first.pid})"]
    assert first.returncode == 0, stdout + stderr
    assert json.loads((report / "report.json").read_text())["status"] == "agree"


def test_a_half_written_finding_is_set_aside_and_saved_again(tmp_path: Path) -> None:
    broken = tmp_path / "report" / "findings" / "size.over_page--over-page"
    broken.mkdir(parents=True)
    (broken / "hits").write_text("left by an older run\n")
    done = subprocess.run([sys.executable, "-m", "clone3_fuzz", "ci", "--time", "8", "--fault", "oversize-einval",
                           "--report", str(tmp_path / "report")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "set aside" in done.stderr and (broken / "finding.json").exists()
    assert json.loads((broken / "finding.json").read_text())["status"] == "confirmed"


def _children(pid: int) -> list[int]:
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            found.append(int(entry))
    return found


def test_an_executor_killed_from_outside_is_no_finding(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text('{"size": 88, "exit_signal": 17}\n' * 30000)
    process = _spawn("run", "--json", "-f", str(cases))
    killed = 0
    deadline = time.monotonic() + 30
    while not killed and time.monotonic() < deadline:
        for reaper in _children(process.pid):
            for executor in _children(reaper):
                os.kill(executor, signal.SIGKILL)
                killed += 1
        time.sleep(0.05)
    stdout, stderr = process.communicate(timeout=300)
    assert killed and process.returncode == 0, stderr
    verdicts = {json.loads(line)["verdict"] for line in stdout.splitlines()}
    assert verdicts == {"agree"}  # the killed case was run again, and judged on its real answer


def test_unreadable_corpus_entries_are_named_and_skipped(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "subdir").mkdir(parents=True)
    (corpus / "dangling").symlink_to(tmp_path / "nowhere")
    (corpus / "loop").symlink_to(corpus / "loop")
    (corpus / "good").write_text('{"size": 4097}\n')
    done = subprocess.run([sys.executable, "-m", "clone3_fuzz", "fuzz", "--time", "3", "--corpus", str(corpus),
                           "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    for name, why in (("subdir", "Is a directory"), ("dangling", "No such file"), ("loop", "Too many levels")):
        assert f"{corpus / name}: {why}" in done.stderr


def test_a_corrupt_finding_json_costs_nothing_else(tmp_path: Path) -> None:
    broken = tmp_path / "report" / "findings" / "size.over_page--over-page"
    broken.mkdir(parents=True)
    (broken / "finding.json").write_text('{"signature": "size.over_pa')
    done = subprocess.run([sys.executable, "-m", "clone3_fuzz", "ci", "--time", "8", "--report", str(tmp_path / "report")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "set aside" in done.stderr and json.loads((tmp_path / "report" / "report.json").read_text())["status"] == "agree"


@pytest.mark.parametrize("what", ["a file", "read-only"])
def test_an_unusable_out_folder_is_one_line(tmp_path: Path, what: str) -> None:
    out = tmp_path / "out"
    if what == "a file":
        out.write_text("not a folder")
    else:
        out.mkdir()
        out.chmod(0o500)
    prefix = NOBODY if os.geteuid() == 0 and what == "read-only" else []  # root may write anyway
    if prefix:
        tmp_path.chmod(0o755)
    done = subprocess.run([*prefix, sys.executable, "-m", "clone3_fuzz", "fuzz", "--time", "3", "--out", str(out),
                           "--corpus", str(tmp_path / "corpus")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and str(out) in done.stderr, done.stderr


def test_two_ci_runs_at_once_never_share_a_report(tmp_path: Path) -> None:
    runs = [subprocess.Popen([sys.executable, "-m", "clone3_fuzz", "ci", "--time", "8"], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT / "harness")}) for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    folders = [line.split()[1].rsplit("/", 1)[0] for stdout, _ in outputs for line in stdout.splitlines()
               if line.startswith("report: ")]
    assert len(set(folders)) == 2
    assert (tmp_path / "reports" / "latest").resolve().as_posix() in folders



def test_an_unprivileged_campaign_stops_cleanly_too() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to uid 65534")
    tmp_path = Path(tempfile.mkdtemp(prefix="clone3-fuzz-nobody-"))  # pytest's own is private to root
    tmp_path.chmod(0o777)
    out = tmp_path / "out"
    process = subprocess.Popen([*NOBODY, sys.executable, "-m", "clone3_fuzz", "fuzz", "--time", "120", "--out", str(out),
                                "--corpus", str(tmp_path / "corpus")], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    _started(out)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stdout + stderr
    assert list((out / "artifacts").iterdir()) == []
    time.sleep(1)
    assert _workers_left(out) == []


def test_a_killed_run_leaves_no_scratch_cgroup_for_long(tmp_path: Path) -> None:
    from clone3_fuzz.runtime.sandbox import cgroup2_mount

    mount = cgroup2_mount()
    if os.geteuid() != 0 or mount is None:
        pytest.skip("needs root and a cgroup v2 hierarchy")
    cases = tmp_path / "cases.jsonl"
    cases.write_text('{"size": 88, "flags": "CLONE_INTO_CGROUP", "cgroup": "cgroup2"}\n' * 50000)
    process = _spawn("run", "-f", str(cases))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(Path(mount).glob(f"clone3-fuzz-{process.pid}-*")):
        time.sleep(0.05)
    assert list(Path(mount).glob(f"clone3-fuzz-{process.pid}-*"))  # the run had made its scratch cgroup
    process.kill()
    process.communicate(timeout=30)
    done = subprocess.run([sys.executable, "-m", "clone3_fuzz", "run", '{"size": 88, "flags": "CLONE_INTO_CGROUP", '
                           '"cgroup": "cgroup2"}'], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert list(Path(mount).glob(f"clone3-fuzz-{process.pid}-*")) == []  # the next run removed it
