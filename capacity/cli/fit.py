"""``capacity fit DIR``: fit a sweep's (or one run's) scaling models, write ``DIR/fit.json`` and print the
fitted formulas in plain English; projections to another machine are printed apart and labelled so. A
sweep run with ``--repeat N`` also gets the spread between its repeats, beside the pooled figures.

Exit codes: 0 fitted, 2 bad input (not a sweep or run directory, no completed tier, bad option).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

from capacity.cli.run_options import BadInput, parsed, positive_number
from capacity.cli.sweep import output_console
from capacity.exit_codes import EXIT_INVALID
from capacity.fit.estimate import fmt
from capacity.fit.inputs import FitOutcome, NothingToFit, fit_directory, parse_size
from capacity.fit.repeat_spread import RepeatSpread
from capacity.sweep.sweep_file import SweepFormatError, read_sweep


@click.command("fit", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("directory", metavar="SWEEP_OR_RUN_DIR", type=click.Path(path_type=Path))
@click.option(
    "--cores", metavar="N", help="Server CPU budget, cores (default: the CPUs the server was pinned to)."
)
@click.option(
    "--memory", metavar="SIZE", help="RAM for the memory limit, e.g. 32GB or 24GiB (default: this machine's)."
)
@click.option(
    "--safety-buffer", metavar="F", default="0.2", show_default=True, help="Share taken off the lowest limit."
)
@click.option("--project-cores", metavar="N", help="Also project the model to a machine with N cores.")
@click.option("--project-memory", metavar="SIZE", help="RAM of that machine (default: --memory).")
def command(
    directory: Path,
    cores: str | None,
    memory: str | None,
    safety_buffer: str,
    project_cores: str | None,
    project_memory: str | None,
) -> None:
    """Fit SWEEP_OR_RUN_DIR's completed tiers: service demand (CPU per request), memory, P99 against load,
    saturation, breaking points and the recommended maximum. Writes fit.json there; tiers that were
    generator-bound are listed and left out of every fit."""
    try:
        result = read_sweep(directory)
        outcome = fit_directory(
            result,
            cores=positive_number(cores, "--cores", float),
            memory_bytes=parsed(memory, "--memory", parse_size),
            safety_buffer=_buffer(safety_buffer),
            project_cores=positive_number(project_cores, "--project-cores", float),
            project_memory_bytes=parsed(project_memory, "--project-memory", parse_size),
        )
    except (SweepFormatError, NothingToFit, BadInput) as error:
        click.echo(f"capacity fit: error: {error}", err=True)
        sys.exit(EXIT_INVALID)
    except OSError as error:  # fit.json cannot be written beside the runs
        click.echo(f"capacity fit: error: cannot write fit.json in {directory}: {error.strerror}", err=True)
        sys.exit(EXIT_INVALID)
    print_fit(outcome, output_console())


def print_fit(outcome: FitOutcome, console: Console) -> None:
    """The fitted formulas, the recommended maximum, then any projection, labelled as one."""
    model, inputs = outcome.model, outcome.inputs
    memory = inputs["memory_bytes"]
    console.print(
        Text(
            f"Capacity model of {inputs['sweep']}: {len(inputs['tiers'])} tier(s), server budget "
            f"{fmt(inputs['available_cores'])} core(s) ({inputs['cores_source']}), "
            f"memory {fmt(memory / 2**30)} GiB, safety buffer {inputs['safety_buffer']:.0%}",
            style="bold",
        )
    )
    for name, status in inputs["left_out"].items():
        console.print(f"  not fitted: tier {name} ({status})")
    console.print(Text("Measured on this machine", style="bold underline"))
    for line in model.formulas():
        console.print(f"  {line}", highlight=False)
    console.print(Text(f"Recommended maximum: {model.recommended_max.text()}", style="bold green"))
    if outcome.repeats is not None:
        print_spread(outcome.repeats, console)
    if outcome.projection is not None:
        console.print(
            Text("Projection (not measured: the model carried to another machine)", style="bold yellow")
        )
        for line in outcome.projection.formulas():
            console.print(f"  PROJECTION: {line}", highlight=False)
    console.print(f"fit written to {outcome.path}", soft_wrap=True)


def print_spread(spread: RepeatSpread, console: Console) -> None:
    """Each figure of a repeated sweep: the pooled value with its within-run interval, then the spread
    between repeats and every repeat's value."""
    console.print(
        Text(
            f"Spread between {spread.count} repeats (the model fitted on each repeat alone; the figures "
            "above pool every repeat's runs, and their intervals are within-run)",
            style="bold",
        )
    )
    for repeat in spread.left_out:
        console.print(f"  not compared: repeat {repeat} (not every tier completed; its runs are pooled)")
    for figure in spread.figures:
        console.print(
            f"  {figure.label}: pooled {figure.pooled.text()}; between repeats {figure.spread_text()} "
            f"(each: {figure.each_text()})",
            highlight=False,
        )


def _buffer(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise BadInput(f"--safety-buffer {text!r}: expected a share from 0 to below 1, e.g. 0.2")
    return value
