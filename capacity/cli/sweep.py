"""``capacity sweep``: run a sweep file's tiers, or a generated ladder of rates, into one sweep directory;
show live progress and, at the end, the scalability matrix.

    capacity sweep scenarios/sweeps/quick.yaml
    capacity sweep scenarios/average.yaml --from 500 --to 20000 --steps 12 --tier-duration 20s
    capacity sweep scenarios/sweeps/quick.yaml --repeat 3     # all tiers, three times over, interleaved
    capacity sweep --resume reports/sweeps/20261125T120000-quick

Exit codes: 0 the sweep completed (or a ladder stopped early on purpose), 1 a tier broke, 2 bad input
(nothing ran; problems in files are printed as file:line: field: message), 130 interrupted with Ctrl-C
(finished tiers are kept; ``--resume`` continues).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from capacity.cli.run_options import (
    BadInput,
    duration_s,
    positive_number,
    run_options,
    run_settings_options,
    writable_dir,
)
from capacity.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK
from capacity.run.progress import LiveProgress, ProgressUpdate
from capacity.scenario import MAX_RATE, Scenario, ScenarioError, Sweep, load_document
from capacity.sweep.runner import (
    DEFAULT_OUTPUT_DIR,
    Ladder,
    SweepSetupError,
    SweepUpdate,
    describe_status,
    ladder_sweep,
    resume_sweep,
    start_sweep,
)
from capacity.sweep.sweep_file import MatrixRow, SweepFormatError, SweepResult, matrix_rows
from capacity.text import figure

LADDER_PARAMS = ("start", "stop", "steps", "spacing", "tier_duration")


@click.command("sweep", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("sweep_file", metavar="[SWEEP]", required=False, type=click.Path(path_type=Path))
@click.option(
    "--resume", metavar="DIR", type=click.Path(path_type=Path), help="Continue this sweep directory."
)
@click.option(
    "--from", "start", metavar="N", help="Ladder: lowest rate, requests/s (SWEEP is then a scenario)."
)
@click.option("--to", "stop", metavar="N", help="Ladder: highest rate, requests/s.")
@click.option("--steps", metavar="N", help="Ladder: number of tiers (default 10).")
@click.option(
    "--spacing", type=click.Choice(["geometric", "linear"]), help="Ladder: rate spacing (default geometric)."
)
@click.option("--tier-duration", metavar="DURATION", help="Ladder: length of each tier (default 30s).")
@click.option("--cooldown", metavar="DURATION", help="Idle time between tiers (default: the sweep file's).")
@click.option(
    "--repeat",
    metavar="N",
    help="Run all the tiers N times, interleaved (every tier, then every tier again), so the report can "
    "show the spread between repeats (default 1).",
)
@click.option(
    "--stop-early/--no-stop-early",
    default=None,
    help="Stop once two tiers in a row fall behind, or a tier is generator-bound (default: ladders only).",
)
@click.option(
    "--output-dir",
    metavar="DIR",
    default=str(DEFAULT_OUTPUT_DIR),
    show_default=True,
    help="Where sweep directories are created.",
)
@click.option("--quiet", "-q", is_flag=True, help="No live progress; one line per tier and the matrix.")
@run_settings_options  # the `capacity run` options every tier runs with
@click.pass_context
def command(ctx: click.Context, sweep_file: Path | None, resume: Path | None, **values: Any) -> None:
    """Run SWEEP (a sweep YAML) tier by tier into reports/sweeps/<time>-<name>/, or a ladder of rates
    over SWEEP (a scenario YAML) with --from/--to, then print the scalability matrix.

    Every tier is a `capacity run` (same options below) with its run directory under the sweep's
    tiers/. With --repeat N all the tiers run N times, interleaved (a ladder repeats the tiers its first
    pass ran). Ctrl-C keeps the finished tiers; --resume DIR continues from the first unfinished one.
    """
    try:
        if resume is not None:
            _refuse_with_resume(ctx, sweep_file)
            if resume.is_dir():  # a missing one is the resume's own error
                writable_dir(resume, "--resume")
            result = _with_progress(values["quiet"], lambda show: resume_sweep(resume, progress=show))
        else:
            sweep, ladder = _sweep_to_run(ctx, sweep_file, values)
            options = run_options(values)
            repeats = positive_number(values["repeat"], "--repeat", int) or 1
            result = _with_progress(
                values["quiet"],
                lambda show: start_sweep(
                    sweep,
                    options,
                    output_dir=writable_dir(values["output_dir"], "--output-dir"),
                    ladder=ladder,
                    stop_early=values["stop_early"],
                    repeats=repeats,
                    source=str(sweep_file),
                    progress=show,
                ),
            )
    except ScenarioError as error:
        for problem in error.problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_INVALID)
    except (BadInput, SweepSetupError, SweepFormatError) as error:
        click.echo(f"capacity sweep: error: {error}", err=True)
        sys.exit(EXIT_INVALID)
    except OSError as error:  # sweep.json could not be written (a full disk); the tiers' files are kept
        click.echo(f"capacity sweep: could not write {error.filename}: {error.strerror or error}", err=True)
        sys.exit(EXIT_FAILED)
    print_outcome(result, output_console())
    sys.exit(exit_code(result))


# ---------------------------------------------------------------------------------------------- input


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)


def _refuse_with_resume(ctx: click.Context, sweep_file: Path | None) -> None:
    if sweep_file is not None:
        raise BadInput("--resume continues a sweep directory; give no SWEEP file with it")
    given = [
        p.opts[0]
        for p in ctx.command.params
        if p.name not in ("resume", "quiet") and _given(ctx, p.name or "")
    ]
    if given:
        raise BadInput(f"--resume runs the rest with the sweep's own settings; drop {', '.join(given)}")


def _sweep_to_run(
    ctx: click.Context, path: Path | None, values: dict[str, Any]
) -> tuple[Sweep, Ladder | None]:
    """The sweep file's sweep, or the ladder over a scenario file; BadInput / ScenarioError if neither."""
    ladder_wanted = any(_given(ctx, name) for name in LADDER_PARAMS)
    if path is None:
        raise BadInput("give a SWEEP file (e.g. scenarios/sweeps/quick.yaml), or a scenario with --from/--to")
    document = load_document(path)  # validated: file:line: field: message on any problem
    cooldown = duration_s(values["cooldown"], "--cooldown", minimum=0.0)
    if isinstance(document, Scenario):
        if not ladder_wanted:
            raise BadInput(
                f"{path} is a scenario: give --from N --to N for a ladder over it, or a sweep file"
            )
        ladder = _ladder(values)
        return ladder_sweep(document, ladder, cooldown_s=cooldown or 0.0, source=str(path)), ladder
    if ladder_wanted:
        raise BadInput(
            f"{path} is a sweep file: --from/--to/--steps/--spacing/--tier-duration need a scenario"
        )
    if cooldown is not None:
        document = Sweep(document.name, document.description, document.tiers, cooldown)
    return document, None


