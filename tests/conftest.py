"""Shared fixtures. Tests are split by cost, as in Hypothesis's own suite:

- ``unit/``: the pure model and the pure parts of the campaign; no C build, no syscalls;
  seconds.
- ``live/``: real clone3 calls through the sandboxed executor, a few seconds each.
- ``system/``: whole commands: campaigns, the planted faults, the CI job, the browser,
  uid 65534, an installed wheel; minutes.

The fixtures import the runtime lazily, so that collecting unit/ loads no compiled module.
"""

from __future__ import annotations

from typing import Any, Iterable

import pytest
from clone3_fuzz.model.case import Case, parse


@pytest.fixture(scope="session")
def sandbox() -> Any:
    """One :class:`clone3_fuzz.runtime.sandbox.Sandbox` for the session."""
    from clone3_fuzz.runtime.sandbox import Sandbox

    return Sandbox()


@pytest.fixture(scope="session")
def observe(sandbox: Any) -> Any:
    """observe(cases) -> the observed outcome of each case (JSON objects or Cases)."""

    def run(cases: Iterable[dict[str, Any] | Case]) -> list[str]:
        parsed = [c if isinstance(c, Case) else parse(c) for c in cases]
        return [o.observed for o in sandbox.run(parsed)]

    return run
