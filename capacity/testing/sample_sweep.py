"""A synthetic sweep with a known shape, written in the real on-disk layout, for tests and benchmarks.

``write_sample_sweep(directory)`` writes ``sweep.json`` and ``tiers/NN-<tier>/run.json`` with HDR interval
logs (``loadgen/corrected.hlog``, ``loadgen/raw.hlog``), exactly as ``capacity sweep`` lays them out, from a
toy server model: one core that saturates near ``CAPACITY`` requests/s, latency that climbs as the core fills,
RSS that grows with resting orders and rate. Summaries come from ``capacity.run.summary.summarize``, so SLO
verdicts and generator-bound marks follow the real rules. Every run carries a note saying it is synthetic,
and the environment names a synthetic CPU: a report of this data can never pass for a measurement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capacity.measure.latency import new_histogram, summarize, write_hlog
from capacity.results.run_file import (
    Counts,
    Environment,
    Latency,
    LoadgenInfo,
    Overrides,
    Run,
    Second,
    Target,
    write_run,
)
from capacity.run.summary import summarize as summarize_run
from capacity.scenario import scenario_from_mapping
from capacity.sweep.sweep_file import TIERS_DIR, SweepRecord, TierEntry, entry_for_run, write_sweep

STARTED_UTC = "2026-09-21T10:00:00+00:00"
SYNTHETIC_NOTE = "synthetic sample data from capacity.testing.sample_sweep: not a measurement"

#: Requests/s at which the toy server's one core is fully busy.
CAPACITY = 2500.0
MAX_SERVED = 0.96 * CAPACITY  # past this the toy server sheds the excess
IDLE_CORES = 0.04
BASE_RSS = 55e6  # bytes
BYTES_PER_RESTING = 350.0
BYTES_PER_RATE = 6000.0  # bytes per request/s
GENERATOR_RATE_PER_CORE = 2450.0  # requests/s one generator core can offer


@dataclass(frozen=True)
class SampleTier:
    """One synthetic tier: offered rate (requests/s), users, P99 SLO (ms), and how the generator ran."""

    name: str
    rate: float
    users: int
    slo_p99_ms: float
    workers: int = 1
    late_share: float = 0.0  # share of requests the generator sends late (a generator limit)


#: The seed's nine matrix tiers, scaled to what a 2-core machine can offer (as scenarios/sweeps/quick.yaml).
SEED_TIERS: tuple[SampleTier, ...] = (
    SampleTier("idle", 10, 10, 5),
    SampleTier("light", 50, 10, 15),
    SampleTier("minimum", 200, 20, 20),
    SampleTier("medium", 500, 40, 35),
    SampleTier("average", 1000, 50, 50),
    SampleTier("heavy", 1500, 60, 100),
    SampleTier("maximum", 2000, 60, 150),
    SampleTier("burst", 2300, 80, 250, late_share=0.05),  # one generator core runs out: generator-bound
    SampleTier("overload", 3000, 100, 500, workers=2),  # two generator cores: the server saturates
)


def write_sample_sweep(
    directory: str | Path,
    tiers: Sequence[SampleTier] = SEED_TIERS,
    *,
    duration_s: int = 20,
    seed: int = 1,
    name: str = "sample",
) -> Path:
    """Write a synthetic sweep of ``tiers`` into ``directory`` (created); returns the directory."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    entries, definitions = [], []
    for index, tier in enumerate(tiers, start=1):
        rel = f"{TIERS_DIR}/{index:02d}-{tier.name}"
        run = write_sample_run(root / rel, tier, duration_s=duration_s, rng=rng)
        entries.append(entry_for_run(TierEntry(tier.name, index), run, rel))
        definitions.append({"name": tier.name, "path": run.scenario_source, "scenario": run.scenario})
    description = f"Synthetic {len(tiers)}-tier sweep ({SYNTHETIC_NOTE})"
    record = SweepRecord(
        name=name,
        description=description,
        kind="file",
        status="completed",
        source=None,
        definition={"name": name, "description": description, "cooldown": 0, "tiers": definitions},
        started_utc=STARTED_UTC,
        finished_utc=STARTED_UTC,
        environment=sample_environment(),
        tiers=tuple(entries),
        notes=(SYNTHETIC_NOTE,),
    )
    write_sweep(root, record)
    return root


