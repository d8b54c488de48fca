"""Server-side metrics: windowed rates and HDR latency for ``/api/metrics``, Prometheus text for ``/metrics``.

Two views of the same events, kept by one object (``ServerMetrics``):

- **The window** (``snapshot``): the last ``window_s`` seconds (METRICS_COLLECTION_TIME) as a ring of slots,
  one per second (or ``window_s / 60`` s when the window is longer than a minute). Each slot holds plain
  counters and, for order-placement requests, an HdrHistogram (1 µs .. 60 s, 3 significant digits). A
  snapshot merges the live slots, so percentiles are exact to the histogram's precision and events drop out
  of the window one slot at a time. The window always covers at least ``window_s`` seconds (at most one
  slot more), or the whole uptime when that is shorter (but at least one slot, so the first second does
  not show absurd rates); rates divide by exactly that span, reported as ``window_seconds``.
- **Cumulative counters** (``render_prometheus``): totals since start, exposed through prometheus-client on
  a per-instance ``CollectorRegistry``. They are kept as plain ints and bucket lists and turned into metric
  families at scrape time by a custom collector: that is exact, and a fraction of the cost of
  prometheus-client's own ``Counter.inc`` + ``Histogram.observe`` (a lock each, a bucket scan).
  The duration histogram is labelled by route *and* method (``/api/orders`` serves more than one method).

Error accounting (decided here, reported per window):
- ``error_rate`` = share of requests the server failed or refused: every 5xx (503 shedding included) and
  429. That is what says the server is out of capacity.
- ``shed_rate`` = the 503/429 part of it alone; ``server_error_rate`` = the other 5xx.
- ``client_error_rate`` = other 4xx (bad request, unknown order, ...): the client's mistake, not counted in
  ``error_rate``.
Latency percentiles are over successful (< 400) order placements only: a fast 503 or 400 would otherwise
flatter the P99 exactly when the server is failing; failures show up in the rates instead.

Cost: the hot path is ``observe`` with a ``RouteStats`` bound once per route (``route_stats``), so no
label tuple is built or hashed per request; ``observe_request`` looks the route up first. An order
placement's latency is counted in a per-slot dict (µs -> count) and folded into the slot's HdrHistogram
when a snapshot reads it (``record_value`` is pure Python: once per distinct value and read, not once per
request). The costs are in docs/benchmarks.md, "Micro-costs behind code choices".
Memory: one ~140 KB histogram per slot that saw order traffic, so at most ~8.5 MB, plus the unfolded
counts (at most ``MAX_UNFOLDED`` distinct µs values per slot: more are folded on the spot).

Not thread-safe: everything runs on the server's single event loop (scrapes included).
"""

from __future__ import annotations

import math
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil
from hdrh.histogram import HdrHistogram
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

# The request whose latency the snapshot reports (the seed's avg_latency / p99_latency).
ORDER_ROUTE: tuple[str, str] = ("POST", "/api/orders")

LATENCY_LOWEST_US = 1
LATENCY_HIGHEST_US = 60_000_000  # 60 s; slower requests are clamped to it rather than silently dropped
LATENCY_SIGNIFICANT_DIGITS = 3

# Prometheus bucket upper bounds in seconds: 1-2.5-5 steps from 50 µs to 5 s.
DURATION_BUCKETS_S: tuple[float, ...] = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
_BUCKET_LABELS: tuple[str, ...] = (*(floatToGoString(b) for b in DURATION_BUCKETS_S), "+Inf")

SHED_STATUSES = frozenset({429, 503})
MAX_SLOTS = 60  # longer windows get longer slots, so memory and snapshot cost stay bounded
MAX_UNFOLDED = 1024  # distinct latencies a slot counts before folding them into its histogram
MIN_SLOT_S = 1.0  # a fresh HdrHistogram is costly to allocate: at most one per second


