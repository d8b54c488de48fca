"""What the gate compares: a run's tier reduced to per-second samples of a few metrics (``tier_data``).

Every metric is computed from the steady window of the run's per-second series (``Run.steady_series``:
the ramp and the first and last second left out) and has two forms: a **value** (the figure a person
reads: a ratio of sums, or a median) and **samples**, one per steady second, which the significance test
uses. The same function reduces the baseline's runs and the run under test, so both sides are always
computed the same way; the baseline file stores the result (``capacity.gate.baseline``).

The metrics, in their base units (the table shows them scaled, see ``Metric.display``):

``throughput``
    Achieved / offered requests over the steady window (fraction; higher is better). At a fixed offered
    rate inside the server's capacity this is 1.0; it drops when the server falls behind.
``p99``
    Coordinated-omission-corrected P99 latency at the tier's fixed offered load: the median over steady
    seconds of each second's P99 (ms; lower is better). A median of per-second percentiles, not an
    average: the run's whole-run P99 from the merged histograms is the SLO check's figure.
``error_rate``
    Requests sent but not answered successfully / requests sent (fraction 0-1; lower is better).
``cpu_per_order``
    Server CPU-seconds per successful request (seconds; lower is better): the sum over steady seconds of
    server CPU divided by the sum of achieved requests. A request is what ``orders_per_second`` counts (every
    request of the scenario's mix), as in the fit's service demand. It includes the server's idle cost
    spread over the tier's requests, so it is comparable between runs of the same tier only - which is what
    the gate does. The least noisy capacity metric: CPU-seconds count the server's work, not its waits;
    contention still moves it, downwards (a preempted server handles queued requests in batches).
``rss_per_resting_order``
    Server RSS growth per order added to the books (bytes; lower is better): (RSS at the last steady
    second - RSS at the first) / (resting orders then - resting orders at first). Its per-second samples
    are each second's RSS growth divided by the mean growth of resting orders per second, so their mean is
    the value. Needs the exchange's ``exchange_resting_orders`` (the reference exchange reports it) and at
    least ``MIN_RESTING_GROWTH`` more resting orders at the end than at the start.

Server CPU is the psutil-sampled ``server_cpu_percent``; when the server was not sampled (``--target``
without ``--server-pid``) the exchange's own ``exchange_cpu_percent`` is used and the metric's ``source``
says so (the gate compares only like with like).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from capacity.results.run_file import FloatArray, Run, Second, TierLimit, as_float_array, run_to_dict
from capacity.results.verdict_text import limit_of, limit_sentence
from capacity.results.verdicts import NOT_THE_SERVERS, generator_evidence

Direction = Literal["lower", "higher"]

#: Fewer added resting orders than this over the steady window leave RSS per resting order unmeasured.
MIN_RESTING_GROWTH = 100


@dataclass(frozen=True)
class Metric:
    """A compared metric: its key (as in thresholds.yaml), a label, which direction is better, and how to
    display its base-unit value (``scale`` times the value, in ``unit``, with ``digits`` decimals)."""

    key: str
    label: str
    better: Direction
    unit: str
    scale: float = 1.0
    digits: int = 2
    machine_dependent: bool = False  # depends on the CPU model: not compared across different machines
    statistic: Literal["mean", "median"] = "mean"  # what the significance test compares between samples

    def display(self, value: float | None) -> str:
        """``value`` (base unit) as text in the display unit; ``-`` when unknown."""
        if value is None or not math.isfinite(value):
            return "-"
        text = f"{value * self.scale:,.{self.digits}f}"
        return f"{text} {self.unit}" if self.unit else text


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric("throughput", "Throughput", "higher", "%", 100.0, 1),
        Metric(
            "p99",
            "Median 1 s P99 (corrected)",
            "lower",
            "ms",
            1.0,
            2,
            machine_dependent=True,
            statistic="median",
        ),
        Metric("error_rate", "Error rate", "lower", "%", 100.0, 2),
        Metric("cpu_per_order", "CPU per order", "lower", "ms", 1000.0, 4, machine_dependent=True),
        Metric("rss_per_resting_order", "RSS per resting order", "lower", "KB", 1 / 1000, 2),
    )
}


@dataclass(frozen=True)
class MetricSamples:
    """One metric of one tier: its ``value`` and per-second ``samples`` in base units; ``value`` is None
    when the run cannot give it (``note`` says why). ``source`` names where the figures came from when
    there is a choice (server CPU: ``server`` or ``exchange``). A baseline pooled from several runs
    (``pool``) has every run's value in ``run_values``, its value is their median, its samples all of
    theirs: the run-to-run spread is then part of what a new run is compared with."""

    value: float | None
    samples: FloatArray = field(default_factory=lambda: as_float_array(()))
    note: str | None = None
    source: str | None = None
    run_values: tuple[float, ...] = ()

    @classmethod
    def missing(cls, note: str, source: str | None = None) -> MetricSamples:
        """A metric the run cannot give, and why."""
        return cls(None, note=note, source=source)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MetricSamples):
            return NotImplemented
        same = (self.value, self.note, self.source, self.run_values)
        return same == (other.value, other.note, other.source, other.run_values) and bool(
            np.array_equal(self.samples, other.samples)
        )

    __hash__ = None  # type: ignore[assignment]  # an array is not hashable

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": _finite(self.value), "samples": [_round(x) for x in self.samples]}
        if len(self.run_values) > 1:
            out["run_values"] = [_round(x) for x in self.run_values]
        if self.note:
            out["note"] = self.note
        if self.source:
            out["source"] = self.source
        return out


@dataclass(frozen=True)
class TierData:
    """One tier reduced to what the gate needs, for a baseline or for the run under test.

    ``problems`` says why the tier cannot be compared at all (run not completed, generator-bound, too few
    steady seconds...); empty when it can. ``broken`` says why the server under test failed the tier (the
    run failed, or nothing was answered successfully): a regression, never "inconclusive". ``slo`` holds
    the scenario's limits and the run's whole-run figures (``p99_limit_ms``, ``error_rate_limit``,
    ``p99_ms``, ``error_rate``).
    """

    name: str
    status: str
    problems: tuple[str, ...]
    offered_rate: float
    steady_seconds: int
    slo: dict[str, float | None]
    metrics: dict[str, MetricSamples]
    scenario: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    other_cpu_percent_mean: float | None = None
    runs: int = 1
    broken: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return not self.problems


# ---------------------------------------------------------------------------------------------- reduction


def broken_reasons(run: Run) -> list[str]:
    """Why the server under test failed ``run`` (empty when it did not): the run failed (the exchange did
    not come up or answer its health check, died, or was not the API), or its tier was unreachable (no
    request answered successfully: hung, or only errors)."""
    if run.status == "failed":
        return [f"the run failed: {run.problem or 'see its run.json'}"]
    limit = limit_of(run.summary)
    if run.status == "completed" and limit.kind == "unreachable":
        return [limit_sentence(limit)]
    return []


def unusable_reasons(run: Run, min_steady_seconds: int, paired: bool = False) -> list[str]:
    """Why ``run`` cannot be compared (empty when it can): an interrupted run, a tier limited by the
    generator or disturbed by other processes (its figures are not the server's), too few steady seconds.
    ``paired`` (one run of an A/B pair, whose other run shared the machine's moment): a disturbed run is
    compared unless the generator's own evidence says it limited the run. A broken run
    (``broken_reasons``) cannot be compared either, and counts as a regression."""
    reasons = broken_reasons(run)
    if run.status == "interrupted":
        reasons.append("run interrupted" + (f": {run.problem}" if run.problem else ""))
    limit = limit_of(run.summary)
    if paired and limit.kind == "disturbed":
        generator = generator_evidence(limit)
        if generator:
            reasons.append(limit_sentence(TierLimit("generator", generator)))
    elif limit.kind in NOT_THE_SERVERS:
        reasons.append(limit_sentence(limit))
    steady = len(run.steady_series())
    if steady < min_steady_seconds:
        reasons.append(
            f"only {steady} steady second(s), fewer than the {min_steady_seconds} a comparison needs"
        )
    return reasons


def tier_data(run: Run, name: str, min_steady_seconds: int, paired: bool = False) -> TierData:
    """``run`` reduced to its per-second metric samples and the figures the gate reports (``paired``: as
    ``unusable_reasons``)."""
    steady = run.steady_series()
    s = run.summary
    return TierData(
        name=name,
        status=run.status,
        problems=tuple(unusable_reasons(run, min_steady_seconds, paired)),
        broken=tuple(broken_reasons(run)),
        offered_rate=s.offered_rate,
        steady_seconds=len(steady),
        slo={
            "p99_limit_ms": s.slo.p99_limit_ms,
            "error_rate_limit": s.slo.error_rate_limit,
            "p99_ms": s.slo.p99_ms,
            "error_rate": s.slo.error_rate,
        },
        metrics={key: compute(steady) for key, compute in _COMPUTE.items()},
        scenario=dict(run.scenario),
        summary=run_to_dict(run)["summary"],
        other_cpu_percent_mean=s.other_cpu_percent_mean,
    )


def _ratio_of_sums(
    steady: Sequence[Second],
    numerator: Callable[[Second], float | None],
    denominator: Callable[[Second], float | None],
) -> tuple[float | None, tuple[float, ...]]:
    """sum(numerator) / sum(denominator) over seconds where both are known, and the per-second ratios
    (seconds with a zero denominator give none)."""
    pairs = [(numerator(x), denominator(x)) for x in steady]
    known = [(n, d) for n, d in pairs if n is not None and d is not None]
    total = sum(d for _, d in known)
    value = sum(n for n, _ in known) / total if known and total > 0 else None
    return value, tuple(n / d for n, d in known if d > 0)


def throughput(steady: Sequence[Second]) -> MetricSamples:
    """Achieved / offered requests (see the module docstring)."""
    value, samples = _ratio_of_sums(steady, lambda x: x.achieved_rate, lambda x: x.offered_rate)
    return MetricSamples(value, as_float_array(samples), None if value is not None else "nothing was offered")


def error_rate(steady: Sequence[Second]) -> MetricSamples:
    """Requests not answered successfully / requests sent."""
    value, samples = _ratio_of_sums(
        steady, lambda x: max(0.0, x.sent_rate - x.achieved_rate), lambda x: x.sent_rate
    )
    return MetricSamples(value, as_float_array(samples), None if value is not None else "nothing was sent")


def p99(steady: Sequence[Second]) -> MetricSamples:
    """Median of the steady seconds' corrected P99 (ms)."""
    samples = tuple(x.corrected_p99_ms for x in steady if x.corrected_p99_ms is not None)
    if not samples:
        return MetricSamples.missing("no second had a successful request")
    return MetricSamples(statistics.median(samples), as_float_array(samples))


def cpu_per_order(steady: Sequence[Second]) -> MetricSamples:
    """Server CPU-seconds per achieved request."""
    source, cpu = _cpu_source(steady)
    if cpu is None:
        return MetricSamples.missing("server CPU was not measured (--target without --server-pid?)")

    def cores(second: Second) -> float | None:
        percent = cpu(second)
        return None if percent is None else percent / 100.0

    value, samples = _ratio_of_sums(steady, cores, lambda x: x.achieved_rate)
    if value is None:
        return MetricSamples.missing("no request succeeded", source)
    return MetricSamples(value, as_float_array(samples), None, source)


def _cpu_source(steady: Sequence[Second]) -> tuple[str | None, Callable[[Second], float | None] | None]:
    """Which CPU figure to use: the sampled server process if every steady second has it, else the
    exchange's own report if every second has that, else none."""
    if steady and all(x.server_cpu_percent is not None for x in steady):
        return "server", lambda x: x.server_cpu_percent
    if steady and all(x.exchange_cpu_percent is not None for x in steady):
        return "exchange", lambda x: x.exchange_cpu_percent
    return None, None


def rss_per_resting_order(steady: Sequence[Second]) -> MetricSamples:
    """Server RSS growth per added resting order (bytes)."""
    points = [
        (float(rss), float(resting))
        for x in steady
        if (rss := x.server_rss_bytes if x.server_rss_bytes is not None else x.exchange_rss_bytes) is not None
        and (resting := x.exchange_resting_orders) is not None
    ]
    if len(points) < 2:
        return MetricSamples.missing("RSS or resting orders were not reported")
    growth = points[-1][1] - points[0][1]
    if growth < MIN_RESTING_GROWTH:
        return MetricSamples.missing(
            f"resting orders grew by {growth:.0f}, fewer than the {MIN_RESTING_GROWTH} it needs"
        )
    per_second = growth / (len(points) - 1)
    samples = tuple((b[0] - a[0]) / per_second for a, b in itertools.pairwise(points))
    return MetricSamples((points[-1][0] - points[0][0]) / growth, as_float_array(samples))


_COMPUTE: dict[str, Callable[[Sequence[Second]], MetricSamples]] = {
    "throughput": throughput,
    "p99": p99,
    "error_rate": error_rate,
    "cpu_per_order": cpu_per_order,
    "rss_per_resting_order": rss_per_resting_order,
}
assert _COMPUTE.keys() == METRICS.keys()


def pool(tiers: Sequence[TierData]) -> TierData:
    """Several usable runs of one tier as one baseline tier: per metric the median of the runs' values
    and all their per-second samples (see ``MetricSamples``). ``steady_seconds`` is the shortest run's;
    scenario, summary and SLO figures are the first run's. A metric missing from any run, or measured
    from different sources, is left unmeasured with a note."""
    if len(tiers) == 1:
        return tiers[0]
    first = tiers[0]
    metrics: dict[str, MetricSamples] = {}
    for key in METRICS:
        parts = [t.metrics.get(key) for t in tiers]
        missing = [i for i, m in enumerate(parts, start=1) if m is None or m.value is None]
        if missing:
            metrics[key] = MetricSamples.missing(f"not measured in run(s) {', '.join(map(str, missing))}")
            continue
        sources = {m.source for m in parts if m is not None}
        if len(sources) > 1:
            metrics[key] = MetricSamples.missing("the runs measured it from different sources")
            continue
        values = tuple(m.value for m in parts if m is not None and m.value is not None)
        samples = as_float_array(np.concatenate([m.samples for m in parts if m is not None]))
        metrics[key] = MetricSamples(statistics.median(values), samples, None, sources.pop(), values)
    others = [t.other_cpu_percent_mean for t in tiers if t.other_cpu_percent_mean is not None]
    return TierData(
        name=first.name,
        status=first.status,
        problems=(),
        offered_rate=first.offered_rate,
        steady_seconds=min(t.steady_seconds for t in tiers),
        slo=first.slo,
        metrics=metrics,
        scenario=first.scenario,
        summary=first.summary,
        other_cpu_percent_mean=statistics.mean(others) if others else None,
        runs=sum(t.runs for t in tiers),
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _round(value: float) -> float:
    """Samples rounded to 6 significant digits: far below any noise, and a smaller baseline file."""
    return float(f"{value:.6g}")