def _ladder(values: dict[str, Any]) -> Ladder:
    if values["start"] is None or values["stop"] is None:
        raise BadInput("a ladder needs both --from and --to (requests/s)")
    ladder = Ladder(
        start_rate=positive_number(values["start"], "--from", float, MAX_RATE) or 0.0,
        stop_rate=positive_number(values["stop"], "--to", float, MAX_RATE) or 0.0,
        steps=positive_number(values["steps"] or "10", "--steps", int) or 0,
        spacing=values["spacing"] or "geometric",
        tier_duration_s=duration_s(values["tier_duration"] or "30s", "--tier-duration") or 30.0,
    )
    ladder.rates()  # SweepSetupError for --to below --from, fewer than 2 steps
    return ladder


# ---------------------------------------------------------------------------------------------- progress


class SweepLive(LiveProgress):
    """The run's live panel under a line saying which tier of how many is running; finished tiers are
    printed above it, one line each."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__(console)
        self.header = "starting the sweep"

    def render(self, update: ProgressUpdate) -> Group:
        return Group(Text(self.header, style="bold"), super().render(update))

    def sweep(self, update: SweepUpdate) -> None:
        """Feed a ``SweepUpdate``: use as ``progress=live.sweep``."""
        if update.event == "run" and update.run is not None:
            self(update.run)
        elif update.event in ("tier", "cooldown"):
            if update.event == "tier":
                self.header = f"{_repeat_text(update)}tier {update.index} of {update.total}: {update.tier}"
            self(ProgressUpdate(update.event, update.message, update.tier, 0.0))
        elif update.event == "tier_done" and update.entry is not None:
            self.console.print(tier_line(update))


def _with_progress(
    quiet: bool, work: Callable[[Callable[[SweepUpdate], None] | None], SweepResult]
) -> SweepResult:
    if quiet:
        console = Console(stderr=True)

        def lines(update: SweepUpdate) -> None:
            if update.event == "tier_done" and update.entry is not None:
                console.print(tier_line(update))

        return work(lines)
    live = SweepLive()
    with live:
        return work(live.sweep)


def _repeat_text(update: SweepUpdate) -> str:
    """``repeat 2/3, `` when the sweep repeats its tiers, else nothing."""
    return f"repeat {update.repeat}/{update.repeats}, " if update.repeats > 1 else ""


def tier_line(update: SweepUpdate) -> Text:
    """One line for a finished tier (a ``tier_done`` update): ``done  02/06 light  50/s offered, 50/s
    achieved, SLO PASS``, with ``repeat 2/3, `` before the tier's number when the sweep repeats."""
    entry = update.entry
    assert entry is not None, "tier_line is for tier_done updates"
    style = {"done": "green", "interrupted": "yellow"}.get(entry.status, "red")
    line = Text(f"{entry.status:<11}", style=style)
    line.append(f" {_repeat_text(update)}{update.index:02d}/{update.total:02d} {update.tier}")
    if entry.offered is not None and entry.achieved is not None:
        line.append(f"  {entry.offered:,.0f}/s offered, {entry.achieved:,.0f}/s achieved")
    if entry.slo_passed is not None:
        line.append(f", SLO {'PASS' if entry.slo_passed else 'FAIL'}")
    if entry.generator_bound:
        line.append("  generator-bound", style="yellow")
    if entry.problem and entry.status != "done":
        line.append(f"  {entry.problem}", style="dim")
    return line


