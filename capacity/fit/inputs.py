"""From measured runs to the fits' input: ``tier_measurement(run) -> TierMeasurement``, a whole sweep
fitted (``fit_result``, pure: ``capacity report`` uses it) and that fit written to ``fit.json``
(``fit_directory``: ``capacity fit``).

The adapter's choices: per-second arrays are the run's steady window (ramp, first and last second left
out, as the run's summary does); tier percentiles are the run's merged, coordinated-omission-corrected
histograms; ``generator_bound`` is the run's own verdict; the P99 objective is the scenario's SLO.
Only tiers whose run completed are fitted; the others are listed in the inputs with the reason.

A sweep run with ``--repeat N`` is fitted on all repeats pooled, each run of a tier a separate
``TierMeasurement`` (named as its sweep entry, ``average#2``, so its per-second series stay whole), and once
per repeat; the per-repeat figures give the spread between repeats (``capacity.fit.repeat_spread``).

Units: rates in requests/s, CPU in percent of one core, memory in bytes, latency in ms.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from capacity.fit import CapacityModel, Projection, TierMeasurement, fit_sweep
from capacity.fit.breaking_points import DEFAULT_SAFETY_BUFFER
from capacity.fit.repeat_spread import RepeatSpread, repeat_spread
from capacity.results.run_file import Run
from capacity.results.verdict_text import limit_of
from capacity.sweep.sweep_file import SweepResult

FIT_FILE = "fit.json"
NAN = float("nan")


class NothingToFit(ValueError):
    """The sweep has no completed tier: there is nothing to fit."""


_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]i?b?|b)?\s*", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1} | {  # k, kb: 10^3; ki, kib: 2^10; and so on for m, g, t
    unit: base**power
    for power, prefix in enumerate("kmgt", start=1)
    for unit, base in ((prefix, 1000), (f"{prefix}b", 1000), (f"{prefix}i", 1024), (f"{prefix}ib", 1024))
}


def tier_measurement(run: Run, name: str | None = None) -> TierMeasurement:
    """What the fits need from one run, named ``name`` (default: the scenario's name)."""
    s = run.summary
    steady = [x for x in run.series if s.steady_start_s <= x.t < s.steady_end_s]
    load = run.scenario.get("load", {})
    return TierMeasurement(
        name=name or str(run.scenario.get("name", "run")),
        offered_rate=s.offered_rate,
        achieved_rate=np.array([x.achieved_rate for x in steady], dtype=float),
        server_cpu_percent=np.array([_nan(x.server_cpu_percent) for x in steady]),
        rss_bytes=np.array([_nan(x.server_rss_bytes) for x in steady]),
        resting_orders=np.array([_nan(x.exchange_resting_orders) for x in steady]),
        p50_ms=_nan(s.corrected.p50_ms),
        p99_ms=_nan(s.corrected.p99_ms),
        p999_ms=_nan(s.corrected.p999_ms),
        p99_ms_per_second=np.array([_nan(x.corrected_p99_ms) for x in steady]),
        error_rate=s.error_rate or 0.0,
        shed_rate=s.shed_rate or 0.0,
        concurrency=int(load.get("concurrent_users", 1)),
        generator_bound=limit_of(s).kind == "generator",
        slo_p99_ms=s.slo.p99_limit_ms,
        disturbed=limit_of(s).kind == "disturbed",
    )


def server_cores(result: SweepResult) -> tuple[float, str] | None:
    """Cores the server had in this sweep, and how that is known: the CPUs it was pinned to, else all the
    machine's logical CPUs (the most any tier had). None when the sweep has no run."""
    budgets = []
    for run in result.runs.values():
        env = run.environment
        if env.pinned and env.server_cpus:
            cpus = ",".join(map(str, env.server_cpus))
            budgets.append((float(len(env.server_cpus)), f"the server was pinned to CPU {cpus}"))
        else:
            budgets.append(
                (float(env.logical_cpus), f"all {env.logical_cpus} CPUs: the server was not pinned")
            )
    return max(budgets) if budgets else None


def memory_total(result: SweepResult) -> int:
    """RAM of the machine the sweep ran on, bytes."""
    return result.record.environment.memory_total_bytes


def parse_size(text: str) -> int:
    """Bytes from ``32GB`` (10^9), ``32GiB`` (2^30), ``512M``, ``1.5TB`` or a plain number of bytes.
    Raises ValueError for anything else."""
    match = _SIZE.fullmatch(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"not a memory size: {text!r} (expected e.g. 32GB, 24GiB, 512MB)")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()])


