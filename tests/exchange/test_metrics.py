"""ServerMetrics: windowed rates with a fake clock, HDR percentiles, snapshot shape, Prometheus text."""

from __future__ import annotations

import json
import weakref

import pytest
import support
from hdrh.histogram import HdrHistogram
from prometheus_client.parser import text_string_to_metric_families

from reference_exchange.metrics import MAX_UNFOLDED, ServerMetrics, new_latency_histogram

ORDERS = "/api/orders"


class FakeClock:
    """Monotonic seconds that only move when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics(clock: FakeClock) -> ServerMetrics:
    return ServerMetrics(window_s=60.0, clock=clock)


def data(metrics: ServerMetrics, resting: int = 0) -> dict:
    return metrics.snapshot(resting)["data"]


def test_rates_cover_uptime_while_it_is_shorter_than_the_window(metrics, clock):
    for _ in range(10):
        for _ in range(12):
            metrics.observe_order(trades=2)
        clock.advance(1.0)
    clock.advance(20.0)  # uptime 30 s
    snapshot = data(metrics)
    assert snapshot["window_seconds"] == pytest.approx(30.0)
    assert snapshot["orders_per_sec"] == pytest.approx(120 / 30)
    assert snapshot["trades_per_sec"] == pytest.approx(240 / 30)


def test_events_older_than_the_window_drop_out(metrics, clock):
    clock.advance(5.5)
    for _ in range(50):
        metrics.observe_order(trades=1)
    clock.advance(60.4)  # 60.4 s old: still inside the window (which covers 60..61 s)
    snapshot = data(metrics)
    assert snapshot["orders_per_sec"] == pytest.approx(50 / snapshot["window_seconds"])
    clock.advance(0.6)  # 61 s old: its slot has left the window
    snapshot = data(metrics)
    assert snapshot["orders_per_sec"] == 0.0
    assert snapshot["trades_per_sec"] == 0.0
    assert snapshot["total_orders"] == 50  # totals are cumulative


def test_full_window_rate_divides_by_the_covered_span(metrics, clock):
    clock.advance(200.0)
    for _ in range(300):
        metrics.observe_order(trades=0)
        metrics.observe_request(ORDERS, "POST", 201, 0.001)
        clock.advance(0.2)  # 60 s of steady 5 orders/s
    snapshot = data(metrics)
    assert 60.0 <= snapshot["window_seconds"] <= 61.0
    assert snapshot["orders_per_sec"] == pytest.approx(5.0, rel=0.02)
    assert snapshot["requests_per_sec"] == pytest.approx(5.0, rel=0.02)


def test_the_first_instants_do_not_read_as_huge_rates(metrics, clock):
    clock.advance(0.001)
    metrics.observe_order(trades=0)
    assert data(metrics)["orders_per_sec"] == pytest.approx(1.0)


def test_p99_is_what_hdrhistogram_says(metrics, clock):
    expected = HdrHistogram(1, 60_000_000, 3)
    for ms in range(1, 1001):
        metrics.observe_request(ORDERS, "POST", 201, ms / 1000)
        expected.record_value(ms * 1000)
        if ms % 100 == 0:
            clock.advance(1.0)  # spread over several slots so that the merge is exercised
    snapshot = data(metrics)
    assert snapshot["latency_samples"] == 1000
    assert snapshot["p99_latency"] == expected.get_value_at_percentile(99) / 1000
    assert snapshot["p50_latency"] == expected.get_value_at_percentile(50) / 1000
    assert snapshot["p999_latency"] == expected.get_value_at_percentile(99.9) / 1000
    assert snapshot["p99_latency"] == pytest.approx(990.0, rel=0.001)
    assert snapshot["avg_latency"] == pytest.approx(500.5)  # exact mean, not bucket midpoints
    assert snapshot["latency_unit"] == "ms"


def test_latencies_are_counted_alike_however_reads_and_folds_fall(metrics, clock):
    # More distinct values in one slot than it keeps unfolded, repeats, and a read half-way through:
    # each latency must be counted exactly once.
    expected = HdrHistogram(1, 60_000_000, 3)
    micros = [us for us in range(50, 50 + 2 * MAX_UNFOLDED + 7) for _ in range(us % 3 + 1)]
    for i, us in enumerate(micros):
        metrics.observe_request(ORDERS, "POST", 201, us / 1e6)
        expected.record_value(us)
        if i == len(micros) // 2:
            assert data(metrics)["latency_samples"] == i + 1
    snapshot = data(metrics)
    assert snapshot["latency_samples"] == len(micros) == expected.get_total_count()
    assert snapshot["p50_latency"] == expected.get_value_at_percentile(50) / 1000
    assert snapshot["p999_latency"] == expected.get_value_at_percentile(99.9) / 1000
    assert snapshot["avg_latency"] == pytest.approx(sum(micros) / len(micros) / 1000)


def test_latency_counts_only_successful_order_placements(metrics):
    metrics.observe_request(ORDERS, "POST", 201, 0.002)
    metrics.observe_request(ORDERS, "POST", 503, 0.00001)  # shed: fast, must not flatter the P99
    metrics.observe_request(ORDERS, "POST", 400, 0.00001)
    metrics.observe_request(ORDERS, "GET", 200, 5.0)
    metrics.observe_request("/api/orderbook/{symbol}", "GET", 200, 5.0)
    snapshot = data(metrics)
    assert snapshot["latency_samples"] == 1
    assert snapshot["p99_latency"] == pytest.approx(2.0, rel=0.001)


def test_out_of_range_latencies_are_clamped_not_dropped(metrics):
    metrics.observe_request(ORDERS, "POST", 201, 120.0)
    metrics.observe_request(ORDERS, "POST", 201, 0.0)
    snapshot = data(metrics)
    assert snapshot["latency_samples"] == 2
    assert snapshot["max_latency"] == pytest.approx(60_000.0, rel=0.001)


def test_errors_are_split_into_server_shed_and_client(metrics):
    for status in (200, 201, 400, 404, 500, 503, 429):
        metrics.observe_request(ORDERS, "POST", status, 0.001)
    snapshot = data(metrics)
    assert snapshot["error_rate"] == pytest.approx(3 / 7)  # 500, 503, 429
    assert snapshot["server_error_rate"] == pytest.approx(1 / 7)
    assert snapshot["shed_rate"] == pytest.approx(2 / 7)
    assert snapshot["client_error_rate"] == pytest.approx(2 / 7)  # not part of error_rate


def test_snapshot_has_the_seed_keys_with_the_right_types(metrics):
    metrics.observe_request(ORDERS, "POST", 201, 0.003)
    metrics.observe_order(trades=1)
    snapshot = metrics.snapshot(7, extra={"journal": {"pending": 0}, "resting_orders": -1})
    assert set(snapshot) == {"data"}
    body = snapshot["data"]
    seed_keys = ["orders_per_sec", "trades_per_sec", "avg_latency", "p99_latency", "cpu_percent"]
    more = ["p50_latency", "p999_latency", "requests_per_sec", "error_rate", "memory_mb", "uptime_seconds"]
    for key in [*seed_keys, *more, "window_seconds"]:
        assert isinstance(body[key], float), key
    for key in ("memory_rss_bytes", "resting_orders", "total_orders", "total_trades"):
        assert isinstance(body[key], int), key
    assert body["memory_rss_bytes"] > 0
    assert body["latency_unit"] == "ms"
    assert body["resting_orders"] == 7  # extra adds keys but cannot replace the metrics' own
    assert body["journal"] == {"pending": 0}
    json.dumps(snapshot)  # plain JSON types only


def prometheus_samples(metrics: ServerMetrics, resting: int = 0) -> dict[tuple, float]:
    body, content_type = metrics.render_prometheus(resting)
    assert content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_prometheus_text_parses_and_counts_match(metrics):
    for _ in range(3):
        metrics.observe_order(trades=2)
        metrics.observe_request(ORDERS, "POST", 201, 0.0003)
    metrics.observe_request("/api/orders/{id}", "DELETE", 404, 0.00004)
    samples = prometheus_samples(metrics, resting=11)

    assert samples[("exchange_orders_total", ())] == 3
    assert samples[("exchange_trades_total", ())] == 6
    assert samples[("exchange_resting_orders", ())] == 11
    post = (("method", "POST"), ("route", ORDERS))
    assert samples[("exchange_http_requests_total", (*post, ("status", "201")))] == 3
    cancel = (("method", "DELETE"), ("route", "/api/orders/{id}"), ("status", "404"))
    assert samples[("exchange_http_requests_total", cancel)] == 1

    duration = "exchange_http_request_duration_seconds"
    assert samples[(duration + "_count", post)] == 3
    assert samples[(duration + "_sum", post)] == pytest.approx(0.0009)
    assert samples[(duration + "_bucket", (("le", "0.00025"), *post))] == 0
    assert samples[(duration + "_bucket", (("le", "0.0005"), *post))] == 3
    assert samples[(duration + "_bucket", (("le", "+Inf"), *post))] == 3
    assert any(name == "process_cpu_seconds_total" for name, _ in samples)


def test_labels_use_the_route_pattern(metrics):
    metrics.observe_request("/api/orders/{id}", "GET", 200, 0.001)
    metrics.observe_request("/api/orders/{id}", "GET", 200, 0.001)
    routes = {dict(labels).get("route") for name, labels in prometheus_samples(metrics) if labels}
    assert "/api/orders/{id}" in routes
    assert not any(route and any(c.isdigit() for c in route) for route in routes)


def test_instances_have_their_own_registries(clock):
    first, second = ServerMetrics(clock=clock), ServerMetrics(clock=clock)
    first.observe_order(trades=0)
    assert prometheus_samples(first)[("exchange_orders_total", ())] == 1
    assert prometheus_samples(second)[("exchange_orders_total", ())] == 0


def test_long_windows_use_longer_slots(clock):
    metrics = ServerMetrics(window_s=3600.0, clock=clock)
    metrics.observe_order(trades=0)
    clock.advance(3500.0)
    assert data(metrics)["total_orders"] == 1
    assert data(metrics)["orders_per_sec"] == pytest.approx(1 / 3500.0)
    clock.advance(200.0)
    assert data(metrics)["orders_per_sec"] == 0.0


@pytest.mark.parametrize("window", [0.0, -1.0, float("nan"), float("inf")])
def test_window_must_be_positive_and_finite(window):
    with pytest.raises(ValueError, match="window_s"):
        ServerMetrics(window_s=window)


def test_a_latency_histogram_is_freed_without_the_garbage_collector() -> None:
    """hdrh's histogram and its encoder refer to each other; the exchange tenures what survives a
    collection, so such a cycle would keep 139 KB a slot until a thorough one."""
    histogram = new_latency_histogram()
    histogram.record_value(1_000)
    other = new_latency_histogram()
    other.add(histogram)  # adding and encoding still work through the weak reference
    assert other.get_total_count() == 1 and histogram.encode()
    gone = weakref.ref(histogram)
    with support.collector_off():
        del histogram
        assert gone() is None