# ---------------------------------------------------------------------------------------------- outcome


def matrix_table(result: SweepResult) -> Table:
    """The scalability matrix (the seed's table, measured) as a rich table."""
    rows = matrix_rows(result)
    trades = any(r.trades_per_s is not None for r in rows)
    table = Table(
        title=f"Scalability matrix: {result.record.name}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,  # fits 80 columns
    )
    headers = ["level", "offered", "achieved", *(["trades"] if trades else [])]
    headers += ["cores", "RSS MB", "p99 ms", "raw p99", "SLO", "notes"]
    for header in headers[:-1]:  # figures never wrap; the notes take what width is left
        table.add_column(header, justify="left" if header == "level" else "right", no_wrap=True)
    table.add_column(headers[-1], overflow="fold", min_width=8)
    table.caption = (
        "rates in requests/s over the steady window; cores: server CPU (mean); RSS: server peak; "
        "p99: coordinated-omission corrected, raw: from the actual send; SLO: the verdict against the "
        "tier scenario's P99 and error-rate limits"
    )
    for row in rows:
        table.add_row(*_cells(row, trades))
    return table


def _cells(row: MatrixRow, trades: bool) -> list[str | Text]:
    slo = (
        Text("-")
        if row.slo_passed is None
        else Text(*(("PASS", "green") if row.slo_passed else ("FAIL", "red")))
    )
    cells: list[str | Text] = [row.level, figure(row.offered, "{:,.0f}"), figure(row.achieved, "{:,.0f}")]
    if trades:
        cells.append(figure(row.trades_per_s, "{:,.0f}"))
    cells += [
        figure(row.server_cores, "{:.2f}"),
        figure(row.rss_mb, "{:,.0f}"),
        _ms(row.p99_corrected_ms),
        _ms(row.p99_raw_ms),
        slo,
        Text("; ".join(row.notes), style="yellow" if row.notes else ""),
    ]
    return cells


def print_outcome(result: SweepResult, console: Console) -> None:
    """The matrix, how the sweep ended, any advice, and what to do next."""
    record = result.record
    console.print(matrix_table(result))
    style = {"completed": "green", "stopped": "yellow"}.get(record.status, "red")
    console.print(Text(f"sweep {describe_status(record)}", style=style))
    if record.advice:
        console.print(Text(record.advice, style="yellow"))
    console.print(f"sweep directory: {result.path}", soft_wrap=True)  # a path must stay copyable
    if record.status in ("interrupted", "failed"):
        console.print(f"continue with: capacity sweep --resume {result.path}", soft_wrap=True)


def output_console() -> Console:
    """The console for results: the terminal's width, or 120 columns in a log or pipe (rich would assume
    80 there, too narrow for the matrix's notes)."""
    return Console() if sys.stdout.isatty() else Console(width=120)


def exit_code(result: SweepResult) -> int:
    """0 completed or stopped on purpose, 1 a tier broke, 130 interrupted."""
    return {"interrupted": EXIT_INTERRUPTED, "failed": EXIT_FAILED}.get(result.record.status, EXIT_OK)


def _ms(value: float | None) -> str:
    """Milliseconds with one decimal below 1 s, whole above (6,390 rather than 6,389.8)."""
    return figure(value, "{:,.1f}" if value is None or value < 1000 else "{:,.0f}")
