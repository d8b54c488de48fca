"""A lean HTTP/1.1 load generator for the HTTP benchmarks, so the server is what they measure.

An aiohttp client spends more CPU per request than the aiohttp server it loads, so one generator core
cannot saturate one server core. Here each connection is a raw ``asyncio.Protocol`` on keep-alive (uvloop):
requests are pre-encoded bytes, a response is parsed only for its status line and where it ends
(Content-Length), and each connection has one request in flight (no pipelining: a request never queues
inside the server behind another connection's). Two modes:

- ``closed_loop``: every connection sends its next request as soon as the previous answer arrives
  (saturation). Latency runs from the actual send. With ``retry_refused``, a request answered 503/429 is
  sent again at once on its connection, as by a client that ignores Retry-After.
- ``open_loop``: an absolute schedule (wrk2-style): request *i* is due at ``start + i / rate`` whatever
  the answers do. On every loop wake-up (an answer, or a timer armed for the next due request) what is
  due goes to idle connections, the one idle longest first (so every connection stays in use, as with
  many clients); the rest waits in the generator, counted as backlog. Latency runs from
  the *intended* send time (coordinated omission corrected), so a request that waited behind a slow one
  counts its wait. The timer is a ``timerfd`` because libuv's (and selectors') timers round to 1 ms: the
  send granularity is ``granularity_us`` (100 µs) without spinning the core. ``open_loop_phases`` runs
  several constant rates back to back on one schedule (an overload, then the recovery after it).

What is sent comes from a ``Requests``: by default a list of pre-encoded requests in turn; a subclass
(``_mix.SeedMix``) can choose per request and learn from answers (the body of an answer it asked for is
handed to it, e.g. to learn order ids to cancel), and can accept a non-2xx answer as completing its
request (a cancel of an order that traded meanwhile).

Statuses are counted: 2xx is success (its latency is recorded), 503/429 are shed, anything else (and a
lost connection) is an error. Requests still unanswered at the drain deadline are recorded with the wait
they had reached (a lower bound), so a stalled server cannot hide from the P99. ``generator_cpu_pct``
says whether the generator itself was the limit. Options for overload runs: ``timeout_s`` (a request
unanswered that long after its send is a timeout: the connection is dropped), ``give_up_s`` (a due
request that found no free connection for that long is dropped unsent: every connection was waiting on
the server; so is one still unsent when its phase ends), ``reconnect`` (a closed connection is reopened)
and ``timeline`` (per-second counts by answer time and latency by intended send time).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from hdrh.histogram import HdrHistogram

from capacity.generator.http_wire import ProtocolError, parse_head
from capacity.generator.send_timer import SendTimer

SHED_STATUSES = frozenset({429, 503})
LOST = 0  # status key for a request whose connection closed before it was answered
TIMEOUT = -1  # status key for a request unanswered ``timeout_s`` after it was sent (connection dropped)
GENERATOR_LIMIT_PCT = 85.0  # a generator this busy may have delayed sends: its figures bound the server
RECONNECT_DELAY_S = 0.05
TIMEOUT_CHECK_S = 0.25


def encode_posts(url: str, path: str, bodies: list[bytes]) -> list[bytes]:
    """Whole HTTP/1.1 keep-alive POST requests, encoded once so sending costs one write."""
    host = urlsplit(url).netloc
    return [
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
        for body in bodies
    ]


class Requests:
    """What a run sends: pre-encoded requests in turn. Subclasses choose per request (``next``) and may
    learn from answers: ``learns`` names the kinds whose answer body ``answered`` receives."""

    kinds: tuple[str, ...] = ("request",)
    learns: frozenset[int] = frozenset()

    def __init__(self, encoded: list[bytes]) -> None:
        if not encoded:
            raise ValueError("no requests to send")
        self.encoded, self.n, self.i = encoded, len(encoded), 0

    def next(self) -> tuple[bytes, int]:
        """The next request and its kind (an index into ``kinds``)."""
        self.i += 1
        return self.encoded[self.i % self.n], 0

    def answered(self, kind: int, status: int, body: bytes | None) -> bool:
        """Note an answer (``body`` only for kinds in ``learns``); True when a non-2xx answer still
        completes its request."""
        return False


@dataclass
class Timeline:
    """Per second of the run: answers by the second they came (ok, shed, other; and failures: lost
    connections and timeouts) and the latency of
    requests by the second they were *due* (all outcomes with a latency: completed, timed out, dropped)."""

    ok: Counter[int] = field(default_factory=Counter)
    shed: Counter[int] = field(default_factory=Counter)
    other: Counter[int] = field(default_factory=Counter)
    failed: Counter[int] = field(default_factory=Counter)  # not answers: lost connections, timeouts
    latency: dict[int, HdrHistogram] = field(default_factory=dict)

    def record(self, due_s: int, latency_us: int) -> None:
        hist = self.latency.get(due_s)
        if hist is None:
            hist = self.latency[due_s] = HdrHistogram(1, 600_000_000, 2)
        hist.record_value(latency_us)

    def p99_ms(self, second: int) -> float | None:
        hist = self.latency.get(second)
        return hist.get_value_at_percentile(99) / 1000 if hist and hist.get_total_count() else None

    def answers(self, first: int, last: int) -> dict[str, int]:
        """Answers that came in seconds ``first`` .. ``last - 1``."""
        span = range(first, last)
        return {
            "ok": sum(self.ok[s] for s in span),
            "shed": sum(self.shed[s] for s in span),
            "other": sum(self.other[s] for s in span),
            "failed": sum(self.failed[s] for s in span),
        }

    def merged(self, first: int, last: int) -> HdrHistogram:
        """The latency of the requests due in seconds ``first`` .. ``last - 1``."""
        out = HdrHistogram(1, 600_000_000, 2)
        for s in range(first, last):
            if s in self.latency:
                out.add(self.latency[s])
        return out


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
    accepted: int = 0  # non-2xx answers that still completed their request (``Requests.answered``)
    dropped: int = 0  # due requests given up unsent after ``give_up_s`` without a free connection
    reconnects: int = 0
    timeline: Timeline | None = None

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def completed(self) -> int:
        return self.ok + self.accepted

    @property
    def shed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status in SHED_STATUSES)

    @property
    def timeouts(self) -> int:
        return self.statuses[TIMEOUT]

    @property
    def errors(self) -> int:
        return sum(self.statuses.values()) - self.completed - self.shed + self.unfinished + self.dropped

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
            "completed_per_s": self.completed / self.seconds if self.seconds else 0.0,
            "ok": self.ok,
            "accepted": self.accepted,
            "shed": self.shed,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "unfinished": self.unfinished,
            "dropped": self.dropped,
            "reconnects": self.reconnects,
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
        self.sent_ns = 0  # when it actually went out (for ``timeout_s``)
        self.kind = 0
        self.request = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, t0_ns: int, again: bool = False) -> None:
        """Send the source's next request, or with ``again`` the last one once more."""
        self.t0_ns = t0_ns
        if not again:
            self.request, self.kind = self.run.source.next()
        self.run.sent += 1
        self.sent_ns = time.monotonic_ns() if self.run.timeout_ns else 0
        self.transport.write(self.request)  # type: ignore[union-attr]

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
        stop = end + 4 + length
        if len(buf) < stop:
            self.buf = buf
            return
        body = buf[end + 4 : stop] if self.kind in self.run.source.learns else None
        self.buf = buf[stop:]
        t0, self.t0_ns = self.t0_ns, None
        if t0 is not None:
            self.run.answered(self, status, t0, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.lost(self)


class _Schedule:
    """Constant-rate phases back to back: request *i*'s intended offset from the start, and how many are
    due by an offset."""

    def __init__(self, phases: list[tuple[float, float]]) -> None:
        self.phases: list[tuple[int, int, int, float]] = []  # first index, end index, start ns, rate
        first, start_ns = 0, 0
        for rate, seconds in phases:
            if rate <= 0 or seconds <= 0:
                raise ValueError("every phase needs a positive rate and length")
            end = first + int(rate * seconds)
            self.phases.append((first, end, start_ns, rate))
            first, start_ns = end, start_ns + int(seconds * 1e9)
        self.total, self.length_ns = first, start_ns

    def offset_ns(self, i: int) -> int:
        for first, end, start_ns, rate in self.phases:
            if i < end:
                return start_ns + int((i - first) * 1e9 / rate)
        first, _, start_ns, rate = self.phases[-1]
        return start_ns + int((i - first) * 1e9 / rate)

    def phase_first(self, elapsed_ns: int) -> int:
        """The first request of the phase running ``elapsed_ns`` after the start."""
        first = 0
        for phase_first, _, start_ns, _ in self.phases:
            if elapsed_ns < start_ns:
                break
            first = phase_first
        return first

    def due(self, elapsed_ns: int) -> int:
        """Requests due by ``elapsed_ns`` after the start (at most ``total``)."""
        for first, end, start_ns, rate in self.phases:
            if elapsed_ns < start_ns:
                return first
            n = first + int((elapsed_ns - start_ns) * rate) // 1_000_000_000 + 1
            if n < end:
                return n
        return self.total


class _Run:
    """One generator run on the running loop: the connections, the schedule and the counts."""

    def __init__(
        self,
        requests: list[bytes] | Requests,
        connections: int,
        seconds: float,
        phases: list[tuple[float, float]] | None,
        granularity_us: float,
        timeout_s: float = 0.0,
        give_up_s: float = 0.0,
        reconnect: bool = False,
        timeline: bool = False,
        on_start: Callable[[], None] | None = None,
        retry_refused: bool = False,
    ) -> None:
        self.on_start = on_start
        self.retry_refused = retry_refused
        self.source = requests if isinstance(requests, Requests) else Requests(requests)
        if connections < 1 or seconds <= 0:
            raise ValueError("connections, seconds and rate must be positive")
        self.schedule = _Schedule(phases) if phases else None
        if self.schedule:
            seconds = self.schedule.length_ns / 1e9
        self.n_connections, self.seconds = connections, seconds
        self.rate = self.schedule.total / seconds if self.schedule else None
        self.granularity_ns = int(granularity_us * 1000)
        self.total = self.schedule.total if self.schedule else 0
        self.timeout_ns, self.give_up_ns = int(timeout_s * 1e9), int(give_up_s * 1e9)
        self.reconnect = reconnect
        self.timeline = Timeline() if timeline else None
        self.statuses: Counter[int] = Counter()
        self.hist = HdrHistogram(1, 3_600_000_000, 3)
        self.send_lag = HdrHistogram(1, 3_600_000_000, 3)
        self.idle: deque[_Connection] = deque()
        self.in_flight: set[_Connection] = set()
        self.due = self.dispatched = self.max_backlog = self.accepted = self.dropped = self.reconnects = 0
        self._given_up: list[tuple[int, int, int]] = []  # (first request, end, when): their waits unrecorded
        self.sent = 0
        self.start_ns = self.deadline_ns = 0
        self.finished = False
        self.host, self.port = "", 0
        self._tasks: set[asyncio.Task[None]] = set()

    def intended_ns(self, i: int) -> int:
        return self.start_ns + self.schedule.offset_ns(i)  # type: ignore[union-attr]

    async def execute(self, url: str) -> Result:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"need an http://host:port URL, got {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = loop.create_future()
        made = [
            await loop.create_connection(lambda: _Connection(self), self.host, self.port)
            for _ in range(self.n_connections)
        ]
        self.idle = deque(protocol for _, protocol in made)
        self.all: list[_Connection] = list(self.idle)
        timer = SendTimer(loop, self.pump) if self.schedule else None
        self.timer = timer
        if self.on_start is not None:
            self.on_start()  # e.g. the server's CPU from here on: connecting is not the run
        cpu0 = time.process_time()
        self.start_ns = time.monotonic_ns()
        self.deadline_ns = self.start_ns + int(self.seconds * 1e9)
        checker = loop.call_later(TIMEOUT_CHECK_S, self._check_timeouts) if self.timeout_ns else None
        if timer:
            self.pump()
        else:
            while self.idle:
                conn = self.idle.pop()
                self.in_flight.add(conn)
                conn.send(time.monotonic_ns())
        drain_s = self.seconds + max(5.0, self.seconds)  # time to answer a backlog before giving up
        if self.timeout_ns:
            drain_s = min(drain_s, self.seconds + self.timeout_ns / 1e9 + 1)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.done), drain_s)
        end_ns = time.monotonic_ns()
        cpu = time.process_time() - cpu0
        unfinished = self._record_unfinished(end_ns)
        self._record_given_up()
        self.finished = True
        if checker:
            checker.cancel()
        if timer:
            timer.close()
        for task in self._tasks:
            task.cancel()
        for conn in self.all:
            if conn.transport is not None:
                conn.transport.close()
        if self.done.done() and self.done.exception():
            raise self.done.exception()  # type: ignore[misc]
        return Result(
            mode="open" if self.schedule else "closed",
            offered=self.rate,
            connections=self.n_connections,
            seconds=(end_ns - self.start_ns) / 1e9,
            sent=self.sent,
            statuses=self.statuses,
            unfinished=unfinished,
            latency_us=self.hist,
            generator_cpu_s=cpu,
            max_backlog=self.max_backlog,
            send_lag_us=self.send_lag if self.schedule else None,
            accepted=self.accepted,
            dropped=self.dropped,
            reconnects=self.reconnects,
            timeline=self.timeline,
        )

    def _latency(self, t0_ns: int, now: int) -> None:
        latency = max(1, (now - t0_ns) // 1000)
        self.hist.record_value(latency)
        if self.timeline is not None:
            self.timeline.record((t0_ns - self.start_ns) // 1_000_000_000, latency)

    def _record_unfinished(self, end_ns: int) -> int:
        """Requests in flight or never sent at the deadline: their wait so far is a lower bound of latency."""
        waits = [c.t0_ns for c in self.in_flight if c.t0_ns is not None]
        if self.schedule:
            waits += [self.intended_ns(i) for i in range(self.dispatched, self.total)]
        for t0 in waits:
            self._latency(t0, end_ns)
        return len(waits)

    def pump(self) -> None:
        """Open loop: hand every request due by now to an idle connection; re-arm the timer for the next."""
        now = time.monotonic_ns()
        if self.due < self.total:
            self.due = self.schedule.due(now - self.start_ns)  # type: ignore[union-attr]
        if self.give_up_ns and self.dispatched < self.due:
            self._give_up(now)
        while self.dispatched < self.due and self.idle:
            # The one answered last would send again and again, leaving the rest idle until the server's
            # idle timeout closed them: "1,000 connections" would have been a few dozen.
            conn = self.idle.popleft()
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

    def _give_up(self, now: int) -> None:
        """Drop due requests that have waited ``give_up_s`` for a free connection, and those of a phase that
        has ended (its clients leave with it: the next phase measures the server, not this queue). Their
        waits are recorded after the run (``_record_given_up``): at the end of an overload phase the
        backlog is tens of thousands, and recording them one by one here held the next phase's first sends
        back by ~80 ms, which its latency would have charged to the server."""
        schedule = self.schedule
        assert schedule is not None
        expired_by = now - self.give_up_ns  # intended at or before this: waited give_up_s
        stop = schedule.due(expired_by - self.start_ns)  # within a request of exact: settled below
        while stop < self.due and self.intended_ns(stop) <= expired_by:
            stop += 1
        while stop > self.dispatched and self.intended_ns(stop - 1) > expired_by:
            stop -= 1
        stop = min(self.due, max(stop, schedule.phase_first(now - self.start_ns)))
        if stop > self.dispatched:
            self._given_up.append((self.dispatched, stop, now))
            self.dropped += stop - self.dispatched
            self.dispatched = stop

    def _record_given_up(self) -> None:
        for first, end, at in self._given_up:
            for i in range(first, end):
                self._latency(self.intended_ns(i), at)
        self._given_up.clear()

    def _count(self, status: int, now: int) -> None:
        self.statuses[status] += 1
        timeline = self.timeline
        if timeline is not None:
            second = (now - self.start_ns) // 1_000_000_000
            if 200 <= status < 300:
                timeline.ok[second] += 1
            elif status in SHED_STATUSES:
                timeline.shed[second] += 1
            elif status in (LOST, TIMEOUT):
                timeline.failed[second] += 1
            else:
                timeline.other[second] += 1

    def answered(self, conn: _Connection, status: int, t0_ns: int, body: bytes | None) -> None:
        now = time.monotonic_ns()
        self._count(status, now)
        good = 200 <= status < 300
        if self.source.answered(conn.kind, status, body) and not good:
            self.accepted += 1
            good = True
        if good:
            self._latency(t0_ns, now)
        self.in_flight.discard(conn)
        if self.finished:
            return
        if self.schedule:
            self.idle.append(conn)
            self.pump()
        elif now < self.deadline_ns:
            self.in_flight.add(conn)
            conn.send(now, again=self.retry_refused and status in SHED_STATUSES)
        elif not self.in_flight:
            self._finish()

    def _check_timeouts(self) -> None:
        """Requests unanswered ``timeout_s`` after their send: a timeout each; their connections dropped."""
        if self.finished:
            return
        now = time.monotonic_ns()
        for conn in [c for c in self.in_flight if c.t0_ns is not None and now - c.sent_ns > self.timeout_ns]:
            t0, conn.t0_ns = conn.t0_ns, None
            self._count(TIMEOUT, now)
            self._latency(t0, now)  # type: ignore[arg-type]
            self.in_flight.discard(conn)
            if conn.transport is not None:
                conn.transport.abort()  # connection_lost follows: reopened there with ``reconnect``
        asyncio.get_running_loop().call_later(TIMEOUT_CHECK_S, self._check_timeouts)

    def lost(self, conn: _Connection) -> None:
        if self.finished:
            return
        if conn.t0_ns is not None:
            now = time.monotonic_ns()
            self._count(LOST, now)
            conn.t0_ns = None
        self.in_flight.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        conn.transport = None
        if self.reconnect:
            task = asyncio.ensure_future(self._reopen())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if not self.in_flight and not self.idle:
            self.fail(ConnectionError("the server closed every connection"))

    async def _reopen(self) -> None:
        """A new connection in place of a closed one (retried until the run ends)."""
        loop = asyncio.get_running_loop()
        while not self.finished:
            await asyncio.sleep(RECONNECT_DELAY_S)
            try:
                _, conn = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
            except OSError:
                continue
            if self.finished:
                if conn.transport is not None:
                    conn.transport.close()
                return
            self.reconnects += 1
            self.all.append(conn)
            if self.schedule:
                self.idle.append(conn)
                self.pump()
            elif time.monotonic_ns() < self.deadline_ns:
                self.in_flight.add(conn)
                conn.send(time.monotonic_ns())
            return

    def fail(self, error: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(error)

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def closed_loop(
    url: str,
    requests: list[bytes] | Requests,
    seconds: float,
    connections: int = 32,
    on_start: Callable[[], None] | None = None,
    retry_refused: bool = False,
) -> Result:
    """Saturate: each connection sends again as soon as it is answered, for ``seconds`` (a refused request
    itself, with ``retry_refused``)."""
    return await _Run(
        requests, connections, seconds, None, 0, on_start=on_start, retry_refused=retry_refused
    ).execute(url)


async def open_loop(
    url: str,
    requests: list[bytes] | Requests,
    rate: float,
    seconds: float,
    connections: int = 64,
    granularity_us: float = 100.0,
    timeout_s: float = 0.0,
    give_up_s: float = 0.0,
    reconnect: bool = False,
    timeline: bool = False,
    on_start: Callable[[], None] | None = None,
) -> Result:
    """Offer ``rate`` requests/s on an absolute schedule for ``seconds``; latency from intended send times
    (the options: see the module docstring)."""
    if rate <= 0 or seconds <= 0:
        raise ValueError("connections, seconds and rate must be positive")
    return await open_loop_phases(
        url,
        requests,
        [(rate, seconds)],
        connections,
        granularity_us,
        timeout_s,
        give_up_s,
        reconnect,
        timeline,
        on_start,
    )


async def open_loop_phases(
    url: str,
    requests: list[bytes] | Requests,
    phases: list[tuple[float, float]],
    connections: int = 64,
    granularity_us: float = 100.0,
    timeout_s: float = 0.0,
    give_up_s: float = 0.0,
    reconnect: bool = False,
    timeline: bool = False,
    on_start: Callable[[], None] | None = None,
) -> Result:
    """``open_loop`` through constant-rate ``phases`` [(rate, seconds), ...] back to back on one schedule."""
    if not phases:
        raise ValueError("no phases")
    seconds = sum(s for _, s in phases)
    run = _Run(
        requests,
        connections,
        seconds,
        phases,
        granularity_us,
        timeout_s,
        give_up_s,
        reconnect,
        timeline,
        on_start,
    )
    return await run.execute(url)
