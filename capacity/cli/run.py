"""``capacity run SCENARIO``: run one scenario against the embedded exchange (or a loopback --target),
show live progress, print the summary and the run directory.

Exit codes (as k6 fails a threshold): 0 the run completed within its SLO, 1 the SLO failed or the run broke
(the exchange died or never answered, the generator failed), 2 bad input (nothing ran), 3 inconclusive (the
load generator, or other processes on the machine, limited the run: its figures are not the server's),
130 interrupted by Ctrl-C, a closed terminal or SIGTERM (what was measured is kept in the run directory).
"""

from __future__ import annotations

import sys
from contextlib import suppress
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console

from capacity.cli.run_options import (
    BadInput,
    duration_s,
    positive_number,
    run_options,
    run_settings_options,
    writable_dir,
)
from capacity.exit_codes import EXIT_FAILED, EXIT_INCONCLUSIVE, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK
from capacity.results.run_file import Overrides, Run, write_run
from capacity.results.summary_contract import write_summary
from capacity.results.verdict_text import limit_of
from capacity.results.verdicts import NOT_THE_SERVERS
from capacity.run.orchestrator import (
    DEFAULT_OUTPUT_DIR,
    RunNotWritten,
    RunOptions,
    RunResult,
    RunSetupError,
    run_scenario,
)
from capacity.run.progress import LiveProgress, summary_table
from capacity.run.record import PENDING_FILE, RecordError, finish_run
from capacity.scenario import (
    MAX_RATE,
    MAX_USERS,
    SEED_MATRIX,
    Scenario,
    ScenarioError,
    load_scenario,
    load_sweep,
)
from capacity.text import figure


