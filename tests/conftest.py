"""Shared fixtures. Tests are split by cost, as in Hypothesis's own suite:

- ``unit/``: pure Python (the ABI model, the case format); no syscalls.
- ``live/``: real clone3 calls through the sandboxed executor on the running kernel.
"""

from __future__ import annotations

from typing import Any, Iterable

import pytest

from harness.case import Case, parse
from harness.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    return Sandbox()


@pytest.fixture(scope="session")
def observe(sandbox: Sandbox) -> Any:
    """observe(cases) -> the observed outcome of each case (JSON objects or Cases)."""

    def run(cases: Iterable[dict[str, Any] | Case]) -> list[str]:
        parsed = [c if isinstance(c, Case) else parse(c) for c in cases]
        return [o.observed for o in sandbox.run(parsed)]

    return run
