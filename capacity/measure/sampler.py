"""Once-a-second sampling of the server and the load generator while a run goes on.

Two daemon threads, so a slow exchange never makes the process samples irregular:

- ``ProcessSampler``: with psutil, the server process's CPU (percent of one core: a server using two
  threads fully reads 200) and RSS (bytes), and the generator's CPU summed over the Locust process and
  all its children (``--processes`` workers). CPU comes from ``cpu_times`` deltas over the wall time
  between samples, per process identity (pid + create time), so a worker forked between two samples
  counts from its birth and nothing is lost to a missing baseline.
- ``MetricsPoller``: ``GET {url}/api/metrics`` (the exchange's own view) — orders/s, trades/s, p99 (ms),
  resting orders, RSS and CPU — which works for any target, including one psutil cannot see.

Samples carry unix times so they can be aligned with the generator's schedule afterwards. Each sample is
also handed to an optional ``sink`` as it is taken (the run's ``samples.jsonl``: ``capacity.run_record``).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import psutil

INTERVAL_S = 1.0


@dataclass(frozen=True)
class ProcessSample:
    """Process figures for the ``interval_s`` seconds ending at ``time`` (unix seconds)."""

    time: float
    interval_s: float
    server_cpu_percent: float | None  # percent of one core
    server_rss_bytes: int | None
    generator_cpu_percent: float | None  # percent of one core, Locust process tree
    other_cpu_percent: float | None = None  # everything else on the machine, percent of one core


@dataclass(frozen=True)
class ExchangeSample:
    """The exchange's ``/api/metrics`` as read at ``time`` (unix seconds); rates over its own window."""

    time: float
    orders_per_sec: float | None
    p99_ms: float | None
    resting_orders: int | None
    rss_bytes: int | None
    cpu_percent: float | None = None  # its own process, percent of one core, since the previous read
    trades_per_sec: float | None = None  # trades (fills) per second, over its own window


class CpuMeter:
    """CPU seconds used by a process (and optionally all its descendants) between calls of ``take``."""

    def __init__(self, pid: int, include_children: bool) -> None:
        self.pid = pid
        self.include_children = include_children
        self._root = psutil.Process(pid)
        self._seen: dict[tuple[int, float], float] = {}
        self.take()  # the baseline: CPU used before the first call is not counted

    def take(self) -> float | None:
        """CPU seconds since the previous call, or None once the root process is gone."""
        try:
            processes = [self._root]
            if self.include_children:
                processes += self._root.children(recursive=True)
        except psutil.Error:
            return None
        used = 0.0
        seen: dict[tuple[int, float], float] = {}
        for process in processes:
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    key = (process.pid, process.create_time())
            except psutil.Error:
                continue  # exited between listing and reading; its last slice is lost
            total = times.user + times.system
            used += max(total - self._seen.get(key, 0.0), 0.0)
            seen[key] = total
        if not seen:
            return None
        self._seen = seen
        return used


class SystemCpu:
    """CPU seconds all processes and kernel threads of the machine used between calls (user, nice and
    system time of all CPUs). Interrupt and softirq time is left out: loopback networking of the run's own
    requests is accounted there, so it would be mistaken for other work."""

    def __init__(self) -> None:
        self._last = self._busy()

    @staticmethod
    def _busy() -> float:
        times = psutil.cpu_times()
        return times.user + times.nice + times.system

    def take(self) -> float:
        busy = self._busy()
        used, self._last = max(busy - self._last, 0.0), busy
        return used


TICK_DIGITS = 2  # decimals of a CPU time in seconds that are measured (the kernel counts 10 ms ticks)


