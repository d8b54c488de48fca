"""An audit for people and programs: rows of text (``AuditRow``), ``audit.json`` (``capacity-audit/1``),
Markdown, a one-line tally, and the document's summary table written again with measured numbers.

The rows are what every output shows, built once here; ``audit.json`` stores them, so ``capacity report``
shows an audited sweep's claims without auditing again.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from capacity.audit.claims import Claim
from capacity.audit.evidence import Figure, SweepEvidence
from capacity.audit.judge import VERDICT_KINDS, AuditResult, Verdict
from capacity.audit.units import from_base
from capacity.fit.estimate import fmt
from capacity.jsonfile import read_json_file
from capacity.results.loadgen_file import write_json_atomic
from capacity.results.run_file import dataclass_from_json

FORMAT = "capacity-audit/1"
AUDIT_FILE = "audit.json"
VERDICT_TEXT = {
    "holds": "holds",
    "refuted": "refuted",
    "projected": "projected",
    "untestable": "untestable here",
    "inconsistent": "inconsistent",
}


class AuditFormatError(ValueError):
    """An ``audit.json`` that cannot be read; the message names the file and the field."""


@dataclass(frozen=True)
class AuditRow:
    """One claim as every output shows it."""

    id: str
    section: str
    quote: str
    claimed: str  # "≥ 12,000 orders/s at 16 cores, P99 < 150 ms"
    measured: str  # "4,930 orders/s" or "—"
    ratio: float | None  # measured / claimed
    verdict: str  # one of VERDICT_KINDS
    verdict_text: str  # "projected: falls short"
    why: str  # the basis of the figure, or the reason it could not be judged


@dataclass(frozen=True)
class AuditRecord:
    """What ``audit.json`` holds."""

    claims_file: str
    document: str
    sweep: str
    tally: dict[str, int]
    failed: bool
    rows: tuple[AuditRow, ...]
    order_share: float
    mix: str
    format: str = FORMAT


def figure_text(value: float | None, claim: Claim, at_least: bool = False) -> str:
    if value is None:
        return "—"
    return f"{'≥ ' if at_least else ''}{fmt(value)} {claim.unit.text}".rstrip()


def as_claimed(value: float) -> str:
    """A claimed number as the document wrote it: every digit, with thousands separators."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"


def cores_text(cores: float) -> str:
    return f"{cores:g} core" + ("" if cores == 1 else "s")


def claimed_text(claim: Claim) -> str:
    conditions = []
    at = claim.at
    if at.rate is not None:
        conditions.append(f"{as_claimed(at.rate)} orders/s")
    if at.users is not None:
        conditions.append(f"{at.users:,} users")
    if at.p99_ms is not None:
        conditions.append(f"P99 < {fmt(at.p99_ms)} ms")
    if at.duration_s is not None:
        conditions.append(f"for {fmt(at.duration_s)} s")
    conditions.append(cores_text(at.cores))
    return f"{claim.op} {as_claimed(claim.value)} {claim.unit.text}".rstrip() + f" at {', '.join(conditions)}"


def verdict_text(verdict: Verdict) -> str:
    if verdict.kind == "projected":
        return "projected: meets it" if verdict.meets else "projected: falls short"
    return VERDICT_TEXT[verdict.kind]


def audit_rows(result: AuditResult) -> tuple[AuditRow, ...]:
    return tuple(
        AuditRow(
            id=v.claim.id,
            section=v.claim.section,
            quote=v.claim.quote,
            claimed=claimed_text(v.claim),
            measured=figure_text(v.measured, v.claim, v.at_least),
            ratio=v.ratio,
            verdict=v.kind,
            verdict_text=verdict_text(v),
            why=v.reason or v.basis,
        )
        for v in result.verdicts
    )


def tally_line(tally: dict[str, int]) -> str:
    """``53 claims: 8 hold, 8 refuted, 14 projected, 15 untestable here, 8 inconsistent``."""
    total = sum(tally.values())
    parts = [f"{tally.get(kind, 0)} {VERDICT_TEXT[kind]}" for kind in VERDICT_KINDS]
    return f"{total} claims: " + ", ".join(parts).replace("holds", "hold", 1)


def to_record(result: AuditResult) -> AuditRecord:
    return AuditRecord(
        claims_file=result.claims.path,
        document=result.claims.document,
        sweep=result.sweep,
        tally=dict(result.tally),
        failed=result.failed,
        rows=audit_rows(result),
        order_share=result.order_share,
        mix=result.mix,
    )


def write_audit(path: str | os.PathLike[str], record: AuditRecord) -> Path:
    """Write ``record`` as JSON (a directory gets ``audit.json``), atomically; returns the file."""
    target = Path(path)
    if target.is_dir():
        target = target / AUDIT_FILE
    data = asdict(record)
    write_json_atomic(target, {"format": FORMAT, **{k: v for k, v in data.items() if k != "format"}})
    return target


def read_audit(path: str | os.PathLike[str]) -> AuditRecord:
    """Read ``audit.json`` (or the directory holding it); AuditFormatError naming the file otherwise."""
    target = Path(path)
    if target.is_dir():
        target = target / AUDIT_FILE
    data: Any = read_json_file(target, "an audit.json", AuditFormatError)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise AuditFormatError(f"{target}: not a {FORMAT} file")
    return dataclass_from_json(AuditRecord, data, str(target), error=AuditFormatError)


def markdown(record: AuditRecord) -> str:
    """The audit as a Markdown section: the tally, then one row per claim."""
    lines = [
        "## Claims audit",
        "",
        f"{record.document} ({record.claims_file}) against this sweep: **{tally_line(record.tally)}**.",
        f"Rates in orders/s are requests/s x {record.order_share:.2f} ({record.mix}).",
        "",
        "| Claim | Source | Claimed | Measured | Ratio | Verdict | Basis or reason |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in record.rows:
        ratio = "—" if row.ratio is None else f"{fmt(row.ratio)}x"
        cells = (row.id, row.section, row.claimed, row.measured, ratio, row.verdict_text, row.why)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def rewrite(result: AuditResult, evidence: SweepEvidence) -> str:
    """The document's summary table (the claims with a ``table`` cell) with this sweep's numbers in place
    of the claimed ones, each marked with its basis, and what the marks mean."""
    cells: dict[tuple[str, str], str] = {}
    rows: list[str] = []
    columns: list[str] = []
    for verdict in result.verdicts:
        claim = verdict.claim
        if claim.table is None:
            continue
        row, column = claim.table
        rows += [row] if row not in rows else []
        columns += [column] if column not in columns else []
        cells[row, column] = _cell(claim, evidence)
    header = "| Metric | " + " | ".join(columns) + " |"
    lines = [
        f"# {result.claims.document}: the summary table, measured",
        "",
        f"Measured on this machine ({cores_text(result.measured_cores)} for the server) by {result.sweep}.",
        "m: measured here (on fewer cores than the column's where it says so).",
        "p: projected to the column's hardware (linear per core, the fit's assumptions).",
        "—: this sweep cannot say (the audit says why).",
        "",
        header,
        "|" + "---|" * (len(columns) + 1),
    ]
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(cells.get((row, c), "—") for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(claim: Claim, evidence: SweepEvidence) -> str:
    found = evidence.figure(claim)
    if not isinstance(found, Figure):
        return "—"
    mark = "p" if found.basis == "projection" else "m"
    if found.fewer_cores:
        mark = f"m, on {cores_text(evidence.cores)}"
    return f"{figure_text(from_base(found.value, claim.unit), claim, found.at_least)} ({mark})"
