"""Read what the Locust side writes into its results directory (``docs/loadgen-results.md``,
format ``capacity-loadgen/1``): ``progress.json`` while it runs, ``loadgen.json`` at the end.

``read_progress`` is forgiving (a missing or half-written file is ``None``: the display just waits);
``read_loadgen`` is strict and raises ``LoadgenFormatError`` naming the file and field.
Latencies in milliseconds, times in seconds, rates in requests per second.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capacity.jsonfile import read_json_file
from capacity.results.run_file import Counts, Latency, Stall

FORMAT = "capacity-loadgen/1"
PROGRESS_FILE = "progress.json"
LOADGEN_FILE = "loadgen.json"
HLOG_FILES = {"corrected_hlog": "corrected.hlog", "raw_hlog": "raw.hlog"}


class LoadgenFormatError(ValueError):
    """``loadgen.json`` is missing, corrupt or of another format version."""


@dataclass(frozen=True)
class LoadgenProgress:
    """The generator's live view (``progress.json``); rates are over its last few complete seconds."""

    elapsed_s: float
    scheduled_total: int
    sent_total: int
    ok_total: int
    errors_total: int
    late_total: int
    offered_rate: float
    achieved_rate: float
    p99_corrected_ms: float | None
    p99_raw_ms: float | None
    users: int
    workers: int


@dataclass(frozen=True)
class LoadgenSecond:
    """One second of the schedule (bucketed by intended send time)."""

    t: int
    offered_rate: float
    counts: Counts
    corrected: Latency
    raw: Latency
    completed: int | None = None  # successful answers that arrived in this wall-clock second (None: old)
    dispatched: int | None = None  # requests that left in this wall-clock second (None: an older file)


@dataclass(frozen=True)
class PhaseTotals:
    """One phase of a scenario with a recovery phase (``load`` or ``recovery``): its seconds
    ``[start_s, end_s)`` and their counts and merged latency, as the whole run's totals."""

    start_s: int
    end_s: int
    totals: Counts
    corrected: Latency
    raw: Latency
    all_outcomes: Latency
    refused: Latency


@dataclass(frozen=True)
class LoadgenResult:
    """``loadgen.json``: the per-second series and whole-run totals from the merged histograms."""

    started_at: float  # unix seconds of t = 0 of the schedule
    interval_s: float
    workers: int
    seconds: tuple[LoadgenSecond, ...]
    totals: Counts
    corrected: Latency
    raw: Latency
    lag_max_ms: float | None = None
    generator_lag_max_ms: float | None = None
    engine: str = "locust"
    stalls: tuple[Stall, ...] = ()
    all_outcomes: Latency | None = None  # successes and failures' waits (None: an older file)
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    requests_by_kind: dict[str, int] = field(default_factory=dict)
    refused: Latency | None = None  # the refusals' (503, 429) latency (None: an older file)
    phases: dict[str, PhaseTotals] = field(default_factory=dict)  # load and recovery, when there is one


