"""An A/B gate's result for people and for CI: a terminal table, Markdown (the verdicts, then the pairs in
time order with their figures) and JUnit XML (one test case per tier and metric)."""

from __future__ import annotations

import os
import socket
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from capacity.gate.ab import AB_METRICS, SIDE_NAMES, ABResult, PairedCheck
from capacity.gate.metrics import METRICS, Metric

_HEADLINE = {"pass": "PASS", "regression": "REGRESSION", "inconclusive": "INCONCLUSIVE"}
_STYLE = {"worse": "bold red", "fail": "bold red", "better": "green", "inconclusive": "yellow"}


def _p(check: PairedCheck) -> str:
    return "-" if check.p_value is None else f"{check.p_value:.3g}"


def _change(check: PairedCheck) -> tuple[str, str]:
    if check.change is None or check.low is None or check.high is None:
        return "-", "-"
    if check.relative:
        return f"{check.change * 100:+.1f} %", f"{check.low * 100:+.1f} to {check.high * 100:+.1f} %"
    metric = METRICS.get(check.key)
    if metric is None:
        return f"{check.change:+g}", f"{check.low:+g} to {check.high:+g}"
    return _signed(check.change, metric), f"{_signed(check.low, metric)} to {_signed(check.high, metric)}"


def _signed(value: float, metric: Metric) -> str:
    return ("+" if value >= 0 else "-") + metric.display(abs(value))


def _cells(check: PairedCheck) -> tuple[str, ...]:
    """Tier, metric, change, interval, pairs, p and limit: every output's columns before the verdict."""
    change, interval = _change(check)
    return (check.tier, check.label, change, interval, str(check.pairs), _p(check), check.limit or "-")


def print_ab(result: ABResult, console: Console) -> None:
    console.print(Text(f"capacity gate (A/B): {_HEADLINE[result.status]}", style="bold"))
    console.print(f"  A (baseline): {result.baseline}\n  B (candidate): {result.candidate}", highlight=False)
    table = Table(show_lines=False)
    for column in ("Tier", "Metric", "Change B vs A", "95 % interval", "Pairs", "p", "Limit", "Verdict"):
        table.add_column(column)
    for check in result.checks:
        table.add_row(*_cells(check), Text(check.verdict, style=_STYLE.get(check.verdict, "")))
    console.print(table)
    for check in result.failures:
        console.print(
            Text(f"FAILED {check.tier} {check.key}: {check.detail}", style="bold red"), soft_wrap=True
        )
    for note in result.notes:
        console.print(f"note: {note}", soft_wrap=True, highlight=False)


def markdown(result: ABResult) -> str:
    icon = {"pass": "✅", "regression": "❌", "inconclusive": "⚠️"}[result.status]
    pairs = max((r.pair for r in result.runs), default=0)
    lines = [
        f"## {icon} capacity gate (A/B): {_HEADLINE[result.status]}",
        "",
        f"- **A (baseline):** {_md(result.baseline)}",
        f"- **B (candidate):** {_md(result.candidate)}",
        f"- **Rule:** {pairs} pairs per tier, run A B B A A B ... on this machine; worse/better when the "
        f"sign-flip test over the pairs gives p < {result.thresholds.ab_alpha:g} *and* the mean change is "
        "beyond the metric's limit; otherwise not significant",
        "",
        "| Tier | Metric | Change B vs A | 95 % interval | Pairs | p | Limit | Verdict |",
        "|---|---|--:|---|--:|--:|--:|---|",
    ]
    for check in result.checks:
        verdict = f"**{check.verdict}**" if check.failed else check.verdict
        lines.append("| " + " | ".join(_md(c) for c in (*_cells(check), verdict)) + " |")
    lines += ["", "### Pairs in time order", ""]
    header = ["#", "Pair", "Side", "Tier", *(METRICS[k].label for k in AB_METRICS), "Usable"]
    lines += [
        "| " + " | ".join(header) + " |",
        "|" + "--:|" * 2 + "---|---|" + "--:|" * len(AB_METRICS) + "---|",
    ]
    for run in result.runs:
        figures = [METRICS[k].display(run.data.metrics[k].value) for k in AB_METRICS]
        usable = "yes" if run.data.usable else "no: " + "; ".join(run.data.problems)
        side = f"{run.side} ({SIDE_NAMES[run.side]})"
        lines.append(
            "| "
            + " | ".join(_md(c) for c in (str(run.order), str(run.pair), side, run.tier, *figures, usable))
            + " |"
        )
    if result.notes:
        lines += ["", "### Notes", ""] + [f"- {_md(n)}" for n in result.notes]
    return "\n".join(lines) + "\n"


def junit(result: ABResult, elapsed_s: float = 0.0) -> ET.ElementTree:
    checks = result.checks
    root = ET.Element(
        "testsuites",
        name="capacity gate (A/B)",
        tests=str(len(checks)),
        failures=str(sum(c.failed for c in checks)),
        errors="0",
        time=f"{max(elapsed_s, 0.0):.3f}",
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name="capacity gate (A/B)",
        tests=str(len(checks)),
        failures=str(sum(c.failed for c in checks)),
        errors="0",
        skipped=str(sum(c.verdict == "inconclusive" for c in checks)),
        time="0",
        timestamp=datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        hostname=socket.gethostname(),
        id="0",
        package="capacity.gate",
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (("baseline", result.baseline), ("candidate", result.candidate)):
        ET.SubElement(properties, "property", name=name, value=value)
    for check in checks:
        case = ET.SubElement(
            suite, "testcase", name=check.key, classname=f"capacity.gate.ab.{check.tier}", time="0"
        )
        if check.failed:
            failure = ET.SubElement(
                case, "failure", message=f"{check.tier}: {check.key} {check.verdict}", type="regression"
            )
            failure.text = check.detail
        elif check.verdict == "inconclusive":
            ET.SubElement(case, "skipped", message=f"inconclusive: {check.detail}")
        out = ET.SubElement(case, "system-out")
        out.text = f"{check.label}: {check.verdict}: {check.detail}"
    ET.indent(root)
    return ET.ElementTree(root)


def write_markdown(path: str | os.PathLike[str], result: ABResult) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(markdown(result), encoding="utf-8")
    return target


def write_junit(path: str | os.PathLike[str], result: ABResult, elapsed_s: float = 0.0) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    junit(result, elapsed_s).write(target, encoding="utf-8", xml_declaration=True)
    return target


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