@click.command("run", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("scenario_file", metavar="SCENARIO", required=False, type=click.Path(path_type=Path))
@click.option(
    "--finish",
    metavar="DIR",
    type=click.Path(path_type=Path),
    help="Build run.json for a run directory whose end could not be written (a full disk), from the "
    "files it kept. Takes no SCENARIO.",
)
@click.option("--duration", metavar="DURATION", help="Override the run's length, e.g. 10s, 2m.")
@click.option("--rate", metavar="N", help="Override the offered rate, requests/s (the peak, for stages).")
@click.option("--users", metavar="N", help="Override the number of simulated users.")
@click.option(
    "--seed-slo",
    is_flag=True,
    help="SLO limits the scenario leaves out come from the seed's matrix (scenarios/sweeps/full.yaml): "
    "the tier for the scenario's peak rate.",
)
@click.option(
    "--summary-json",
    metavar="FILE",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the run's summary for programs (format capacity-run-summary/1, "
    "capacity/schemas/run-summary.schema.json).",
)
@run_settings_options
@click.option(
    "--output-dir",
    metavar="DIR",
    default=str(DEFAULT_OUTPUT_DIR),
    show_default=True,
    help="Where run directories are created.",
)
@click.option("--quiet", "-q", is_flag=True, help="No live progress; print one line at the end.")
def command(
    scenario_file: Path | None,
    finish: Path | None,
    duration: str | None,
    rate: str | None,
    users: str | None,
    seed_slo: bool,
    summary_json: Path | None,
    output_dir: str,
    quiet: bool,
    **settings: str | bool | None,
) -> None:
    """Run SCENARIO (a YAML file) and write reports/runs/<time>-<name>/run.json.

    The embedded reference exchange is started in its own process unless --target is given. Server and
    generator are pinned to separate CPUs where the machine allows (default on 2 CPUs: server on CPU 1,
    generator on CPU 0).
    """
    if finish is not None:
        _finish(finish, scenario_file, quiet, summary_json)
    if scenario_file is None:
        _fail("missing SCENARIO (a YAML file), or --finish DIR")
    try:
        scenario = load_scenario(scenario_file, load_sweep(SEED_MATRIX) if seed_slo else None)
    except ScenarioError as error:
        for problem in error.problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_INVALID)
    try:
        options = run_options(
            settings,
            output_dir=writable_dir(output_dir, "--output-dir"),
            overrides=Overrides(
                duration_s=duration_s(duration, "--duration"),
                orders_per_second=positive_number(rate, "--rate", float, MAX_RATE),
                concurrent_users=positive_number(users, "--users", int, MAX_USERS),
            ),
            scenario_source=str(scenario_file),
        )
        result = _run(scenario, options, quiet)
    except (BadInput, RunSetupError) as error:
        _fail(str(error))
    except ScenarioError as error:  # overrides the scenario cannot take
        for problem in error.problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_INVALID)
    except KeyboardInterrupt:
        click.echo("capacity run: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except RunNotWritten as error:
        click.echo(f"capacity run: {error}", err=True)
        sys.exit(EXIT_FAILED)
    except OSError as error:  # the run directory itself could not be made (a full disk)
        click.echo(f"capacity run: cannot write {error.filename}: {error.strerror or error}", err=True)
        sys.exit(EXIT_FAILED)
    _report(result, quiet)
    _write_summary(summary_json, result)
    sys.exit(exit_code(result.run))


def _finish(run_dir: Path, scenario_file: Path | None, quiet: bool, summary_json: Path | None) -> NoReturn:
    """``--finish DIR``: run.json from the files a run kept (``capacity.run.record``)."""
    ctx = click.get_current_context()
    given = [
        f"--{name.replace('_', '-')}"
        for name in ctx.params
        if name not in ("finish", "quiet", "scenario_file", "summary_json")
        and ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    ]
    if scenario_file is not None or given:
        _fail(f"--finish takes a run directory only, not {', '.join(given) or 'a SCENARIO'}")
    try:
        run = finish_run(run_dir)
        write_run(run_dir, run)
    except RecordError as error:
        _fail(str(error))
    except OSError as error:
        click.echo(
            f"capacity run: could not write {run_dir / 'run.json'}: {error.strerror or error}", err=True
        )
        sys.exit(EXIT_FAILED)
    with suppress(OSError):
        (run_dir / PENDING_FILE).unlink()
    _report(RunResult(run_dir, run), quiet)
    _write_summary(summary_json, RunResult(run_dir, run))
    sys.exit(exit_code(run))


def _write_summary(path: Path | None, result: RunResult) -> None:
    """``--summary-json``: a run that cannot say how it ended has failed (exit 1)."""
    if path is None:
        return
    try:
        write_summary(path, result.run, result.path)
    except OSError as error:
        click.echo(f"capacity run: cannot write {path}: {error.strerror or error}", err=True)
        sys.exit(EXIT_FAILED)


def exit_code(run: Run) -> int:
    """The run's exit code (see the module docstring)."""
    if run.status == "interrupted":
        return EXIT_INTERRUPTED
    if run.status != "completed":
        return EXIT_FAILED
    if limit_of(run.summary).kind in NOT_THE_SERVERS:
        return EXIT_INCONCLUSIVE
    return EXIT_OK if run.summary.slo.passed else EXIT_FAILED


def _run(scenario: Scenario, options: RunOptions, quiet: bool) -> RunResult:
    if quiet:
        return run_scenario(scenario, options)
    with LiveProgress() as show:
        return run_scenario(scenario, options, progress=show)


def _report(result: RunResult, quiet: bool) -> None:
    run: Run = result.run
    if quiet:
        s = run.summary
        click.echo(
            f"{run.status} {s.slo.verdict} limit {limit_of(s).kind} "
            f"offered {s.offered_rate:.0f}/s achieved {s.achieved_rate:.0f}/s "
            f"p99 {_ms(s.corrected.p99_ms)} (raw {_ms(s.raw.p99_ms)}) {result.path}"
        )
        if run.problem and run.status == "failed":
            click.echo(f"capacity run: {run.problem}", err=True)
        return
    console = Console()
    console.print(summary_table(run))
    console.print(f"run directory: {result.path}")


def _fail(message: str) -> NoReturn:
    click.echo(f"capacity run: error: {message}", err=True)
    sys.exit(EXIT_INVALID)


def _ms(value: float | None) -> str:
    return figure(value, "{:.2f}ms")
