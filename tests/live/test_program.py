"""The executor as a program of its own: static, and the same answers (effects included)
as the in-process executor, since it is the same C code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from clone3_fuzz.exit_status import HarnessError
from clone3_fuzz.model.case import parse, read_jsonl
from clone3_fuzz.runtime import program as programs
from clone3_fuzz.runtime.program import Program
from clone3_fuzz.runtime.sandbox import Sandbox

SEEDS = Path(__file__).resolve().parents[2] / "corpus" / "seeds.jsonl"


def test_it_is_static() -> None:
    data = programs.program().read_bytes()
    assert data[:4] == b"\x7fELF" and b"/ld-linux" not in data[:4096]  # no PT_INTERP: no loader, no libc needed


def test_it_answers_as_the_in_process_executor_does(sandbox: Sandbox) -> None:
    with open(SEEDS, "rb") as f:
        cases = [c for _, c in read_jsonl(f, "seeds.jsonl") if not c.needs_cgroup]  # type: ignore[union-attr]
    with Program() as program:
        through_program = [o.key for o in program.run(cases * 2)]
        assert program.hello["release"] == os.uname().release and "pid" in program.hello["namespaces"]
    assert through_program == [o.key for o in sandbox.run(cases * 2)]


def test_its_stream_coding_round_trips() -> None:
    for data in (b"", b"\0", b"\0" * 600, b"a\0\0b" * 100, bytes(range(256)) * 3):
        assert programs.decode(programs.encode(data)) == (data, b"")
    assert programs.decode(b"ab\0") == (b"ab", b"\0")  # a zero whose count has not come yet


def test_a_wrapper_that_is_no_executor_is_named() -> None:
    with pytest.raises(HarnessError, match="nothing came"):
        Program(["/bin/sh", "-c", "exec sleep 5"], greeting_s=0.5)
    with pytest.raises(HarnessError, match="cannot start /nonexistent"):
        Program(["/nonexistent", "{exe}"])
    with Program(["/bin/sh", "-c", 'exec "$0"', "{exe}"]) as wrapped:  # a shell that execs it is fine
        assert wrapped.run([parse({"size": 4097})])[0].key == "E2BIG"
