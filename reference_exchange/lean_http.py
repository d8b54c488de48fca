"""The lean path: the trading routes served by an httptools protocol, without aiohttp's Request and Response.

aiohttp's own work per request (its Request, the handler task, the Response and its header machinery) cost
about as much server CPU as everything the exchange does for an order (docs/benchmarks.md, "HTTP
efficiency"). A trading client sends a few kinds of small requests over and over, so those are answered
here: llhttp (through httptools) parses them, ``TradingRoutes`` (the very code behind the aiohttp handlers)
answers them, and the reply is framed exactly as aiohttp frames it (tests/exchange/test_lean_http.py holds
the two paths to the same bytes).

A request is *lean* when it is HTTP/1.1, one of ``LEAN_ROUTES`` with a plain path (letters, digits, ``_``
and ``-`` in its variable part) and, for the two routes that read one, a plain query; with no
``Transfer-Encoding``, ``Content-Encoding``, ``Expect`` or ``Upgrade`` header and a body within the size
limit. Anything else is aiohttp's, which stays the authority on HTTP:

- before a connection's first request has been answered, the connection is handed to aiohttp whole: the
  bytes received so far are given to a fresh aiohttp protocol, which then owns the socket (``_hand_off``).
  Monitoring and admin clients, malformed requests and everything unusual go this way, untouched;
- a request that is not lean after lean ones on the same connection turns the connection into a relay
  (``_relay``): that request and every later one are re-encoded from what the parser saw (request line,
  headers as received, the body streamed, re-chunked if it came chunked) and fed to aiohttp once the lean
  answers before it are written, so answers stay in order. When the parser stands between requests at
  the end of a read, the socket is given to aiohttp outright.

While the admission refuses (a standing queue), a read that is exactly one plain order request
(``order_framing``) is refused before llhttp sees it: the parser stands between requests, so it is passed
by whole. A connection given a refusal is not read again until the turn ends (``_defer``): a client that
retries at once would otherwise be read, and refused, again and again within one turn, since the loop
reads up to 48 batches of 1,024 ready sockets before any task runs, and refusals would take the core
from the orders admitted (docs/benchmarks.md, "Clients that retry at once").

Responses go out in request order: an order or a cancel waits for the journal, and requests pipelined
behind it wait in ``_queue`` (reading pauses if a client pipelines more than ``MAX_QUEUED``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable
from time import perf_counter
from typing import Final, cast

import httptools
from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_response import REASON_PHRASES

from reference_exchange.admission import CoDelAdmission, TurnClock
from reference_exchange.api import Reply, TradingRoutes
from reference_exchange.endpoints import CLIENT_CLOSED
from reference_exchange.errors import INTERNAL_ERROR, ApiError, error_body, http_error_body
from reference_exchange.http_guard import body_timeout
from reference_exchange.metrics import ServerMetrics
from reference_exchange.order_framing import HEADERS_NOT_LEAN, OrderFraming

log = logging.getLogger("reference_exchange.http")

#: Requests a client may pipeline behind one still being answered before reading from it pauses.
MAX_QUEUED: Final = 32
#: A request line and headers longer than this are refused (aiohttp's own limits are 8,190 bytes a line);
#: on a connection's first request they are handed to aiohttp, which answers them its own way.
MAX_HEAD: Final = 16 * 1024

_PLAIN_SEGMENT = re.compile(rb"[A-Za-z0-9_-]+\Z")
_PLAIN_QUERY = re.compile(rb"[A-Za-z0-9_-]+(=[A-Za-z0-9_-]*)?(&[A-Za-z0-9_-]+(=[A-Za-z0-9_-]*)?)*\Z")
_REFUSAL_BODY: Final = error_body(
    "overloaded", "the exchange is over capacity and refuses new orders until its queue drains; retry later"
)

# The route kinds: (route pattern and method as aiohttp registers them, whether the answer is awaited).
PLACE: Final = ("/api/orders", "POST")
GET_ORDER: Final = ("/api/orders/{order_id}", "GET")
CANCEL: Final = ("/api/orders/{order_id}", "DELETE")
BOOK: Final = ("/api/orderbook/{symbol}", "GET")
TRADES: Final = ("/api/trades/{symbol}", "GET")
SYMBOLS: Final = ("/api/symbols", "GET")
HEALTH: Final = ("/health", "GET")
LEAN_ROUTES: Final = (PLACE, GET_ORDER, CANCEL, BOOK, TRADES, SYMBOLS, HEALTH)

Route = tuple[str, str]
Request = tuple[Route, str, str | None, bytes, bool]  # route, path argument, query value, body, keep-alive


class _HandOff(Exception):
    """Raised from a parser callback: the connection's first request is aiohttp's."""


class _HeadTooLarge(Exception):
    """Raised from a parser callback: the request line and headers exceed ``MAX_HEAD``."""

    def __str__(self) -> str:
        return f"request line and headers longer than {MAX_HEAD} bytes"


_ORDINARY, _LENGTH, _NOT_LEAN = "ordinary", "content-length", "not lean"
#: Header names as clients spell them, classified once (a client repeats the same few spellings).
_HEADER_KINDS: dict[bytes, str] = {}
_HEADER_KINDS_KEPT: Final = 256  # beyond this many spellings, classified each time: the dict stays bounded


def _header_kind(name: bytes) -> str:
    kind = _HEADER_KINDS.get(name)
    if kind is None:
        lower = name.lower()
        kind = (
            _NOT_LEAN if lower in HEADERS_NOT_LEAN else _LENGTH if lower == b"content-length" else _ORDINARY
        )
        if len(_HEADER_KINDS) < _HEADER_KINDS_KEPT:
            _HEADER_KINDS[name] = kind
    return kind


def lean_route(method: bytes, target: bytes) -> tuple[Route, str, str | None] | None:
    """The lean route of a request, its path argument and its query value (``depth`` or ``limit``), or
    None when aiohttp should judge it."""
    path, _, query = target.partition(b"?")
    if method == b"POST":
        return (PLACE, "", None) if path == b"/api/orders" else None
    if method == b"DELETE":
        route: Route = CANCEL
        prefix = b"/api/orders/"
    elif method != b"GET":
        return None
    elif path == b"/api/symbols":
        return SYMBOLS, "", None
    elif path == b"/health":
        return HEALTH, "", None
    elif path.startswith(b"/api/orders/"):
        route, prefix = GET_ORDER, b"/api/orders/"
    elif path.startswith(b"/api/orderbook/"):
        route, prefix = BOOK, b"/api/orderbook/"
    elif path.startswith(b"/api/trades/"):
        route, prefix = TRADES, b"/api/trades/"
    else:
        return None
    argument = path[len(prefix) :]
    if not _PLAIN_SEGMENT.match(argument):
        return None
    value = None
    if (route is BOOK or route is TRADES) and query:
        if not _PLAIN_QUERY.match(query):
            return None
        value = _first(query, b"depth" if route is BOOK else b"limit")
    return route, argument.decode(), value


def _first(query: bytes, name: bytes) -> str | None:
    """The first value of ``name`` in a plain query, as ``request.query.get`` reads it."""
    for item in query.split(b"&"):
        key, _, value = item.partition(b"=")
        if key == name:
            return value.decode()
    return None


class _Framer:
    """Replies as aiohttp writes them: status line, the reply's own headers, Content-Type, Content-Length,
    Date, Server, and ``Connection: close`` when the connection ends."""

    def __init__(self) -> None:
        self._second = -1
        self._tail = b""
        self._reused: dict[tuple[int, bool], bytes] = {}

    def _date(self) -> None:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._tail = f"Date: {rfc822_formatted_time()}\r\nServer: {SERVER_SOFTWARE}\r\n".encode()
            self._reused.clear()

    def frame_reused(self, answer: Reply, keep_alive: bool) -> bytes:
        """``frame`` for a reply sent again and again as it is (a refusal): framed once per second, as its
        Date changes. ``answer`` must live as long as the framer (it is known by its identity)."""
        self._date()
        key = (id(answer), keep_alive)
        framed = self._reused.get(key)
        if framed is None:
            framed = self._reused[key] = self.frame(answer, keep_alive)
        return framed

    def frame(self, answer: Reply, keep_alive: bool) -> bytes:
        self._date()
        status, body, headers = answer
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items()) if headers else ""
        head = (
            f"HTTP/1.1 {status} {REASON_PHRASES.get(status, '')}\r\n{extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        ).encode()
        return b"%s%s%s\r\n%s" % (head, self._tail, b"" if keep_alive else b"Connection: close\r\n", body)


class LeanHttp:
    """The protocol factory for the exchange's port, shared by its connections."""

    def __init__(
        self,
        routes: TradingRoutes,
        metrics: ServerMetrics,
        aiohttp_server: web.Server,
        max_body: int,
        admission: CoDelAdmission,
    ) -> None:
        self.routes = routes
        self.admission = admission
        self.turns = TurnClock(admission)
        self._refusals: dict[int, Reply] = {}
        self.aiohttp_server = aiohttp_server
        self.max_body = max_body
        self.framing = OrderFraming(max_body)
        self.connections: set[LeanConnection] = set()
        self.framer = _Framer()
        self.stats = {route: metrics.route_stats(*route) for route in LEAN_ROUTES}
        self.observe = metrics.observe
        self.relayed = 0  # connections turned into relays (a request not lean after lean ones)

    def __call__(self) -> LeanConnection:
        return LeanConnection(self)

    def refusal(self) -> Reply:
        """The 503 for an order refused by ``admission``, encoded once per Retry-After value."""
        self.routes.exchange.service.shed_queue_delay += 1
        retry = self.admission.retry_after_s()
        answer = self._refusals.get(retry)
        if answer is None:
            answer = self._refusals[retry] = Reply(503, _REFUSAL_BODY, {"Retry-After": str(retry)})
        return answer

    def open_connections(self) -> int:
        return len(self.connections) + len(self.aiohttp_server.connections)