class ProcessSampler:
    """Samples the server's CPU and RSS and the generator's CPU every ``interval_s`` seconds, and the CPU
    everything else on the machine used (busy CPU of the machine minus server, generator and this
    process): other work that may have disturbed the measurement.

    ``server_pid`` may be None (an external target without ``--server-pid``; then "everything else"
    would include the server and is not reported); the generator is attached with ``watch_generator``
    once Locust has started.
    """

    def __init__(
        self,
        server_pid: int | None,
        interval_s: float = INTERVAL_S,
        sink: Callable[[ProcessSample], None] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self.sink = sink
        self.samples: list[ProcessSample] = []
        self._server: psutil.Process | None = None
        self._server_cpu: CpuMeter | None = None
        if server_pid is not None:
            self._server = psutil.Process(server_pid)
            self._server_cpu = CpuMeter(server_pid, include_children=False)
        self._generator_cpu: CpuMeter | None = None
        self._own_cpu = CpuMeter(os.getpid(), include_children=False)
        self._system_cpu = SystemCpu()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="capacity-sampler", daemon=True)
        self._last = time.monotonic()

    def watch_generator(self, pid: int) -> None:
        """Start measuring the generator rooted at ``pid`` (its children included)."""
        meter = CpuMeter(pid, include_children=True)
        with self._lock:
            self._generator_cpu = meter

    def start(self) -> ProcessSampler:
        self._last = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> list[ProcessSample]:
        """Stop sampling (taking one last sample) and return all samples."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        return list(self.samples)

    def latest(self) -> ProcessSample | None:
        return self.samples[-1] if self.samples else None

    def __enter__(self) -> ProcessSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        next_tick = self._last + self.interval_s
        while True:
            stopping = self._stop.wait(max(next_tick - time.monotonic(), 0.0))
            self.sample()
            next_tick += self.interval_s
            if stopping:
                return

    def sample(self) -> ProcessSample:
        """Take one sample now (also called by the thread); CPU is over the time since the last one."""
        now = time.monotonic()
        wall = max(now - self._last, 1e-6)
        self._last = now
        with self._lock:
            generator = self._generator_cpu
        system = self._system_cpu.take()
        own = self._own_cpu.take() or 0.0
        server_s = self._server_cpu.take() if self._server_cpu else None
        generator_s = generator.take() if generator else None
        other = None
        if server_s is not None:
            # CPU times count clock ticks (10 ms): a difference below one is float noise, not work
            rest = round(system - own - server_s - (generator_s or 0.0), TICK_DIGITS)
            other = _percent(max(rest, 0.0), wall)
        server_cpu = _percent(server_s, wall)
        generator_cpu = _percent(generator_s, wall)
        rss = None
        if self._server is not None:
            try:
                rss = self._server.memory_info().rss
            except psutil.Error:
                rss = None
        sample = ProcessSample(time.time(), wall, server_cpu, rss, generator_cpu, other)
        self.samples.append(sample)
        if self.sink is not None:
            self.sink(sample)
        return sample


class MetricsPoller:
    """Polls ``GET {base_url}/api/metrics`` every ``interval_s`` seconds; failures are counted, not fatal."""

    def __init__(
        self,
        base_url: str,
        interval_s: float = INTERVAL_S,
        timeout_s: float = 2.0,
        sink: Callable[[ExchangeSample], None] | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/api/metrics"
        self.sink = sink
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.samples: list[ExchangeSample] = []
        self.failures = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="capacity-metrics", daemon=True)

    def start(self) -> MetricsPoller:
        self._thread.start()
        return self

    def stop(self) -> list[ExchangeSample]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.timeout_s + 1)
        return list(self.samples)

    def latest(self) -> ExchangeSample | None:
        return self.samples[-1] if self.samples else None

    def _loop(self) -> None:
        next_tick = time.monotonic() + self.interval_s
        while not self._stop.wait(max(next_tick - time.monotonic(), 0.0)):
            next_tick += self.interval_s
            sample = self.poll()
            if sample is not None:
                self.samples.append(sample)
                if self.sink is not None:
                    self.sink(sample)
            next_tick = max(next_tick, time.monotonic())  # a slow answer skips ticks instead of bunching

    def poll(self) -> ExchangeSample | None:
        """One read of the exchange's metrics, or None (counted in ``failures``) if it did not answer."""
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout_s) as response:
                data = json.load(response).get("data", {})
        except (urllib.error.URLError, OSError, ValueError, AttributeError) as error:
            self.failures += 1
            self.last_error = str(error)
            return None
        return ExchangeSample(
            time=time.time(),
            orders_per_sec=_number(data.get("orders_per_sec")),
            p99_ms=_number(data.get("p99_latency")),
            resting_orders=_integer(data.get("resting_orders")),
            rss_bytes=_integer(data.get("memory_rss_bytes")),
            cpu_percent=_number(data.get("cpu_percent")),
            trades_per_sec=_number(data.get("trades_per_sec")),
        )


def _percent(cpu_seconds: float | None, wall_s: float) -> float | None:
    return None if cpu_seconds is None else 100.0 * cpu_seconds / wall_s


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _integer(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
