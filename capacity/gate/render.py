"""A ``GateResult`` for people and for CI: a rich terminal table, Markdown for a pull-request comment and
JUnit XML (one test case per check; worse and failed checks are ``<failure>``s naming the metric and the
figures, inconclusive ones ``<skipped>``), written with ``xml.etree``.
"""

from __future__ import annotations

import os
import socket
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from capacity.gate.baseline import Baseline
from capacity.gate.compare import Check, GateResult

_STYLE = {
    "worse": "bold red",
    "fail": "bold red",
    "better": "green",
    "pass": "green",
    "not significant": "dim",
    "inconclusive": "yellow",
}
_HEADLINE = {
    "pass": "PASS: no significant regression",
    "regression": "REGRESSION",
    "inconclusive": "INCONCLUSIVE: not every tier could be compared (not a failure)",
}


def describe_side(side: Baseline, path: str) -> str:
    """``reports/baselines/ci-smoke.json (ci_smoke, git 1a2b3c4, 2026-11-25T12:00:00+00:00)``."""
    git = (side.git_revision or "unknown")[:10] + ("+dirty" if side.environment.git_dirty else "")
    runs = max((t.runs for t in side.tiers), default=1)
    pooled = f", {runs} runs pooled" if runs > 1 else ""
    return f"{path} ({side.name}, git {git}, {side.environment.timestamp_utc}{pooled})"


# ---------------------------------------------------------------------------------------------- terminal


def print_result(result: GateResult, console: Console) -> None:
    """The verdict table, then warnings (loud), notes and the headline."""
    console.print(f"baseline: {describe_side(result.baseline, result.baseline_path)}", soft_wrap=True)
    console.print(f"run:      {describe_side(result.current, result.current_path)}", soft_wrap=True)
    table = Table(title="capacity gate", title_justify="left")
    for header in ("tier", "check", "baseline", "run", "change", "p", "verdict"):
        table.add_column(header, justify="left" if header in ("tier", "check", "verdict") else "right")
    for check in result.checks:
        table.add_row(*_figure_cells(check), Text(_verdict_cell(check), style=_STYLE[check.verdict]))
    table.caption = (
        "per-second samples, Welch t adjusted for autocorrelation; worse/better need p < "
        f"{result.thresholds.alpha:g} and a change beyond the metric's threshold"
    )
    console.print(table)
    for check in result.checks:
        if check.failed:
            console.print(
                Text(f"FAILED {check.tier} {check.key}: {check.detail}", style="bold red"), soft_wrap=True
            )
    for warning in result.warnings:
        console.print(Text(f"WARNING: {warning}", style="bold yellow"), soft_wrap=True)
    for note in result.notes:
        console.print(Text(f"note: {note}", style="dim"), soft_wrap=True)
    style = {"pass": "bold green", "regression": "bold red", "inconclusive": "bold yellow"}[result.status]
    console.print(Text(f"gate: {_HEADLINE[result.status]}", style=style))


def _figure_cells(check: Check) -> tuple[str, ...]:
    """Tier, check, baseline, run, change and p: the cells the terminal table and Markdown share."""
    baseline = check.display(check.baseline) if check.baseline is not None else "-"
    return (
        check.tier,
        check.label,
        baseline,
        check.display(check.current),
        check.change_text(),
        _p_cell(check),
    )


def _verdict_cell(check: Check) -> str:
    if check.verdict in ("worse", "better") and check.limit:
        return f"{check.verdict} (> {check.limit})"
    if check.verdict in ("pass", "fail") and check.limit:
        return f"{check.verdict} (limit {check.limit})"
    return check.verdict


def _p_cell(check: Check) -> str:
    if check.p_value is None:
        return "-"
    return f"{check.p_value:.2g}" if check.p_value >= 0.0001 else "<0.0001"


# ---------------------------------------------------------------------------------------------- Markdown


