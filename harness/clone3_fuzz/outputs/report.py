"""Reports: report.json (everything), report.md (for a terminal or a PR comment), a
self-contained report.html with pictures (inline SVG, no script), JUnit XML, and KTAP (the
kernel selftests' format, for kselftest, LAVA/KernelCI and tuxrun).

The report is built from a plain dict (:func:`.ci.run` fills it), so each format
is a pure function of the same data.
"""

from __future__ import annotations

import html
import json
import os
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..atomic import write_text
from ..campaign.finding import fails
from ..runtime.probe import FALLBACK

COLOURS = {
    "success": "#4caf50", "EINVAL": "#ff9800", "E2BIG": "#2196f3", "EFAULT": "#9c27b0", "EPERM": "#f44336",
    "ENOSYS": "#000000", "EBADF": "#795548", "EEXIST": "#607d8b", "ENOSPC": "#e91e63", "EAGAIN": "#00bcd4",
}
OTHER = "#9e9e9e"


def write_all(report: dict[str, Any], folder: str, junit: str | None) -> None:
    """report.json, report.md and report.html into ``folder``, and JUnit XML at ``junit``;
    each file whole or not at all."""
    write_json(report, folder)
    write_text(os.path.join(folder, "report.md"), markdown(report))
    write_text(os.path.join(folder, "report.html"), page(report))
    if junit:
        write_text(junit, junit_xml(report))


def write_json(report: dict[str, Any], folder: str) -> None:
    """report.json alone, whole or not at all: the CI job's record of what it has done so far."""
    os.makedirs(folder, exist_ok=True)
    write_text(os.path.join(folder, "report.json"), json.dumps(report, indent=2) + "\n")


def _headline(report: dict[str, Any]) -> str:
    counts = report["counts"]
    confirmed = sum(f.get("status") == "confirmed" for f in report["findings"])
    fault = f" under the planted fault {report['fault']}" if report.get("fault") else ""
    return (f"{report['status']}: {counts['cases']} cases, {counts['relation_checks']} relation checks, "
            f"{counts['discrepancies']} discrepancies, {len(report['findings'])} findings ({confirmed} confirmed) "
            f"on {report['kernel']}{fault} ({report['seconds']:.0f}s)")


