"""`clone3-fuzz bench` tells the whole story in one run: every figure is there, measured.
Rates are not asserted: the machines are shared and noisy."""

from __future__ import annotations

import json

from ..command import clone3_fuzz


def test_bench_json_gives_every_figure() -> None:
    done = clone3_fuzz("bench", "--json", "--scale", "0.1", "--jobs", "2", timeout=600)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert set(figures["kinds"]) == {"rejected-size", "rejected-tail", "rejected-detached", "success"}
    assert all(k["raw_rate"] > 0 and k["batch_rate"] > 0 for k in figures["kinds"].values())
    assert set(figures["campaign"]) == {"campaign-rejected", "campaign-success"}
    assert [r["jobs"] for r in figures["real_campaigns"]] == [1, 2]
    assert all(r["calls"] > 0 for r in figures["real_campaigns"])
    assert set(figures["first_finding_seconds"]) == {"shallow", "tail", "flag-combination"}
    for first in figures["first_finding_seconds"].values():
        assert first["seconds"] is None or 0 < first["seconds"] <= first["limit"] + 10
    assert {"jobs/1-job", "rejected-size", "success"} <= set(figures["ratios"]) <= set(figures["targets"]) | {
        "campaign-rejected/naive", "campaign-success/naive"}