def markdown(result: GateResult) -> str:
    """The result as Markdown for a pull-request comment: headline, table, failures, warnings."""
    icon = {"pass": "✅", "regression": "❌", "inconclusive": "⚠️"}[result.status]
    lines = [
        f"## {icon} capacity gate: {_HEADLINE[result.status]}",
        "",
        f"- **Baseline:** `{_md(describe_side(result.baseline, result.baseline_path))}`",
        f"- **Run:** `{_md(describe_side(result.current, result.current_path))}`",
        "- **Rule:** worse/better when the per-second samples differ (Welch t adjusted for autocorrelated "
        f"seconds, p < {result.thresholds.alpha:g}) *and* the change is beyond the metric's threshold; "
        "otherwise not significant",
        "",
        "| Tier | Check | Baseline | Run | Change | p | Verdict |",
        "|---|---|--:|--:|--:|--:|---|",
    ]
    for check in result.checks:
        verdict = _verdict_cell(check)
        if check.failed:
            verdict = f"**{verdict}**"
        lines.append("| " + " | ".join(_md(cell) for cell in (*_figure_cells(check), verdict)) + " |")
    failures = result.failures
    if failures:
        lines += ["", "### Failures", ""]
        lines += [f"- **{_md(c.tier)} / {_md(c.key)}**: {_md(c.detail)}" for c in failures]
    if result.warnings:
        lines += ["", "### Warnings", ""]
        lines += [f"- ⚠️ {_md(w)}" for w in result.warnings]
    if result.notes:
        lines += ["", "<details><summary>Notes</summary>", ""]
        lines += [f"- {_md(n)}" for n in result.notes]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------------------------------------- JUnit


def junit(result: GateResult, elapsed_s: float = 0.0) -> ET.ElementTree:
    """JUnit XML: ``<testsuites>`` with one ``<testsuite>`` per tier and one ``<testcase>`` per check
    (classname ``capacity.gate.<tier>``, name the metric key). worse/fail -> ``<failure>`` (type
    ``regression`` or ``slo``) naming the metric and figures; inconclusive -> ``<skipped>``; the
    explanation of every check is in its ``<system-out>``."""
    checks = result.checks
    root = ET.Element(
        "testsuites",
        name="capacity gate",
        tests=str(len(checks)),
        failures=str(sum(c.failed for c in checks)),
        errors="0",
        time=_seconds(elapsed_s),
    )  # no "skipped" here: the common JUnit schema (Jenkins' junit-10.xsd) allows it on testsuite only
    stamp = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    host = socket.gethostname()
    for index, tier in enumerate(result.tiers):
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"capacity gate: {tier.name}",
            tests=str(len(tier.checks)),
            failures=str(sum(c.failed for c in tier.checks)),
            errors="0",
            skipped=str(sum(c.verdict == "inconclusive" for c in tier.checks)),
            time="0",
            timestamp=stamp,
            hostname=host,
            id=str(index),
            package="capacity.gate",
        )
        properties = ET.SubElement(suite, "properties")
        for name, value in (
            ("baseline", result.baseline_path),
            ("baseline_git_revision", result.baseline.git_revision or ""),
            ("run", result.current_path),
            ("run_git_revision", result.current.git_revision or ""),
            ("alpha", f"{result.thresholds.alpha:g}"),
            ("thresholds", result.thresholds.source or "defaults"),
        ):
            ET.SubElement(properties, "property", name=name, value=value)
        for check in tier.checks:
            case = ET.SubElement(
                suite, "testcase", name=check.key, classname=f"capacity.gate.{tier.name}", time="0"
            )
            if check.failed:
                kind = "slo" if check.key.startswith("slo_") else "regression"
                failure = ET.SubElement(case, "failure", message=_failure_message(check), type=kind)
                failure.text = check.detail
            elif check.verdict == "inconclusive":
                ET.SubElement(case, "skipped", message=f"inconclusive: {check.detail}")
            out = ET.SubElement(case, "system-out")
            out.text = f"{check.label}: {check.verdict}: {check.detail}"
        if tier.problems:
            err = ET.SubElement(suite, "system-err")
            err.text = "\n".join(f"INCONCLUSIVE: {p}" for p in tier.problems)
    ET.indent(root)
    return ET.ElementTree(root)


def _failure_message(check: Check) -> str:
    if check.key.startswith("slo_"):
        return f"{check.tier}: {check.detail}"
    return (
        f"{check.tier}: {check.key} ({check.label}) {check.verdict}: "
        f"{check.display(check.baseline)} -> {check.display(check.current)} ({check.change_text()}, "
        f"threshold {check.limit}, p = {_p_cell(check)})"
    )


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.3f}"


def write_junit(path: str | os.PathLike[str], result: GateResult, elapsed_s: float = 0.0) -> Path:
    """Write the JUnit XML to ``path`` (parent directories created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    junit(result, elapsed_s).write(target, encoding="utf-8", xml_declaration=True)
    return target


def write_markdown(path: str | os.PathLike[str], result: GateResult) -> Path:
    """Write the Markdown report to ``path`` (parent directories created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(markdown(result), encoding="utf-8")
    return target
