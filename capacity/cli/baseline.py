"""``capacity baseline update|show``: record the baseline ``capacity gate`` compares against, deliberately,
and look at one.

    capacity baseline update reports/sweeps/20261125T120000-ci_smoke --reason "journal group commit"
    capacity baseline update reports/sweeps/*-ci_smoke        # several runs pooled: run-to-run noise in
    capacity baseline show reports/baselines/ci-smoke.json

``update`` refuses (exit 2) a run or sweep with a tier that cannot serve as a baseline (interrupted,
failed, generator-bound, too few steady seconds) unless ``--allow-unusable``, and prints what it writes
and, when it replaces a baseline, how every figure moves. Exit codes: 0 written / shown, 2 bad input.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from capacity.exit_codes import EXIT_INVALID
from capacity.gate.baseline import (
    MAX_BYTES,
    Baseline,
    BaselineFormatError,
    default_path,
    dumps,
    from_sweep,
    pooled,
    read_baseline,
    write_baseline,
)
from capacity.gate.metrics import METRICS
from capacity.gate.render import describe_side
from capacity.gate.thresholds import DEFAULT_PATH, Thresholds, ThresholdsError, load_thresholds
from capacity.results.run_file import FloatArray
from capacity.sweep.sweep_file import SweepFormatError, read_sweep


@click.group("baseline", context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    """Record (update) or inspect (show) the baseline that `capacity gate` compares runs against."""


@command.command("update")
@click.argument(
    "directories", metavar="RUN_OR_SWEEP_DIR...", nargs=-1, required=True, type=click.Path(path_type=Path)
)
@click.option(
    "--output",
    "-o",
    metavar="FILE",
    type=click.Path(path_type=Path),
    help="Baseline file to write (default: reports/baselines/<sweep name>.json, e.g. ci-smoke.json).",
)
@click.option("--reason", metavar="TEXT", help="Why this baseline is recorded (kept in the file).")
@click.option(
    "--thresholds",
    "thresholds_path",
    metavar="YAML",
    type=click.Path(path_type=Path),
    help=f"Thresholds file for min_steady_seconds (default: {DEFAULT_PATH} if it exists).",
)
@click.option("--allow-unusable", is_flag=True, help="Write it even if a tier cannot be compared against.")
def update(
    directories: tuple[Path, ...],
    output: Path | None,
    reason: str | None,
    thresholds_path: Path | None,
    allow_unusable: bool,
) -> None:
    """Write a baseline from RUN_OR_SWEEP_DIR: per tier the per-second samples of every gate metric, the
    SLO figures, scenario, run summary, environment and git revision. Several directories (runs of the
    same sweep) are pooled: per metric the median of the runs' values and all their per-second samples,
    so the run-to-run noise is part of the reference. Prints what it replaces."""
    console = Console(width=None if sys.stdout.isatty() else 120)
    try:
        thresholds = _thresholds(thresholds_path)
        sides = [from_sweep(read_sweep(d), thresholds.min_steady_seconds) for d in directories]
        baseline = pooled(sides, reason)
        target = output or default_path(baseline.name)
        previous = _previous(target)
    except (ThresholdsError, SweepFormatError, BaselineFormatError) as error:
        click.echo(f"capacity baseline: error: {error}", err=True)
        sys.exit(EXIT_INVALID)
    unusable = [t for t in baseline.tiers if t.problems]
    if unusable and not allow_unusable:
        for tier in unusable:
            click.echo(f"capacity baseline: error: tier {tier.name}: {'; '.join(tier.problems)}", err=True)
        click.echo(
            "capacity baseline: error: not written: a baseline needs every tier usable "
            "(run the sweep again, or --allow-unusable)",
            err=True,
        )
        sys.exit(EXIT_INVALID)
    size = len(dumps(baseline).encode())
    try:
        write_baseline(target, baseline)
    except OSError as error:
        click.echo(f"capacity baseline: error: cannot write {target}: {error}", err=True)
        sys.exit(EXIT_INVALID)
    if previous is not None:
        console.print(f"replaced: {describe_side(previous, str(target))}", soft_wrap=True)
    console.print(baseline_table(baseline, previous))
    for note in baseline.notes:
        console.print(Text(f"note: {note}", style="yellow"), soft_wrap=True)
    for warning in _warnings(baseline, size):
        console.print(Text(f"WARNING: {warning}", style="bold yellow"), soft_wrap=True)
    console.print(
        f"baseline written to {target} ({size / 1000:.1f} KB, {len(baseline.tiers)} tier(s), "
        f"git {(baseline.git_revision or 'unknown')[:10]}); commit it to make it the gate's reference",
        soft_wrap=True,
    )


@command.command("show")
@click.argument("file", type=click.Path(path_type=Path))
def show(file: Path) -> None:
    """Print a baseline: where and when it was measured, and every tier's figures."""
    try:
        baseline = read_baseline(file)
    except BaselineFormatError as error:
        click.echo(f"capacity baseline: error: {error}", err=True)
        sys.exit(EXIT_INVALID)
    console = Console(width=None if sys.stdout.isatty() else 120)
    env = baseline.environment
    console.print(Text(f"baseline {baseline.name}: {file}", style="bold"), soft_wrap=True)
    console.print(f"  recorded {baseline.created_utc} from {', '.join(baseline.sources)}", soft_wrap=True)
    if baseline.reason:
        console.print(f"  reason: {baseline.reason}", soft_wrap=True)
    console.print(
        f"  measured {env.timestamp_utc} on {env.hostname}: {env.cpu_model} x{env.logical_cpus}, "
        f"Python {env.python_version}, git {env.git_revision or 'unknown'}"
        + (" (dirty)" if env.git_dirty else ""),
        soft_wrap=True,
    )
    if baseline.settings:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(baseline.settings.items()))
        console.print(f"  exchange settings: {shown}", soft_wrap=True)
    for note in baseline.notes:
        console.print(f"  note: {note}", soft_wrap=True)
    console.print(baseline_table(baseline, None))


