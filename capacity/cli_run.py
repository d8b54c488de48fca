"""``capacity run SCENARIO``: run one scenario against the embedded exchange (or a loopback --target),
show live progress, print the summary and the run directory.

Exit codes: 0 the run completed (whatever the SLO verdict: the gate decides builds), 1 the run broke
(the exchange died, Locust failed), 2 bad input (nothing ran), 130 interrupted with Ctrl-C (what was
measured is kept in the run directory).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click
from rich.console import Console

from capacity.progress import LiveProgress, summary_table
from capacity.results import Overrides, Run
from capacity.run import (
    DEFAULT_OUTPUT_DIR,
    JOURNAL_SYNC_MODES,
    RunOptions,
    RunResult,
    RunSetupError,
    parse_cpus,
    run_scenario,
)
from capacity.scenario import Scenario, ScenarioError, load_scenario, parse_duration

EXIT_OK = 0
EXIT_BROKE = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


class _BadInput(Exception):
    """A one-line message for exit 2."""


@click.command("run", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("scenario_file", metavar="SCENARIO", type=click.Path(path_type=Path))
@click.option("--duration", metavar="DURATION", help="Override the run's length, e.g. 10s, 2m.")
@click.option("--rate", metavar="N", help="Override the offered rate, requests/s (the peak, for stages).")
@click.option("--users", metavar="N", help="Override the number of simulated users.")
@click.option("--target", metavar="URL", help="Test this exchange, not the embedded one (loopback only).")
@click.option("--server-pid", metavar="PID", help="With --target: its pid, to sample CPU and RSS.")
@click.option("--workers", metavar="N", default="1", show_default=True, help="Locust processes.")
@click.option(
    "--output-dir",
    metavar="DIR",
    default=str(DEFAULT_OUTPUT_DIR),
    show_default=True,
    help="Where run directories are created.",
)
@click.option("--server-cpus", metavar="CPUS", help="CPUs for the embedded exchange, e.g. 1 or 2-3.")
@click.option("--generator-cpus", metavar="CPUS", help="CPUs for Locust (and this process), e.g. 0.")
@click.option("--no-pin", is_flag=True, help="Do not pin server and generator to separate CPUs.")
@click.option("--journal-sync", metavar="MODE", help="Embedded exchange: SQLite sync full, normal or off.")
@click.option("--no-journal", is_flag=True, help="Embedded exchange: no journal (no durability).")
@click.option("--quiet", "-q", is_flag=True, help="No live progress; print one line at the end.")
def command(
    scenario_file: Path,
    duration: str | None,
    rate: str | None,
    users: str | None,
    target: str | None,
    server_pid: str | None,
    workers: str,
    output_dir: str,
    server_cpus: str | None,
    generator_cpus: str | None,
    no_pin: bool,
    journal_sync: str | None,
    no_journal: bool,
    quiet: bool,
) -> None:
    """Run SCENARIO (a YAML file) and write reports/runs/<time>-<name>/run.json.

    The embedded reference exchange is started in its own process unless --target is given. Server and
    generator are pinned to separate CPUs where the machine allows (default on 2 CPUs: server on CPU 1,
    generator on CPU 0).
    """
    try:
        scenario = load_scenario(scenario_file)
    except ScenarioError as error:
        for problem in error.problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_INVALID)
    try:
        options = RunOptions(
            output_dir=Path(output_dir),
            overrides=Overrides(
                duration_s=_duration(duration),
                orders_per_second=_positive(rate, "--rate", float),
                concurrent_users=_positive(users, "--users", int),
            ),
            scenario_source=str(scenario_file),
            target=target,
            server_pid=_positive(server_pid, "--server-pid", int),
            workers=_positive(workers, "--workers", int) or 1,
            pin=not no_pin,
            server_cpus=_cpus(server_cpus, "--server-cpus"),
            generator_cpus=_cpus(generator_cpus, "--generator-cpus"),
            journal_sync=_journal_sync(journal_sync),
            journal=not no_journal,
            pin_self=True,
        )
        result = _run(scenario, options, quiet)
    except (_BadInput, RunSetupError) as error:
        _fail(str(error))
    except ScenarioError as error:  # overrides the scenario cannot take
        for problem in error.problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_INVALID)
    except KeyboardInterrupt:
        click.echo("capacity run: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    _report(result, quiet)
    sys.exit({"completed": EXIT_OK, "interrupted": EXIT_INTERRUPTED}.get(result.run.status, EXIT_BROKE))


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
            f"{run.status} {s.slo.verdict}{' generator-bound' if s.generator_bound else ''} "
            f"offered {s.offered_rate:.0f}/s achieved {s.achieved_rate:.0f}/s "
            f"p99 {_ms(s.corrected.p99_ms)} (raw {_ms(s.raw.p99_ms)}) {result.path}"
        )
        if run.problem and run.status == "failed":
            click.echo(f"capacity run: {run.problem}", err=True)
        return
    console = Console()
    console.print(summary_table(run))
    console.print(f"run directory: {result.path}")


def _fail(message: str) -> None:
    click.echo(f"capacity run: error: {message}", err=True)
    sys.exit(EXIT_INVALID)


def _duration(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise _BadInput(f"--duration {text!r}: not a duration (expected e.g. 10s, 2m, 1m30s)") from None
    if seconds <= 0:
        raise _BadInput(f"--duration {text!r}: must be more than 0")
    return seconds


def _positive(text: str | None, flag: str, kind: type[int] | type[float]) -> int | float | None:
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise _BadInput(f"{flag} {text!r}: expected {what} > 0") from None
    if not math.isfinite(value) or value <= 0:
        raise _BadInput(f"{flag} {text!r}: expected a number > 0")
    return value


def _cpus(text: str | None, flag: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return parse_cpus(text)
    except ValueError as error:
        raise _BadInput(f"{flag}: {error}") from None


def _journal_sync(text: str | None) -> str | None:
    if text is not None and text not in JOURNAL_SYNC_MODES:
        raise _BadInput(f"--journal-sync {text!r}: expected one of {', '.join(JOURNAL_SYNC_MODES)}")
    return text


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}ms"