def write_sample_run(
    directory: str | Path, tier: SampleTier, *, duration_s: int = 20, rng: np.random.Generator | None = None
) -> Run:
    """Write one synthetic run directory (``run.json`` and both ``.hlog`` files); returns the ``Run``."""
    rng = rng if rng is not None else np.random.default_rng(0)
    run_dir = Path(directory)
    (run_dir / "loadgen").mkdir(parents=True, exist_ok=True)
    scenario = scenario_from_mapping(
        {
            "name": tier.name,
            "description": f"synthetic tier {tier.name}",
            "load": {
                "orders_per_second": tier.rate,
                "concurrent_users": tier.users,
                "symbols": ["BTCUSD", "ETHUSD"],
                "duration": f"{duration_s}s",
            },
            "slo": {"p99_ms": tier.slo_p99_ms, "error_rate": 0.01},
        }
    )
    started_at = 1_790_000_000.0
    series, corrected_h, raw_h, totals = _simulate(tier, duration_s, rng)
    for kind, histograms in (("corrected", corrected_h), ("raw", raw_h)):
        write_hlog(run_dir / "loadgen" / f"{kind}.hlog", histograms, started_at)
    corrected, raw = (_latency(_merged(h)) for h in (corrected_h, raw_h))
    generator_cores = float(tier.workers)
    summary = summarize_run(scenario, series, totals, corrected, raw, generator_cores)
    run = Run(
        status="completed",
        problem=None,
        scenario=scenario.to_dict(),
        scenario_source=f"scenarios/{tier.name}.yaml",
        overrides=Overrides(),
        target=Target(url="http://127.0.0.1:8080", embedded=True, server_pid=4242),
        environment=sample_environment(),
        started_utc=STARTED_UTC,
        finished_utc="2026-09-21T10:00:25+00:00",
        wall_time_s=duration_s + 5.0,
        loadgen=LoadgenInfo(
            workers=tier.workers, command=("locust", "--headless"), exit_code=0, started_at=0
        ),
        series=tuple(series),
        summary=summary,
        files={"corrected_hlog": "loadgen/corrected.hlog", "raw_hlog": "loadgen/raw.hlog"},
        notes=(SYNTHETIC_NOTE,),
    )
    write_run(run_dir, run)
    return run


def sample_environment() -> Environment:
    """A plausible 2-CPU machine with server and generator pinned apart, marked as synthetic."""
    return Environment(
        timestamp_utc=STARTED_UTC,
        hostname="sample-host",
        cpu_model="Synthetic CPU (sample data)",
        logical_cpus=2,
        physical_cpus=2,
        cpu_governor=None,
        cpu_freq_mhz=2400.0,
        memory_total_bytes=24 * 2**30,
        os="Linux",
        kernel="6.1.0-sample",
        platform="Linux-6.1.0-sample-x86_64",
        python_version="3.11.2",
        python_implementation="CPython",
        packages={"capacity": "0.1.0", "locust": "2.47.0", "aiohttp": "3.14.5", "hdrhistogram": "0.10.8"},
        git_revision="0" * 40,
        git_dirty=False,
        available_cpus=(0, 1),
        server_cpus=(1,),
        generator_cpus=(0,),
        pinned=True,
        load_average_1m=0.2,
    )


