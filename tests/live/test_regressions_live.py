"""The regression corpus replayed on the running kernel."""

from __future__ import annotations

import pytest
from clone3_fuzz.campaign.corpus import Regression, read_regressions
from clone3_fuzz.model import profile as profiles
from clone3_fuzz.model.oracle import predict
from clone3_fuzz.model.outcome import matches
from clone3_fuzz.runtime.probe import live_profile
from clone3_fuzz.runtime.sandbox import Sandbox

ENTRIES = [e for e in read_regressions() if isinstance(e, Regression)]


@pytest.fixture(scope="module")
def live(sandbox: Sandbox) -> profiles.Profile:
    return live_profile(sandbox)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.where)
def test_regression(entry: Regression, sandbox: Sandbox, live: profiles.Profile) -> None:
    observed = sandbox.run([entry.case])[0].key  # with its effects
    assert observed in predict(entry.case, live).outcomes, entry.note
    expected = entry.expected_on(live.version)
    if expected is not None and live.cap_sys_admin:
        assert any(matches(observed, e) for e in expected), f"{entry.note}: expected {expected} on {live.release}"
