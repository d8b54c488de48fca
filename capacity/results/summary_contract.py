"""``capacity run --summary-json FILE``: the run's summary for programs, a versioned contract.

The reference exchange's ``POST /demo/load-test`` (and any other program that launches ``capacity run``)
reads this file instead of picking fields out of ``run.json``: the toolkit decides what a run means, the
launcher shows it. The format is ``capacity-run-summary/1``, published as JSON Schema in
``capacity/schemas/run-summary.schema.json`` (docs/run-format.md). Fields are only ever added within a
version; a reader checks ``format`` and refuses one it does not know.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from capacity.results.loadgen_file import write_json_atomic
from capacity.results.run_file import Latency, Run, jsonable
from capacity.results.verdict_text import limit_of

FORMAT = "capacity-run-summary/1"
LATENCY_FIGURES = ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")


def _latency(latency: Latency) -> dict[str, float | None]:
    return {name: getattr(latency, name) for name in LATENCY_FIGURES}


def summary_document(run: Run, run_dir: Path) -> dict[str, Any]:
    """The ``capacity-run-summary/1`` document of ``run``, whose directory is ``run_dir``."""
    s = run.summary
    environment = run.environment
    document = {
        "format": FORMAT,
        "status": run.status,
        "problem": run.problem,
        "offered_rate": s.offered_rate,
        "achieved_rate": s.achieved_rate,
        "achieved_ratio": s.achieved_ratio,
        "error_rate": s.error_rate,
        "shed_rate": s.shed_rate,
        "counts": asdict(s.counts),
        "corrected": _latency(s.corrected),
        "raw": _latency(s.raw),
        "server_cpu_percent_mean": s.server_cpu_percent_mean,
        "server_cpu_percent_max": s.server_cpu_percent_max,
        "generator_cpu_percent_mean": s.generator_cpu_percent_mean,
        "server_rss_max_bytes": s.server_rss_max_bytes,
        "limit": limit_of(s).kind,
        "generator_bound": s.generator_bound,
        "limits": list(s.limits),
        "advice": s.advice,
        "slo": {
            "verdict": s.slo.verdict,
            "p99_limit_ms": s.slo.p99_limit_ms,
            "error_rate_limit": s.slo.error_rate_limit,
            "p99_ms": s.slo.p99_ms,
            "error_rate": s.slo.error_rate,
            "reasons": list(s.slo.reasons),
        },
        "placement": {
            "server_cpus": environment.server_cpus,
            "generator_cpus": environment.generator_cpus,
            "pinned": environment.pinned,
        },
        "notes": [*run.notes, *s.notes],
        "wall_time_s": run.wall_time_s,
        "run_directory": str(run_dir),
        "run_json": str(run_dir / "run.json"),
    }
    cleaned: dict[str, Any] = jsonable(document)
    return cleaned


def write_summary(path: str | os.PathLike[str], run: Run, run_dir: Path) -> None:
    """Write the summary document to ``path`` atomically (a reader never sees half of it)."""
    write_json_atomic(Path(path), summary_document(run, run_dir))
