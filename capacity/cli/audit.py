"""``capacity audit CLAIMS SWEEP_DIR``: a capacity document's claims, one verdict each, against a sweep.

Writes ``SWEEP_DIR/audit.json`` (so ``capacity report`` shows a "Claims audit" section) and prints a table,
the tally and the largest refutations. Exit codes: 0 nothing refuted or inconsistent, 1 something is,
2 bad input (a claims file's problems as ``file:line: field: problem``, not a sweep, a path not writable).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import click
from rich.table import Table

from capacity.audit.claims import ClaimsError, ClaimsFile, load_claims
from capacity.audit.evidence import SweepEvidence
from capacity.audit.judge import AuditResult, audit
from capacity.audit.render import (
    AuditRecord,
    AuditRow,
    markdown,
    rewrite,
    tally_line,
    to_record,
    write_audit,
)
from capacity.cli.sweep import output_console
from capacity.exit_codes import EXIT_FAILED, EXIT_INVALID, EXIT_OK
from capacity.fit import CapacityModel
from capacity.fit.estimate import fmt
from capacity.sweep.sweep_file import SweepFormatError, SweepResult, read_sweep

LARGEST = 5  # refutations listed after the table


@click.command("audit", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("claims_file", metavar="CLAIMS", type=click.Path(path_type=Path))
@click.argument("directory", metavar="SWEEP_DIR", type=click.Path(path_type=Path))
@click.option(
    "--json", "json_file", metavar="FILE", type=click.Path(path_type=Path), help="Also write the audit here."
)
@click.option(
    "--markdown",
    "markdown_file",
    metavar="FILE",
    type=click.Path(path_type=Path),
    help="The audit as Markdown.",
)
@click.option(
    "--rewrite",
    "rewrite_file",
    metavar="FILE",
    type=click.Path(path_type=Path),
    help="The document's summary table again, with measured or projected numbers (Markdown).",
)
@click.option("--quiet", "-q", is_flag=True, help="Only the tally line.")
def command(
    claims_file: Path,
    directory: Path,
    json_file: Path | None,
    markdown_file: Path | None,
    rewrite_file: Path | None,
    quiet: bool,
) -> None:
    """Audit CLAIMS (a claims YAML file, e.g. claims/seed.yaml) against SWEEP_DIR (a sweep or run):
    holds, refuted, projected (hardware this machine is not), untestable here, or inconsistent (the
    document's own arithmetic)."""
    try:
        claims = load_claims(claims_file)
    except ClaimsError as error:
        for problem in error.problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_INVALID)
    try:
        result = read_sweep(directory)
    except SweepFormatError as error:
        _fail(str(error))
    from capacity.report.source import fit  # the model the report shows: fit.json's options

    try:
        outcome, evidence, record = audit_directory(claims, result, fit(result)[0])
        for path, text in (
            (markdown_file, markdown(record) if markdown_file else ""),
            (rewrite_file, rewrite(outcome, evidence) if rewrite_file else ""),
        ):
            if path is not None:
                path.write_text(text, encoding="utf-8")
        if json_file is not None:
            write_audit(json_file, record)
    except OSError as error:
        _fail(f"cannot write {error.filename}: {error.strerror or error}")
    console = output_console()
    if not quiet:
        console.print(_table(record, outcome.sweep))
        for line in largest_refutations(record.rows):
            console.print(line, highlight=False, soft_wrap=True)
    console.print(f"audit: {tally_line(outcome.tally)}", highlight=False, soft_wrap=True)
    sys.exit(EXIT_FAILED if outcome.failed else EXIT_OK)


def audit_directory(
    claims: ClaimsFile, result: SweepResult, model: CapacityModel
) -> tuple[AuditResult, SweepEvidence, AuditRecord]:
    """Audit ``claims`` against a sweep and its fitted model, and write the record (its rows, as every
    output shows them) to ``audit.json`` in the sweep's directory, which ``capacity report`` shows.
    OSError if it cannot be written."""
    evidence = SweepEvidence(result, model)
    outcome = audit(claims, evidence, str(result.path))
    record = to_record(outcome)
    write_audit(result.path, record)
    return outcome, evidence, record


def largest_refutations(rows: Sequence[AuditRow], count: int = LARGEST) -> list[str]:
    """The refuted claims furthest from what was measured (by the ratio, either way), as lines."""
    refuted = [row for row in rows if row.verdict == "refuted" and row.ratio]
    refuted.sort(key=lambda row: abs(math.log(row.ratio or 1.0)), reverse=True)
    if not refuted:
        return []
    lines = [f"Largest refutations (of {len(refuted)}):"]
    for row in refuted[:count]:
        lines.append(f"  {row.id}: claimed {row.claimed}; measured {row.measured} ({fmt(row.ratio)}x)")
    return lines


def _table(record: AuditRecord, sweep: str) -> Table:
    table = Table(title=f"{record.document}: claims against {sweep}")
    for column in ("Claim", "Claimed", "Measured", "Ratio", "Verdict", "Basis or reason"):
        table.add_column(column, overflow="fold")
    for row in record.rows:
        ratio = "—" if row.ratio is None else f"{fmt(row.ratio)}x"
        table.add_row(row.id, row.claimed, row.measured, ratio, row.verdict_text, row.why)
    return table


def _fail(message: str) -> NoReturn:
    click.echo(f"capacity audit: error: {message}", err=True)
    sys.exit(EXIT_INVALID)
