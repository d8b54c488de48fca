"""A lean HTTP/1.1 load generator for the HTTP benchmarks, so the server is what they measure.

An aiohttp client spends more CPU per request than the aiohttp server it loads, so one generator core
cannot saturate one server core. Here each connection is a raw ``asyncio.Protocol`` on keep-alive (uvloop):
requests are pre-encoded bytes, a response is parsed only for its status line and where it ends
(Content-Length), and each connection has one request in flight (no pipelining: a request never queues
inside the server behind another connection's). Two modes:

- ``closed_loop``: every connection sends its next request as soon as the previous answer arrives
  (saturation). Latency runs from the actual send.
- ``open_loop``: an absolute schedule (wrk2-style): request *i* is due at ``start + i / rate`` whatever
  the answers do. On every loop wake-up (an answer, or a timer armed for the next due request) what is
  due goes to idle connections; the rest waits in the generator, counted as backlog. Latency runs from
  the *intended* send time (coordinated omission corrected), so a request that waited behind a slow one
  counts its wait. The timer is a ``timerfd`` because libuv's (and selectors') timers round to 1 ms: the
  send granularity is ``granularity_us`` (100 µs) without spinning the core.

Statuses are counted: 2xx is success (its latency is recorded), 503/429 are shed, anything else (and a
lost connection) is an error. Requests still unanswered at the drain deadline are recorded with the wait
they had reached (a lower bound), so a stalled server cannot hide from the P99. ``generator_cpu_pct``
says whether the generator itself was the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

from hdrh.histogram import HdrHistogram

from capacity.generator.http_wire import ProtocolError, parse_head
from capacity.generator.send_timer import SendTimer

SHED_STATUSES = frozenset({429, 503})
LOST = 0  # status key for a request whose connection closed before it was answered
GENERATOR_LIMIT_PCT = 85.0  # a generator this busy may have delayed sends: its figures bound the server


def encode_posts(url: str, path: str, bodies: list[bytes]) -> list[bytes]:
    """Whole HTTP/1.1 keep-alive POST requests, encoded once so sending costs one write."""
    host = urlsplit(url).netloc
    return [
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
        for body in bodies
    ]


@dataclass
class Result:
    """One run: counts, the latency histogram (µs, 2xx and unfinished only) and the generator's CPU."""

    mode: str
    offered: float | None  # requests/s (open loop); None for the closed loop
    connections: int
    seconds: float  # first send to last answer (or the drain deadline)
    sent: int
    statuses: Counter[int]
    unfinished: int  # never answered by the drain deadline (latency recorded as a lower bound)
    latency_us: HdrHistogram
    generator_cpu_s: float
    max_backlog: int = 0  # most due requests waiting for a free connection at once (open loop)
    send_lag_us: HdrHistogram | None = None  # open loop: actual - intended send time (timer + backlog)

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def shed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status in SHED_STATUSES)

    @property
    def errors(self) -> int:
        return sum(self.statuses.values()) - self.ok - self.shed + self.unfinished

    @property
    def achieved(self) -> float:
        """Successful answers per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def generator_cpu_pct(self) -> float:
        return 100 * self.generator_cpu_s / self.seconds if self.seconds else 0.0

    @property
    def generator_limited(self) -> bool:
        return self.generator_cpu_pct >= GENERATOR_LIMIT_PCT

    def percentile_ms(self, q: float) -> float:
        return self.latency_us.get_value_at_percentile(q) / 1000

    def summary(self) -> dict:
        return {
            "mode": self.mode,
            "offered": self.offered,
            "connections": self.connections,
            "seconds": round(self.seconds, 3),
            "sent": self.sent,
            "achieved": self.achieved,
            "ok": self.ok,
            "shed": self.shed,
            "errors": self.errors,
            "unfinished": self.unfinished,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "p50_ms": self.percentile_ms(50),
            "p99_ms": self.percentile_ms(99),
            "max_ms": self.latency_us.get_max_value() / 1000,
            "max_backlog": self.max_backlog,
            "send_lag_p99_ms": (self.send_lag_us.get_value_at_percentile(99) / 1000)
            if self.send_lag_us
            else None,
            "generator_cpu_pct": self.generator_cpu_pct,
            "generator_limited": self.generator_limited,
        }


class _Connection(asyncio.Protocol):
    def __init__(self, run: _Run) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.t0_ns: int | None = None  # the in-flight request's latency origin

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, t0_ns: int) -> None:
        self.t0_ns = t0_ns
        self.transport.write(self.run.next_request())  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self.buf = buf
            return
        try:
            status, length = parse_head(buf, end)
        except (ProtocolError, ValueError) as error:
            self.run.fail(ProtocolError(str(error)))
            return
        if len(buf) < end + 4 + length:
            self.buf = buf
            return
        self.buf = buf[end + 4 + length :]
        t0, self.t0_ns = self.t0_ns, None
        if t0 is not None:
            self.run.answered(self, status, t0)

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.lost(self)


class _Run:
    """One generator run on the running loop: the connections, the schedule and the counts."""

    def __init__(
        self,
        requests: list[bytes],
        connections: int,
        seconds: float,
        rate: float | None,
        granularity_us: float,
    ) -> None:
        if not requests:
            raise ValueError("no requests to send")
        if connections < 1 or seconds <= 0 or (rate is not None and rate <= 0):
            raise ValueError("connections, seconds and rate must be positive")
        self.requests, self.n_requests, self.request_i = requests, len(requests), 0
        self.n_connections, self.seconds, self.rate = connections, seconds, rate
        self.granularity_ns = int(granularity_us * 1000)
        self.total = int(rate * seconds) if rate else 0
        self.statuses: Counter[int] = Counter()
        self.hist = HdrHistogram(1, 3_600_000_000, 3)
        self.send_lag = HdrHistogram(1, 3_600_000_000, 3)
        self.idle: list[_Connection] = []
        self.in_flight: set[_Connection] = set()
        self.due = self.dispatched = self.max_backlog = 0
        self.start_ns = self.deadline_ns = 0
        self.finished = False

    def next_request(self) -> bytes:
        self.request_i += 1
        return self.requests[self.request_i % self.n_requests]

    def intended_ns(self, i: int) -> int:
        return self.start_ns + int(i * 1e9 / self.rate)  # type: ignore[operator]

    async def execute(self, url: str) -> Result:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"need an http://host:port URL, got {url!r}")
        loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = loop.create_future()
        made = [
            await loop.create_connection(lambda: _Connection(self), parts.hostname, parts.port or 80)
            for _ in range(self.n_connections)
        ]
        self.idle = [protocol for _, protocol in made]
        timer = SendTimer(loop, self.pump) if self.rate else None
        self.timer = timer
        cpu0 = time.process_time()
        self.start_ns = time.monotonic_ns()
        self.deadline_ns = self.start_ns + int(self.seconds * 1e9)
        if timer:
            self.pump()
        else:
            while self.idle:
                conn = self.idle.pop()
                self.in_flight.add(conn)
                conn.send(time.monotonic_ns())
        drain_s = self.seconds + max(5.0, self.seconds)  # time to answer a backlog before giving up
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.done), drain_s)
        end_ns = time.monotonic_ns()
        cpu = time.process_time() - cpu0
        unfinished = self._record_unfinished(end_ns)
        self.finished = True
        if timer:
            timer.close()
        for transport, _ in made:
            transport.close()
        if self.done.done() and self.done.exception():
            raise self.done.exception()  # type: ignore[misc]
        return Result(
            mode="open" if self.rate else "closed",
            offered=self.rate,
            connections=self.n_connections,
            seconds=(end_ns - self.start_ns) / 1e9,
            sent=self.request_i,
            statuses=self.statuses,
            unfinished=unfinished,
            latency_us=self.hist,
            generator_cpu_s=cpu,
            max_backlog=self.max_backlog,
            send_lag_us=self.send_lag if self.rate else None,
        )

    def _record_unfinished(self, end_ns: int) -> int:
        """Requests in flight or never sent at the deadline: their wait so far is a lower bound of latency."""
        waits = [c.t0_ns for c in self.in_flight if c.t0_ns is not None]
        if self.rate:
            waits += [self.intended_ns(i) for i in range(self.dispatched, self.total)]
        for t0 in waits:
            self.hist.record_value(max(1, (end_ns - t0) // 1000))
        return len(waits)

    def pump(self) -> None:
        """Open loop: hand every request due by now to an idle connection; re-arm the timer for the next."""
        now = time.monotonic_ns()
        if self.due < self.total:
            self.due = min(self.total, int((now - self.start_ns) * self.rate) // 1_000_000_000 + 1)  # type: ignore[operator]
        while self.dispatched < self.due and self.idle:
            conn = self.idle.pop()
            self.in_flight.add(conn)
            intended = self.intended_ns(self.dispatched)
            conn.send(intended)
            self.send_lag.record_value(max(1, (now - intended) // 1000))
            self.dispatched += 1
        self.max_backlog = max(self.max_backlog, self.due - self.dispatched)
        if self.due < self.total and self.timer is not None:  # open loop: only a paced run has a timer
            nxt = self.intended_ns(self.due)
            # re-arm only when the armed wake-up is past or too late: a syscall per answer would cost
            if self.timer.armed_ns <= now or self.timer.armed_ns > nxt + self.granularity_ns:
                self.timer.arm(max(nxt, now + self.granularity_ns))
        elif self.dispatched == self.total and not self.in_flight:
            self._finish()

    def answered(self, conn: _Connection, status: int, t0_ns: int) -> None:
        now = time.monotonic_ns()
        self.statuses[status] += 1
        if 200 <= status < 300:
            self.hist.record_value(max(1, (now - t0_ns) // 1000))
        self.in_flight.discard(conn)
        if self.finished:
            return
        if self.rate:
            self.idle.append(conn)
            self.pump()
        elif now < self.deadline_ns:
            self.in_flight.add(conn)
            conn.send(now)
        elif not self.in_flight:
            self._finish()

    def lost(self, conn: _Connection) -> None:
        if self.finished:
            return
        if conn.t0_ns is not None:
            self.statuses[LOST] += 1
        self.in_flight.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if not self.in_flight and not self.idle:
            self.fail(ConnectionError("the server closed every connection"))

    def fail(self, error: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(error)

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def closed_loop(url: str, requests: list[bytes], seconds: float, connections: int = 32) -> Result:
    """Saturate: each connection sends again as soon as it is answered, for ``seconds``."""
    return await _Run(requests, connections, seconds, None, 0).execute(url)


async def open_loop(
    url: str,
    requests: list[bytes],
    rate: float,
    seconds: float,
    connections: int = 64,
    granularity_us: float = 100.0,
) -> Result:
    """Offer ``rate`` requests/s on an absolute schedule for ``seconds``; latency from intended send times."""
    return await _Run(requests, connections, seconds, rate, granularity_us).execute(url)
