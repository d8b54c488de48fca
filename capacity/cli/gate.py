"""``capacity gate --baseline FILE RUN_OR_SWEEP_DIR``: compare a run or sweep with a committed baseline and
decide a build.

    capacity gate --baseline reports/baselines/ci-smoke.json reports/sweeps/20261125T120000-ci_smoke \\
        --markdown reports/latest/gate.md --junit reports/latest/gate-junit.xml

Exit codes: **0** pass - no check worse, no SLO failed (also when a tier is inconclusive: a loud warning is
printed; see ``--strict``), **1** regression (a metric significantly worse beyond its threshold, or an SLO
check failed), **2** usage or input error (missing or unreadable baseline, run or thresholds; no tier in
common; a different workload) with a one-line message, **3** inconclusive with ``--strict``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.text import Text

from capacity.cli.gate_ab import ABRequest, run_ab_gate
from capacity.cli.run_options import BadInput, positive_number
from capacity.exit_codes import EXIT_INVALID
from capacity.gate.baseline import BaselineFormatError, load_side, read_baseline
from capacity.gate.compare import GateInputError, GateResult, gate
from capacity.gate.render import print_result, write_junit, write_markdown
from capacity.gate.thresholds import (
    AB_PAIRS_RANGE,
    DEFAULT_PATH,
    Thresholds,
    ThresholdsError,
    load_thresholds,
)
from capacity.run.orchestrator import RunSetupError, check_target
from capacity.sweep.sweep_file import SweepFormatError


@click.command("gate", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("directory", metavar="RUN_OR_SWEEP_DIR", required=False, type=click.Path(path_type=Path))
@click.option(
    "--baseline",
    "-b",
    "baseline_path",
    metavar="FILE",
    type=click.Path(path_type=Path),
    help="Baseline file (capacity-baseline/1), e.g. reports/baselines/ci-smoke.json.",
)
@click.option(
    "--against",
    metavar="REV",
    help="A/B: measure this checkout against git revision REV, both now, in interleaved pairs; the "
    "argument is then a sweep or scenario (default scenarios/sweeps/ab_smoke.yaml).",
)
@click.option("--baseline-target", metavar="URL", help="A/B against two running servers: the baseline's URL.")
@click.option("--baseline-server-pid", metavar="PID", help="With --baseline-target: its pid, for its CPU.")
@click.option("--target", metavar="URL", help="With --baseline-target: the candidate's URL (loopback).")
@click.option("--server-pid", metavar="PID", help="With --target: its pid, for its CPU.")
@click.option(
    "--pairs",
    metavar="N",
    help=f"A/B: pairs per tier, {AB_PAIRS_RANGE[0]} to {AB_PAIRS_RANGE[1]} "
    f"(default: ab_pairs in the thresholds, {Thresholds().ab_pairs}).",
)
@click.option(
    "--output-dir",
    metavar="DIR",
    type=click.Path(path_type=Path),
    help="A/B: where the pairs' runs go (default reports/ab/<time>).",
)
@click.option(
    "--thresholds",
    "thresholds_path",
    metavar="YAML",
    type=click.Path(path_type=Path),
    help=f"Thresholds file (default: {DEFAULT_PATH} if it exists, else built-in defaults).",
)
@click.option(
    "--markdown",
    "markdown_path",
    metavar="PATH",
    type=click.Path(path_type=Path),
    help="Write a Markdown report.",
)
@click.option(
    "--junit", "junit_path", metavar="PATH", type=click.Path(path_type=Path), help="Write JUnit XML."
)
@click.option(
    "--strict", is_flag=True, help="Exit 3 when a tier is inconclusive (default: exit 0 with a warning)."
)
@click.option("--quiet", "-q", is_flag=True, help="Only the headline, failures and warnings.")
def command(
    directory: Path | None,
    baseline_path: Path | None,
    against: str | None,
    baseline_target: str | None,
    baseline_server_pid: str | None,
    target: str | None,
    server_pid: str | None,
    pairs: str | None,
    output_dir: Path | None,
    thresholds_path: Path | None,
    markdown_path: Path | None,
    junit_path: Path | None,
    strict: bool,
    quiet: bool,
) -> None:
    """Compare RUN_OR_SWEEP_DIR (a run or sweep directory, or another baseline file) with the baseline,
    tier by tier (matched by name): throughput, corrected P99, error rate, CPU per order and RSS growth per
    resting order are each better, worse or not significant (a test on per-second samples that allows for
    their autocorrelation, plus a practical threshold), and the run's own SLO is checked. Generator-bound,
    interrupted, failed or too short runs are inconclusive, never a regression.

    With --against REV (or --baseline-target and --target) both sides are measured now, in interleaved
    pairs, and compared pair by pair (docs/ci-gate.md, "A/B")."""
    started = time.monotonic()
    console = Console(width=None if sys.stdout.isatty() else 120)  # CI logs: wide enough for the table
    if against or baseline_target or target:
        try:
            request = _ab_request(click.get_current_context().params)
            thresholds = _thresholds(thresholds_path)
        except (BadInput, ThresholdsError, RunSetupError) as error:
            _fail(str(error))
        run_ab_gate(request, thresholds, console)
    if baseline_path is None or directory is None:
        _fail("give --baseline FILE and RUN_OR_SWEEP_DIR, or --against REV for an A/B gate")
    try:
        thresholds = _thresholds(thresholds_path)
        baseline = read_baseline(baseline_path)
        current = load_side(directory, thresholds.min_steady_seconds)
        result = gate(baseline, current, thresholds, str(baseline_path), str(directory))
    except (ThresholdsError, BaselineFormatError, SweepFormatError, GateInputError) as error:
        problems = getattr(error, "problems", None) or [str(error)]
        for problem in problems:
            click.echo(f"capacity gate: error: {problem}", err=True)
        sys.exit(EXIT_INVALID)
    elapsed = time.monotonic() - started
    try:
        if markdown_path is not None:
            write_markdown(markdown_path, result)
        if junit_path is not None:
            write_junit(junit_path, result, elapsed)
    except OSError as error:
        click.echo(f"capacity gate: error: cannot write the report: {error}", err=True)
        sys.exit(EXIT_INVALID)
    if quiet:
        _print_quiet(result, console)
    else:
        print_result(result, console)
    for path, what in ((markdown_path, "Markdown"), (junit_path, "JUnit XML")):
        if path is not None:
            console.print(f"{what} written to {path}", soft_wrap=True)
    if result.status == "inconclusive":
        click.echo(
            "capacity gate: WARNING: inconclusive - "
            + ("; ".join(result.warnings) or "nothing could be compared")
            + (" (exit 3: --strict)" if strict else " (not a failure: exit 0)"),
            err=True,
        )
    sys.exit(result.exit_code(strict))


def _thresholds(path: Path | None) -> Thresholds:
    if path is not None:
        return load_thresholds(path)
    if DEFAULT_PATH.is_file():
        return load_thresholds(DEFAULT_PATH)
    return Thresholds()


def _print_quiet(result: GateResult, console: Console) -> None:
    for check in result.failures:
        console.print(
            Text(f"FAILED {check.tier} {check.key}: {check.detail}", style="bold red"), soft_wrap=True
        )
    for warning in result.warnings:
        console.print(Text(f"WARNING: {warning}", style="bold yellow"), soft_wrap=True)
    counts = {
        v: sum(c.verdict == v for c in result.checks) for v in ("worse", "fail", "better", "inconclusive")
    }
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n) or "nothing changed significantly"
    console.print(f"gate: {result.status.upper()} ({len(result.checks)} checks: {summary})")


def _ab_request(given: dict[str, Any]) -> ABRequest:
    """The A/B options (the command's parameters), checked: one baseline, a revision or a running server,
    and one candidate."""
    if given["baseline_path"] is not None:
        raise BadInput("--baseline compares with a stored baseline; an A/B gate measures both sides now")
    against, baseline_target, target = given["against"], given["baseline_target"], given["target"]
    if against and (baseline_target or target):
        raise BadInput("--against REV measures this checkout against REV: no --baseline-target or --target")
    if not against and not (baseline_target and target):
        raise BadInput("an A/B gate between two servers needs both --baseline-target URL and --target URL")
    return ABRequest(
        source=given["directory"],
        against=against,
        baseline_target=None
        if baseline_target is None
        else check_target(baseline_target, "--baseline-target"),
        baseline_server_pid=positive_number(given["baseline_server_pid"], "--baseline-server-pid", int),
        target=None if target is None else check_target(target),
        server_pid=positive_number(given["server_pid"], "--server-pid", int),
        pairs=ab_pairs(given["pairs"]),
        output_dir=given["output_dir"],
        markdown_path=given["markdown_path"],
        junit_path=given["junit_path"],
        strict=given["strict"],
    )


def _fail(message: str) -> NoReturn:
    click.echo(f"capacity gate: error: {message}", err=True)
    sys.exit(EXIT_INVALID)


def ab_pairs(text: str | None) -> int | None:
    """``--pairs`` as a whole number within ``AB_PAIRS_RANGE``, None when not given."""
    low, high = AB_PAIRS_RANGE
    pairs = positive_number(text, "--pairs", int, high)
    if pairs is not None and pairs < low:
        raise BadInput(f"--pairs {text!r}: expected at least {low} (a paired test needs them)")
    return pairs
