"""The per-second series of a run: the generator's seconds joined with the 1 Hz samples.

Second ``t`` is the wall-clock interval ``[started_at + t, started_at + t + 1)`` where ``started_at`` is
t = 0 of the generator's schedule (unix seconds). A process sample covers ``[time - interval_s, time]``;
its CPU is spread over the seconds it overlaps (time-weighted), which is exact for a rate. RSS is the
largest value seen while the second overlapped a sample. Exchange samples are instantaneous reads of
its own metrics window; second ``t`` takes the first read at or after its end (within one second), else
the last read inside it. A second's backlog is what the generator owed its schedule at its end: the slots
due by then (``scheduled``, by intended second) less the requests sent by then (``dispatched``, by the
second they left).
"""

from __future__ import annotations

from collections.abc import Sequence

from capacity.measure.sampler import ExchangeSample, ProcessSample
from capacity.results.run_file import Second
from capacity.run.loadgen_reader import LoadgenSecond


def build_series(
    seconds: Sequence[LoadgenSecond],
    started_at: float,
    process_samples: Sequence[ProcessSample] = (),
    exchange_samples: Sequence[ExchangeSample] = (),
    interval_s: float = 1.0,
) -> tuple[Second, ...]:
    """One ``Second`` per generator second, with server, generator and exchange figures joined in."""
    series = []
    due = dispatched = 0
    for entry in seconds:
        due += entry.counts.scheduled
        dispatched += entry.dispatched or 0
        start = started_at + entry.t * interval_s
        end = start + interval_s
        server_cpu, generator_cpu, other_cpu, rss = _process_figures(process_samples, start, end)
        exchange = _exchange_at(exchange_samples, start, end)
        counts = entry.counts
        series.append(
            Second(
                t=entry.t,
                offered_rate=entry.offered_rate,
                sent_rate=counts.sent / interval_s,
                # work done: answers by the second they arrived (a saturated server's late answers are
                # its throughput then, not the second they were scheduled in); older files: by schedule
                achieved_rate=(counts.ok if entry.completed is None else entry.completed) / interval_s,
                errors_per_s=counts.errors / interval_s,
                shed_per_s=counts.shed / interval_s,
                late_per_s=counts.late / interval_s,
                corrected_p50_ms=entry.corrected.p50_ms,
                corrected_p99_ms=entry.corrected.p99_ms,
                corrected_p999_ms=entry.corrected.p999_ms,
                raw_p50_ms=entry.raw.p50_ms,
                raw_p99_ms=entry.raw.p99_ms,
                raw_p999_ms=entry.raw.p999_ms,
                server_cpu_percent=server_cpu,
                server_rss_bytes=rss,
                generator_cpu_percent=generator_cpu,
                other_cpu_percent=other_cpu,
                exchange_orders_per_sec=exchange.orders_per_sec if exchange else None,
                exchange_p99_ms=exchange.p99_ms if exchange else None,
                exchange_resting_orders=exchange.resting_orders if exchange else None,
                exchange_rss_bytes=exchange.rss_bytes if exchange else None,
                exchange_cpu_percent=exchange.cpu_percent if exchange else None,
                exchange_trades_per_sec=exchange.trades_per_sec if exchange else None,
                backlog=None if entry.dispatched is None else max(due - dispatched, 0),
            )
        )
    return tuple(series)


def _process_figures(
    samples: Sequence[ProcessSample], start: float, end: float
) -> tuple[float | None, float | None, float | None, int | None]:
    """Time-weighted server, generator and other CPU % over ``[start, end)``, and the largest RSS seen."""
    server = _Weighted()
    generator = _Weighted()
    other = _Weighted()
    rss: int | None = None
    for sample in samples:
        overlap = min(end, sample.time) - max(start, sample.time - sample.interval_s)
        if overlap <= 0:
            continue
        server.add(sample.server_cpu_percent, overlap)
        generator.add(sample.generator_cpu_percent, overlap)
        other.add(sample.other_cpu_percent, overlap)
        if sample.server_rss_bytes is not None:
            rss = max(rss or 0, sample.server_rss_bytes)
    return server.mean(), generator.mean(), other.mean(), rss


def _exchange_at(samples: Sequence[ExchangeSample], start: float, end: float) -> ExchangeSample | None:
    after = [s for s in samples if end <= s.time < end + 1.0]
    if after:
        return after[0]
    inside = [s for s in samples if start <= s.time < end]
    return inside[-1] if inside else None


class _Weighted:
    def __init__(self) -> None:
        self.total = 0.0
        self.weight = 0.0

    def add(self, value: float | None, weight: float) -> None:
        if value is not None:
            self.total += value * weight
            self.weight += weight

    def mean(self) -> float | None:
        return self.total / self.weight if self.weight > 0 else None
