"""Other kernels in a VM: Debian bookworm's kernel, fetched in the set-up (apt-get download
and dpkg -x, nothing installed into /boot), booted under qemu-system with the static
executor as its init. Skipped, with the reason, where qemu-system or the package is not
to be had."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from clone3_fuzz.campaign.corpus import Regression, read_regressions

from ..command import clone3_fuzz
from ..unit.test_ktap import parse_ktap

CACHE = Path.home() / ".cache" / "clone3-fuzz"
#: Debian's kernels: bookworm's own (6.1, with its security updates) and bookworm-backports'
#: (6.12), by where Debian's registry has them.
DEBIAN, SECURITY = "http://deb.debian.org/debian", "http://deb.debian.org/debian-security"
SUITES = {"6.1": [(DEBIAN, "bookworm"), (SECURITY, "bookworm-security")],
          "6.12": [(DEBIAN, "bookworm-backports")]}


def _apt(series: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """apt with package lists of its own for the suites of ``series``: the machine's
    sources and lists stay as they are."""
    state = CACHE / "apt" / series
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    sources = state / "sources.list"
    sources.write_text("".join(f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {uri} {suite} main\n"
                               for uri, suite in SUITES[series]))
    options = ["-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=-",
               "-o", f"Dir::State::Lists={state / 'lists'}"]
    return subprocess.run([args[0], *options, *args[1:]], capture_output=True, text=True, timeout=600, cwd=cwd)


def _debian_kernel(series: str) -> Path:
    """The vmlinuz of Debian's linux-image-amd64 for ``series``, unpacked (and kept)."""
    folder = CACHE / "kernels" / series
    images = sorted(folder.glob("boot/vmlinuz-*"))
    if images:
        return images[-1]
    if _apt(series, "apt-get", "update").returncode:
        pytest.skip(f"apt-get update for Debian's {series} failed (no Debian registry here?)")
    depends = _apt(series, "apt-cache", "depends", "linux-image-amd64").stdout.split()
    package = next((word for word in depends if word.startswith("linux-image-") and word != "linux-image-amd64"), None)
    if package is None:
        pytest.skip(f"Debian's registry has no linux-image-amd64 for {series} here")
    folder.mkdir(parents=True, exist_ok=True)
    got = _apt(series, "apt-get", "download", package, cwd=folder)
    debs = list(folder.glob("*.deb"))
    if got.returncode or not debs:
        pytest.skip(f"apt-get download {package} failed: {(got.stderr.strip().splitlines() or ['?'])[-1]}")
    subprocess.run(["dpkg", "-x", str(debs[0]), str(folder)], check=True)
    debs[0].unlink()
    return sorted(folder.glob("boot/vmlinuz-*"))[-1]


def _kernel(series: str) -> Path:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed (.ci/run installs qemu-system-x86)")
    return _debian_kernel(series)


@pytest.fixture(scope="module")
def bookworm() -> Path:
    return _kernel("6.1")


@pytest.mark.parametrize("series", sorted(SUITES))
def test_ci_in_the_guest_agrees_and_names_the_guest(series: str, tmp_path: Path) -> None:
    image = _kernel(series)
    done = clone3_fuzz("ci", "--time", "45", "--ktap", "--kernel-image", str(image), "--report", str(tmp_path),
                       "--junit", str(tmp_path / "junit.xml"), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(ok for ok, _, _, _ in parse_ktap(done.stdout))
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["target"]["kind"] == "vm" and report["target"]["accel"] in ("kvm", "tcg")
    assert report["kernel"].startswith(f"{series}.") and f"Debian {series}." in report["target"]["build"]
    assert report["profile"]["version"].startswith(f"{series}.") and report["profile"]["version"] != f"{series}.0"
    assert report["campaign"]["in"] == "target" and report["campaign"]["cases"] > 0
    assert "answers under" in done.stderr and (tmp_path / "target" / "console.log").exists()


def test_each_fuzzing_worker_boots_its_own_guest(bookworm: Path, tmp_path: Path) -> None:
    done = clone3_fuzz("fuzz", "--time", "25", "--jobs", "1", "--kernel-image", str(bookworm), "--out",
                       str(tmp_path / "out"), "--corpus", str(tmp_path / "corpus"), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "campaign.json").read_text())
    assert summary["cases"] > 0 and summary["failed_workers"] == [] and summary["findings"] == []
    assert (tmp_path / "out" / "target-0" / "console.log").exists()
    # A worker that outlives its grace is SIGKILLed: its guest must die with it.
    deadline = time.monotonic() + 10
    while _running(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _running(str(tmp_path)) == []


def _running(naming: str) -> list[str]:
    """The command lines of the processes whose arguments name ``naming``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if any(naming.encode() in arg for arg in argv):
            found.append(b" ".join(argv).decode(errors="replace"))
    return found


def test_a_planted_fault_in_the_guest_fails_the_job(bookworm: Path, tmp_path: Path) -> None:
    """The guest's executor plants it (faults.c is in the program too); the finding's
    reproducer is not run here, so it stays unchecked, and fails the job all the same."""
    done = clone3_fuzz("ci", "--time", "30", "--kernel-image", str(bookworm), "--fault", "parent-tid-ignored",
                       "--report", str(tmp_path), timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    effect = [f for f in report["findings"] if f["rule"] == "effect.parent_tid"]
    assert effect and not effect[0]["checked"] and "not this machine's" in effect[0]["reason"]


def test_the_regression_corpus_in_the_guest_is_what_its_version_predicts(bookworm: Path, tmp_path: Path) -> None:
    cases = [e.case.dumps() for e in read_regressions() if isinstance(e, Regression) and not e.case.needs_cgroup]
    (tmp_path / "cases.jsonl").write_text("\n".join(cases) + "\n")
    ran = clone3_fuzz("run", "--json", "--kernel-image", str(bookworm), "-f", str(tmp_path / "cases.jsonl"), timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    rows = [json.loads(line) for line in ran.stdout.splitlines()]
    version = next(line for line in ran.stderr.splitlines() if "answers under" in line).split("Debian ")[1].split("-")[0]
    predicted = clone3_fuzz("predict", "--json", "--kernel", version, "-f", str(tmp_path / "cases.jsonl"))
    due = [json.loads(line)["predicted"] for line in predicted.stdout.splitlines()]
    assert len(rows) == len(due) == len(cases)
    assert [(r["case"], r["observed"]) for r, d in zip(rows, due) if r["observed"] not in d] == []


def test_a_kernel_that_does_not_boot_is_one_line(tmp_path: Path) -> None:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed (.ci/run installs qemu-system-x86)")
    bogus = tmp_path / "vmlinuz"
    bogus.write_bytes(b"not a kernel\n" * 100)
    done = clone3_fuzz("probe", "--kernel-image", str(bogus), timeout=300)
    errors = [line for line in done.stderr.splitlines() if not line.startswith("clone3-fuzz: starting")]
    assert done.returncode == 2 and len(errors) == 1 and "did not boot" in errors[0], done.stderr
