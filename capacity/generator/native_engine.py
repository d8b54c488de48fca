"""The native load generator's engine: the scenario's users as raw keep-alive connections on one event loop.

Semantics are the Locust path's (``capacity/generator/locustfile.py``), at a fraction of its CPU per request:

- **users are connections**: user *k* of the scenario is active while ``k < users_at(t)``; it opens its
  own keep-alive HTTP/1.1 connection when it joins and closes it when it leaves. With several processes,
  process *p* of *P* runs the users ``k % P == p``.
- **open model per user** (``capacity.generator.pacing.UserPacer``): each user's slots follow the schedule
  whatever the answers do. One request is in flight per user (no pipelining), so a slot that comes due while
  its user waits for an answer goes out when the answer arrives: late, and its wait is in the corrected
  latency. What is due goes out when due: a heap of the idle users' next slots and a timerfd armed for the
  earliest (``capacity.generator.send_timer``).
- **the mix** (``capacity.generator.order_flow``): limits, markets, cancels of the user's own resting orders,
  book reads; responses teach the flow its resting order ids and the mid.
- **recording** (``capacity.measure.latency.LatencyRecorder``): corrected latency from the intended send time,
  raw from the actual send, and the generator's own delay apart from the server's (``ready_ns``), so a slow
  server is never taken for a slow generator.

Requests are encoded once into bytes and sent with one write; a response is framed by its status line and
Content-Length (``capacity.generator.http_wire``) and parsed as JSON only when the flow learns from it.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import orjson

from capacity.generator.http_wire import ProtocolError, encode_request, split_response
from capacity.generator.order_flow import Market, OrderFlow, OrderRequest
from capacity.generator.pacing import UserPacer
from capacity.generator.send_timer import SendTimer
from capacity.measure.latency import LatencyRecorder
from capacity.scenario import Scenario

DRAIN_S = 1.0  # after the schedule ends, nothing new is sent but answers still count (as in Locust)
TICK_S = 0.1  # how often users join or leave, and timeouts are looked for
REQUEST_TIMEOUT_S = 30.0  # an answer this late is an error of kind "timeout" (Locust's network_timeout)
CONNECT_TIMEOUT_S = 10.0
CONNECT_BATCH = 200  # connections opened at once (the server's listen backlog is often 128 or more)
# The send timer wakes the loop at most once per this long and is re-armed only when it would be this much
# off: every wake-up and every arm is a system call, and sends due within it go out together
GRANULARITY_NS = 100_000
# The server answering nothing for this long while requests were outstanding is a stall (recorded with its
# start and length: the server's, never the generator's)
STALL_NS = 200_000_000
GC_YOUNG_THRESHOLD = 20_000  # allocations between young collections (CPython's default is 700)
LEARNS = frozenset({"limit", "market", "book"})  # kinds whose answer the flow reads


class TargetError(Exception):
    """The target cannot be load-tested: it refused connections or does not speak HTTP/1.x."""


@dataclass(frozen=True)
class EngineConfig:
    """What one generator process runs."""

    scenario: Scenario
    url: str  # http://host:port of the exchange
    market: Market  # instruments from GET /api/symbols
    process_index: int = 0
    processes: int = 1
    late_threshold_ms: float = 10.0
    seed: int = 0
    tag: str = "n"  # makes client order ids unique across processes and runs


class _User(asyncio.Protocol):
    """One simulated trader: its connection, its schedule, its order flow and its request in flight."""

    def __init__(self, engine: NativeEngine, number: int, join_s: float) -> None:
        self.engine = engine
        self.number = number
        rng = random.Random(engine.config.seed + number)
        scenario = engine.config.scenario
        self.flow = OrderFlow(
            scenario.mix, scenario.load.symbols, engine.config.market, rng, f"{engine.config.tag}-{number}"
        )
        self.pacer = UserPacer.for_scenario(scenario, join_s, rng)
        self.transport: asyncio.Transport | None = None
        self.connecting = False
        self.active = True  # False once the schedule has fewer users than its number: it leaves when idle
        self.held_at_end = False  # its last slot came due while it waited for an answer past the end
        self.buf = b""
        self.request: OrderRequest | None = None  # in flight
        self.intended_ns = 0
        self.sent_ns = 0

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        try:
            response = split_response(buf)
        except ProtocolError as error:
            self.buf = b""
            self.engine.protocol_error(self, error)
            return
        if response is None:
            self.buf = buf
            return
        status, body, self.buf = response
        self.engine.answered(self, status, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.buf = b""
        self.engine.lost(self)


class NativeEngine:
    """One process's share of the scenario's users, driven on the running (uv)loop.

    ``run()`` connects the users present at t = 0 (before the clock starts, so connection set-up is not
    measured), waits for ``start`` with the run's t = 0, sends on schedule until the schedule ends (plus
    DRAIN_S) or ``stop()`` is called, and leaves everything in ``recorder``. ``on_tick`` is called every
    TICK_S with the engine (the caller hands data over from there).
    """

    def __init__(self, config: EngineConfig, recorder: LatencyRecorder) -> None:
        self.config = config
        self.recorder = recorder
        self.scenario = config.scenario
        self.end_ns = round(self.scenario.total_duration_s * 1e9)
        parts = config.url.split("://", 1)[-1].split("/", 1)[0]
        host, _, port = parts.rpartition(":")
        self.host = host.strip("[]") or parts
        self.port = int(port) if port.isdigit() and host else 80
        self.host_header = parts
        self.users: dict[int, _User] = {}
        self.heap: list[tuple[int, int]] = []  # (intended ns since t = 0, user number) of idle users
        self.in_flight = 0
        self.start_ns = 0  # t = 0 on the monotonic clock
        self.stopping = False
        self.connect_failures = 0
        self.last_connect_error = ""
        self.requests_sent = 0
        self.last_answer_ns = 0  # since t = 0; any answer, error or lost connection
        self.stalls: list[tuple[int, int]] = []  # (start, length) in ns since t = 0
        self._timer: SendTimer | None = None
        self._done: asyncio.Future[None] | None = None
        self._joining: set[int] = set()  # user numbers connecting to join
        self._tasks: set[asyncio.Task[None]] = set()
        self.last_protocol_error = ""

    # -- the run --

    def my_numbers(self, users: int) -> range:
        return range(self.config.process_index, max(users, 0), self.config.processes)

    async def connect_initial(self) -> int:
        """Open the connections of the users present at t = 0; TargetError if none can be opened."""
        numbers = list(self.my_numbers(self.scenario.users_at(0.0)))
        users = [_User(self, n, 0.0) for n in numbers]
        for start in range(0, len(users), CONNECT_BATCH):
            await asyncio.gather(*(self._connect(u) for u in users[start : start + CONNECT_BATCH]))
        for user in users:
            self.users[user.number] = user
        connected = sum(1 for u in users if u.transport is not None)
        # What exists now lives for the run: out of the collector's sight, and young collections rarer
        # (every request allocates a few short-lived containers that reference counting frees anyway)
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        if users and not connected:
            raise TargetError(
                f"cannot connect to {self.host}:{self.port}: {self.last_connect_error or 'no connection'}"
            )
        return connected

    async def run(self, start_ns: int, on_tick: Callable[[NativeEngine], None] | None = None) -> None:
        """Send on the schedule from ``start_ns`` (t = 0, ``time.monotonic_ns()`` clock) until it ends."""
        loop = asyncio.get_running_loop()
        self.start_ns = start_ns
        self._done = loop.create_future()
        self._timer = SendTimer(loop, self.pump)
        # every user's first slot, then the timer does the rest
        for user in self.users.values():
            self._schedule(user)
        self.pump()
        try:
            while not self._done.done():
                await asyncio.wait({self._done}, timeout=TICK_S)
                self._tick()
                if on_tick is not None:
                    on_tick(self)
        finally:
            self._timer.close()
            self._count_owed()
            for user in self.users.values():
                if user.transport is not None:
                    user.transport.abort()

    def stop(self) -> None:
        """Stop sending now (Ctrl-C): what is in flight is left as sent and unanswered, owed slots counted."""
        self.stopping = True
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def now_ns(self) -> int:
        return time.monotonic_ns() - self.start_ns

    # -- sending --

    def _schedule(self, user: _User) -> None:
        """Put an idle user's next slot on the heap (or note it finished)."""
        next_s = user.pacer.next_s
        if next_s is not None and user.active:
            heapq.heappush(self.heap, (round(next_s * 1e9), user.number))

    def pump(self) -> None:
        """Send every slot due by now whose user is idle; arm the timer for the next one."""
        if self.stopping:
            return
        heap, users = self.heap, self.users
        now = time.monotonic_ns() - self.start_ns
        while heap and heap[0][0] <= now:
            _, number = heapq.heappop(heap)
            user = users.get(number)
            if user is None or not user.active or user.request is not None:
                continue
            self._send(user, now, None)
            now = time.monotonic_ns() - self.start_ns
        self._arm(now)

    def _send(self, user: _User, now: int, ready_ns: int | None) -> None:
        """Send ``user``'s due slot (``ready_ns``: when its previous answer came, if it was due before).
        Without a live connection the user connects first and sends once connected. Past the schedule's
        end nothing is sent: a slot still owed then is counted at the end, the server's when its user was
        held by an answer (``ready_ns``), else the generator's."""
        if now >= self.end_ns:
            user.held_at_end = ready_ns is not None
            return
        transport = user.transport
        if transport is None or transport.is_closing():
            if not user.connecting:
                self._background(self._reconnect(user))
            return
        intended = round(user.pacer.take() * 1e9)
        request = user.flow.next_request()
        body = None if request.body is None else orjson.dumps(request.body)
        user.request, user.intended_ns, user.sent_ns = request, intended, now
        self.in_flight += 1
        transport.write(encode_request(request.method, request.path, self.host_header, body))
        self.recorder.sent(intended, now, request.kind, ready_ns)
        self.requests_sent += 1

    # -- answers --

    def answered(self, user: _User, status: int, body: bytes) -> None:
        request = user.request
        if request is None:
            self.protocol_error(user, ProtocolError(f"an answer (status {status}) to no request"))
            return
        now = time.monotonic_ns() - self.start_ns
        self._answer_at(now, user.sent_ns)
        user.request = None
        self.in_flight -= 1
        # a cancel that finds its order already filled (409) or gone (404) was answered correctly
        if 200 <= status < 300 or (request.kind == "cancel" and status in (404, 409)):
            self.recorder.record(user.intended_ns, user.sent_ns, now)
            if request.kind in LEARNS and 200 <= status < 300 and body:
                try:
                    payload = orjson.loads(body)
                except orjson.JSONDecodeError:
                    payload = None
                if isinstance(payload, dict):
                    user.flow.on_response(request, status, payload)
        else:
            self.recorder.error(user.intended_ns, f"http_{status}", now)
        self._next(user, now)

    def _answer_at(self, now: int, sent_ns: int) -> None:
        """Note an answer: if nothing was answered for STALL_NS while this request was out, a stall."""
        since = max(self.last_answer_ns, sent_ns)
        if now - since >= STALL_NS:
            self.stalls.append((since, now - since))
        self.last_answer_ns = now

    def _next(self, user: _User, now: int) -> None:
        """After an answer (or a failure): send at once if the next slot is overdue, else wait for it."""
        if self.stopping:
            return
        if not user.active:
            self._leave(user)
            return
        next_s = user.pacer.next_s
        if next_s is None:
            return
        due = round(next_s * 1e9)
        if due <= now:
            self._send(user, now, now)
            return
        heapq.heappush(self.heap, (due, user.number))
        self._arm(now)

    def _arm(self, now: int) -> None:
        """Make sure the timer wakes the loop for the earliest slot on the heap (not sooner than the
        granularity after its last wake-up). A wake-up already armed for no later than that is kept: while
        the loop is busy with answers, the armed instant may have passed without its wake-up having run."""
        if not self.heap:
            return
        timer = self._timer
        assert timer is not None
        at = max(self.heap[0][0] + self.start_ns, timer.fired_ns + GRANULARITY_NS)
        if not timer.covers(at, GRANULARITY_NS):
            timer.arm(at)

    def protocol_error(self, user: _User, error: ProtocolError) -> None:
        """An answer this generator cannot frame: an error of kind ``protocol``; the connection is closed."""
        self.last_protocol_error = str(error)
        now = self.now_ns()
        if user.request is not None:
            user.request = None
            self.in_flight -= 1
            self.recorder.error(user.intended_ns, "protocol", now)
        if user.transport is not None:
            user.transport.abort()
        self._next(user, now)

    def lost(self, user: _User) -> None:
        """The connection closed: its request in flight (if any) failed."""
        request = user.request
        if request is None:
            return  # an idle keep-alive connection closed by the server: reopened at the next send
        user.request = None
        self.in_flight -= 1
        if self.stopping:
            return
        now = self.now_ns()
        self._answer_at(now, user.sent_ns)
        self.recorder.error(user.intended_ns, "connection", now)
        self._next(user, now)

    # -- connections --

    async def _connect(self, user: _User) -> None:
        loop = asyncio.get_running_loop()
        user.connecting = True
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: user, self.host, self.port), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as error:
            self.connect_failures += 1
            self.last_connect_error = str(error) or type(error).__name__
        finally:
            user.connecting = False

    async def _reconnect(self, user: _User) -> None:
        """Connect a user whose slot is due; if the connection is refused, that slot fails."""
        await self._connect(user)
        if self.stopping or not user.active or user.request is not None:
            return
        now = self.now_ns()
        if user.transport is not None:
            self._send(user, now, now) if self._due(user, now) else self._schedule(user)
        elif user.pacer.next_s is not None:
            intended = round(user.pacer.take() * 1e9)
            self.recorder.sent(intended, now, user.flow.next_request().kind, now)
            self.recorder.error(intended, "connection", now)
            self._schedule(user)
        self.pump()

    @staticmethod
    def _due(user: _User, now: int) -> bool:
        next_s = user.pacer.next_s
        return next_s is not None and round(next_s * 1e9) <= now

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a connection attempt beside the load, holding a reference until it ends."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _join(self, user: _User) -> None:
        try:
            await self._connect(user)
        finally:
            self._joining.discard(user.number)
        self.users[user.number] = user
        self._schedule(user)
        self.pump()

    def _leave(self, user: _User) -> None:
        self.users.pop(user.number, None)
        if user.transport is not None:
            user.transport.close()

    # -- every tick --

    def _tick(self) -> None:
        now = self.now_ns()
        if now >= self.end_ns:
            if self.in_flight == 0 or now >= self.end_ns + DRAIN_S * 1e9:
                self.stop()
            return
        self._follow_user_count(now)
        self._time_out(now)

    def _follow_user_count(self, now: int) -> None:
        """Users join and leave as the schedule's user count changes (a ramp, a stage)."""
        wanted = set(self.my_numbers(self.scenario.users_at(now / 1e9)))
        for number in sorted(wanted - self.users.keys() - self._joining):
            self._joining.add(number)
            self._background(self._join(_User(self, number, now / 1e9)))
        for number in sorted(self.users.keys() - wanted):
            user = self.users[number]
            user.active = False
            if user.request is None:
                self._leave(user)

    def _time_out(self, now: int) -> None:
        limit = round(REQUEST_TIMEOUT_S * 1e9)
        for user in list(self.users.values()):
            if user.request is not None and now - user.sent_ns > limit:
                user.request = None
                self.in_flight -= 1
                self.recorder.error(user.intended_ns, "timeout", now)
                if user.transport is not None:
                    user.transport.abort()
                self._next(user, now)

    def _count_owed(self) -> None:
        """Slots that came due and were never sent. A user waiting for an answer was held by the server; an
        idle one, by the generator. Unanswered requests and unsent slots wait until now, in all outcomes."""
        now = self.now_ns()
        waiting = [u.sent_ns for u in self.users.values() if u.request is not None]
        if waiting:  # still unanswered at the end: a stall that had not ended
            since = max(self.last_answer_ns, min(waiting))
            if now - since >= STALL_NS:
                self.stalls.append((since, now - since))
        until_s = min(now, self.end_ns) / 1e9
        for user in self.users.values():
            if user.request is not None:
                self.recorder.unanswered(user.intended_ns, now)
            if not user.active:
                continue
            for slot_s in user.pacer.owed(until_s):
                slot = round(slot_s * 1e9)
                self.recorder.owed(slot, generator_fault=user.request is None and not user.held_at_end)
                self.recorder.unanswered(slot, now)
