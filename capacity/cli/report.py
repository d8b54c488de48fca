"""``capacity report RUN_OR_SWEEP_DIR``: the capacity document of a sweep (or one run), measured.

Writes ``index.html`` (self-contained: charts inline, no network needed to view it), ``report.md`` (fits in
a pull-request comment), ``report.json`` and ``matrix.csv`` to ``DIR/report/`` or ``--output``.

Exit codes: 0 written, 2 the directory is missing or not a readable sweep or run (one line on stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from capacity.exit_codes import EXIT_INVALID


@click.command("report", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", metavar="RUN_OR_SWEEP_DIR", type=click.Path(path_type=Path))
@click.option(
    "--output",
    "-o",
    metavar="DIR",
    type=click.Path(path_type=Path),
    help="Where to write (default DIR/report).",
)
def command(source: Path, output: Path | None) -> None:
    """Render the report of RUN_OR_SWEEP_DIR: a sweep directory (sweep.json) or a run directory (run.json)."""
    from capacity.report import ReportSourceError, render_report  # matplotlib: only when this command runs

    try:
        paths = render_report(source, output)
    except ReportSourceError as error:
        click.echo(f"capacity report: error: {error}", err=True)
        sys.exit(EXIT_INVALID)
    except OSError as error:  # cannot write the output directory
        click.echo(f"capacity report: error: cannot write the report: {error}", err=True)
        sys.exit(EXIT_INVALID)
    click.echo(f"report: {paths.html}")
    click.echo(f"        {paths.markdown}, {paths.json.name}, {paths.csv.name}")
