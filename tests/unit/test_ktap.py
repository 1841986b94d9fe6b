"""KTAP and JUnit from one list of tests. KTAP is checked against its specification
(Documentation/dev-tools/ktap.rst, version 1): a version line, a plan, one result line per
test numbered from 1, directives after " # ", diagnostics as lines starting with "#"."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from clone3_fuzz.outputs import report

VERSION = re.compile(r"^KTAP version 1$")
PLAN = re.compile(r"^1\.\.(\d+)$")
RESULT = re.compile(r"^(ok|not ok) (\d+)(?: ([^#]*?))?(?: # (SKIP|TODO|XFAIL)(?: (.*))?)?$")
DIAGNOSTIC = re.compile(r"^#( .*)?$")


def parse_ktap(text: str) -> list[tuple[bool, int, str, str | None]]:
    """(ok, number, name, directive) of each result; fails on anything the spec does not allow."""
    lines = text.splitlines()
    assert VERSION.match(lines[0]), lines[0]
    plans = [PLAN.match(line) for line in lines if PLAN.match(line)]
    assert len(plans) == 1, "one plan"
    results = []
    for line in lines[1:]:
        if PLAN.match(line) or DIAGNOSTIC.match(line):
            continue
        match = RESULT.match(line)
        assert match, f"not a KTAP line: {line!r}"
        results.append((match[1] == "ok", int(match[2]), match[3], match[4]))
    assert [r[1] for r in results] == list(range(1, int(plans[0][1]) + 1))
    return results


def base(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kernel": "6.18.0", "tool_version": "0.2.0", "clone3": "available", "seconds": 12.0,
        "phases": {"probe": 1.0, "replay": 4.0, "abi_map": 1.0, "campaign": 6.0},
        "rules": {"size.over_page": 10, "success": 3}, "relation_counts": {"precedence": 5},
        "discrepancies": [], "findings": []}
    return {**data, **changes}


def test_an_agreeing_run_passes_every_test() -> None:
    results = parse_ktap(report.ktap(base()))
    assert [(ok, name) for ok, _, name, _ in results] == [
        (True, "clone3.available"), (True, "rules.size"), (True, "rules.success"), (True, "relations.precedence")]


def test_a_standing_finding_fails_with_its_title_and_reproducer() -> None:
    finding = {"signature": "size.over_page--over-page", "rule": "size.over_page", "status": "confirmed",
               "reason": "fails", "case": {"size": 4097}, "repro_path": "/r/repro.c",
               "title": "clone3: size 0x1001 gave EINVAL, expected E2BIG (size.over_page), 6.18.0"}
    data = base(findings=[finding], discrepancies=[{"rule": "size.over_page", "signature": finding["signature"]}])
    text = report.ktap(data)
    results = parse_ktap(text)
    assert (False, "rules.size") in [(ok, name) for ok, _, name, _ in results]
    assert (False, "finding.size.over_page--over-page") in [(ok, name) for ok, _, name, _ in results]
    assert f"# {finding['title']}" in "\n".join(text.splitlines())  # a diagnostic before the result
    suite = ET.fromstring(report.junit_xml(data))
    failure = next(c for c in suite.iter("testcase") if c.get("name").startswith("finding.")).find("failure")
    assert failure.get("message") == finding["title"] and "/r/repro.c" in failure.text
    assert all(float(c.get("time")) > 0 for c in suite.iter("testcase"))
    assert abs(sum(float(c.get("time")) for c in suite.iter("testcase")) - 11.0) < 0.01  # the phases, shared out


def test_a_blocked_clone3_fails() -> None:
    text = report.ktap(base(clone3="EPERM", clone3_cause="every clone3 gave EPERM"))
    assert parse_ktap(text)[0] == (False, 1, "clone3.available", None)


def test_a_missing_clone3_is_a_skip() -> None:
    text = report.ktap(base(clone3="ENOSYS", clone3_cause="probably a seccomp filter"))
    assert parse_ktap(text) == [(True, 1, "clone3.available", "SKIP")]
    suite = ET.fromstring(report.junit_xml(base(clone3="ENOSYS")))
    assert suite.get("skipped") == "1" and suite.get("failures") == "0"
