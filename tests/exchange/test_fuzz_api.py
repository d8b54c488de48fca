"""Hostile input against every route, through a real aiohttp server on loopback.

Hypothesis generates bodies from the published JSON Schemas (hypothesis-jsonschema) and mutates them,
plus arbitrary JSON, arbitrary bytes, huge and tiny numbers, unicode, deep nesting, wrong content types,
raw path segments (``../``, percent-encoding, signs, exponents, non-ASCII digits), odd methods and odd
headers. Every answer must be below 500; every 4xx (and 503) must have the JSON error shape; every 2xx
must match the response schema that /openapi.json documents for it. Afterwards the server is healthy,
the engine's invariants hold, and replaying the journal rebuilds the same books.

The examples are derandomized (the same every run, so CI is stable); set FUZZ_RANDOM=1 to explore new
ones. ``pytest -s`` prints how many cases each test ran.
"""

from __future__ import annotations

import asyncio
import os
import string
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from typing import Any

import fastjsonschema
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from yarl import URL

from reference_exchange import schemas
from reference_exchange.api import EXCHANGE
from reference_exchange.config import Settings
from reference_exchange.engine import MatchingEngine
from reference_exchange.journal import Journal
from reference_exchange.openapi import build_openapi
from reference_exchange.server import create_app
from reference_exchange.service import ExchangeService

FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=not os.environ.get("FUZZ_RANDOM"),
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
ADMIN_TOKEN = "fuzz-token"
CASES: Counter[str] = Counter()

DOCUMENT = build_openapi()
# fastjsonschema, not jsonschema, for speed (~50x): the schemas mean the same in draft 7 and 2020-12,
# which tests/exchange/test_exchange_openapi.py checks against both meta-schemas.
VALIDATORS = {
    name: fastjsonschema.compile(schema) for name, schema in DOCUMENT["components"]["schemas"].items()
}


