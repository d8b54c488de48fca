"""``capacity gate --against REV`` and ``capacity gate --baseline-target URL --target URL``: the A/B mode of
``capacity gate`` (``capacity.gate.ab``). A is the baseline (a revision of this project checked out and built
beside it, or a running server), B the candidate (this checkout's embedded exchange, or another running
server); both run now, on this machine, in interleaved pairs.

Exit codes as ``capacity gate``: 0 pass (or inconclusive), 1 a regression the pairs confirm, 2 bad input (an
unknown revision, a target that is not loopback, a bad sweep), 3 inconclusive with ``--strict``, 130
interrupted (the worktree is removed on the way out).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console

from capacity.exit_codes import EXIT_INTERRUPTED, EXIT_INVALID
from capacity.gate.ab import ABResult, Side, SideSetup, compare_pairs, run_pairs
from capacity.gate.ab_render import print_ab, write_junit, write_markdown
from capacity.gate.thresholds import Thresholds
from capacity.gate.worktree import REPO_ROOT, WorktreeError, checkout, engine_of, exchange_env, resolve
from capacity.run.environment import git_state
from capacity.run.orchestrator import RunOptions, RunSetupError, run_scenario
from capacity.scenario import Scenario, ScenarioError, Sweep, Tier, load_document

AB_SWEEP = REPO_ROOT / "scenarios" / "sweeps" / "ab_smoke.yaml"
AB_OUTPUT = Path("reports/ab")


@dataclass(frozen=True)
class ABRequest:
    """What the command line asked for."""

    source: Path | None
    against: str | None
    baseline_target: str | None
    baseline_server_pid: int | None
    target: str | None
    server_pid: int | None
    pairs: int | None
    output_dir: Path | None
    markdown_path: Path | None
    junit_path: Path | None
    strict: bool


def run_ab_gate(request: ABRequest, thresholds: Thresholds, console: Console) -> NoReturn:
    started = time.monotonic()
    sweep = _sweep(request.source or AB_SWEEP)
    pairs = request.pairs or thresholds.ab_pairs
    output = request.output_dir or AB_OUTPUT / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    try:
        if request.against is not None:
            result = _against_revision(request.against, sweep, pairs, output, thresholds, console)
        else:
            sides: dict[Side, SideSetup] = {
                "A": SideSetup(
                    f"{request.baseline_target}",
                    _target(request.baseline_target, request.baseline_server_pid),
                ),
                "B": SideSetup(f"{request.target}", _target(request.target, request.server_pid)),
            }
            result = _measure(sides, sweep, pairs, output, thresholds, console)
    except (WorktreeError, RunSetupError) as error:
        _fail(str(error))
    except KeyboardInterrupt:
        click.echo(f"capacity gate: interrupted (the runs so far are in {output})", err=True)
        sys.exit(EXIT_INTERRUPTED)
    elapsed = time.monotonic() - started
    written = [write_markdown(request.markdown_path or output / "ab.md", result)]
    if request.junit_path is not None:
        written.append(write_junit(request.junit_path, result, elapsed))
    print_ab(result, console)
    for path in written:
        console.print(f"written to {path}", soft_wrap=True)
    console.print(
        f"capacity gate (A/B): {result.status} after {elapsed:.0f} s; runs in {output}", soft_wrap=True
    )
    sys.exit(result.exit_code(request.strict))


def _against_revision(
    rev: str, sweep: Sweep, pairs: int, output: Path, thresholds: Thresholds, console: Console
) -> ABResult:
    commit = resolve(rev)
    console.print(f"checking out and building {rev} ({commit[:12]}) beside this checkout...")
    with checkout(commit) as worktree:
        env = exchange_env(worktree)
        baseline_engine, candidate_engine = engine_of(env), engine_of()
        if baseline_engine != candidate_engine:
            raise WorktreeError(
                f"the baseline's engine is {baseline_engine}, this checkout's {candidate_engine}: "
                "A and B would run different builds (is a C compiler missing?)"
            )
        revision, dirty = git_state()
        here = (
            f"this checkout ({(revision or 'unknown')[:12]}{', with uncommitted changes' if dirty else ''})"
        )
        sides: dict[Side, SideSetup] = {
            "A": SideSetup(f"revision {commit[:12]} ({rev})", RunOptions(pin_self=True, exchange_env=env)),
            "B": SideSetup(here, RunOptions(pin_self=True)),
        }
        return _measure(sides, sweep, pairs, output, thresholds, console)


def _measure(
    sides: dict[Side, SideSetup],
    sweep: Sweep,
    pairs: int,
    output: Path,
    thresholds: Thresholds,
    console: Console,
) -> ABResult:
    runs = run_pairs(sweep, sides, pairs, output, thresholds, run_scenario, lambda text: console.print(text))
    return compare_pairs(runs, thresholds, sides["A"].name, sides["B"].name, thresholds.ab_alpha)


def _target(url: str | None, pid: int | None) -> RunOptions:
    return RunOptions(target=url, server_pid=pid, pin_self=True)


def _sweep(path: Path) -> Sweep:
    try:
        document = load_document(path)
    except ScenarioError as error:
        for problem in error.problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_INVALID)
    if isinstance(document, Scenario):
        return Sweep(document.name, document.description, (Tier(document.name, document, str(path)),))
    return document


def _fail(message: str) -> NoReturn:
    click.echo(f"capacity gate: error: {message}", err=True)
    sys.exit(EXIT_INVALID)
