"""Reports: report.json (everything), report.md (for a terminal or a PR comment), a
self-contained report.html with pictures (inline SVG, no script), and JUnit XML.

The report is built from a plain dict (:func:`harness.ci.run` fills it), so each format
is a pure function of the same data.
"""

from __future__ import annotations

import html
import json
import os
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

COLOURS = {
    "success": "#4caf50", "EINVAL": "#ff9800", "E2BIG": "#2196f3", "EFAULT": "#9c27b0", "EPERM": "#f44336",
    "ENOSYS": "#000000", "EBADF": "#795548", "EEXIST": "#607d8b", "ENOSPC": "#e91e63", "EAGAIN": "#00bcd4",
}
OTHER = "#9e9e9e"


def write_all(report: dict[str, Any], folder: str, junit: str | None) -> None:
    os.makedirs(folder, exist_ok=True)
    _write(os.path.join(folder, "report.json"), json.dumps(report, indent=2) + "\n")
    _write(os.path.join(folder, "report.md"), markdown(report))
    _write(os.path.join(folder, "report.html"), page(report))
    if junit:
        _write(junit, junit_xml(report))


def _write(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _headline(report: dict[str, Any]) -> str:
    counts = report["counts"]
    return (f"{report['status']}: {counts['cases']} cases, {counts['relation_checks']} relation checks, "
            f"{counts['discrepancies']} discrepancies, {len(report['findings'])} findings "
            f"on {report['kernel']} ({report['seconds']:.0f}s)")


# --- Markdown ------------------------------------------------------------------------

def markdown(report: dict[str, Any]) -> str:
    lines = ["# clone3-fuzz report", "", f"**{_headline(report)}**", ""]
    if report.get("clone3_cause"):
        lines += [f"clone3 is unavailable: {report['clone3_cause']}", ""]
    lines += ["## Discrepancies", ""]
    for d in report["discrepancies"] or [{"note": "none"}]:
        lines.append(f"- {json.dumps(d)}" if "note" not in d else "- none")
    lines += ["", "## Findings", ""]
    for f in report["findings"] or [{}]:
        if not f:
            lines.append("- none")
            continue
        lines += [f"### {f['signature']}", "", f"{f['rule']}: observed {f['observed']}, expected "
                  f"{', '.join(f['expected'])}", "", "```json", json.dumps(f["case"]), "```", "",
                  f"Reproducer: `{f['repro_path']}`", ""]
    lines += ["", "## Oracle rules exercised", "", "| rule | cases |", "|---|---|"]
    lines += [f"| {rule} | {count} |" for rule, count in sorted(report["rules"].items(), key=lambda x: -x[1])]
    campaign = report.get("campaign") or {}
    if campaign:
        lines += ["", "## Campaign", "", f"{campaign.get('cases', 0)} cases and {campaign.get('relation_checks', 0)} "
                  f"relation variants in {campaign.get('seconds', 0):.0f}s; corpus {campaign.get('corpus', 0)}."]
    return "\n".join(lines) + "\n"


# --- HTML, with inline SVG -----------------------------------------------------------

def _colour(outcome: str) -> str:
    return COLOURS.get(outcome, OTHER)


def _abi_grid(abi_map: dict[str, Any]) -> str:
    sizes, offsets, grid = abi_map["sizes"], abi_map["tail_offsets"], abi_map["grid"]
    cell, left, top = 30, 70, 70
    width, height = left + cell * len(offsets) + 10, top + cell * len(sizes) + 10
    parts = [f'<svg id="abi-map" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="size by tail offset">']
    for j, offset in enumerate(offsets):
        x = left + j * cell + cell // 2
        parts.append(f'<text x="{x}" y="{top - 8}" font-size="10" transform="rotate(-60 {x} {top - 8})">'
                     f'{html.escape(str(offset))}</text>')
    for i, size in enumerate(sizes):
        y = top + i * cell
        parts.append(f'<text x="{left - 6}" y="{y + cell // 2 + 4}" font-size="10" text-anchor="end">{size}</text>')
        for j, outcome in enumerate(grid[i]):
            parts.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}" '
                         f'fill="{_colour(outcome)}"><title>size {size}, tail byte at {offsets[j]}: '
                         f'{html.escape(outcome)}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def _flag_strip(flags: list[dict[str, Any]]) -> str:
    cell = 16
    parts = [f'<svg id="flag-map" xmlns="http://www.w3.org/2000/svg" width="{cell * 32 + 60}" height="{cell * 2 + 30}">']
    for row in range(2):
        parts.append(f'<text x="0" y="{row * cell + 12}" font-size="10">bits {32 * row}-{32 * row + 31}</text>')
    for entry in flags:
        bit = entry["bit"]
        x, y = 60 + (bit % 32) * cell, (bit // 32) * cell
        parts.append(f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{_colour(entry["observed"])}">'
                     f'<title>bit {bit} {html.escape(entry["name"])}: {html.escape(entry["observed"])}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


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
    legend = "".join(f'<span class="key"><span class="swatch" style="background:{c}"></span>{o}</span>'
                     for o, c in COLOURS.items())
    findings = "".join(
        f'<section class="finding"><h3>{html.escape(f["signature"])}</h3>'
        f'<p>{html.escape(f["rule"])}: observed <b>{html.escape(f["observed"])}</b>, expected '
        f'{html.escape(", ".join(f["expected"]))}</p><pre>{html.escape(json.dumps(f["case"], indent=1))}</pre>'
        f'<details><summary>C reproducer ({html.escape(f["repro_path"])})</summary>'
        f'<pre>{html.escape(f.get("repro", ""))}</pre></details></section>'
        for f in report["findings"]) or "<p>None.</p>"
    discrepancies = "".join(f"<li><code>{html.escape(json.dumps(d))}</code></li>" for d in report["discrepancies"])
    abi_map = report.get("abi_map")
    maps = (f"<h2>ABI map: size &times; tail offset</h2><p>Each cell: a struct of that size with one nonzero byte at "
            f"that offset (<i>none</i>: a zero tail).</p>{_abi_grid(abi_map)}"
            f"<h2>Flag bits</h2><p>Each bit alone, size 88.</p>{_flag_strip(abi_map['flags'])}") if abi_map else ""
    campaign = report.get("campaign") or {}
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>clone3-fuzz report: {html.escape(report['kernel'])}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 70em; }}
pre {{ background: #f5f5f5; padding: .5em; overflow-x: auto; }}
.key {{ margin-right: 1em; font-size: 12px; }}
.swatch {{ display: inline-block; width: 10px; height: 10px; margin-right: 4px; }}
.status-agree {{ color: #2e7d32; }} .status-discrepancy, .status-harness-error, .status-clone3-unavailable {{ color: #c62828; }}
</style></head><body>
<h1>clone3-fuzz report</h1>
<p class="status-{html.escape(report['status'])}"><b>{html.escape(_headline(report))}</b></p>
<p>{html.escape(report.get('clone3_cause') or '')}</p>
<p>{legend}</p>
{maps}
<h2>Oracle rules exercised</h2>{_bars(report['rules'], 'rule-coverage')}
<h2>Calls over time</h2>{_timeline(campaign.get('samples', []))}
<h2>Findings</h2>{findings}
<h2>Discrepancies in the corpus replay</h2><ul>{discrepancies or '<li>None.</li>'}</ul>
<h2>Kernel profile</h2><pre>{html.escape(json.dumps(report.get('profile'), indent=1))}</pre>
</body></html>
"""


# --- JUnit ---------------------------------------------------------------------------

def junit_xml(report: dict[str, Any]) -> str:
    """One testcase per rule family and per relation (failing when a discrepancy falls in
    it), one per finding (failing), and one for clone3 itself (an error when it is missing)."""
    suite = ET.Element("testsuite", name="clone3-fuzz", hostname=report["kernel"])
    cases: list[ET.Element] = []

    def case(name: str, failure: str | None = None, error: str | None = None) -> None:
        element = ET.Element("testcase", classname="clone3-fuzz", name=name)
        if failure:
            ET.SubElement(element, "failure", message=failure[:200]).text = failure
        if error:
            ET.SubElement(element, "error", message=error[:200]).text = error
        cases.append(element)

    case("clone3.available", error=None if report["clone3"] == "available" else report.get("clone3_cause") or "missing")
    failed_families = Counter(d["rule"].split(".")[0] for d in report["discrepancies"] if "rule" in d)
    for family in sorted({rule.split(".")[0] for rule in report["rules"]} | set(failed_families)):
        count = failed_families.get(family, 0)
        case(f"rules.{family}", failure=f"{count} discrepancies" if count else None)
    for relation, count in sorted(report["relation_counts"].items()):
        broken = [d for d in report["discrepancies"] if d.get("relation") == relation]
        case(f"relations.{relation}", failure=f"{len(broken)} of {count} checks broken" if broken else None)
    for finding in report["findings"]:
        case(f"finding.{finding['signature']}",
             failure=f"{finding['rule']}: observed {finding['observed']}, expected {', '.join(finding['expected'])}: "
                     f"{json.dumps(finding['case'])} ({finding['repro_path']})")
    suite.extend(cases)
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
    suite.set("errors", str(sum(c.find("error") is not None for c in cases)))
    return ET.tostring(suite, encoding="unicode") + "\n"