def read_progress(results_dir: Path) -> LoadgenProgress | None:
    """The latest ``progress.json``, or None if there is none yet or it cannot be read."""
    try:
        data = json.loads((results_dir / PROGRESS_FILE).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            return None
        return LoadgenProgress(
            elapsed_s=float(data.get("elapsed_s") or 0.0),
            scheduled_total=int(data.get("scheduled_total") or 0),
            sent_total=int(data.get("sent_total") or 0),
            ok_total=int(data.get("ok_total") or 0),
            errors_total=int(data.get("errors_total") or 0),
            late_total=int(data.get("late_total") or 0),
            offered_rate=float(data.get("offered_rate") or 0.0),
            achieved_rate=float(data.get("achieved_rate") or 0.0),
            p99_corrected_ms=_opt_float(data.get("p99_corrected_ms")),
            p99_raw_ms=_opt_float(data.get("p99_raw_ms")),
            users=int(data.get("users") or 0),
            workers=int(data.get("workers") or 1),
        )
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def read_loadgen(results_dir: Path) -> LoadgenResult:
    """Parse ``loadgen.json`` in ``results_dir``; raises LoadgenFormatError if it is missing or malformed."""
    path = results_dir / LOADGEN_FILE
    missing = "the load generator wrote no results"
    data = read_json_file(path, f"a {FORMAT} file", LoadgenFormatError, missing=missing)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise LoadgenFormatError(f'{path}: expected format "{FORMAT}", got {got!r}')
    try:
        totals = data["totals"]
        return LoadgenResult(
            started_at=float(data["started_at"]),
            interval_s=float(data.get("interval_s", 1)),
            workers=int(data.get("workers", 1)),
            seconds=tuple(_second(entry) for entry in data["seconds"]),
            totals=_counts(totals),
            corrected=latency_from(totals.get("corrected")),
            raw=latency_from(totals.get("raw")),
            all_outcomes=latency_from(totals["all_outcomes"]) if "all_outcomes" in totals else None,
            lag_max_ms=_opt_float(totals.get("lag_max_ms")),
            generator_lag_max_ms=_opt_float(totals.get("generator_lag_max_ms")),
            engine=str(data.get("engine", "locust")),
            stalls=tuple(
                Stall(float(s["start_s"]), float(s["duration_s"]))
                for s in (data.get("generator") or {}).get("stalls") or ()
            ),
            errors_by_kind={str(k): int(v) for k, v in (data.get("errors_by_kind") or {}).items()},
            requests_by_kind={str(k): int(v) for k, v in (data.get("requests_by_kind") or {}).items()},
            refused=latency_from(totals["refused"]) if "refused" in totals else None,
            phases={str(name): _phase(phase) for name, phase in (data.get("phases") or {}).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise LoadgenFormatError(f"{path}: malformed ({type(error).__name__}: {error})") from None


def latency_from(data: Mapping[str, Any] | None) -> Latency:
    """A ``Latency`` from the contract's ``{"count", "p50", "p90", "p99", "p999", "max", "mean"}`` (ms)."""
    if not data:
        return Latency(count=0)
    count = int(data.get("count") or 0)
    if count == 0:
        return Latency(count=0)
    return Latency(
        count=count,
        p50_ms=_opt_float(data.get("p50")),
        p90_ms=_opt_float(data.get("p90")),
        p99_ms=_opt_float(data.get("p99")),
        p999_ms=_opt_float(data.get("p999")),
        max_ms=_opt_float(data.get("max")),
        mean_ms=_opt_float(data.get("mean")),
    )


def _phase(data: Mapping[str, Any]) -> PhaseTotals:
    return PhaseTotals(
        start_s=int(data["start_s"]),
        end_s=int(data["end_s"]),
        totals=_counts(data),
        corrected=latency_from(data.get("corrected")),
        raw=latency_from(data.get("raw")),
        all_outcomes=latency_from(data.get("all_outcomes")),
        refused=latency_from(data.get("refused")),
    )


def _second(entry: Mapping[str, Any]) -> LoadgenSecond:
    return LoadgenSecond(
        t=int(entry["t"]),
        offered_rate=float(entry.get("offered_rate") or 0.0),
        counts=_counts(entry),
        corrected=latency_from(entry.get("corrected")),
        raw=latency_from(entry.get("raw")),
        completed=None if entry.get("completed") is None else int(entry["completed"]),
        dispatched=None if entry.get("dispatched") is None else int(entry["dispatched"]),
    )


def _counts(data: Mapping[str, Any]) -> Counts:
    return Counts(
        scheduled=int(data.get("scheduled") or 0),
        sent=int(data.get("sent") or 0),
        ok=int(data.get("ok") or 0),
        errors=int(data.get("errors") or 0),
        shed=int(data.get("shed") or 0),
        late=int(data.get("late") or 0),
        generator_late=int(data.get("generator_late") or 0),
    )


def _opt_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
