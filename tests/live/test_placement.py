"""Where the struct lies in memory: the kernel reads exactly `size` bytes, tail first."""

from __future__ import annotations

from typing import Any

import pytest


def test_a_ver0_struct_flush_against_an_unmapped_page_succeeds(observe: Any) -> None:
    assert observe([{"size": 64, "memory": "guard", "exit_signal": 17}]) == ["success"]


def test_no_read_past_size(observe: Any) -> None:
    sizes = range(64, 89)
    assert observe({"size": s, "memory": "guard", "exit_signal": 17} for s in sizes) == ["success"] * len(sizes)


@pytest.mark.parametrize("readable", [89, 96, 100, 200, 1000, 4095])
def test_a_zero_tail_running_into_an_unmapped_page_is_efault(observe: Any, readable: int) -> None:
    assert observe([{"size": 4096, "memory": "guard", "readable": readable}]) == ["EFAULT"]


@pytest.mark.parametrize(("offset", "readable"), [(88, 89), (150, 200), (199, 200), (4000, 4095)])
def test_a_nonzero_tail_byte_before_the_unmapped_page_is_e2big(observe: Any, offset: int, readable: int) -> None:
    case = {"size": 4096, "memory": "guard", "readable": readable, "tail": {str(offset): 1}}
    assert observe([case]) == ["E2BIG"]


def test_the_tail_check_stops_at_the_first_nonzero_word(observe: Any) -> None:
    # The unmapped page starts inside the tail, after a nonzero byte: the kernel never
    # reaches it.
    case = {"size": 200, "memory": "guard", "readable": 150, "tail": {"120": 1}}
    assert observe([case]) == ["E2BIG"]


def test_an_unreadable_head_is_efault(observe: Any) -> None:
    assert observe([{"size": 88, "memory": "guard", "readable": 40}]) == ["EFAULT"]


@pytest.mark.parametrize("memory", ["null", "unmapped"])
def test_an_unreadable_struct_is_efault(observe: Any, memory: str) -> None:
    assert observe([{"size": s, "memory": memory} for s in (64, 88, 4096)]) == ["EFAULT"] * 3
