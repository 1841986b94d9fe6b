"""clone3-fuzz exec: a program run with every clone3 answered as another kernel or a
container profile would, on the real kernel; and the pytest plugin on top of it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..command import clone3_fuzz

THREAD = ("import threading, sys\nok = []\ntry:\n    t = threading.Thread(target=lambda: ok.append(1))\n"
          "    t.start(); t.join()\nexcept RuntimeError as e:\n    print('no thread:', e); sys.exit(1)\n"
          "print('thread ran' if ok else 'thread lost')\n")
CALLER = Path(__file__).resolve().parents[1] / "data" / "exec" / "call_clone3.c"


@pytest.fixture(scope="module")
def call_clone3(tmp_path_factory: pytest.TempPathFactory) -> str:
    if shutil.which("cc") is None:
        pytest.skip("needs a C compiler")
    binary = tmp_path_factory.mktemp("exec") / "call_clone3"
    subprocess.run(["cc", "-O2", "-o", str(binary), str(CALLER)], check=True)
    return str(binary)


def test_eperm_breaks_pthread_create_as_moby_42680_reports() -> None:
    done = clone3_fuzz("exec", "--clone3", "eperm", "--", sys.executable, "-c", THREAD)
    assert done.returncode == 1 and done.stdout.startswith("no thread:"), done.stdout + done.stderr


def test_enosys_sends_glibc_to_clone_and_the_thread_runs() -> None:
    done = clone3_fuzz("exec", "--clone3", "enosys", "--", sys.executable, "-c", THREAD)
    assert done.returncode == 0 and done.stdout == "thread ran\n", done.stdout + done.stderr
    assert "entry.unavailable" in done.stderr


@pytest.mark.parametrize("kernel,expected", [("5.4", "22"), ("5.5", "success")])
def test_clone_clear_sighand_came_in_5_5(kernel: str, expected: str, call_clone3: str) -> None:
    done = clone3_fuzz("exec", "--kernel", kernel, "--", call_clone3, "88", hex(1 << 32))
    assert done.stdout.strip() == expected, done.stderr


def test_5_3_takes_a_zero_tail_and_refuses_set_tid(call_clone3: str, tmp_path: Path) -> None:
    zero_tail = clone3_fuzz("exec", "--kernel", "5.3", "--", call_clone3, "88", "0")
    assert zero_tail.stdout.strip() == "success", zero_tail.stderr
    log = tmp_path / "log.jsonl"
    set_tid = clone3_fuzz("exec", "--kernel", "5.3", "--log", str(log), "--", call_clone3, "88", "0", "1")
    assert set_tid.stdout.strip() == "7"  # E2BIG: set_tid is past 5.3's 64-byte struct
    *calls, summary = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(c["comm"], c["size"], c["answer"], c["rule"], c["emulated"]) for c in calls] == [
        ("call_clone3", 88, "E2BIG", "copy.tail_nonzero", True)]
    assert summary == {"summary": {"copy.tail_nonzero": 1}}


def test_the_log_holds_every_call_of_every_descendant(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    script = "import threading\nfor _ in range(3):\n    t = threading.Thread(target=print); t.start(); t.join()\n"
    done = clone3_fuzz("exec", "--kernel", "6.18", "--log", str(log), "--", "sh", "-c",
                       f"{sys.executable} -c '{script}'; exit 7")
    assert done.returncode == 7  # the program's own status
    calls = [json.loads(line) for line in log.read_text().splitlines()][:-1]
    threads = [c for c in calls if "CLONE_THREAD" in c["flags"]]
    assert len(threads) == 3 and all((c["answer"], c["emulated"]) == ("success", False) for c in threads)


def test_a_newer_kernel_cannot_grant_what_this_one_lacks(call_clone3: str, tmp_path: Path) -> None:
    # CLONE_NNP (1 << 35) came in 7.1 (and with an exit signal it is fine there, unlike
    # CLONE_AUTOREAP): exec lets the call through, this kernel refuses it, and the log says so.
    log = tmp_path / "log.jsonl"
    done = clone3_fuzz("exec", "--kernel", "7.1", "--log", str(log), "--", call_clone3, "88", hex(1 << 35))
    if done.stdout.strip() == "success":
        pytest.skip("this kernel has CLONE_NNP itself")
    assert done.stdout.strip() == "22"
    [call] = [json.loads(line) for line in log.read_text().splitlines()][:-1]
    assert (call["answer"], call["emulated"]) == ("success", False)
    assert call["note"] == "7.1 takes it, but this kernel refuses it: EINVAL (flags.unknown)"


def test_bad_requests_are_one_line() -> None:
    for args, text in [(["--kernel", "5.5"], "exec: name the program to run after --"),
                       (["--clone3", "EBOGUS", "--", "true"], "--clone3: EBOGUS: no such errno"),
                       (["--", "true"], "exec: one of a kernel version and a clone3 errno")]:
        done = clone3_fuzz("exec", *args)
        assert done.returncode == 2 and text in done.stderr.splitlines()[-1], (args, done.stderr)


@pytest.mark.clone3_kernel("5.4")
def test_the_pytest_plugin_answers_as_the_marked_kernel(clone3_exec, call_clone3: str) -> None:  # type: ignore[no-untyped-def]
    done = clone3_exec([call_clone3, "88", hex(1 << 32)])
    assert done.exit_code == 0 and [c["answer"] for c in done.calls] == ["EINVAL"]
    assert clone3_exec([sys.executable, "-c", THREAD], clone3="EPERM").exit_code == 1