def baseline_table(baseline: Baseline, previous: Baseline | None) -> Table:
    """Per tier and metric: the value, how many per-second samples back it and their spread (the
    middle half of the samples), the spread of the pooled runs' values (min .. max, when several were
    pooled) and the previous baseline's value when there is one."""
    table = Table(title=f"baseline {baseline.name}", title_justify="left")
    headers = ["tier", "metric", "value", "seconds", "middle half of seconds", "runs (min .. max)"]
    if previous is not None:
        headers += ["previous", "change"]
    for header in headers:
        table.add_column(header, justify="left" if header in ("tier", "metric") else "right")
    for tier in baseline.tiers:
        if tier.problems:
            table.add_row(
                tier.name, Text("; ".join(tier.problems), style="yellow"), *[""] * (len(headers) - 2)
            )
            continue
        old_tier = previous.tier(tier.name) if previous is not None else None
        for key, metric in METRICS.items():
            m = tier.metrics.get(key)
            if m is None:
                continue
            row = [
                tier.name,
                metric.label,
                metric.display(m.value),
                str(len(m.samples)),
                _spread(m.samples, key),
                _runs(m.run_values, key) if m.value is not None else (m.note or "-"),
            ]
            if previous is not None:
                old = old_tier.metrics.get(key) if old_tier is not None else None
                old_value = old.value if old is not None else None
                row += [metric.display(old_value), _change(old_value, m.value)]
            table.add_row(*row)
    return table


def _spread(samples: FloatArray, key: str) -> str:
    if len(samples) < 4:
        return "-"
    low, high = np.percentile(samples, [25, 75])
    metric = METRICS[key]
    return f"{metric.display(float(low))} .. {metric.display(float(high))}"


def _runs(values: tuple[float, ...], key: str) -> str:
    if len(values) < 2:
        return "1 run"
    metric = METRICS[key]
    return f"{len(values)}: {metric.display(min(values))} .. {metric.display(max(values))}"


def _change(old: float | None, new: float | None) -> str:
    if old is None or new is None or old == 0:
        return "-"
    return f"{(new / old - 1) * 100:+.1f} %"


def _previous(target: Path) -> Baseline | None:
    if not target.exists():
        return None
    try:
        return read_baseline(target)
    except BaselineFormatError:
        return None  # an unreadable file is replaced; the table then shows no previous values


def _warnings(baseline: Baseline, size: int) -> list[str]:
    warnings = []
    if baseline.environment.git_dirty:
        warnings.append("the checkout had uncommitted changes when this was measured (git_dirty)")
    for tier in baseline.tiers:
        if tier.other_cpu_percent_mean is not None and tier.other_cpu_percent_mean > 50:
            warnings.append(
                f"tier {tier.name}: other processes used {tier.other_cpu_percent_mean:.0f} % of a core "
                "during the run: a baseline from a quiet machine is a better reference"
            )
    if size > MAX_BYTES:
        warnings.append(
            f"the file is {size / 1000:.0f} KB, more than the {MAX_BYTES / 1000:.0f} KB a baseline should be"
        )
    return warnings


def _thresholds(path: Path | None) -> Thresholds:
    if path is not None:
        return load_thresholds(path)
    return load_thresholds(DEFAULT_PATH) if DEFAULT_PATH.is_file() else Thresholds()