def _without_frames(error: BaseException) -> None:
    """Drop the tracebacks of a parser callback's exception and of the error that carries it. The parser
    keeps what its callbacks raise, and those frames refer to the connection: a cycle that only a
    collection would find (see ``LeanConnection.connection_lost``)."""
    seen: BaseException | None = error
    while seen is not None:
        seen.__traceback__ = None
        seen = seen.__context__


class LeanConnection(asyncio.Protocol):
    """One client connection on the lean path (see the module docstring)."""

    def __init__(self, lean: LeanHttp) -> None:
        self._lean = lean
        self._routes = lean.routes
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._first: bytearray | None = bytearray()  # bytes before the first request completes
        self._in_message = False
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self._heads_seen = 0  # request heads completed on this connection
        self._unfinished_head = 0  # bytes read since the last head completed, while one is unfinished
        self._lean_ok = True
        self._length = 0
        self._body: list[bytes] = []
        self._request: tuple[Route, str, str | None] | None = None
        self._keep_alive = True
        self._queue: deque[Request] = deque()
        self._busy = False
        self._closing = False
        self._relay_to: RequestHandler | None = None
        self._held: list[bytes] | None = None  # relayed bytes waiting for the lean answers before them
        self._chunked = False
        self._paused = False
        self._last: Reply | None = None  # the 400 that ends a connection sending a malformed request
        # What ``http_guard.ConnectionSweeper`` reads, named as on aiohttp's RequestHandler.
        self._request_count = 0
        self._request_in_progress = False
        self._refused_in_turn = -1  # the turn (``TurnClock.turn``) in which this connection was last refused
        self._deferred: bytes | None = None  # what it sent after that, read when the turn ends

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._lean.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lean.connections.discard(self)
        if self._relay_to is not None:
            self._relay_to.connection_lost(exc)
        elif self._in_message and self._request is not None:
            # The client left mid-request: nginx's 499, as the aiohttp path counts it; no answer.
            self._lean.observe(self._lean.stats[self._request[0]], CLIENT_CLOSED, 0.0)
        self.transport = None
        # The parser refers back to this protocol (its callbacks): a cycle, which the collector policy
        # (gc_policy) would tenure until a thorough collection. Without it, both are freed at once.
        del self._parser

    def pause_writing(self) -> None:
        if self._relay_to is not None:
            self._relay_to.pause_writing()

    def resume_writing(self) -> None:
        if self._relay_to is not None:
            self._relay_to.resume_writing()

    def eof_received(self) -> None:
        if self._relay_to is not None:
            self._relay_to.eof_received()

    def data_received(self, data: bytes) -> None:
        lean = self._lean
        if self._deferred is not None:
            self._deferred += data
            if self.transport is not None:
                self.transport.pause_reading()  # one read held per connection, the rest in the kernel
            return
        lean.turns.touch()
        if self._refused_in_turn == lean.turns.turn:
            self._defer(data)
            return
        admission = lean.admission
        # ``standing`` first: the clock is read only then, and every read of a busy server passes here.
        if (
            admission.standing
            and admission.refuses(lean.turns.now())
            and self._between_requests()
            and lean.framing.plain(data)
        ):
            self._refuse_unparsed()
            return
        first = self._first
        if first is not None:
            first += data
        heads_before = self._heads_seen
        try:
            self._parser.feed_data(data)
            # httptools gathers a header's value in itself before calling on_header: bound what a head
            # still unfinished after this read may hold (to within the one read that began it).
            if self._in_message and self._request is None:
                self._unfinished_head = (
                    0 if self._heads_seen != heads_before else self._unfinished_head + len(data)
                )
                if self._unfinished_head > MAX_HEAD:
                    raise _HeadTooLarge
            else:
                self._unfinished_head = 0
        except _HeadTooLarge as error:
            self._head_too_large(error)
            return
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            if not isinstance(cause, (_HandOff, _HeadTooLarge)):
                raise  # with its frames: they are what the log needs
            _without_frames(error)
            if isinstance(cause, _HandOff):
                self._hand_off()
            else:
                self._head_too_large(cause)
            return
        except httptools.HttpParserUpgrade as upgrade:
            # Only a relay gets here (an upgrade is never lean): the rest is not HTTP, and aiohttp's.
            self._relay_bytes(data[upgrade.args[0] :])
            self._switch_to_relay()
            return
        except httptools.HttpParserError as error:
            if self._first is not None:
                self._hand_off()  # aiohttp answers the malformed first request its own way
            else:
                self._refuse_malformed(error)
            return
        if self._relay_to is not None and not self._in_message and self._held is None:
            self._switch_to_relay()

    def _defer(self, data: bytes) -> None:
        """Hold a read of a connection refused in this turn until the turn ends (see the module docstring)."""
        self._deferred = data
        self._lean.turns.defer(self._read_deferred)

    def _read_deferred(self) -> None:
        data, self._deferred = self._deferred, None
        transport = self.transport
        if transport is None or data is None:
            return
        try:
            if not self._paused:
                transport.resume_reading()  # a no-op unless a second read came while this one was held
            self.data_received(data)
        except Exception:  # as the loop does when data_received raises: the connection, not the turn
            log.exception("reading a deferred request failed; closing the connection")
            transport.abort()

    def _between_requests(self) -> bool:
        """Whether this lean connection has answered all it read and is not in a request: the parser
        stands between messages, so a whole request may pass it by."""
        return not (
            self._in_message
            or self._busy
            or self._queue
            or self._closing
            or self._first is not None
            or self._relay_to is not None
            or self._last is not None
        )

    def _refuse_unparsed(self) -> None:
        """Refuse a read that is exactly one plain order (``OrderFraming``) without parsing it: under a
        standing queue most reads are, and llhttp's callbacks were half of a refusal's Python."""
        lean = self._lean
        lean.admission.refuse()
        self._refused_in_turn = lean.turns.turn
        self._request_count += 1
        refusal = lean.refusal()
        self._send(PLACE, refusal, True, perf_counter(), lean.framer.frame_reused(refusal, True))

    # -- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._lean_ok = True
        self._chunked = False
        self._length = 0
        self._request = None

    # llhttp sets no limit of its own on a head: without the count in on_url and on_header a client could
    # grow one request's head without end. (Inlined, not a helper: they run for every header.)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > MAX_HEAD:
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value)
        if self._head_size > MAX_HEAD:
            raise _HeadTooLarge
        self._headers.append((name, value))
        kind = _header_kind(name)
        if kind is _NOT_LEAN:
            self._lean_ok = False
            if name.lower() == b"transfer-encoding" and value.lower().rstrip().endswith(b"chunked"):
                self._chunked = True  # llhttp hands the body over de-chunked: a relay re-chunks it
        elif kind is _LENGTH:
            self._length = int(value) if value.isdigit() else -1

    def on_headers_complete(self) -> None:
        self._heads_seen += 1
        parser = self._parser
        if self._relay_to is None:
            if (
                self._lean_ok
                and 0 <= self._length <= self._lean.max_body
                and parser.get_http_version() == "1.1"
            ):
                self._request = lean_route(parser.get_method(), self._url)
            if self._request is not None:
                self._keep_alive = parser.should_keep_alive()
                self._body = []
                return
            if self._first is not None:
                raise _HandOff
            self._start_relay()
        self._relay_head()

    def on_body(self, body: bytes) -> None:
        if self._relay_to is None:
            self._body.append(body)
        elif self._chunked:
            self._relay_bytes(b"%x\r\n%s\r\n" % (len(body), body))
        else:
            self._relay_bytes(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        self._first = None
        if self._relay_to is not None:
            if self._chunked:
                self._relay_bytes(b"0\r\n\r\n")
            return
        assert self._request is not None
        route, argument, query = self._request
        self._request = None
        self._request_count += 1
        body = b"".join(self._body) if self._body else b""
        request: Request = (route, argument, query, body, self._keep_alive)
        if self._busy or self._queue:
            self._queue.append(request)
            if len(self._queue) >= MAX_QUEUED and self.transport is not None:
                self.transport.pause_reading()
                self._paused = True
        else:
            self._answer(request)

    # -- answering ------------------------------------------------------------------------------

    def _answer(self, request: Request) -> None:
        """Answer now if the route does not wait, else start the awaited answer (``_busy`` until done)."""
        route, argument, query, body, keep_alive = request
        started = perf_counter()
        routes = self._routes
        try:
            if route is PLACE:
                lean = self._lean
                if not lean.admission.admit(lean.turns.now()):
                    self._refused_in_turn = lean.turns.turn
                    refusal = lean.refusal()  # the body never decoded, the answer framed once a second
                    self._send(
                        route, refusal, keep_alive, started, lean.framer.frame_reused(refusal, keep_alive)
                    )
                    return
                # The turn clock's admission has decided: the loop-lag bound is LEAN_HTTP=off's. Turns grow
                # with the connections (hundreds of ms at 10,000), so that bound would refuse every order
                # while the admission refuses a share.
                routes.admit_order(by_lag=False)
                awaited: Awaitable[Reply] = routes.place_order(body, self.transport, by_lag=False)
            elif route is CANCEL:
                awaited = routes.cancel_order(argument)
            else:
                self._send(route, _synchronous(routes, route, argument, query), keep_alive, started)
                return
        except Exception as error:
            self._send(route, _error_reply(error, route), keep_alive, started)
            return
        self._busy = self._request_in_progress = True
        asyncio.get_running_loop().create_task(self._finish(route, awaited, keep_alive, started))

    async def _finish(
        self, route: Route, awaited: Awaitable[Reply], keep_alive: bool, started: float
    ) -> None:
        try:
            answer = await awaited
        except Exception as error:
            answer = _error_reply(error, route)
        self._busy = self._request_in_progress = False
        self._send(route, answer, keep_alive, started)
        self._drain()

    def _drain(self) -> None:
        """Answer what was pipelined behind the finished request, in order, until one must wait."""
        queue = self._queue
        while queue and not self._busy and not self._closing:
            self._answer(queue.popleft())
        if self._paused and len(queue) < MAX_QUEUED // 2 and self.transport is not None:
            self.transport.resume_reading()
            self._paused = False
        if self._busy or queue:
            return
        if self._last is not None and self.transport is not None and not self._closing:
            self._closing = True
            self.transport.write(self._lean.framer.frame(self._last, keep_alive=False))
            self.transport.close()
        elif self._held is not None:
            held, self._held = self._held, None
            assert self._relay_to is not None
            for data in held:
                self._relay_to.data_received(data)
            if not self._in_message:
                self._switch_to_relay()

    def _send(
        self, route: Route, answer: Reply, keep_alive: bool, started: float, framed: bytes | None = None
    ) -> None:
        lean = self._lean
        lean.observe(lean.stats[route], answer.status, perf_counter() - started)
        transport = self.transport
        if transport is None or self._closing or answer.status == CLIENT_CLOSED:
            return
        transport.write(framed or lean.framer.frame(answer, keep_alive))
        if not keep_alive:
            self._closing = True
            transport.close()

    # -- what is not lean -----------------------------------------------------------------------

    def _hand_off(self) -> None:
        """Give the connection, and every byte it sent so far, to a fresh aiohttp protocol."""
        transport, received = self.transport, bytes(self._first or b"")
        self._lean.connections.discard(self)
        if transport is None or transport.is_closing():
            return
        handler = self._lean.aiohttp_server()
        self._give_transport_to(handler)
        handler.connection_made(transport)
        handler.data_received(received)

    def _give_transport_to(self, protocol: asyncio.BaseProtocol) -> None:
        """``protocol`` reads the socket from now on. This one gets no more callbacks, ``connection_lost``
        neither, so its cycle with the parser is broken here (see there)."""
        assert self.transport is not None
        self.transport.set_protocol(protocol)
        del self._parser

    def _start_relay(self) -> None:
        self._lean.connections.discard(self)
        self._lean.relayed += 1
        handler = self._relay_to = self._lean.aiohttp_server()
        assert self.transport is not None
        handler.connection_made(self.transport)
        self._held = [] if (self._busy or self._queue) else None

    def _relay_head(self) -> None:
        parser = self._parser
        lines = [b"%s %s HTTP/%s\r\n" % (parser.get_method(), self._url, parser.get_http_version().encode())]
        lines.extend(b"%s: %s\r\n" % header for header in self._headers)
        lines.append(b"\r\n")
        self._relay_bytes(b"".join(lines))

    def _relay_bytes(self, data: bytes) -> None:
        assert self._relay_to is not None
        if self._held is not None:
            self._held.append(data)
        else:
            self._relay_to.data_received(data)

    def _switch_to_relay(self) -> None:
        """Between requests with nothing held: aiohttp reads the socket itself from now on."""
        if self.transport is not None and self._relay_to is not None and not self.transport.is_closing():
            self._give_transport_to(self._relay_to)

    def _head_too_large(self, error: _HeadTooLarge) -> None:
        if self._first is not None:
            self._hand_off()  # aiohttp refuses it with its own 400, as for any first request it judges
        elif self._relay_to is not None:
            log.warning("bad request: %s", error)  # aiohttp owns the answers: end the connection
            if self.transport is not None:
                self.transport.close()
        else:
            self._refuse_malformed(error)

    def _refuse_malformed(self, error: Exception) -> None:
        """A malformed request after lean ones: one short log line, then, once the answers before it are
        written, a 400 and the connection closed (aiohttp answers a malformed first request itself)."""
        log.warning("bad request: %.200s", " ".join(str(error).split()))
        self._last = Reply(400, error_body("bad_request", f"malformed HTTP request: {error}"[:200]))
        if self.transport is not None:
            self.transport.pause_reading()
        self._drain()

    # -- the sweeper ----------------------------------------------------------------------------

    def force_close(self) -> None:
        """Called by the sweeper: no request began, or one's head or body stalled, within the timeout."""
        transport = self.transport
        if transport is None:
            return
        if self._in_message and self._request is not None and not self._busy:
            # Its head arrived but its body did not: answer as the aiohttp path does (408) before closing.
            route = self._request[0]
            answer = Reply(408, http_error_body(body_timeout(self._lean_timeout())))
            self._lean.observe(self._lean.stats[route], 408, 0.0)
            transport.write(self._lean.framer.frame(answer, keep_alive=False))
        self._closing = True
        transport.close()

    def _lean_timeout(self) -> float:
        return self._routes.exchange.settings.client_timeout


def _synchronous(routes: TradingRoutes, route: Route, argument: str, query: str | None) -> Reply:
    if route is BOOK:
        return routes.orderbook(argument, query)
    if route is GET_ORDER:
        return routes.get_order(argument)
    if route is TRADES:
        return routes.trades(argument, query)
    if route is SYMBOLS:
        return routes.symbols()
    return routes.health()


def _error_reply(error: Exception, route: Route) -> Reply:
    """What ``endpoints.instrumented`` answers for the same exception on the aiohttp path."""
    if isinstance(error, ApiError):
        return Reply(error.status, error_body(error.code, error.message), error.headers or None)
    if isinstance(error, ConnectionResetError):
        return Reply(CLIENT_CLOSED, b"")
    log.error("unhandled error on %s %s", route[1], route[0], exc_info=error)
    return Reply(INTERNAL_ERROR[0], error_body(*INTERNAL_ERROR[1:]))
