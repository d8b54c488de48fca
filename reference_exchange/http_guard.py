"""The HTTP server against clients that hold it without using it: slow, stalled, flooding or malformed.

aiohttp times out none of these by itself: headers that never finish, a body that trickles, an idle
keep-alive connection (it keeps one for about an hour), and it accepts connections until the process runs
out of file descriptors. Measured before this module: 600 stalled connections with the file limit at 512
stopped ``/health`` from answering, and after 30 s the server had closed 106 of them. So, as nginx and Go's
net/http do:

- **Client timeout** (``CLIENT_TIMEOUT``, default 10 s). A connection must start a request within that long
  of opening or of its previous request (``ConnectionSweeper``, once a second: headers that never finish,
  a byte every 2 s, or plain idleness); a request body must arrive within it (``read_body``). Handling a
  request is not timed here: a request being handled is the server's work, not the client's.
- **Connection cap** (``MAX_CONNECTIONS``, default from the open-file limit, keeping ``FD_RESERVE`` for
  the journal, logs and the event loop). A connection beyond it gets a pre-encoded 503 and is closed at
  once, before aiohttp sets anything up for it (``GuardedSite``): descriptors are never exhausted.
- **Malformed requests** write one short log line, not a traceback (``QuietBadRequests``): a client
  sending garbage request lines must not be able to flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, cast

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

log = logging.getLogger("reference_exchange.http")

#: File descriptors kept free of client connections: the journal, the log, the event loop, the listening
#: socket and whatever a run of the admin routes opens.
FD_RESERVE = 64
#: The fewest connections a cap may allow, however low the file limit.
MIN_CONNECTIONS = 16
#: How often idle and stalled connections are looked for.
SWEEP_INTERVAL_S = 1.0
#: Longest log line a malformed request may cause (its text is clipped to fit).
MAX_BAD_REQUEST_LOG = 200

_FULL_BODY = b'{"error": "too_many_connections", "message": "the exchange is at its connection limit"}'
_FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_FULL_BODY), _FULL_BODY)
)


def connection_cap(max_connections: int) -> int:
    """The connection cap: ``max_connections``, or when that is 0 the soft open-file limit less
    ``FD_RESERVE``."""
    if max_connections:
        return max_connections
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(int(soft) - FD_RESERVE, MIN_CONNECTIONS)


class _Refusal(asyncio.Protocol):
    """A connection over the cap: the 503 written straight to the socket, then closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.WriteTransport subclass, though it writes like one.
        cast(asyncio.WriteTransport, transport).write(_FULL)
        transport.close()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections beyond ``max_connections`` are refused before anything is set up for
    them (``web.TCPSite`` otherwise). ``protocol`` makes each accepted connection's protocol and
    ``open_connections`` counts them (aiohttp's server alone when None)."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        max_connections: int,
        protocol: Callable[[], asyncio.Protocol] | None = None,
        open_connections: Callable[[], int] | None = None,
        backlog: int = 4096,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host, self._port, self.max_connections = host, port, max_connections
        self._protocol, self._open_connections = protocol, open_connections
        self.refused = 0

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        accept = self._protocol or server
        count = self._open_connections or (lambda: len(server.connections))

        def protocol() -> asyncio.Protocol:
            if count() < self.max_connections:
                return accept()
            self.refused += 1
            return _Refusal()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            protocol, self._host, self._port, backlog=self._backlog, reuse_address=True
        )


class SweptConnection(Protocol):
    """What the sweeper reads of a connection: aiohttp's ``RequestHandler`` (these are its names) and
    ``lean_http.LeanConnection``. The count goes up when a request starts; busy while one is handled."""

    _request_count: int
    _request_in_progress: bool

    def force_close(self) -> None: ...


@dataclass
class ConnectionSweeper:
    """Closes connections that started no request within ``timeout_s`` of opening or of their previous
    request (see the module docstring); ``connections`` lists the open ones. Runs until cancelled."""

    connections: Callable[[], Iterable[SweptConnection]]
    timeout_s: float
    closed: int = 0
    # Per open connection: its request count when last active, and when. Rebuilt every sweep, so a
    # closed connection is forgotten (aiohttp's handlers take no weak references).
    _seen: dict[SweptConnection, tuple[int, float]] = field(default_factory=dict)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                self.sweep(time.monotonic())
            except Exception:  # the guard must outlive a surprise; say so once a second at most
                log.exception("connection sweep failed")

    def sweep(self, now: float) -> None:
        seen: dict[SweptConnection, tuple[int, float]] = {}
        for handler in self.connections():
            # aiohttp counts a request once its headers are parsed and flags one being handled; neither
            # is public, so tests/exchange/test_hostile_clients.py holds them to their meaning.
            count, busy = handler._request_count, handler._request_in_progress
            last = self._seen.get(handler)
            if busy or last is None or last[0] != count:
                seen[handler] = (count, now)
            elif now - last[1] > self.timeout_s:
                handler.force_close()
                self.closed += 1
            else:
                seen[handler] = last
        self._seen = seen


async def read_body(request: web.Request, timeout_s: float) -> bytes:
    """The request's body, which must finish arriving within ``timeout_s`` (a 408 otherwise, and the
    connection closed). A body already received (the usual case) is returned without a timer."""
    if request.content.is_eof():
        return await request.read()
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        if request.transport is not None:
            request.transport.close()
        raise body_timeout(timeout_s) from None


def body_timeout(timeout_s: float) -> web.HTTPRequestTimeout:
    """The 408 for a request body that did not arrive within ``timeout_s``."""
    return web.HTTPRequestTimeout(text=f"request body not received within {timeout_s:g} s")


class QuietBadRequests(logging.Filter):
    """On aiohttp's server logger: a malformed request (``BadHttpMessage``) is one clipped line at
    WARNING without its traceback (about 560 bytes each before)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, BadHttpMessage):
            text = " ".join(str(error).split())
            clipped = text if len(text) <= MAX_BAD_REQUEST_LOG else text[: MAX_BAD_REQUEST_LOG - 3] + "..."
            record.msg, record.args = "bad request: %s", (clipped,)
            record.exc_info, record.exc_text, record.levelno, record.levelname = None, None, 30, "WARNING"
        return True


def quiet_bad_requests() -> None:
    """Install ``QuietBadRequests`` on aiohttp's server logger (once)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, QuietBadRequests) for f in logger.filters):
        logger.addFilter(QuietBadRequests())