def _simulate(
    tier: SampleTier, duration_s: int, rng: np.random.Generator
) -> tuple[list[Second], list, list, Counts]:
    """Per-second series, per-second corrected and raw histograms, and totals of the toy server."""
    series, corrected_h, raw_h = [], [], []
    totals = dict.fromkeys(("scheduled", "sent", "ok", "errors", "shed", "late"), 0)
    resting = 0.0
    gen_capacity = GENERATOR_RATE_PER_CORE * tier.workers
    for t in range(duration_s):
        offered = tier.rate
        sent = min(offered * rng.normal(1.0, 0.003), gen_capacity * 0.98)
        overloaded = sent > MAX_SERVED
        served = MAX_SERVED * rng.normal(1.0, 0.005) if overloaded else sent
        shed = max(sent - served, 0.0)
        rho = min(served / CAPACITY, 0.97)
        resting = min(resting + 0.3 * served, 20_000 + 40 * tier.rate)
        corrected, raw = _second_histograms(tier, served, rho, overloaded=overloaded, rng=rng)
        corrected_h.append(corrected)
        raw_h.append(raw)
        c, r = summarize(corrected), summarize(raw)
        ok = corrected.get_total_count()
        late = tier.late_share * sent
        for key, value in zip(
            ("scheduled", "sent", "ok", "errors", "shed", "late"),
            (offered, sent, ok, shed, shed, late),
            strict=True,
        ):
            totals[key] += round(value)
        cpu = 100 * min(IDLE_CORES + served / CAPACITY, 1.0) * rng.normal(1.0, 0.02)
        rss = BASE_RSS + BYTES_PER_RESTING * resting + BYTES_PER_RATE * served + rng.normal(0, 2e5)
        series.append(
            Second(
                t=t,
                offered_rate=offered,
                sent_rate=round(sent),
                achieved_rate=float(ok),
                errors_per_s=round(shed),
                shed_per_s=round(shed),
                late_per_s=round(late),
                corrected_p50_ms=c["p50"],
                corrected_p99_ms=c["p99"],
                corrected_p999_ms=c["p999"],
                raw_p50_ms=r["p50"],
                raw_p99_ms=r["p99"],
                raw_p999_ms=r["p999"],
                server_cpu_percent=min(cpu, 100.0),
                server_rss_bytes=int(rss),
                generator_cpu_percent=min(100 * tier.workers, 100 * sent / GENERATOR_RATE_PER_CORE)
                * rng.normal(1.0, 0.01),
                exchange_orders_per_sec=0.8 * served,
                exchange_p99_ms=r["p99"],
                exchange_resting_orders=int(resting),
                exchange_rss_bytes=int(rss),
            )
        )
    return series, corrected_h, raw_h, Counts(**totals)


def _second_histograms(
    tier: SampleTier, served: float, rho: float, *, overloaded: bool, rng: np.random.Generator
) -> tuple:
    """Corrected and raw histograms (us) of one second: log-normal service time inflated by queueing."""
    count = max(round(served), 1)
    median_ms = 0.8 + 0.6 / (1 - rho)
    p99_ms = 2.0 + 2.0 / (1 - rho) ** 1.5
    if overloaded:
        median_ms, p99_ms = 120.0, 900.0
    sigma = math.log(p99_ms / median_ms) / 2.326
    distinct = min(count, 300)
    values = rng.lognormal(math.log(median_ms * 1000), sigma, size=distinct)
    weights = np.full(distinct, count // distinct)
    weights[: count % distinct] += 1
    corrected, raw = new_histogram(), new_histogram()
    lag = 1.0 + tier.late_share * 10  # a late generator adds waiting to corrected only
    for value, weight in zip(values, weights, strict=True):
        if weight:
            corrected.record_value(int(value * lag), int(weight))
            raw.record_value(int(value * (0.35 if overloaded else 0.8)), int(weight))
    return corrected, raw


def _merged(histograms: Sequence) -> object:
    total = new_histogram()
    for histogram in histograms:
        total.add(histogram)
    return total


def _latency(histogram: object) -> Latency:
    s = summarize(histogram)  # type: ignore[arg-type]
    mean = None if s["count"] == 0 else histogram.get_mean_value() / 1000  # type: ignore[attr-defined]
    return Latency(s["count"], s["p50"], s["p90"], s["p99"], s["p999"], s["max"], mean)