@dataclass(frozen=True)
class FitOutcome:
    """A fitted sweep: the model, the projection (if asked for), the inputs used (what ``fit.json``
    records: tiers fitted and left out, the CPU budget and RAM and where they came from, the safety buffer,
    the projection asked for), where it was written (None: not written), and for a sweep run with
    ``--repeat N`` (N >= 2) the spread between its repeats (else None)."""

    model: CapacityModel
    projection: Projection | None
    inputs: dict[str, Any]
    path: Path | None = None
    repeats: RepeatSpread | None = None


def fit_result(
    result: SweepResult,
    *,
    cores: float | None = None,
    memory_bytes: int | None = None,
    safety_buffer: float = DEFAULT_SAFETY_BUFFER,
    project_cores: float | None = None,
    project_memory_bytes: int | None = None,
) -> FitOutcome:
    """Fit the sweep's completed (``done``) tiers; nothing is written.

    ``cores`` defaults to ``server_cores`` (the CPUs the server was pinned to), ``memory_bytes`` to the
    machine's RAM, ``safety_buffer`` is a share 0-1. A projection to ``project_cores`` (and
    ``project_memory_bytes``, default ``memory_bytes``) is added when asked for. A sweep with no completed
    tier gives a model whose every figure says there is not enough data. A repeated sweep is fitted pooled
    (the model) and per repeat (the spread), with the same options.
    """
    pairs = result.tier_runs("done")
    measured = server_cores(result) or (1.0, "no run recorded its CPUs")
    available = cores or measured[0]
    memory = memory_bytes or memory_total(result)
    tiers = [(entry.repeat, tier_measurement(run, entry.name)) for entry, run in pairs]

    def fit(measurements: list[TierMeasurement]) -> CapacityModel:
        return fit_sweep(
            measurements, available_cores=available, memory_bytes=memory, safety_buffer=safety_buffer
        )

    model = fit([tier for _, tier in tiers])
    spread = None
    if result.record.repeats > 1:
        complete = complete_repeats(result)
        per_repeat = {repeat: fit([tier for r, tier in tiers if r == repeat]) for repeat in complete}
        left_out = [r for r in range(1, result.record.repeats + 1) if r not in complete]
        spread = repeat_spread(model, per_repeat, left_out)
    projection = None
    if project_cores:
        projection = model.project(cores=project_cores, memory_bytes=project_memory_bytes or memory)
    inputs = {
        "source": str(result.path),
        "sweep": result.record.name,
        "tiers": [{"name": e.name, "run_dir": e.run_dir} for e, _ in pairs],
        "left_out": {
            e.name: e.status + (f"; no readable run: {result.lost[e.name]}" if e.name in result.lost else "")
            for e in result.record.tiers
            if e.status != "done"
        },
        "available_cores": available,
        "cores_source": "given" if cores else measured[1],
        "memory_bytes": memory,
        "memory_source": "given" if memory_bytes else "the measured machine's RAM",
        "safety_buffer": safety_buffer,
        "project_cores": project_cores,
        "project_memory_bytes": project_memory_bytes if project_cores else None,
    }
    return FitOutcome(model, projection, inputs, repeats=spread)


def complete_repeats(result: SweepResult) -> list[int]:
    """The repeats whose every tier is done (or skipped, as a stopped ladder skips a tier in every repeat):
    only those are compared, since a repeat cut short differs for want of tiers, not by drift."""
    return [
        repeat
        for repeat in range(1, result.record.repeats + 1)
        if all(e.status in ("done", "skipped") for e in result.record.tiers if e.repeat == repeat)
    ]


def fit_directory(result: SweepResult, **options: Any) -> FitOutcome:
    """``fit_result(result, **options)`` (the same keyword options) written to ``fit.json`` in the
    sweep's directory, its inputs with ``created_utc``. Raises NothingToFit when no tier completed."""
    if not result.tier_runs("done"):
        raise NothingToFit(f"{result.path}: no completed tier to fit ({_statuses(result)})")
    outcome = fit_result(result, **options)
    inputs = {**outcome.inputs, "created_utc": datetime.now(UTC).isoformat(timespec="seconds")}
    projection = outcome.projection
    document = {
        **outcome.model.to_dict(),
        "inputs": inputs,
        "projection": projection.to_dict() if projection else None,
        "repeats": outcome.repeats.to_dict() if outcome.repeats else None,
    }
    path = result.path / FIT_FILE
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return FitOutcome(outcome.model, projection, inputs, path, outcome.repeats)


def _statuses(result: SweepResult) -> str:
    return ", ".join(f"{e.name} {e.status}" for e in result.record.tiers)


def _nan(value: float | int | None) -> float:
    return NAN if value is None or not math.isfinite(value) else float(value)