def discrepancy_groups(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The discrepancies by root cause (the finding each reduced to, or the rule), with
    a count and the first as the example."""
    groups: dict[str, dict[str, Any]] = {}
    for d in report["discrepancies"]:
        key = d.get("signature") or d.get("rule") or f"relation.{d.get('relation')}"
        group = groups.setdefault(key, {"root_cause": key, "count": 0, "example": d})
        group["count"] += 1
    return sorted(groups.values(), key=lambda g: -g["count"])


def _example(d: dict[str, Any]) -> str:
    """One discrepancy in a line, its case cut short where it is long (a hex image)."""
    case = json.dumps(d.get("case") or d.get("variant"))
    case = case if len(case) <= 160 else case[:150] + "...}"
    return f"observed {d.get('observed')}, expected {', '.join(map(str, d.get('expected') or d.get('predicted') or []))}: {case}"


def _target(report: dict[str, Any]) -> str:
    """What ran the cases when it was not this machine's kernel as it is, and its clone3."""
    target = report["target"]
    what = target.get("command") or f"the kernel {target.get('image')} in a VM ({target.get('accel')})"
    return f"{what}: {target.get('classification', 'not classified')}"


def _earlier(report: dict[str, Any]) -> str:
    return "; ".join(f"{f['signature']} ({f['status']}, last seen {f['last_seen']}"
                     f"{', under the fault ' + f['fault'] if f.get('fault') else ''})" for f in report["earlier_findings"])


# --- Markdown ------------------------------------------------------------------------

def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown, for a terminal or a pull-request comment."""
    lines = ["# clone3-fuzz report", "", f"**{_headline(report)}**", ""]
    if report.get("fault"):
        lines += [f"Planted fault: `{report['fault']}`: {report.get('fault_description', '')}", ""]
    if report.get("target"):
        lines += [f"Target: {_target(report)}", ""]
    if report.get("clone3_cause"):
        lines += [f"clone3 is unavailable: {report['clone3_cause']}", ""]
    lines += ["## Findings", ""]
    for f in report["findings"]:
        sightings = f.get("sightings", {})
        lines += [f"### {f.get('title', f['signature'])}", "", f"- signature: `{f['signature']}`",
                  f"- {f.get('status', '?')}: {f.get('reason', '')}",
                  f"- seen {sightings.get('count', 0)} times, first {sightings.get('first_seen', '-')}, "
                  f"last {sightings.get('last_seen', '-')}", ""]
        if "source" in f:
            lines += [f"Source (gave {f.get('source_observed')}):", "", "```json", json.dumps(f["source"]), "```",
                      "", f"Variant (gave {f['observed']}, expected {', '.join(f['expected'])}):", ""]
        lines += ["```json", json.dumps(f["case"]), "```", "", f"Reproducer: `{f['repro_path']}`", ""]
    if not report["findings"]:
        lines += ["None.", ""]
    if report.get("earlier_findings"):
        lines += [f"Earlier runs' findings in this folder, not seen in this run: {_earlier(report)}", ""]
    lines += ["## Discrepancies, by root cause", ""]
    for group in discrepancy_groups(report):
        lines.append(f"- `{group['root_cause']}` ({group['count']}x), e.g. {_example(group['example'])}")
    if not report["discrepancies"]:
        lines.append("None.")
    if report.get("flaky"):
        lines += ["", "## Flaky (did not repeat: not findings)", ""]
        lines += [f"- {f['what']}: {f['observed']} for `{json.dumps(f['case'])[:160]}`" for f in report["flaky"]]
    if report.get("effects"):
        lines += ["", "## Effects: what each output produced", "", "| call | observed | expected |", "|---|---|---|"]
        lines += [f"| {row['label']} | `{row['observed']}`{' ✗' if row['observed'] not in row['expected'] else ''} | "
                  f"{' or '.join(f'`{e}`' for e in row['expected'])} |" for row in report["effects"]]
    lines += ["", "## Oracle rules exercised", "", "| rule | cases |", "|---|---|"]
    lines += [f"| {rule} | {count} |" for rule, count in sorted(report["rules"].items(), key=lambda x: -x[1])]
    campaign = report.get("campaign") or {}
    if campaign:
        lines += ["", "## Campaign", "", f"{campaign.get('cases', 0)} cases and {campaign.get('relation_checks', 0)} "
                  f"relation variants in {campaign.get('seconds', 0):.0f}s; corpus {campaign.get('corpus', 0)}; "
                  f"{campaign.get('flaky', 0)} flaky."]
    return "\n".join(lines) + "\n"


# --- HTML, with inline SVG -----------------------------------------------------------

def _colour(outcome: str) -> str:
    return COLOURS.get(outcome, OTHER)


def _cell(x: int, y: int, size: int, observed: str, expected: list[str] | None, label: str) -> str:
    """One outcome; a cell the oracle did not expect gets a red frame and a cross."""
    wrong = expected is not None and observed not in expected
    what = f"{label}: {html.escape(observed)}" + (f" (expected {html.escape(', '.join(expected))})" if expected else "")
    frame = ' stroke="#d50000" stroke-width="3" class="unexpected"' if wrong else ""
    cell = (f'<rect x="{x}" y="{y}" width="{size - 2}" height="{size - 2}" fill="{_colour(observed)}"'
            f'{frame}><title>{what}</title></rect>')
    if wrong:
        cell += (f'<text x="{x + size // 2 - 1}" y="{y + size // 2 + 4}" font-size="12" text-anchor="middle" '
                 f'fill="#fff" font-weight="bold">&#x2717;</text>')
    return cell


def _abi_grid(abi_map: dict[str, Any]) -> str:
    sizes, offsets, grid = abi_map["sizes"], abi_map["tail_offsets"], abi_map["grid"]
    expected = abi_map.get("expected")
    cell, left, top = 30, 110, 90
    width, height = left + cell * len(offsets) + 10, top + cell * len(sizes) + 10
    parts = [f'<svg id="abi-map" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="size by tail offset">',
             f'<text x="{left + cell * len(offsets) // 2}" y="14" font-size="12" text-anchor="middle">'
             f'offset of the one nonzero tail byte</text>',
             f'<text x="14" y="{top + cell * len(sizes) // 2}" font-size="12" text-anchor="middle" '
             f'transform="rotate(-90 14 {top + cell * len(sizes) // 2})">size argument (bytes)</text>']
    for j, offset in enumerate(offsets):
        x = left + j * cell + cell // 2
        parts.append(f'<text x="{x}" y="{top - 8}" font-size="10" transform="rotate(-60 {x} {top - 8})">'
                     f'{html.escape(str(offset))}</text>')
    for i, size in enumerate(sizes):
        y = top + i * cell
        parts.append(f'<text x="{left - 6}" y="{y + cell // 2 + 4}" font-size="10" text-anchor="end">{size}</text>')
        for j, outcome in enumerate(grid[i]):
            parts.append(_cell(left + j * cell, y, cell, outcome, expected[i][j] if expected else None,
                               f"size {size}, tail byte at {offsets[j]}"))
    parts.append("</svg>")
    return "".join(parts)


def _flag_strip(flags: list[dict[str, Any]]) -> str:
    cell, left = 16, 70
    parts = [f'<svg id="flag-map" xmlns="http://www.w3.org/2000/svg" width="{cell * 32 + left + 10}" '
             f'height="{cell * 4 + 20}">']
    for row in range(2):
        y = row * cell * 2
        parts.append(f'<text x="0" y="{y + 12}" font-size="10">bits {32 * row}-{32 * row + 31}</text>')
        for bit in range(32 * row, 32 * row + 32, 4):
            parts.append(f'<text x="{left + (bit % 32) * cell + cell // 2 - 1}" y="{y + cell + 12}" font-size="9" '
                         f'text-anchor="middle">{bit}</text>')
    for entry in flags:
        bit = entry["bit"]
        x, y = left + (bit % 32) * cell, (bit // 32) * cell * 2
        parts.append(_cell(x, y, cell, entry["observed"], entry.get("expected"), f"bit {bit} {html.escape(entry['name'])}"))
    parts.append("</svg>")
    return "".join(parts)


def _effects_table(rows: list[dict[str, Any]]) -> str:
    """Each output flag, what it produced and what was expected; a row that differs is marked."""
    out = ['<table id="effects"><tr><th>call</th><th>outcome</th><th>effects</th><th>expected</th></tr>']
    for row in rows:
        wrong = row["observed"] not in row["expected"]
        outcome, _, did = row["observed"].partition("{")
        mark = ' class="unexpected" style="background:#ffcdd2"' if wrong else ""
        out.append(f'<tr{mark}><td title="{html.escape(json.dumps(row["case"]))}">{html.escape(row["label"])}</td>'
                   f'<td>{html.escape(outcome)}</td><td><code>{html.escape(did.rstrip("}").replace(",", ", "))}'
                   f'</code></td><td>{"&#x2717; " if wrong else ""}{html.escape(" or ".join(row["expected"]))}</td></tr>')
    out.append("</table>")
    return "".join(out)


def _bars(counts: dict[str, int], element_id: str) -> str:
    rows = sorted(counts.items(), key=lambda x: -x[1])
    top = max((c for _, c in rows), default=1)
    parts = [f'<svg id="{element_id}" xmlns="http://www.w3.org/2000/svg" width="640" height="{18 * len(rows) + 10}">']
    for i, (name, count) in enumerate(rows):
        width = max(1, int(380 * count / top))
        parts.append(f'<text x="0" y="{18 * i + 12}" font-size="11">{html.escape(name)}</text>'
                     f'<rect x="230" y="{18 * i + 2}" width="{width}" height="12" fill="#3f51b5"/>'
                     f'<text x="{236 + width}" y="{18 * i + 12}" font-size="11">{count}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _timeline(samples: list[list[float]]) -> str:
    if len(samples) < 2:
        return "<p>No campaign samples.</p>"
    width, height = 600, 200
    t_max = max(s[0] for s in samples) or 1
    c_max = max(s[1] for s in samples) or 1
    points = " ".join(f"{40 + (width - 50) * t / t_max:.1f},{height - 20 - (height - 40) * c / c_max:.1f}"
                      for t, c in samples)
    return (f'<svg id="execs-over-time" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
            f'<polyline fill="none" stroke="#3f51b5" stroke-width="2" points="{points}"/>'
            f'<text x="40" y="14" font-size="11">{int(c_max)} calls</text>'
            f'<text x="{width - 60}" y="{height - 4}" font-size="11">{t_max:.0f} s</text></svg>')


def page(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page: inline SVG, no script."""
    legend = "".join(f'<span class="key"><span class="swatch" style="background:{c}"></span>{o}</span>'
                     for o, c in COLOURS.items())
    findings = "".join(_finding_html(f) for f in report["findings"]) or "<p>None.</p>"
    if report.get("earlier_findings"):
        findings += f"<p>Earlier runs' findings in this folder, not seen in this run: {html.escape(_earlier(report))}</p>"
    discrepancies = "".join(f"<li><code>{html.escape(g['root_cause'])}</code> ({g['count']}&times;), e.g. "
                            f"{html.escape(_example(g['example']))}</li>" for g in discrepancy_groups(report))
    flaky = "".join(f"<li>{html.escape(f['what'])}: {html.escape(json.dumps(f['observed']))}</li>"
                    for f in report.get("flaky", []))
    fault = (f"<p>Planted fault: <b>{html.escape(report['fault'])}</b>: {html.escape(report.get('fault_description') or '')}</p>"
             if report.get("fault") else "")
    abi_map = report.get("abi_map")
    maps = (f"<h2>ABI map: size &times; tail offset</h2><p>Each cell: a struct of that size with one nonzero byte at "
            f"that offset (<i>none</i>: a zero tail). A red frame and &#x2717; mark an outcome the oracle did not "
            f"expect.</p>{_abi_grid(abi_map)}"
            f"<h2>Flag bits</h2><p>Each bit alone, size 88.</p>{_flag_strip(abi_map['flags'])}") if abi_map else ""
    if report.get("effects"):
        maps += ("<h2>Effects: what each output produced</h2><p>Each call with the pidfd, child_tid and parent_tid "
                 "slots in scratch memory (hover a call for its case): the words written (<i>pid</i>: the child's "
                 "pid), what the pidfd names, the signal received, the vfork wait, the child's cgroup and namespaces."
                 f"</p>{_effects_table(report['effects'])}")
    campaign = report.get("campaign") or {}
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>clone3-fuzz report: {html.escape(report['kernel'])}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 70em; }}
pre {{ background: #f5f5f5; padding: .5em; overflow-x: auto; }}
table {{ border-collapse: collapse; font-size: 13px; }} td, th {{ border: 1px solid #ddd; padding: 2px 6px; text-align: left; }}
.key {{ margin-right: 1em; font-size: 12px; }}
.swatch {{ display: inline-block; width: 10px; height: 10px; margin-right: 4px; }}
.side {{ display: flex; gap: 1em; }} .side > div {{ flex: 1; min-width: 0; }}
.status-agree {{ color: #2e7d32; }} .status-discrepancy, .status-harness-error, .status-clone3-unavailable {{ color: #c62828; }}
</style></head><body>
<h1>clone3-fuzz report</h1>
<p class="status-{html.escape(report['status'])}"><b>{html.escape(_headline(report))}</b></p>
{fault}{f"<p>Target: {html.escape(_target(report))}</p>" if report.get("target") else ""}<p>{html.escape(report.get('clone3_cause') or '')}</p>
<p>{legend}</p>
{maps}
<h2>Oracle rules exercised</h2>{_bars(report['rules'], 'rule-coverage')}
<h2>Calls over time</h2>{_timeline(campaign.get('samples', []))}
<h2>Findings</h2>{findings}
<h2>Discrepancies in the corpus replay, by root cause</h2><ul>{discrepancies or '<li>None.</li>'}</ul>
<h2>Flaky (did not repeat: not findings)</h2><ul>{flaky or '<li>None.</li>'}</ul>
<h2>Kernel profile</h2><pre>{html.escape(json.dumps(report.get('profile'), indent=1))}</pre>
</body></html>
"""


def _finding_html(f: dict[str, Any]) -> str:
    sightings = f.get("sightings", {})
    head = (f'<section class="finding"><h3>{html.escape(f.get("title", f["signature"]))}</h3>'
            f'<p><code>{html.escape(f["signature"])}</code>: <b>{html.escape(f.get("status", "?"))}</b> '
            f'({html.escape(f.get("reason", ""))}); seen {sightings.get("count", 0)} times, first '
            f'{html.escape(sightings.get("first_seen", "-"))}, last {html.escape(sightings.get("last_seen", "-"))}</p>')
    if "source" in f:
        body = (f'<div class="side"><div><h4>Source: {html.escape(str(f.get("source_observed")))}</h4>'
                f'<pre>{html.escape(json.dumps(f["source"], indent=1))}</pre></div>'
                f'<div><h4>Variant: {html.escape(f["observed"])} (expected {html.escape(", ".join(f["expected"]))})</h4>'
                f'<pre>{html.escape(json.dumps(f["case"], indent=1))}</pre></div></div>')
    else:
        body = (f'<p>{html.escape(f["rule"])}: observed <b>{html.escape(f["observed"])}</b>, expected '
                f'{html.escape(", ".join(f["expected"]))}</p><pre>{html.escape(json.dumps(f["case"], indent=1))}</pre>')
    return (head + body + f'<details><summary>C reproducer ({html.escape(f["repro_path"])})</summary>'
            f'<pre>{html.escape(f.get("repro", ""))}</pre></details></section>')


# --- JUnit ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TestResult:
    """One test of the CI job, as JUnit and KTAP report it: it failed (``failure``), could
    not run (``error``), was skipped (``skipped``), or passed. ``seconds`` is its share of
    the step that judged it (the probe, the replay, the campaign), so the times add up."""

    name: str
    failure: str | None = None
    error: str | None = None
    skipped: str | None = None
    seconds: float = 0.0
    detail: str = ""


def test_results(report: dict[str, Any]) -> list[TestResult]:
    """One test for clone3 itself (skipped where it is missing), one per rule family and
    per relation (failing when a discrepancy that stands falls in it), one per finding
    (failing when it stands; its title is the message, with the reproducer's path)."""
    phases = report.get("phases", {})
    clone3, why = report.get("clone3", "available"), report.get("clone3_cause") or "missing"
    if clone3 == FALLBACK:  # glibc falls back to clone(): nothing to judge, nothing broken
        return [TestResult("clone3.available", skipped=f"clone3 is unavailable: {why}", seconds=phases.get("probe", 0.0))]
    first = [TestResult("clone3.available", failure=None if clone3 == "available" else f"clone3 is blocked: {why}",
                        seconds=phases.get("probe", 0.0))]
    # Only what fails the run fails here: a discrepancy whose finding stands, or a regression entry.
    standing = {f["signature"] for f in report["findings"] if fails(f)}
    failing = [d for d in report["discrepancies"] if d.get("signature") in standing or d.get("rule") == "regression"]
    failed_families = Counter(d["rule"].split(".")[0] for d in failing if "rule" in d)
    judged: list[tuple[str, str | None]] = []
    for family in sorted({rule.split(".")[0] for rule in report["rules"]} | set(failed_families)):
        count = failed_families.get(family, 0)
        judged.append((f"rules.{family}", f"{count} discrepancies" if count else None))
    for relation, count in sorted(report["relation_counts"].items()):
        broken = [d for d in failing if d.get("relation") == relation]
        judged.append((f"relations.{relation}", f"{len(broken)} of {count} checks broken" if broken else None))
    if report.get("bypass"):
        judged.append(("seccomp.clone_flags", f"clone3 goes through with {', '.join(report['bypass']['clone3_lets_through'])}"
                                              f", which the profile denies to clone"))
    share = phases.get("replay", 0.0) / max(1, len(judged))
    tests = first + [TestResult(name, failure=failure, seconds=share) for name, failure in judged]
    found = phases.get("campaign", phases.get("replay", 0.0)) / max(1, len(report["findings"]))
    for finding in report["findings"]:
        title = finding.get("title", finding["rule"])
        detail = (f"{title} [{finding.get('status')}: {finding.get('reason')}]: {json.dumps(finding['case'])}; "
                  f"reproducer: {finding['repro_path']}")
        tests.append(TestResult(f"finding.{finding['signature']}", failure=title if fails(finding) else None,
                                seconds=found, detail=detail))
    return tests


def junit_xml(report: dict[str, Any]) -> str:
    """The tests of :func:`test_results` as JUnit XML: a failure's message is the finding's
    title (or the count), its text the case and the reproducer's path; each testcase has
    its time."""
    suite = ET.Element("testsuite", name="clone3-fuzz", hostname=report["kernel"],
                       time=f"{report.get('seconds', 0.0):.3f}")
    tests = test_results(report)
    for test in tests:
        element = ET.SubElement(suite, "testcase", classname="clone3-fuzz", name=test.name, time=f"{test.seconds:.3f}")
        for tag, message in (("failure", test.failure), ("error", test.error), ("skipped", test.skipped)):
            if message:
                ET.SubElement(element, tag, message=message).text = test.detail or message
    suite.set("tests", str(len(tests)))
    suite.set("failures", str(sum(t.failure is not None for t in tests)))
    suite.set("errors", str(sum(t.error is not None for t in tests)))
    suite.set("skipped", str(sum(t.skipped is not None for t in tests)))
    return ET.tostring(suite, encoding="unicode") + "\n"


def ktap(report: dict[str, Any]) -> str:
    """The tests of :func:`test_results` in KTAP version 1, the kernel selftests' format
    (Documentation/dev-tools/ktap.rst): a plan, one result line each, a skip as a
    ``# SKIP`` directive, and what explains a failure as diagnostic lines before it."""
    tests = test_results(report)
    lines = ["KTAP version 1", f"# clone3-fuzz {report.get('tool_version', '')} on {report['kernel']}: the CI job",
             f"1..{len(tests)}"]
    for number, test in enumerate(tests, 1):
        if test.failure or test.error:
            lines += [f"# {line}" for line in (test.detail or test.failure or test.error or "").splitlines()]
        name = test.name.replace("#", "_")
        if test.skipped:
            lines.append(f"ok {number} {name} # SKIP {test.skipped}")
        else:
            lines.append(f"{'not ok' if test.failure or test.error else 'ok'} {number} {name}")
    passed = sum(not (t.failure or t.error or t.skipped) for t in tests)
    lines.append(f"# Totals: pass:{passed} fail:{sum(bool(t.failure or t.error) for t in tests)} "
                 f"xfail:0 xpass:0 skip:{sum(t.skipped is not None for t in tests)} error:0")
    return "\n".join(lines) + "\n"
