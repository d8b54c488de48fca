"""What a report is made from: the tier runs of a sweep (or one run) and the capacity model fitted to them.

``load_source(path)`` reads a sweep directory or a single run directory (a one-tier sweep) with
``capacity.sweep.sweep_file.read_sweep``, and fits the completed tiers with ``capacity fit``'s own
``capacity.fit.inputs.fit_result``, with the options ``fit.json`` records when the sweep has one (server
cores, memory, safety buffer, the projection asked for), so the report's numbers and its chart bands come
from one fitted object; for a sweep run with ``--repeat N`` that fit also gives the spread between repeats.
Anything unreadable raises ``ReportSourceError`` with a one-line message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from capacity.audit.render import AUDIT_FILE, AuditFormatError, AuditRecord, read_audit
from capacity.fit import CapacityModel
from capacity.fit.breaking_points import DEFAULT_SAFETY_BUFFER
from capacity.fit.inputs import FIT_FILE, fit_result
from capacity.fit.model import FORMAT as FIT_FORMAT
from capacity.fit.repeat_spread import RepeatSpread
from capacity.jsonfile import read_json_file
from capacity.results.run_file import Environment, Run
from capacity.sweep.sweep_file import SweepFormatError, SweepResult, TierEntry, read_sweep


class ReportSourceError(ValueError):
    """The directory is not a readable run or sweep; the message says which file and why."""


@dataclass(frozen=True)
class TierRun:
    """One tier of the sweep that has a run: its name, run directory, run, and the sweep's entry."""

    name: str
    path: Path
    run: Run
    entry: TierEntry

    @property
    def fitted(self) -> bool:
        """Whether the fits see this tier: it completed (``done``). Generator-bound ones they set aside."""
        return self.entry.status == "done"


@dataclass(frozen=True)
class FitOptions:
    """How the model was fitted: the server's CPU budget (cores), RAM (bytes), safety buffer (0-1), where
    those came from, and the projection ``capacity fit`` was asked for (cores, bytes), if any."""

    available_cores: float
    memory_bytes: int | None
    safety_buffer: float
    origin: str
    project_cores: float | None = None
    project_memory_bytes: int | None = None


@dataclass(frozen=True)
class ReportSource:
    """A sweep (or one run) ready to report: tiers with runs in sweep order, tiers that never ran, the
    fitted model and how it was fitted, and the spread between repeats (None unless run with --repeat N)."""

    path: Path
    kind: str  # "sweep" or "run"
    name: str
    description: str
    status: str
    tiers: tuple[TierRun, ...]
    not_run: tuple[TierEntry, ...]
    model: CapacityModel
    options: FitOptions
    result: SweepResult
    repeats: RepeatSpread | None = None
    audit: AuditRecord | None = None  # capacity audit's verdicts on a document's claims (audit.json)

    @property
    def environment(self) -> Environment:
        """The environment of the first tier (every tier of a sweep runs on the same machine)."""
        return self.tiers[0].run.environment


def load_source(path: str | Path) -> ReportSource:
    """Read the sweep or run directory at ``path`` and fit its model; ReportSourceError if unreadable."""
    try:
        result = read_sweep(path)
    except SweepFormatError as error:
        raise ReportSourceError(str(error)) from None
    tiers = tuple(
        TierRun(entry.name, result.run_dir(entry) or result.path, run, entry)
        for entry, run in result.tier_runs()
    )
    if not tiers:
        raise ReportSourceError(f"{result.path}: no tier has run yet: nothing to report")
    model, options, repeats = fit(result)
    record = result.record
    audit = None
    if (result.path / AUDIT_FILE).is_file():
        try:
            audit = read_audit(result.path)
        except AuditFormatError as error:
            raise ReportSourceError(
                f"{error} (capacity audit writes it; run it again, or remove the file)"
            ) from None
    return ReportSource(
        path=result.path,
        kind="run" if result.single_run else "sweep",
        name=record.name,
        description=record.description,
        status=record.status,
        tiers=tiers,
        not_run=tuple(e for e in record.tiers if e.name not in result.runs),
        model=model,
        options=options,
        result=result,
        repeats=repeats,
        audit=audit,
    )


def fit(result: SweepResult) -> tuple[CapacityModel, FitOptions, RepeatSpread | None]:
    """The sweep's model (and spread between repeats) fitted as ``capacity fit`` did: with the options
    ``fit.json`` records, else with its defaults (the CPUs the server was pinned to, the machine's RAM, a
    20 % buffer)."""
    recorded = _fit_inputs(result.path / FIT_FILE)
    buffer = recorded.get("safety_buffer")
    outcome = fit_result(
        result,
        cores=_number(recorded.get("available_cores")),
        memory_bytes=_int(recorded.get("memory_bytes")),
        safety_buffer=buffer if _is_share(buffer) else DEFAULT_SAFETY_BUFFER,
    )
    inputs = outcome.inputs
    options = FitOptions(
        available_cores=inputs["available_cores"],
        memory_bytes=inputs["memory_bytes"],
        safety_buffer=inputs["safety_buffer"],
        origin=f"as in {FIT_FILE}" if recorded else inputs["cores_source"],
        project_cores=_number(recorded.get("project_cores")),
        project_memory_bytes=_int(recorded.get("project_memory_bytes")),
    )
    return outcome.model, options, outcome.repeats


def _fit_inputs(path: Path) -> dict[str, Any]:
    """``inputs`` of ``fit.json``; empty when there is none. A corrupt one is an error, not ignored."""
    if not path.is_file():
        return {}
    data = read_json_file(path, f"a {FIT_FORMAT} file", ReportSourceError)
    inputs = data.get("inputs") if isinstance(data, dict) else None
    return inputs if isinstance(inputs, dict) else {}


def _number(value: Any) -> float | None:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None
    )


def _is_share(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
