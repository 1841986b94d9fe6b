"""The regression corpus replayed on the running kernel."""

from __future__ import annotations

from typing import Any

import pytest

from harness import profile as profiles
from harness.corpus import Regression, read_regressions
from harness.oracle import predict
from harness.sandbox import Sandbox

ENTRIES = [e for e in read_regressions() if isinstance(e, Regression)]


@pytest.fixture(scope="module")
def live(sandbox: Sandbox) -> profiles.Profile:
    return profiles.live(sandbox)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.where)
def test_regression(entry: Regression, observe: Any, live: profiles.Profile) -> None:
    observed = observe([entry.case])[0]
    assert observed in predict(entry.case, live).outcomes, entry.note
    expected = entry.expected_on(live.version)
    if expected is not None and live.cap_sys_admin:
        assert observed in expected, f"{entry.note}: expected {expected} on {live.release}"
