"""The load generator's results directory, exactly as docs/loadgen-results.md specifies.

Builds ``progress.json`` (while running) and ``loadgen.json`` (at the end) from a merged LatencyRecorder and
the scenario, and writes them atomically (temporary file + rename, so a reader never sees half a file),
plus the ``corrected.hlog`` / ``raw.hlog`` interval logs. Pure apart from file writing: no Locust import.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from capacity.measure.latency import LatencyRecorder, Second, seconds_needed, summarize, write_hlog
from capacity.scenario import Scenario

FORMAT = "capacity-loadgen/1"
PROGRESS_WINDOW_S = 3  # progress rates and p99 are over this many complete seconds


def offered_in_second(scenario: Scenario, t: int) -> float:
    """Requests the schedule asks for in second ``t`` (the integral of the rate over [t, t+1))."""
    return round(scenario.expected_orders(t, t + 1), 3)


def series_length(scenario: Scenario, recorder: LatencyRecorder, elapsed_s: float) -> int:
    """Seconds to report: the schedule up to the stop (or its end), and any second holding data."""
    ran_s = min(max(elapsed_s, 0.0), scenario.total_duration_s)
    return max(seconds_needed(ran_s), recorder.last_second + 1)


def second_entry(scenario: Scenario, recorder: LatencyRecorder, t: int, last: bool = False) -> dict[str, Any]:
    """Second ``t`` of the series; the ``last`` one also holds the requests sent after it (a request due
    in the schedule's last second may leave in the next), so the seconds' dispatched add up to ``sent``."""
    second = recorder.seconds.get(t) or Second()
    dispatched = recorder.dispatched
    sent = sum(n for s, n in dispatched.items() if s >= t) if last else dispatched.get(t, 0)
    return {
        "t": t,
        "offered_rate": offered_in_second(scenario, t),
        "completed": recorder.completed.get(t, 0),
        "dispatched": sent,
        **second.summary(),
    }


def totals(recorder: LatencyRecorder, indices: Iterable[int] | None = None) -> dict[str, Any]:
    """The counts and merged latency of the given seconds (default: the whole run)."""
    total = recorder.combined(indices)
    return {
        "scheduled": total.scheduled,
        "sent": total.sent,
        "ok": total.ok,
        "errors": total.errors,
        "shed": total.shed,
        "late": total.late,
        "lag_max_ms": round(total.lag_max_us / 1000, 3),
        "generator_late": total.generator_late,
        "generator_lag_max_ms": round(total.generator_lag_max_us / 1000, 3),
        "corrected": summarize(total.corrected, total.corrected_sum_us),
        "raw": summarize(total.raw, total.raw_sum_us),
        "all_outcomes": total.all_outcomes(),
        "refused": summarize(total.refused, total.refused_sum_us),
    }


def phase_totals(scenario: Scenario, recorder: LatencyRecorder, length: int) -> dict[str, Any]:
    """For a scenario with a recovery phase, ``{"load": ..., "recovery": ...}``: each phase's totals (as
    ``totals``) with its seconds ``[start_s, end_s)``; a second the load's end falls in counts with the
    load. Empty without a recovery phase (the totals are the load's)."""
    if scenario.recovery is None:
        return {}
    split = min(math.ceil(scenario.load_end_s - 1e-9), length)
    return {
        name: {"start_s": start, "end_s": end, **totals(recorder, range(start, end))}
        for name, start, end in (("load", 0, split), ("recovery", split, length))
    }


def loadgen_document(
    scenario: Scenario,
    recorder: LatencyRecorder,
    *,
    target: str,
    started_at: float,
    workers: int,
    elapsed_s: float,
    engine: str,
    generator: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole ``loadgen.json``: scenario, per-second series (by intended send time) and totals.
    ``engine``: ``locust`` or ``native``; ``generator``: what the engine reports of itself."""
    length = series_length(scenario, recorder, elapsed_s)
    return {
        "format": FORMAT,
        "engine": engine,
        "generator": generator or {},
        "scenario": scenario.to_dict(),
        "target": target,
        "started_at": round(started_at, 3),
        "interval_s": 1,
        "workers": workers,
        "seconds": [second_entry(scenario, recorder, t, last=t == length - 1) for t in range(length)],
        "totals": totals(recorder),
        "phases": phase_totals(scenario, recorder, length),
        "errors_by_kind": recorder.errors_summary(),
        "requests_by_kind": recorder.requests_summary(),
    }


def progress_window(elapsed_s: float, settle_s: float, total_duration_s: float) -> range:
    """The last PROGRESS_WINDOW_S seconds that are complete: over at least ``settle_s`` seconds ago (data
    from workers arrives with their report interval), and not past the schedule's end."""
    end = min(math.floor(elapsed_s - settle_s), seconds_needed(total_duration_s))
    return range(max(end - PROGRESS_WINDOW_S, 0), max(end, 0))


def progress_document(
    scenario: Scenario,
    recorder: LatencyRecorder,
    *,
    elapsed_s: float,
    users: int,
    workers: int,
    settle_s: float = 1.0,
    total: Second | None = None,
) -> dict[str, Any]:
    """``progress.json``: running totals, plus rates and p99 over the last few complete seconds. ``total``:
    ``recorder.combined()`` when the caller has merged it already (it walks every second of the run)."""
    if total is None:
        total = recorder.combined()
    window = progress_window(elapsed_s, settle_s, scenario.total_duration_s)
    recent = recorder.combined(window)
    span = len(window)
    offered = scenario.expected_orders(window.start, window.stop) / span if span else 0.0
    return {
        "format": FORMAT,
        "elapsed_s": round(elapsed_s, 3),
        "scheduled_total": total.scheduled,
        "sent_total": total.sent,
        "ok_total": total.ok,
        "errors_total": total.errors,
        "late_total": total.late,
        "offered_rate": round(offered, 3),
        "achieved_rate": round(sum(recorder.completed.get(t, 0) for t in window) / span, 3) if span else 0.0,
        "p99_corrected_ms": summarize(recent.corrected)["p99"],
        "p99_raw_ms": summarize(recent.raw)["p99"],
        "users": users,
        "workers": workers,
    }


def write_json_atomic(path: str | Path, document: Any) -> None:
    """Write JSON to a temporary file in the same directory, then rename it over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=1)
            out.write("\n")
        os.chmod(tmp, 0o644 & ~_umask())  # mkstemp makes it private; results are meant to be read
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_final(results_dir: str | Path, document: dict[str, Any], recorder: LatencyRecorder) -> None:
    """``loadgen.json`` plus ``corrected.hlog`` and ``raw.hlog``, one interval per reported second."""
    directory = Path(results_dir)
    directory.mkdir(parents=True, exist_ok=True)
    length = len(document["seconds"])
    seconds = [recorder.seconds.get(t) for t in range(length)]
    for name in ("corrected", "raw"):
        histograms = [getattr(s, name) if s is not None else None for s in seconds]
        tmp = directory / f".{name}.hlog.tmp"
        write_hlog(tmp, histograms, document["started_at"])
        os.replace(tmp, directory / f"{name}.hlog")
    # loadgen.json last: its presence means the run's files are complete
    write_json_atomic(directory / "loadgen.json", document)
