"""Event-loop lag: the overload signal that works without a journal.

With a journal, commands pile up waiting for durability and the service sheds beyond
``MAX_PENDING_ORDERS``. Without one (``JOURNAL_PATH=none``) nothing waits there: every order is handled
to completion in one go, so when requests arrive faster than the single event loop can serve them they
queue in socket buffers and in the loop's ready queue instead, where nothing counts them. What does
show it is lag: how late the loop gets round to a timer. ``LagMonitor`` sleeps ``interval_s`` in a loop
and measures how late each sleep wakes; the service refuses new orders (503 + Retry-After) while the
lag is above ``max_lag_s`` (OVERLOAD_MAX_LAG). Refusing is much cheaper than matching, journaling and
serialising an order, so the loop catches up, and the orders that are admitted wait at most about the
threshold in the loop.

``lag_s()`` is the larger of the last measurement and how overdue the pending sleep is right now, so
a stall is seen while it happens, not only after the monitor wakes; it is one clock read and a
comparison, cheap enough for every order. A stopped monitor reports no lag, so a dead monitor can never
shed everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

DEFAULT_INTERVAL_S = 0.05


class LagMonitor:
    """Measures event-loop lag every ``interval_s`` seconds; ``start()`` and ``stop()`` on the loop."""

    def __init__(
        self,
        max_lag_s: float,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(max_lag_s) and max_lag_s > 0):
            raise ValueError(f"max_lag_s must be a positive number of seconds, got {max_lag_s!r}")
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise ValueError(f"interval_s must be a positive number of seconds, got {interval_s!r}")
        self._max_lag_s = max_lag_s
        self.interval_s = interval_s
        self._clock = clock
        self._last_lag_s = 0.0
        self._due = math.inf  # when the pending sleep should wake; inf while not running
        self._task: asyncio.Task[None] | None = None
        self.samples = 0
        self.max_seen_s = 0.0  # worst lag measured since start

    @property
    def max_lag_s(self) -> float:
        return self._max_lag_s

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def lag_s(self) -> float:
        """Seconds the loop is behind now: the last measurement, or more if a wake-up is overdue."""
        overdue = self._clock() - self._due
        return overdue if overdue > self._last_lag_s else self._last_lag_s

    def overloaded(self) -> bool:
        return self.lag_s() > self._max_lag_s

    def start(self) -> None:
        """Start measuring on the running loop (idempotent)."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        try:
            while True:
                self._due = self._clock() + self.interval_s
                await asyncio.sleep(self.interval_s)
                lag = max(0.0, self._clock() - self._due)
                self._last_lag_s = lag
                self.samples += 1
                if lag > self.max_seen_s:
                    self.max_seen_s = lag
        finally:
            self._due = math.inf
            self._last_lag_s = 0.0

    def stats(self) -> dict[str, Any]:
        """For ``/api/metrics``: current and worst lag in ms, the limit, and whether new orders are shed."""
        lag_s = self.lag_s()
        return {
            "loop_lag_ms": round(lag_s * 1000, 3),
            "loop_lag_max_ms": round(self.max_seen_s * 1000, 3),
            "overload_max_lag_ms": round(self._max_lag_s * 1000, 3),
            "overloaded": lag_s > self._max_lag_s,
        }


class OverloadCollector:
    """Prometheus families for shedding and lag, pulled at scrape time from the service and monitor.

    ``source`` returns ``(service_stats, lag_monitor_or_None, journal_healthy)``."""

    def __init__(self, source: Callable[[], tuple[dict[str, int], LagMonitor | None, bool]]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        stats, monitor, journal_healthy = self._source()
        shed = CounterMetricFamily(
            "exchange_shed", "Commands refused with 503 to protect latency and memory", labels=["reason"]
        )
        shed.add_metric(["pending"], stats["shed_pending"])
        shed.add_metric(["loop_lag"], stats["shed_loop_lag"])
        shed.add_metric(["queue_delay"], stats["shed_queue_delay"])
        shed.add_metric(["journal_failed"], stats["refused_journal_failed"])
        yield shed
        yield GaugeMetricFamily(
            "exchange_pending_orders", "Commands waiting to be made durable", value=stats["pending_orders"]
        )
        if monitor is not None:
            lag = monitor.lag_s()
            yield GaugeMetricFamily("exchange_event_loop_lag_seconds", "How late timers run", value=lag)
        healthy = int(journal_healthy)
        yield GaugeMetricFamily("exchange_journal_healthy", "0 once the journal failed", value=healthy)
