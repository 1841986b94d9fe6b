"""clone3-fuzz as a user or a packager gets it: a wheel built from the checkout, installed
into a fresh virtual environment outside it, and run from another directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from ..command import NOBODY, ROOT


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    """A world-readable folder with the wheel and a venv that has it installed."""
    folder = Path(tempfile.mkdtemp(prefix="clone3-fuzz-wheel-"))
    folder.chmod(0o755)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(folder / "dist"), str(ROOT)],
                   check=True, timeout=600)
    subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True, timeout=120)
    wheel = next((folder / "dist").glob("clone3_fuzz-*.whl"))
    subprocess.run([str(folder / "venv" / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
                   check=True, timeout=600)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_wheel_holds_one_import_package(installed: Path) -> None:
    wheel = next((installed / "dist").glob("*.whl"))
    names = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {n for n in names if not n.endswith(".dist-info")} == {"clone3_fuzz"}
    inside = set(zipfile.ZipFile(wheel).namelist())
    assert "clone3_fuzz/corpus/seeds.jsonl" in inside and "clone3_fuzz/runtime/c/c3.h" in inside
    assert any(n.startswith("clone3_fuzz/runtime/_executor") and n.endswith(".so") for n in inside)


def _run(installed: Path, cwd: Path, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([*prefix, str(installed / "venv" / "bin" / "clone3-fuzz"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("who", ["root", "nobody"])
def test_ci_and_fuzz_run_from_anywhere(installed: Path, who: str) -> None:
    prefix: tuple[str, ...] = ()
    if who == "nobody":
        if os.geteuid() != 0 or shutil.which("setpriv") is None:
            pytest.skip("needs root and setpriv to switch to uid 65534")
        prefix = tuple(NOBODY)
    work = Path(tempfile.mkdtemp(prefix="clone3-fuzz-run-"))
    work.chmod(0o777)
    try:
        assert _run(installed, work, "--version", prefix=prefix).stdout.startswith("clone3-fuzz ")
        done = _run(installed, work, "ci", "--time", "10", "--report", "relative-report", prefix=prefix)
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads((work / "relative-report" / "report.json").read_text())
        assert report["status"] == "agree" and report["counts"]["cases"] > 90 and report["schema_version"] == 1
        done = _run(installed, work, "fuzz", "--time", "5", "--out", "relout", prefix=prefix)
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads((work / "relout" / "campaign.json").read_text())["cases"] > 0
        assert (work / "reports" / "corpus").is_dir()  # the default corpus is the current directory's
    finally:
        shutil.rmtree(work, ignore_errors=True)