def new_latency_histogram() -> HdrHistogram:
    """An empty histogram in microseconds with the module's range and precision.

    hdrh's histogram and its encoder refer to each other: a cycle, which the exchange's collector policy
    (``gc_policy``) tenures, so each slot's and each snapshot's 139 KB of counts would wait for a thorough
    collection. With the encoder's reference weak, a histogram is freed as soon as nothing uses it."""
    histogram = HdrHistogram(LATENCY_LOWEST_US, LATENCY_HIGHEST_US, LATENCY_SIGNIFICANT_DIGITS)
    histogram.encoder.histogram = weakref.proxy(histogram)
    return histogram


@dataclass(slots=True)
class _Slot:
    """Counts for one slot of the window. ``index`` is the slot number since start."""

    index: int
    requests: int = 0
    server_errors: int = 0  # 5xx other than shedding
    shed: int = 0  # 503 / 429
    client_errors: int = 0  # other 4xx
    orders: int = 0
    trades: int = 0
    # Order latencies not yet in ``histogram()``: µs -> count. Counting here is a dict update, where
    # HdrHistogram.record_value is a Python call per order; requests repeat the same few hundred
    # values, so a read folds far fewer entries than there were requests.
    unfolded: dict[int, int] = field(default_factory=dict)
    latency: HdrHistogram | None = None  # allocated when the first latency is folded
    latency_sum_us: int = 0  # exact sum of every latency counted, for the mean

    def histogram(self) -> HdrHistogram | None:
        """The slot's latencies so far (None if it has none), folding in those counted since the last call."""
        unfolded = self.unfolded
        if unfolded:
            latency = self.latency
            if latency is None:
                latency = self.latency = new_latency_histogram()
            for micros, count in unfolded.items():
                latency.record_value(micros, count)
            unfolded.clear()
        return self.latency


@dataclass(slots=True)
class RouteStats:
    """Cumulative counts of one (route, method): requests per status and the Prometheus duration
    histogram (per-bucket counts, last = +Inf, and the sum). ``orders``: its successful requests' latency
    goes into the window's HdrHistograms."""

    route: str
    method: str
    orders: bool
    statuses: dict[int, int] = field(default_factory=dict)
    counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS_S) + 1))
    sum_s: float = 0.0


@dataclass(slots=True)
class WindowStats:
    """The slots of the window added up. ``span_s`` is the time they cover in seconds (>= one slot)."""

    span_s: float
    requests: int = 0
    server_errors: int = 0
    shed: int = 0
    client_errors: int = 0
    orders: int = 0
    trades: int = 0
    latency: HdrHistogram = field(default_factory=new_latency_histogram)
    latency_sum_us: int = 0

    def rate(self, count: int) -> float:
        """Events per second over the window."""
        return count / self.span_s

    def share(self, count: int) -> float:
        """Fraction (0..1) of the window's requests."""
        return count / self.requests if self.requests else 0.0

    def add(self, slot: _Slot) -> None:
        self.requests += slot.requests
        self.server_errors += slot.server_errors
        self.shed += slot.shed
        self.client_errors += slot.client_errors
        self.orders += slot.orders
        self.trades += slot.trades
        latency = slot.histogram()
        if latency is not None:
            self.latency.add(latency)
            self.latency_sum_us += slot.latency_sum_us


