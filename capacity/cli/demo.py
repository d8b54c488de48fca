"""``make demo``: the whole pipeline on this machine in about four minutes, measured, not asserted.

1. the quick sweep (``scenarios/sweeps/quick.yaml``): the seed's tiers Idle -> Overload, scaled to one server
   core, up to past its saturation, each a ``capacity run`` against a fresh embedded reference exchange
   (server pinned to one CPU, the native load generator to another where the machine has two);
2. the fit (``capacity fit``): CPU per request, memory, P99 against load, breaking points, recommended
   maximum;
3. the seed document's claims (``claims/seed.yaml``) audited against it (``capacity audit``): a tally here;
4. the report (``capacity report``), copied to ``reports/latest/`` (``index.html`` and its other files);
5. the scalability matrix as a terminal table, and where everything is.

Options: ``--sweep FILE`` another sweep file, ``--output-dir DIR`` where sweeps go. Exit codes as
``capacity sweep`` (0 done, 1 a tier broke, 2 bad input, 130 interrupted).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.text import Text

from capacity.audit.claims import ClaimsError, load_claims
from capacity.audit.render import tally_line
from capacity.cli.audit import audit_directory, largest_refutations
from capacity.cli.fit import print_fit
from capacity.cli.run_options import BadInput, writable_dir
from capacity.cli.signals import stop_on_hangup_and_terminate
from capacity.cli.sweep import SweepLive, exit_code, output_console, print_outcome
from capacity.exit_codes import EXIT_INTERRUPTED, EXIT_INVALID
from capacity.fit import CapacityModel
from capacity.fit.inputs import NothingToFit, fit_directory
from capacity.run.orchestrator import RunOptions, plan_placement
from capacity.scenario import ScenarioError, format_duration, load_sweep
from capacity.sweep.runner import DEFAULT_OUTPUT_DIR, SweepSetupError, start_sweep
from capacity.sweep.sweep_file import SweepResult
from capacity.text import cpu_list

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "scenarios" / "sweeps" / "quick.yaml"
SEED_CLAIMS = ROOT / "claims" / "seed.yaml"
LATEST = Path("reports/latest")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="capacity-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", type=Path, default=QUICK, help="sweep file (default: the quick sweep)")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR, help="where sweeps go")
    args = parser.parse_args(argv)
    stop_on_hangup_and_terminate()
    console = output_console()
    started = time.monotonic()
    try:
        sweep = load_sweep(args.sweep)
    except ScenarioError as error:
        for problem in error.problems:
            console.print(str(problem), style="red", highlight=False)
        return EXIT_INVALID
    try:
        writable_dir(args.output_dir, "--output-dir")
    except BadInput as error:
        console.print(f"demo: {error}", style="red", highlight=False)
        return EXIT_INVALID
    options = RunOptions(pin_self=True)
    _introduce(console, args.sweep, sweep.summary(), options)
    try:
        with SweepLive() as live:
            result = start_sweep(
                sweep, options, output_dir=args.output_dir, source=_shown(args.sweep), progress=live.sweep
            )
    except SweepSetupError as error:
        console.print(f"demo: {error}", style="red")
        return EXIT_INVALID
    if result.record.status == "interrupted":
        print_outcome(result, console)
        return EXIT_INTERRUPTED
    model = _fit(console, result)
    if model is not None:
        _audit(console, result, model)
    report = _report(console, result)
    print_outcome(result, console)
    if report is not None:
        console.print(Text(f"report: {report}", style="bold green"), soft_wrap=True)
    console.print(f"demo took {format_duration(round(time.monotonic() - started))}")
    return exit_code(result)


def _introduce(console: Console, path: Path, summary: str, options: RunOptions) -> None:
    placement = plan_placement(options)
    server, generator = cpu_list(placement.server_cpus), cpu_list(placement.generator_cpus)
    where = (
        f"server on CPU {server}, load generator on CPU {generator}"
        if placement.pinned
        else "; ".join(placement.notes)
    )
    console.print(Text(f"capacity demo: {_shown(path)} ({summary} of load)", style="bold"), soft_wrap=True)
    console.print(f"{os.cpu_count()} CPUs here: {where}. Each tier starts its own reference exchange.")


def _fit(console: Console, result: SweepResult) -> CapacityModel | None:
    try:
        outcome = fit_directory(result)
    except NothingToFit as error:  # the matrix below says why
        console.print(f"fit: {error}", style="yellow")
        return None
    print_fit(outcome, console)
    return outcome.model


def _audit(console: Console, result: SweepResult, model: CapacityModel) -> None:
    """The seed document's claims against this sweep: the tally here, the table in the report."""
    try:
        _, _, record = audit_directory(load_claims(SEED_CLAIMS), result, model)
    except (ClaimsError, OSError) as error:  # the measurements stand without it
        console.print(f"claims audit: skipped ({error})", style="yellow", highlight=False)
        return
    console.print(
        Text(f"claims audit ({_shown(SEED_CLAIMS)}): {tally_line(record.tally)}", style="bold"),
        soft_wrap=True,
    )
    for line in largest_refutations(record.rows, 3):
        console.print(line, highlight=False, soft_wrap=True)


def _report(console: Console, result: SweepResult) -> Path | None:
    """Render the report and copy it to reports/latest/ (index.html and the report.md, report.json and
    matrix.csv its footer names); the path of index.html there, or None (said why) if it cannot."""
    try:
        from capacity.report import render_report  # the last stage; absent in a partial checkout
    except ImportError:
        console.print("report: capacity.report is not available in this checkout; skipped", style="yellow")
        return None
    try:
        paths = render_report(result.path)
    except Exception as error:  # a report bug must not hide the measured matrix below
        console.print(f"report: could not render ({type(error).__name__}: {error})", style="yellow")
        return None
    LATEST.mkdir(parents=True, exist_ok=True)
    for written in (paths.html, paths.markdown, paths.json, paths.csv):  # copies: they outlive the sweep
        shutil.copyfile(written, LATEST / written.name)
    return LATEST / paths.html.name


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (shorter, as a user types it)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # during the fit or the report: the sweep directory is complete
        sys.exit(EXIT_INTERRUPTED)
