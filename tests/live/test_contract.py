"""The extensible-struct contract, on the running kernel, through real clone3 calls."""

from __future__ import annotations

import os
from typing import Any

import pytest
from clone3_fuzz.model import abi

PAGE = os.sysconf("SC_PAGESIZE")


def test_a_nonzero_byte_at_any_tail_offset_is_e2big(observe: Any) -> None:
    cases = [{"size": PAGE, "tail": {str(offset): 0xFF}} for offset in range(abi.STRUCT_SIZE, PAGE)]
    assert set(observe(cases)) == {"E2BIG"}


def test_the_last_tail_byte_alone_is_e2big_and_one_past_size_is_ignored(observe: Any) -> None:
    assert observe([{"size": 100, "tail": {"99": 1}}, {"size": 99, "tail": {"99": 1}, "exit_signal": 17}]) == [
        "E2BIG", "success"]


@pytest.mark.parametrize("memory", ["mapped", "null", "unmapped", "guard"])
def test_sizes_over_a_page_are_e2big_whatever_the_pointer(observe: Any, memory: str) -> None:
    huge = [1 << 32, (1 << 32) + 64, (1 << 32) + 88, 1 << 63, abi.U64_MAX]
    sizes = [*range(PAGE + 1, 2 * PAGE + 1), *huge]
    assert set(observe({"size": s, "memory": memory} for s in sizes)) == {"E2BIG"}


def test_size_4097_with_a_null_pointer_is_e2big(observe: Any) -> None:
    assert observe([{"size": 4097, "memory": "null"}]) == ["E2BIG"]


def test_deprecated_flags_are_einval(observe: Any) -> None:
    bits = [abi.CLONE["CLONE_DETACHED"]] + [1 << b for b in range(8) if 1 << b != abi.CLONE["CLONE_NEWTIME"]]
    cases = [{"size": 88, "flags": hex(bit), "exit_signal": 17} for bit in bits]
    assert observe(cases) == ["EINVAL"] * len(bits)


@pytest.mark.parametrize("memory", ["mapped", "null"])
def test_sizes_under_ver0_are_einval(observe: Any, memory: str) -> None:
    assert observe({"size": s, "memory": memory} for s in range(abi.CLONE_ARGS_SIZE_VER0)) == ["EINVAL"] * 64


def test_every_size_up_to_a_page_with_a_zero_tail_succeeds(observe: Any) -> None:
    sizes = range(abi.CLONE_ARGS_SIZE_VER0, PAGE + 1)
    assert observe({"size": s, "exit_signal": 17} for s in sizes) == ["success"] * len(sizes)


def test_unknown_high_flag_bits_are_einval(observe: Any) -> None:
    bits = [1 << b for b in range(38, 64)]
    assert set(observe({"size": 88, "flags": hex(bit), "exit_signal": 17} for bit in bits)) == {"EINVAL"}