class ServerMetrics:
    """Request and order metrics of one exchange process; also the service's ``OrderObserver``.

    ``window_s``: the span of ``snapshot`` rates and percentiles in seconds (METRICS_COLLECTION_TIME).
    ``clock``: monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        order_route: tuple[str, str] = ORDER_ROUTE,
    ) -> None:
        if not window_s > 0 or not math.isfinite(window_s):
            raise ValueError(f"window_s must be a positive number of seconds, got {window_s!r}")
        self.window_s = float(window_s)
        self._clock = clock
        self._order_method, self._order_route = order_route
        self._slot_s = max(MIN_SLOT_S, self.window_s / MAX_SLOTS)
        # One slot more than the window needs, so the window never covers less than window_s.
        self._ring_size = math.ceil(self.window_s / self._slot_s) + 1
        self._ring: list[_Slot | None] = [None] * self._ring_size
        self._start = clock()
        self._slot = self._rotate(self._start)

        self.total_orders = 0
        self.total_trades = 0
        self._routes: dict[tuple[str, str], RouteStats] = {}
        self._scrape_resting_orders = 0

        self._process = psutil.Process()
        self._process.cpu_percent(interval=None)  # the first call only sets the baseline and returns 0.0
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.registry.register(_ExchangeCollector(self))

    # -- recording (hot path) ------------------------------------------------------------------

    def route_stats(self, route: str, method: str) -> RouteStats:
        """The counters of ``route`` (the route pattern, ``/api/orders/{id}``, never the raw path, so
        label sets stay bounded) and ``method``; handlers bind this once and pass it to ``observe``."""
        stats = self._routes.get((route, method))
        if stats is None:
            orders = route == self._order_route and method == self._order_method
            stats = self._routes[(route, method)] = RouteStats(route, method, orders)
        return stats

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Record one handled HTTP request; ``seconds`` is the server-side handling time."""
        self.observe(self.route_stats(route, method), status, seconds)

    def observe(self, stats: RouteStats, status: int, seconds: float) -> None:
        """``observe_request`` for a route whose ``RouteStats`` the caller holds (the per-request path)."""
        now = self._clock()
        slot = self._slot if now < self._slot_end else self._rotate(now)  # inlined, not a helper: hot path
        slot.requests += 1
        statuses = stats.statuses
        statuses[status] = statuses.get(status, 0) + 1
        stats.counts[bisect_left(DURATION_BUCKETS_S, seconds)] += 1  # bisect_left: a bound is "le"
        stats.sum_s += seconds
        if status >= 400:
            _count_failure(slot, status)
        elif stats.orders:
            micros = int(seconds * 1_000_000 + 0.5)  # rounded half up
            if not LATENCY_LOWEST_US <= micros <= LATENCY_HIGHEST_US:
                micros = min(max(micros, LATENCY_LOWEST_US), LATENCY_HIGHEST_US)
            unfolded = slot.unfolded
            unfolded[micros] = unfolded.get(micros, 0) + 1
            slot.latency_sum_us += micros
            if len(unfolded) >= MAX_UNFOLDED:  # bounds memory when nothing reads the window
                slot.histogram()

    def observe_order(self, trades: int) -> None:
        """Count one accepted order and the ``trades`` it executed (called by ``ExchangeService``)."""
        now = self._clock()
        slot = self._slot if now < self._slot_end else self._rotate(now)
        slot.orders += 1
        slot.trades += trades
        self.total_orders += 1
        self.total_trades += trades

    def _rotate(self, now: float) -> _Slot:
        """Start the slot that contains ``now``, replacing the ring entry it reuses."""
        index = int((now - self._start) // self._slot_s)
        slot = _Slot(index)
        self._ring[index % self._ring_size] = slot
        self._slot = slot
        self._slot_end = self._start + (index + 1) * self._slot_s
        return slot

    # -- reading ---------------------------------------------------------------------------------

    @property
    def uptime_seconds(self) -> float:
        return self._clock() - self._start

    def window(self) -> WindowStats:
        """The live slots added up; ``latency`` is the merged HdrHistogram in microseconds."""
        now = self._clock()
        current = int((now - self._start) // self._slot_s)
        oldest = current - self._ring_size + 1
        covered = now - max(self._start, self._start + oldest * self._slot_s)
        # At least one slot: right after start a handful of events would otherwise read as a huge rate.
        window = WindowStats(span_s=max(covered, self._slot_s))
        for slot in self._ring:
            if slot is not None and oldest <= slot.index <= current:
                window.add(slot)
        return window

    def snapshot(self, resting_orders: int, extra: Mapping[str, object] | None = None) -> dict[str, Any]:
        """``{"data": {...}}`` for ``GET /api/metrics``: the seed's keys first, then ``extra`` (which can
        add keys but not replace these). Rates are per second, latencies in ms, shares 0..1."""
        window = self.window()
        data: dict[str, Any] = {
            "orders_per_sec": window.rate(window.orders),
            "trades_per_sec": window.rate(window.trades),
            **_latency_fields(window),
            "cpu_percent": self._process.cpu_percent(interval=None),
            "requests_per_sec": window.rate(window.requests),
            "error_rate": window.share(window.server_errors + window.shed),
            "server_error_rate": window.share(window.server_errors),
            "shed_rate": window.share(window.shed),
            "client_error_rate": window.share(window.client_errors),
            **self._memory_fields(),
            "resting_orders": resting_orders,
            "total_orders": self.total_orders,
            "total_trades": self.total_trades,
            "total_requests": sum(sum(stats.statuses.values()) for stats in self._routes.values()),
            "uptime_seconds": self.uptime_seconds,
            "window_seconds": window.span_s,
            "timestamp": time.time(),
        }
        for key, value in (extra or {}).items():
            data.setdefault(key, value)
        return {"data": data}

    def _memory_fields(self) -> dict[str, Any]:
        rss = self._process.memory_info().rss
        return {"memory_rss_bytes": rss, "memory_mb": rss / (1024 * 1024)}

    def render_prometheus(self, resting_orders: int) -> tuple[bytes, str]:
        """The Prometheus text exposition (body, content type) of this instance's registry."""
        self._scrape_resting_orders = resting_orders
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def metric_families(self) -> Iterator[Metric]:
        """Cumulative exchange metrics as prometheus-client families (used by the registry's collector)."""
        yield CounterMetricFamily("exchange_orders", "Orders accepted by the engine", value=self.total_orders)
        yield CounterMetricFamily("exchange_trades", "Trades executed", value=self.total_trades)
        requests = CounterMetricFamily(
            "exchange_http_requests", "HTTP requests handled", labels=["route", "method", "status"]
        )
        routes = list(self._routes.values())
        for stats in routes:
            for status, count in list(stats.statuses.items()):
                requests.add_metric([stats.route, stats.method, str(status)], count)
        yield requests
        durations = HistogramMetricFamily(
            "exchange_http_request_duration_seconds",
            "Server-side handling time of HTTP requests",
            labels=["route", "method"],
        )
        for stats in routes:
            buckets = _cumulative_buckets(stats.counts)
            durations.add_metric([stats.route, stats.method], buckets, sum_value=stats.sum_s)
        yield durations
        yield GaugeMetricFamily(
            "exchange_resting_orders", "Open orders resting in the books", value=self._scrape_resting_orders
        )
        yield GaugeMetricFamily("exchange_uptime_seconds", "Seconds since start", value=self.uptime_seconds)


class _ExchangeCollector:
    """Adapter that lets the registry pull ``ServerMetrics.metric_families`` at scrape time."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.metric_families()


def _count_failure(slot: _Slot, status: int) -> None:
    if status in SHED_STATUSES:
        slot.shed += 1
    elif status >= 500:
        slot.server_errors += 1
    else:
        slot.client_errors += 1


def _latency_fields(window: WindowStats) -> dict[str, Any]:
    """Order-placement latency over the window in milliseconds (0.0 when there were no samples)."""
    hist = window.latency
    count = hist.get_total_count()
    # One pass over the counts for all percentiles; values come back in µs.
    percentiles = hist.get_percentile_to_value_dict([50.0, 99.0, 99.9]) if count else {}
    return {
        # The mean from the exact sum, not HdrHistogram.get_mean_value (a Python loop over the counts).
        "avg_latency": window.latency_sum_us / count / 1000.0 if count else 0.0,
        "p50_latency": percentiles.get(50.0, 0) / 1000.0,
        "p99_latency": percentiles.get(99.0, 0) / 1000.0,
        "p999_latency": percentiles.get(99.9, 0) / 1000.0,
        "max_latency": hist.get_max_value() / 1000.0,
        "latency_samples": count,
        "latency_unit": "ms",
    }


def _cumulative_buckets(counts: list[int]) -> list[tuple[str, int]]:
    """Per-bucket counts to Prometheus's cumulative (le, count) pairs ending with +Inf."""
    total = 0
    buckets = []
    for label, count in zip(_BUCKET_LABELS, counts, strict=True):
        total += count
        buckets.append((label, total))
    return buckets
