"""The lean path answers byte for byte as the aiohttp path does (issue 15).

Two exchanges as shipped (durable journal), one with the lean path and one with LEAN_HTTP=off, get the same
requests on raw sockets, in the same order; every answer is compared whole, status line, headers and body,
with only what differs by the clock blanked (Date, timestamps, uptime).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import support
from aiohttp import web

from reference_exchange.admission import CoDelAdmission
from reference_exchange.api import EXCHANGE, ROUTES
from reference_exchange.config import Settings
from reference_exchange.lean_http import (
    _HEADER_KINDS,
    _HEADER_KINDS_KEPT,
    _LENGTH,
    _NOT_LEAN,
    _ORDINARY,
    BOOK,
    CANCEL,
    GET_ORDER,
    HEALTH,
    PLACE,
    SYMBOLS,
    TRADES,
    LeanHttp,
    _header_kind,
    lean_route,
)
from reference_exchange.server import create_app

HEAD = b"Host: x\r\nContent-Type: application/json\r\n"
LIMIT = b'{"symbol":"BTCUSD","side":"buy","type":"limit","price":"60000","quantity":"0.5"}'


def post(body: bytes, extra: bytes = b"") -> bytes:
    return b"POST /api/orders HTTP/1.1\r\n%s%sContent-Length: %d\r\n\r\n%s" % (HEAD, extra, len(body), body)


def get(target: bytes, extra: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (target, extra)


def delete(target: bytes) -> bytes:
    return b"DELETE %s HTTP/1.1\r\nHost: x\r\n\r\n" % target


# Each entry is what one connection sends at once (several requests: pipelined); its answers are read until
# the server closes or goes quiet. The order matters: ids and books build up the same way on both sides.
CONVERSATIONS: list[bytes] = [
    post(LIMIT),  # 201, resting
    post(LIMIT.replace(b'"0.5"', b'"0.25"'), b"Connection: close\r\n"),  # 201, and the connection closed
    post(b'{"symbol":"BTCUSD","side":"sell","type":"market","quantity":"0.1"}'),  # 201 with a trade
    post(
        b'{"symbol":"BTCUSD","side":"buy","type":"limit","price":"1","quantity":"1","client_order_id":"c1"}'
    ),
    post(
        b'{"symbol":"BTCUSD","side":"buy","type":"limit","price":"1","quantity":"1","client_order_id":"c1"}'
    ),
    post(b"not json"),  # 400 invalid_json
    post(b""),  # 400 empty
    post(b"{}"),  # 400 invalid_request (the schema's words)
    post(b'{"symbol":"NOPE","side":"buy","type":"limit","price":"1","quantity":"1"}'),  # 400 unknown_symbol
    post(b'{"symbol":"BTCUSD","side":"buy","type":"limit","quantity":"1"}'),  # 400 missing_price
    post(b'{"symbol":"BTCUSD","side":"buy","type":"market","price":"1","quantity":"1"}'),  # unexpected_price
    post(b'{"symbol":"BTCUSD","side":"buy","type":"limit","price":"1.0000001","quantity":"1"}'),  # tick
    post(b'{"symbol":"BTCUSD","side":"buy","type":"limit","price":40000.0000000000000001,"quantity":1}'),
    post(b'{"symbol":"BTCUSD","side":"buy","type":"limit","price":40000.5,"quantity":1}'),  # exact number
    post(b"[" * 600 + b"]" * 600),  # nested deep
    post(b"x" * 70_000),  # 413: past the body limit, aiohttp's answer on both paths
    get(b"/api/orders/1"),
    get(b"/api/orders/999999"),  # 404
    get(b"/api/orders/abc"),  # 400 invalid_order_id
    get(b"/api/orders/" + b"9" * 19),  # 400, too long
    delete(b"/api/orders/1"),  # 200 cancelled
    delete(b"/api/orders/1"),  # 409 not open
    delete(b"/api/orders/999999"),  # 404
    delete(b"/api/orders/x1"),  # 400
    get(b"/api/orderbook/BTCUSD"),
    get(b"/api/orderbook/BTCUSD?depth=1"),
    get(b"/api/orderbook/BTCUSD?depth=1&depth=5"),  # the first one counts
    get(b"/api/orderbook/BTCUSD?depth=0"),  # 400 invalid_depth
    get(b"/api/orderbook/BTCUSD?depth"),  # 400: no value
    get(b"/api/orderbook/BTCUSD?other=1"),  # ignored
    get(b"/api/orderbook/BTCUSD?depth=%32"),  # percent-encoded: aiohttp decodes it (handed over)
    get(b"/api/orderbook/NOPE"),  # 404 unknown_symbol
    get(b"/api/trades/BTCUSD?limit=2"),
    get(b"/api/trades/BTCUSD?limit=5000"),  # 400 invalid_limit
    get(b"/api/symbols"),
    get(b"/health"),
    get(b"/health", b"Connection: close\r\n"),
    b"HEAD /api/symbols HTTP/1.1\r\nHost: x\r\n\r\n",  # aiohttp's (GET answers HEAD there); a fixed length
    b"GET /health HTTP/1.0\r\n\r\n",  # HTTP/1.0: aiohttp's
    get(b"/api/orders/"),  # no id: aiohttp's 404/405
    get(b"/nope"),  # 404
    b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n",  # a head too long: aiohttp's 400
    b"PUT /api/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",  # 405 with Allow
    # pipelined: lean answers in order, then a request that is not lean is relayed to aiohttp
    post(LIMIT) + get(b"/api/orders/1") + delete(b"/api/orders/2") + get(b"/api/orderbook/BTCUSD?depth=3"),
    get(b"/health") + get(b"/nope") + get(b"/api/symbols"),
    post(LIMIT) + b"POST /api/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"%x\r\n%s\r\n0\r\n\r\n" % (len(LIMIT), LIMIT),  # a chunked order after a lean one: relayed, re-chunked
    get(b"/api/orders/1") + b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" + get(b"/health"),
    # relayed after a chunked one: a body with a Content-Length is passed on as it came
    get(b"/health")
    + b"POST /api/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"%x\r\n%s\r\n0\r\n\r\n" % (len(LIMIT), LIMIT)
    + post(LIMIT.replace(b'"0.5"', b'"0.75"'))
    + post(LIMIT),
]

_CLOCKED = [
    (re.compile(rb"Date: [^\r]*"), b"Date: -"),
    (re.compile(rb'"timestamp_ns":\d+'), b'"timestamp_ns":0'),
    (re.compile(rb'"uptime_seconds":[\d.]+'), b'"uptime_seconds":0'),
]


def exchange_answer(port: int, sent: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(sent)
        sock.settimeout(0.2)
        received = b""
        while True:
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:
                break
            if not data:
                break
            received += data
    return b"HTTP/1.".join(_unclocked(answer) for answer in received.split(b"HTTP/1."))


def _unclocked(answer: bytes) -> bytes:
    if b'"uptime_seconds"' in answer:  # its digits change the length too
        answer = re.sub(rb"Content-Length: \d+", b"Content-Length: -", answer)
    for pattern, blank in _CLOCKED:
        answer = pattern.sub(blank, answer)
    return answer


@pytest.fixture(scope="module")
def two_paths() -> Iterator[tuple[int, int]]:
    from capacity.run.exchange_process import EmbeddedExchange

    with EmbeddedExchange() as lean, EmbeddedExchange(env={"LEAN_HTTP": "off"}) as plain:
        yield int(lean.url.rsplit(":", 1)[1]), int(plain.url.rsplit(":", 1)[1])


@pytest.mark.timeout(120)
def test_the_lean_path_answers_byte_for_byte_as_aiohttp(two_paths: tuple[int, int]) -> None:
    lean_port, plain_port = two_paths
    with ThreadPoolExecutor(2) as pool:
        for sent in CONVERSATIONS:
            lean, plain = pool.map(exchange_answer, (lean_port, plain_port), (sent, sent))
            assert lean, sent[:80]
            assert lean == plain, sent[:200]


_LATENCY = b'{"type": "latency_injection", "duration": 30, "parameters": {"latency_ms": 2000}}'


def pending_refusal(port: int) -> bytes:
    """An order and a health check, sent while another connection's order waits out two seconds of journal
    latency (the seed's chaos route) and the pending bound is one order: the order is refused."""
    exchange_answer(
        port,
        b"POST /demo/chaos-test HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(_LATENCY), _LATENCY),
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as waiting:
        waiting.sendall(post(LIMIT))
        time.sleep(0.5)
        return exchange_answer(port, post(LIMIT) + get(b"/health"))


@pytest.mark.timeout(120)
def test_refusals_answer_alike_with_retry_after() -> None:
    """An order refused by the pending bound: the same 503, Retry-After and body on both paths."""
    from capacity.run.exchange_process import EmbeddedExchange

    env = {"MAX_PENDING_ORDERS": "1"}
    with EmbeddedExchange(env=env) as lean, EmbeddedExchange(env={**env, "LEAN_HTTP": "off"}) as plain:
        answers = [pending_refusal(int(each.url.rsplit(":", 1)[1])) for each in (lean, plain)]
    assert answers[0] == answers[1]
    assert answers[0].startswith(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"), answers[0]
    assert b'"overloaded"' in answers[0] and b"HTTP/1.1 200 OK" in answers[0]


@pytest.mark.parametrize(
    ("method", "target", "expected"),
    [
        (b"POST", b"/api/orders", (PLACE, "", None)),
        (b"POST", b"/api/orders?x=1", (PLACE, "", None)),
        (b"GET", b"/api/orders/12", (GET_ORDER, "12", None)),
        (b"DELETE", b"/api/orders/12", (CANCEL, "12", None)),
        (b"GET", b"/api/orderbook/BTCUSD?depth=3&x=1", (BOOK, "BTCUSD", "3")),
        (b"GET", b"/api/trades/ETHUSD?limit=", (TRADES, "ETHUSD", "")),
        (b"GET", b"/api/symbols", (SYMBOLS, "", None)),
        (b"GET", b"/health", (HEALTH, "", None)),
        (b"GET", b"/api/orderbook/BTC%55SD", None),  # percent-encoded: aiohttp decodes
        (b"GET", b"/api/orderbook/BTCUSD?depth=%33", None),
        (b"GET", b"/api/orders/1/2", None),
        (b"GET", b"/api/orders/", None),
        (b"GET", b"/api/orders/..", None),
        (b"HEAD", b"/health", None),
        (b"PUT", b"/api/orders", None),
        (b"DELETE", b"/api/orderbook/BTCUSD", None),
        (b"GET", b"http://x/api/symbols", None),
        (b"GET", b"/metrics", None),
    ],
)
def test_which_requests_are_lean(method: bytes, target: bytes, expected: object) -> None:
    assert lean_route(method, target) == expected


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol


async def lean_in_process() -> tuple[LeanHttp, web.AppRunner]:
    """The lean protocol factory over an exchange without a journal, and the runner to clean up."""
    app = create_app(dataclasses.replace(Settings(), journal_path=None))
    runner = web.AppRunner(app)
    await runner.setup()
    assert runner.server is not None
    admission = CoDelAdmission(target_s=0.01, interval_s=0.1, share=0.9)
    return LeanHttp(app[ROUTES], app[EXCHANGE].metrics, runner.server, 65536, admission), runner


async def test_lean_requests_never_reach_aiohttp() -> None:
    """In process: orders, cancels and reads are answered by the lean connection itself, pipelined ones in
    order, and no aiohttp protocol is created for them."""
    lean, runner = await lean_in_process()
    connection, transport = lean(), FakeTransport()
    connection.connection_made(transport)
    connection.data_received(post(LIMIT) + delete(b"/api/orders/1") + get(b"/api/orderbook/BTCUSD"))
    connection.data_received(get(b"/health", b"Connection: close\r\n"))
    for _ in range(10):
        await asyncio.sleep(0)
    statuses = re.findall(rb"HTTP/1.1 (\d+)", transport.written)
    assert statuses == [b"201", b"200", b"200", b"200"] and transport.closed
    assert b'"status":"cancelled"' in transport.written
    assert not runner.server.connections and lean.relayed == 0
    await runner.cleanup()


class ParserSpy:
    """A connection's llhttp parser, recording what it is fed."""

    def __init__(self, parser: object) -> None:
        self.parser = parser
        self.fed: list[bytes] = []

    def feed_data(self, data: bytes) -> None:
        self.fed.append(data)
        self.parser.feed_data(data)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.parser, name)


def standing_queue(lean: LeanHttp) -> None:
    """The admission as in a standing queue, in a turn of its own, every order read from now on past the
    turn's share."""
    admission = lean.admission
    admission.standing, admission.last_turn_s = True, 1e-9
    admission.turn_began(lean.turns.now() - 1.0)
    lean.turns._in_turn = True  # this turn never ends here: no loop turn passes between the reads
    lean.turns.turn += 1


async def test_a_plain_order_in_a_standing_queue_is_refused_unparsed_and_the_connection_goes_on() -> None:
    """A read that is exactly one plain order gets the admission's 503 without llhttp seeing it; the
    parser stands between requests, so what follows on the connection is read as before."""
    lean, runner = await lean_in_process()
    connection, transport = lean(), FakeTransport()
    connection.connection_made(transport)
    connection.data_received(get(b"/health"))
    standing_queue(lean)
    before = connection._request_count
    parser = connection._parser = ParserSpy(connection._parser)
    for _ in range(3):
        connection.data_received(post(LIMIT))
        standing_queue(lean)  # the next read in a turn of its own: a refused connection waits for it
    assert parser.fed == [] and connection._request_count == before + 3 and lean.admission.refused == 3
    connection.data_received(get(b"/api/orderbook/BTCUSD"))
    connection.data_received(post(LIMIT, b"X-Note: a\tb\r\n"))  # a tab: not plain, so parsed
    answers = re.findall(rb"HTTP/1.1 (\d+)[^\r]*\r\n(Retry-After: \d+)?", transport.written)
    assert [status for status, _ in answers] == [b"200", b"503", b"503", b"503", b"200", b"503"]
    assert all(retry for status, retry in answers if status == b"503")
    assert len(parser.fed) == 2 and not transport.closed
    await runner.cleanup()


async def test_a_connection_refused_in_a_turn_is_read_again_only_once_the_turn_ends() -> None:
    """A client that retries at once is held until the turn ends (reading paused if it sends more), so a
    turn refuses each connection at most once; then what it sent is read first in the next turn."""
    lean, runner = await lean_in_process()
    connection, transport = lean(), FakeTransport()
    other, other_transport = lean(), FakeTransport()
    for c, t in ((connection, transport), (other, other_transport)):
        c.connection_made(t)
        c.data_received(get(b"/health"))
    standing_queue(lean)
    connection.data_received(post(LIMIT))
    connection.data_received(post(LIMIT))
    assert transport.reading  # one read held, nothing paused yet
    connection.data_received(post(LIMIT))
    assert not transport.reading  # a second read while one is held: the rest waits in the kernel
    other.data_received(post(LIMIT))  # another connection in the same turn: refused as before
    statuses = lambda t: re.findall(rb"HTTP/1.1 (\d+)", t.written)  # noqa: E731
    assert statuses(transport) == [b"200", b"503"] and statuses(other_transport) == [b"200", b"503"]
    assert lean.admission.refused == 2
    lean.turns._end()  # the turn ends: the held reads open the next turn, within its share: admitted
    for _ in range(10):
        await asyncio.sleep(0)
    assert statuses(transport) == [b"200", b"503", b"201", b"201"] and transport.reading
    assert lean.admission.refused == 2
    await runner.cleanup()


async def test_a_plain_order_is_parsed_as_usual_when_the_admission_admits_it() -> None:
    lean, runner = await lean_in_process()
    connection, transport = lean(), FakeTransport()
    connection.connection_made(transport)
    connection.data_received(get(b"/health"))
    connection.data_received(post(LIMIT))
    for _ in range(10):
        await asyncio.sleep(0)
    assert re.findall(rb"HTTP/1.1 (\d+)", transport.written) == [b"200", b"201"]
    assert lean.admission.refused == 0
    await runner.cleanup()


async def test_a_closed_connection_is_freed_without_the_garbage_collector() -> None:
    """The parser refers back to its connection: once the connection is lost, nothing may keep that cycle
    for a collection to find (the exchange tenures what survives, so it would wait for a thorough one)."""
    lean, runner = await lean_in_process()
    connection, transport = lean(), FakeTransport()
    connection.connection_made(transport)
    connection.data_received(get(b"/health"))
    gone = weakref.ref(connection)
    with support.collector_off():
        connection.connection_lost(None)
        del connection
        assert gone() is None
    await runner.cleanup()


@pytest.mark.parametrize(
    "sent",
    [
        get(b"/api/metrics"),  # a first request that is not lean: the connection is handed to aiohttp
        get(b"/health") + get(b"/api/metrics"),  # lean, then not: relayed, then aiohttp reads the socket
    ],
)
async def test_a_connection_given_to_aiohttp_is_freed_without_the_garbage_collector(sent: bytes) -> None:
    """Once aiohttp's protocol has the transport, the lean connection gets no more callbacks, so neither
    will ``connection_lost`` break its cycle with the parser: giving the connection away must."""
    lean, runner = await lean_in_process()
    connection, transport = lean(), FakeTransport()
    connection.connection_made(transport)
    connection.data_received(sent)
    for _ in range(10):
        await asyncio.sleep(0)
    assert transport.protocol is not connection and b"HTTP/1.1 200" in transport.written
    gone = weakref.ref(connection)
    with support.collector_off():
        del connection
        assert gone() is None
    transport.protocol.connection_lost(None)
    await runner.cleanup()


@pytest.mark.timeout(60)
def test_a_head_that_never_ends_after_lean_requests_is_refused_not_buffered(
    two_paths: tuple[int, int],
) -> None:
    """llhttp sets no limit on a head: past 16 KB the lean path answers 400 and closes, whatever follows."""
    lean_port, _ = two_paths
    with socket.create_connection(("127.0.0.1", lean_port), timeout=5) as sock:
        sock.sendall(get(b"/health") + b"GET /health HTTP/1.1\r\nX-Big: ")
        for _ in range(64):  # 4 MB of one header value, never finished
            try:
                sock.sendall(b"a" * 65536)
            except OSError:
                break
        received = b""
        while data := sock.recv(1 << 16):
            received += data
    statuses = re.findall(rb"HTTP/1.1 (\d+)", received)
    assert statuses == [b"200", b"400"], received[-300:]
    assert b"longer than 16384 bytes" in received


def test_header_spellings_are_classified_once_and_their_memory_stays_bounded() -> None:
    assert _header_kind(b"Content-Length") is _header_kind(b"content-length") is _LENGTH
    assert _header_kind(b"Transfer-Encoding") is _header_kind(b"EXPECT") is _NOT_LEAN
    assert _header_kind(b"Host") is _ORDINARY
    for index in range(2 * _HEADER_KINDS_KEPT):  # a client inventing header names cannot grow it
        assert _header_kind(b"X-Invented-%d" % index) is _ORDINARY
    assert len(_HEADER_KINDS) <= _HEADER_KINDS_KEPT