class Live:
    """One exchange (with an in-memory journal) served on loopback, driven from a private event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.journal = self.loop.run_until_complete(self._open_journal())
        app = create_app(Settings(admin_token=ADMIN_TOKEN, max_body_bytes=4096), self.journal)
        app.middlewares.insert(0, remote_from_header)
        self.app = app
        self.client = self.loop.run_until_complete(self._serve(app))
        self.base = str(self.client.make_url("/")).rstrip("/")

    @staticmethod
    async def _serve(app: web.Application) -> TestClient:
        client = TestClient(TestServer(app))  # both need the running loop
        await client.start_server()
        return client

    @staticmethod
    async def _open_journal() -> Journal:
        journal = Journal.open(":memory:")
        await journal.start()
        return journal

    def request(
        self, method: str, raw_path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, bytes]:
        """Send ``raw_path`` exactly as given (already percent-encoded); return status, headers, body."""

        async def send() -> tuple[int, Any, bytes]:
            url = URL(self.base + raw_path, encoded=True)
            async with self.client.session.request(method, url, data=body, headers=headers) as response:
                return response.status, response.headers, await response.read()

        return self.loop.run_until_complete(send())

    def close(self) -> None:
        self.journal.clear_chaos()
        self.loop.run_until_complete(self.client.close())
        self.loop.run_until_complete(self.journal.close())
        self.loop.close()


@web.middleware
async def remote_from_header(request: web.Request, handler):
    """Test only: pretend the peer is X-Fuzz-Remote, to exercise the admin check for non-loopback clients."""
    remote = request.headers.get("X-Fuzz-Remote")
    return await handler(request.clone(remote=remote) if remote else request)


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    server = Live()
    yield server
    # After everything below: still healthy, invariants intact, and the journal replays to the same books.
    status, _, body = server.request("GET", "/health")
    assert status == 200, body
    engine = server.app[EXCHANGE].service.engine
    assert engine.audit() == []
    replayed = MatchingEngine(engine.books)
    ExchangeService(replayed).replay(server.journal.replay())
    assert {s: b.checksum() for s, b in replayed.books.items()} == {
        s: b.checksum() for s, b in engine.books.items()
    }
    server.close()
    print(f"\n[fuzz] cases per test: {dict(CASES)}; total {sum(CASES.values())}")


# --- the oracle -------------------------------------------------------------------------------------------


def documented_schema(template: str, method: str, status: int) -> str | None:
    """The component schema /openapi.json names for this answer, if it is JSON."""
    responses = DOCUMENT["paths"].get(template, {}).get(method.lower(), {}).get("responses", {})
    response = responses.get(str(status))
    if response is None:
        return None
    if "$ref" in response:
        response = DOCUMENT["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[1] if ref else None


def check(
    live: Live,
    method: str,
    raw_path: str,
    template: str | None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    status, response_headers, payload = live.request(method, raw_path, body, headers)
    where = f"{method} {raw_path!r} body={body[:200] if body else body!r} headers={headers} -> {status}"
    assert status < 500 or status == 503, f"{where}: {payload[:500]!r}"
    if method == "HEAD":
        return status, None
    if status >= 400:
        assert response_headers.get("Content-Type", "").startswith("application/json"), where
        document = orjson.loads(payload)
        VALIDATORS["Error"](document)
        if status == 503:
            assert document["error"]["code"] in ("overloaded", "journal_failed"), where
            assert int(response_headers["Retry-After"]) >= 1
        return status, document
    if template is not None:
        name = documented_schema(template, method, status)
        if name is not None:
            document = orjson.loads(payload)
            try:
                VALIDATORS[name](document)
            except fastjsonschema.JsonSchemaValueException as error:
                raise AssertionError(f"{where}: response does not match {name}: {error.message}") from None
            return status, document
    return status, None


# --- strategies ---------------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=10,
)
decimal_texts = st.one_of(
    st.from_regex(r"\A[+-]?[0-9]{0,25}(\.[0-9]{0,25})?([eE][+-]?[0-9]{1,12})?\Z"),
    st.sampled_from(
        [
            "NaN",
            "-Infinity",
            "sNaN",
            "1e999999999",
            "1e-999999999",
            "²",
            "٣",
            "1_000",
            "0x10",
            " 1 ",
            "",
            "60000.00000000000000000000000000000001",
            "9" * 60,
            "0." + "0" * 60 + "1",
        ]
    ),
    st.text(max_size=20),
)
decimal_values = st.one_of(
    decimal_texts,
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -0.0, 1e-300, 1e300, 2**63, 0.1, 60000.5]),
)
VALID_ORDER = {"symbol": "BTCUSD", "side": "buy", "type": "limit", "price": "60000", "quantity": "0.01"}
order_fields = st.sampled_from([*schemas.ORDER_REQUEST["properties"], "extra"])
symbols = st.one_of(
    st.sampled_from(["BTCUSD", "ETHUSD", "ADAUSD", "MATICUSD", "btcusd", "DOGEUSD", ""]), st.text(max_size=40)
)
mutated_orders = st.one_of(
    # One field replaced by anything at all.
    st.builds(lambda k, v: {**VALID_ORDER, k: v}, order_fields, json_values),
    # Prices and quantities: numbers and decimal strings of every shape, on any symbol and order type.
    st.builds(
        lambda symbol, side, order_type, price, quantity, tif: {
            "symbol": symbol,
            "side": side,
            "type": order_type,
            "price": price,
            "quantity": quantity,
            **({"time_in_force": tif} if tif else {}),
        },
        st.sampled_from(["BTCUSD", "ETHUSD", "ADAUSD", "DOTUSD"]),
        st.sampled_from(["buy", "sell"]),
        st.sampled_from(["limit", "market"]),
        decimal_values,
        decimal_values,
        st.sampled_from([None, "gtc", "ioc", "fok"]),
    ),
    # A field removed.
    st.builds(lambda k: {f: v for f, v in VALID_ORDER.items() if f != k}, order_fields),
)
nasty_bodies = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"[" * 5000 + b"]" * 5000,
            b'{"a":' * 2000 + b"1" + b"}" * 2000,
            b"1e400",
            b"-1e400",
            b"123456789012345678901234567890",
            b'{"symbol": "BTCUSD", "side": "buy", "type": "limit", "price": 1e400, "quantity": 1}',
            b'{"symbol": "BTCUSD", "side": "buy", "type": "limit", "price": 1e308, "quantity": 1e-308}',
            b'{"symbol": "\\ud800", "side": "buy", "type": "limit", "price": "1", "quantity": "1"}',
            b"\xef\xbb\xbf{}",
            b"null",
            b'"just a string"',
            b"\x00" * 100,
            b"x" * 5000,  # over the 4096-byte limit: 413
        ]
    ),
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
)
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "image/png",
        "",
    ]
)
# Path segments as a client might really send them: some percent-encoded, some raw ("../", "%2e%2e").
segment_texts = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(
        [
            "..",
            "../..",
            "%2e%2e",
            "%2F",
            "0",
            "-1",
            "1e30",
            "00000000000000000001",
            "9" * 19,
            "²",
            "٣",
            " 1",
            "1 ",
        ]
    ),
)


def encode_segment(text: str, raw: bool) -> str:
    return urllib.parse.quote(text, safe="/.%" if raw else "")


query_values = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["1e30", "1.5", "", "²", "٣", "0", "1000", "1001", "10", "-0"]),
    st.text(max_size=12),
)

# --- the tests ----------------------------------------------------------------------------------------------


@settings(FUZZ, max_examples=700)
@given(body=from_schema(schemas.ORDER_REQUEST))
def test_fuzz_orders_from_the_schema(live, body):
    CASES["orders_from_schema"] += 1
    check(
        live, "POST", "/api/orders", "/api/orders", orjson.dumps(body), {"Content-Type": "application/json"}
    )


@settings(FUZZ, max_examples=1000)
@given(body=mutated_orders)
def test_fuzz_orders_mutated(live, body):
    CASES["orders_mutated"] += 1
    status, document = check(live, "POST", "/api/orders", "/api/orders", orjson.dumps(body))
    if status in (200, 201):
        assert document["symbol"] == body["symbol"]


@settings(FUZZ, max_examples=700)
@given(body=st.one_of(nasty_bodies, json_values.map(orjson.dumps)), content_type=content_types)
def test_fuzz_raw_bodies_and_content_types(live, body, content_type):
    CASES["raw_bodies"] += 1
    headers = {"Content-Type": content_type} if content_type is not None else {}
    for path in ("/api/orders", "/demo/chaos-test"):
        status, _ = check(live, "POST", path, path, body, headers)
        if path == "/demo/chaos-test" and status == 200:
            live.journal.clear_chaos()
    if len(body) > 4096:
        assert status == 413


@settings(FUZZ, max_examples=900)
@given(
    template=st.sampled_from(["/api/orders/{}", "/api/orderbook/{}", "/api/trades/{}"]),
    text=segment_texts,
    raw=st.booleans(),
    method=st.sampled_from(["GET", "GET", "DELETE", "HEAD", "PUT", "PATCH", "OPTIONS", "POST"]),
)
def test_fuzz_path_parameters_and_methods(live, template, text, raw, method):
    CASES["path_parameters"] += 1
    raw_path = template.format(encode_segment(text, raw))
    documented = template.replace("{}", "{order_id}" if "orders" in template else "{symbol}")
    check(live, method, raw_path, documented if not raw else None)


@settings(FUZZ, max_examples=600)
@given(
    template=st.sampled_from(["/api/orderbook/{}?depth={}", "/api/trades/{}?limit={}"]),
    symbol=symbols,
    value=query_values,
)
def test_fuzz_query_parameters(live, template, symbol, value):
    CASES["query_parameters"] += 1
    raw_path = template.format(encode_segment(symbol, False), urllib.parse.quote(value, safe=""))
    documented = template.split("?")[0].replace("{}", "{symbol}")
    status, _ = check(live, "GET", raw_path, documented)
    if status == 200:
        assert value.isascii() and value.isdigit()


SEED_CHAOS = {"type": "latency_injection", "duration": 60, "parameters": {"latency_ms": 50}}
durations = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.from_regex(r"\A[0-9]{0,6}(\.[0-9]{0,3})?(ms|s|m|h|d|S|M|H|D|us|){1,2}\Z"),
    st.text(max_size=12),
)
# hypothesis-jsonschema is slow on this schema (its pattern), so chaos bodies are built by hand: well
# formed with every value varied, then mutated field by field, then anything at all.
chaos_bodies = st.one_of(
    st.builds(
        lambda kind, duration, latency: {
            "type": kind,
            "duration": duration,
            "parameters": {"latency_ms": latency},
        },
        st.sampled_from(["latency_injection", "LATENCY_INJECTION", "cpu_spike", ""]),
        durations,
        st.one_of(st.floats(allow_nan=False, allow_infinity=False), json_scalars),
    ),
    st.builds(lambda k, v: {**SEED_CHAOS, k: v}, st.sampled_from([*SEED_CHAOS, "extra"]), json_values),
    st.dictionaries(st.text(max_size=12), json_values, max_size=5),
)


@settings(FUZZ, max_examples=500)
@given(body=chaos_bodies)
def test_fuzz_chaos_requests(live, body):
    CASES["chaos"] += 1
    status, document = check(live, "POST", "/demo/chaos-test", "/demo/chaos-test", orjson.dumps(body))
    if status == 200:
        assert document["active"]["type"] == "latency_injection"
        # Never let a generated injection (up to 10 s per commit) slow the rest of the run.
        _, shown = check(live, "DELETE", "/demo/chaos-test", "/demo/chaos-test")
        assert shown["active"] is None  # "ended" is null if a very short one ran out already


# What a client can put in a header: no control characters (aiohttp's client refuses to send them).
header_texts = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=255, blacklist_characters="\x7f"), max_size=80
)


@settings(FUZZ, max_examples=500)
@given(
    path=st.sampled_from(
        ["/demo/chaos-test", "/api/books/checksum", "/demo/load-test", "/demo/", "/demo/x/../.."]
    ),
    method=st.sampled_from(["GET", "DELETE", "POST"]),
    remote=st.sampled_from([None, "203.0.113.7", "::ffff:10.1.2.3", "::1"]),
    authorization=st.one_of(st.none(), header_texts, header_texts.map(lambda t: "Bearer " + t)),
    admin_token=st.one_of(st.none(), header_texts, st.just(ADMIN_TOKEN)),
)
def test_fuzz_admin_access(live, path, method, remote, authorization, admin_token):
    CASES["admin_access"] += 1
    headers = {}
    if remote:
        headers["X-Fuzz-Remote"] = remote
    if authorization is not None:
        headers["Authorization"] = authorization
    if admin_token is not None:
        headers["X-Admin-Token"] = admin_token
    body = orjson.dumps({"type": "latency_injection", "duration": 0.05, "parameters": {"latency_ms": 1}})
    status, _ = check(live, method, path, path, body if method == "POST" else None, headers)
    allowed = (
        remote in (None, "::1") or admin_token == ADMIN_TOKEN or authorization == f"Bearer {ADMIN_TOKEN}"
    )
    if path in ("/demo/chaos-test", "/api/books/checksum") and not (
        path.endswith("checksum") and method != "GET"
    ):
        assert (status == 403) == (not allowed), (status, headers)
    live.journal.clear_chaos()


@settings(FUZZ, max_examples=400)
@given(
    path=st.text(alphabet=string.ascii_letters + string.digits + "/._-%~", max_size=40),
    method=st.sampled_from(
        ["GET", "POST", "DELETE", "PUT", "HEAD", "OPTIONS", "TRACE", "CONNECT", "PROPFIND"]
    ),
)
def test_fuzz_unknown_routes(live, path, method):
    """Methods that llhttp knows: an unknown one (``FOO``) is refused by aiohttp's HTTP parser before any
    routing, with its own plain-text 400 and a closed connection (documented in README)."""
    CASES["unknown_routes"] += 1
    check(live, method, "/" + path, None)


def test_reads_are_schema_conformant_after_the_fuzzing(live):
    """Whatever state the fuzzing left behind still serialises to what the document promises."""
    for path, template in [
        ("/api/symbols", "/api/symbols"),
        ("/api/metrics", "/api/metrics"),
        ("/health", "/health"),
        ("/api/books/checksum", "/api/books/checksum"),
        ("/demo/chaos-test", "/demo/chaos-test"),
        ("/api/orderbook/BTCUSD?depth=1000", "/api/orderbook/{symbol}"),
        ("/api/trades/BTCUSD?limit=1000", "/api/trades/{symbol}"),
    ]:
        status, _ = check(live, "GET", path, template)
        assert status == 200, path
    for order_id in range(1, 50):
        check(live, "GET", f"/api/orders/{order_id}", "/api/orders/{order_id}")
