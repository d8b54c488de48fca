"""The command-line options that say how a run is set up, and the parsers of option values, shared by
``capacity run``, ``capacity sweep`` (which passes the run settings to every tier) and ``capacity fit``.

This module is deliberately not named ``cli_*.py``: the ``capacity`` group makes every ``capacity/cli_*.py``
a subcommand. Options are declared as plain strings so that every message about a bad value is ours and has
one shape, ``--flag 'value': what was expected``; the parsers raise ``BadInput`` with that line, which each
command prints as ``capacity <command>: error: ...`` and exits 2 for (nothing ran).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from capacity.run.exchange_process import JOURNAL_SYNC_MODES
from capacity.run.orchestrator import ENGINES, RunOptions, parse_cpus
from capacity.scenario import MAX_DURATION_S, MIN_DURATION_S, format_duration, parse_duration

N = TypeVar("N", int, float)
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class BadInput(Exception):
    """A bad command-line value: the message is one line naming the option; the command exits 2."""


# ---------------------------------------------------------------------------------------------- parsers


def positive_number(
    text: str | None, flag: str, kind: Callable[[str], N], maximum: float = math.inf
) -> N | None:
    """``text`` as a finite ``int`` or ``float`` above 0 and at most ``maximum`` (``kind``), None when the
    option was not given."""
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise BadInput(f"{flag} {text!r}: expected {what} > 0") from None
    if not math.isfinite(value) or value <= 0:
        raise BadInput(f"{flag} {text!r}: expected a number > 0")
    if value > maximum:
        raise BadInput(f"{flag} {text!r}: expected at most {maximum:,.0f} (docs/limits.md)")
    return value


def duration_s(text: str | None, flag: str, *, minimum: float = MIN_DURATION_S) -> float | None:
    """Seconds from a duration such as ``10s``, ``2m`` or ``1m30s``, from ``minimum`` to a day."""
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise BadInput(f"{flag} {text!r}: not a duration (expected e.g. 10s, 2m, 1m30s)") from None
    if not minimum <= seconds <= MAX_DURATION_S:
        least = f"at least {format_duration(minimum)}" if minimum > 0 else "0s or more"
        raise BadInput(
            f"{flag} {text!r}: expected {least} and at most {format_duration(MAX_DURATION_S)} "
            "(docs/limits.md)"
        )
    return seconds


def writable_dir(text: str | Path, flag: str) -> Path:
    """``text`` as a directory the toolkit can create or write into, checked before anything starts and
    without creating it: a file in the way, /proc, /sys or a read-only place is BadInput naming why."""
    path = Path(text)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise BadInput(f"{flag} {str(text)!r}: {existing} is a file in the way, expected a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".capacity-write-check-"):
            pass
    except OSError as error:
        raise BadInput(f"{flag} {str(text)!r}: cannot write there: {error.strerror or error}") from None
    return path


def parsed(text: str | None, flag: str, parse: Callable[[str], T]) -> T | None:
    """``parse(text)``, its ValueError turned into BadInput naming ``flag``; None when not given."""
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as error:
        raise BadInput(f"{flag}: {error}") from None


def cpu_list(text: str | None, flag: str) -> tuple[int, ...] | None:
    """CPU numbers from ``1``, ``0,2`` or ``2-3`` (``capacity.run.orchestrator.parse_cpus``)."""
    return parsed(text, flag, parse_cpus)


def engine_name(text: str) -> str:
    """One of ``ENGINES``."""
    if text not in ENGINES:
        raise BadInput(f"--engine {text!r}: expected one of {', '.join(ENGINES)}")
    return text


def journal_sync_mode(text: str | None) -> str | None:
    """One of ``JOURNAL_SYNC_MODES``, or None (the exchange's own default)."""
    if text is not None and text not in JOURNAL_SYNC_MODES:
        raise BadInput(f"--journal-sync {text!r}: expected one of {', '.join(JOURNAL_SYNC_MODES)}")
    return text


# ---------------------------------------------------------------------------------------------- run settings


#: How a run is set up (not what it runs): the options ``capacity run`` takes and ``capacity sweep`` passes
#: to every tier, in their help order. Parameter names are the keys ``run_options`` reads.
RUN_SETTINGS: tuple[Callable[[F], F], ...] = (
    click.option("--target", metavar="URL", help="Test this exchange, not the embedded one (loopback only)."),
    click.option("--server-pid", metavar="PID", help="With --target: its pid, to sample CPU and RSS."),
    click.option(
        "--engine",
        metavar="ENGINE",
        default=ENGINES[0],
        show_default=True,
        help="Load generator: native (fast) or locust (docs/engines.md).",
    ),
    click.option(
        "--processes",
        "--workers",
        "workers",
        metavar="N",
        default="1",
        show_default=True,
        help="Load generator processes (one per generator core).",
    ),
    click.option("--server-cpus", metavar="CPUS", help="CPUs for the embedded exchange, e.g. 1 or 2-3."),
    click.option(
        "--generator-cpus", metavar="CPUS", help="CPUs for the generator (and this process), e.g. 0."
    ),
    click.option("--no-pin", is_flag=True, help="Do not pin server and generator to separate CPUs."),
    click.option(
        "--journal-sync", metavar="MODE", help="Embedded exchange: SQLite sync full, normal or off."
    ),
    click.option("--no-journal", is_flag=True, help="Embedded exchange: no journal (no durability)."),
)


def run_settings_options(command: F) -> F:
    """Decorator: add the ``RUN_SETTINGS`` options to a click command, where the decorator stands."""
    for option in reversed(RUN_SETTINGS):
        command = option(command)
    return command


def run_options(values: Mapping[str, Any], **fields: Any) -> RunOptions:
    """``RunOptions`` from the values click parsed for ``RUN_SETTINGS`` (other keys are ignored);
    ``fields`` sets the rest (``output_dir``, ``overrides``, ``scenario_source``...). Raises BadInput.

    capacity itself (sampler, display) is pinned with the generator (``pin_self``), as every command runs it.
    """
    return RunOptions(
        target=values["target"],
        server_pid=positive_number(values["server_pid"], "--server-pid", int),
        engine=engine_name(values["engine"]),
        workers=positive_number(values["workers"], "--processes", int) or 1,
        pin=not values["no_pin"],
        server_cpus=cpu_list(values["server_cpus"], "--server-cpus"),
        generator_cpus=cpu_list(values["generator_cpus"], "--generator-cpus"),
        journal_sync=journal_sync_mode(values["journal_sync"]),
        journal=not values["no_journal"],
        pin_self=True,
        **fields,
    )
