"""The HTTP API over a real aiohttp test server: trading flow, market data, metrics and every error class."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from reference_exchange.config import Settings
from reference_exchange.instruments import InstrumentError, default_instruments
from reference_exchange.schemas import plain_order_request, validate_order_request
from reference_exchange.server import create_app
from reference_exchange.units import UnitCodec


@pytest.fixture
async def client(aiohttp_client):
    settings = dataclasses.replace(Settings(), max_body_bytes=2048)
    return await aiohttp_client(create_app(settings))


async def post_order(client, **fields):
    body = {"symbol": "BTCUSD", "side": "buy", "type": "limit", "price": "60000", "quantity": "0.5", **fields}
    return await client.post("/api/orders", json=body)


async def error_of(response, status: int) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return (await response.json())["error"]


async def test_crossing_order_trades_and_is_counted_everywhere(client):
    maker = await post_order(client, side="sell", price="60000.50", quantity="0.25")
    assert maker.status == 201
    maker_body = await maker.json()
    assert maker_body["status"] == "new" and maker_body["trades"] == []

    taker = await post_order(client, side="buy", price="60001", quantity="0.4")
    assert taker.status == 201
    body = await taker.json()
    assert body["status"] == "partially_filled"
    assert body["filled_quantity"] == "0.25" and body["remaining_quantity"] == "0.15"
    assert [(t["price"], t["quantity"]) for t in body["trades"]] == [("60000.5", "0.25")]

    trades = await (await client.get("/api/trades/BTCUSD")).json()
    assert trades["trades"][0]["maker_order_id"] == maker_body["id"]

    book = await (await client.get("/api/orderbook/BTCUSD?depth=5")).json()
    assert book["bids"] == [["60001", "0.15"]] and book["asks"] == []
    assert book["sequence"] > 0

    metrics = (await (await client.get("/api/metrics")).json())["data"]
    assert metrics["total_orders"] == 2 and metrics["total_trades"] == 1
    for key in ("orders_per_sec", "trades_per_sec", "avg_latency", "p99_latency", "cpu_percent"):
        assert isinstance(metrics[key], (int, float)), key
    assert metrics["resting_orders"] == 1

    text = await (await client.get("/metrics")).text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["exchange_orders"].samples[0].value == 2
    assert families["exchange_trades"].samples[0].value == 1


async def test_get_and_cancel_order(client):
    order = await (await post_order(client)).json()
    fetched = await client.get(f"/api/orders/{order['id']}")
    assert (await fetched.json())["status"] == "new"
    cancelled = await client.delete(f"/api/orders/{order['id']}")
    assert cancelled.status == 200 and (await cancelled.json())["status"] == "cancelled"
    again = await client.delete(f"/api/orders/{order['id']}")
    assert (await error_of(again, 409))["code"] == "order_not_open"


async def test_client_order_id_is_idempotent_over_http(client):
    first = await post_order(client, client_order_id="abc-1")
    second = await post_order(client, client_order_id="abc-1", quantity="9")
    assert first.status == 201 and second.status == 200
    assert (await first.json())["id"] == (await second.json())["id"]
    book = await (await client.get("/api/orderbook/BTCUSD")).json()
    assert book["bids"] == [["60000", "0.5"]]


async def test_market_order_defaults_to_ioc(client):
    await post_order(client, side="sell", price="60000", quantity="1")
    response = await client.post(
        "/api/orders", json={"symbol": "BTCUSD", "side": "buy", "type": "market", "quantity": 2}
    )
    body = await response.json()
    assert body["time_in_force"] == "ioc" and body["filled_quantity"] == "1" and body["status"] == "cancelled"


async def test_symbols_and_health(client):
    symbols = (await (await client.get("/api/symbols")).json())["symbols"]
    assert [s["symbol"] for s in symbols][:2] == ["BTCUSD", "ETHUSD"] and len(symbols) == 8
    assert (await (await client.get("/health")).json())["status"] == "ok"


@pytest.mark.parametrize(
    ("fields", "code", "needle"),
    [
        ({"price": "60000.001"}, "invalid_price", "tick size"),
        ({"quantity": "0"}, "invalid_quantity", "greater than 0"),
        ({"quantity": "-1"}, "invalid_quantity", "greater than 0"),
        ({"quantity": "0.00001"}, "invalid_quantity", "lot size"),
        ({"price": "abc"}, "invalid_price", "not a decimal"),
        ({"symbol": "DOGEUSD"}, "unknown_symbol", "DOGEUSD"),
        ({"side": "hold"}, "invalid_request", "side"),
        ({"colour": "red"}, "invalid_request", "colour"),
        ({"price": None}, "invalid_request", "price"),
        ({"type": "market"}, "unexpected_price", "market"),
        ({"type": "market", "price": None, "time_in_force": "gtc"}, "invalid_time_in_force", "cannot rest"),
    ],
)
async def test_bad_orders_get_400_naming_the_problem(client, fields, code, needle):
    body = {"symbol": "BTCUSD", "side": "buy", "type": "limit", "price": "60000", "quantity": "1", **fields}
    body = {k: v for k, v in body.items() if not (k == "price" and v is None and fields.get("type"))}
    error = await error_of(await client.post("/api/orders", json=body), 400)
    assert error["code"] == code and needle in error["message"]


async def test_missing_field_and_bad_json(client):
    error = await error_of(await client.post("/api/orders", json={"symbol": "BTCUSD"}), 400)
    assert error["code"] == "invalid_request" and "side" in error["message"]
    error = await error_of(await client.post("/api/orders", data=b"{not json"), 400)
    assert error["code"] == "invalid_json"
    error = await error_of(await client.post("/api/orders", data=b""), 400)
    assert error["code"] == "invalid_json"
    error = await error_of(await client.post("/api/orders", json=[1, 2]), 400)
    assert error["code"] == "invalid_request"


async def test_http_level_errors_are_json(client):
    assert (await error_of(await client.get("/nope"), 404))["code"] == "not_found"
    response = await client.put("/api/orders")
    assert (await error_of(response, 405))["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]
    huge = await client.post("/api/orders", data=b"x" * 5000, headers={"Content-Type": "application/json"})
    assert (await error_of(huge, 413))["code"] == "body_too_large"
    assert (await error_of(await client.get("/api/orders/12345"), 404))["code"] == "order_not_found"
    assert (await error_of(await client.get("/api/orders/abc"), 400))["code"] == "invalid_order_id"
    assert (await error_of(await client.get("/api/orderbook/BTCUSD?depth=0"), 400))["code"] == "invalid_depth"
    assert (await error_of(await client.get("/api/trades/XYZ"), 404))["code"] == "unknown_symbol"
    # The server is still healthy after all of that.
    assert (await client.get("/health")).status == 200


ORDER_VALUES = st.one_of(
    st.sampled_from(["buy", "SELL", "Buy", "limit", "MARKET", "ioc", "FOK", "gtc", "BTCUSD", "", "1", "0.5"]),
    st.text(max_size=70),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2),
)
ORDER_KEYS = st.sampled_from(
    ["symbol", "side", "type", "price", "quantity", "time_in_force", "client_order_id"]
)


@settings(max_examples=2000, deadline=None)
@given(
    body=st.one_of(
        st.dictionaries(st.one_of(ORDER_KEYS, st.text(max_size=3)), ORDER_VALUES, max_size=8),
        st.fixed_dictionaries(
            {"symbol": ORDER_VALUES, "side": ORDER_VALUES, "type": ORDER_VALUES, "quantity": ORDER_VALUES},
            optional={"price": ORDER_VALUES, "time_in_force": ORDER_VALUES, "client_order_id": ORDER_VALUES},
        ),
        ORDER_VALUES,
    )
)
def test_the_plain_order_check_never_accepts_what_the_schema_refuses(body):
    """The order route skips the schema when ``plain_order_request`` says yes: it must never say yes to a
    body the schema refuses (a no only costs the schema check)."""
    if plain_order_request(body):
        validate_order_request(body)


def test_the_plain_order_check_accepts_the_usual_order():
    usual = {"symbol": "BTCUSD", "side": "buy", "type": "limit", "price": "60000.5", "quantity": "0.01"}
    assert plain_order_request(usual)
    assert plain_order_request({**usual, "time_in_force": "IOC", "client_order_id": "c-1"})
    assert not plain_order_request({**usual, "price": 60000.5})  # numbers are the schema's to judge


def test_unit_codec_remembers_conversions_and_their_errors_stay_errors():
    instrument = default_instruments()["BTCUSD"]
    units = UnitCodec(instrument, capacity=2)
    for text in ["60000.5", "60000.5", "1", "2", "60000.5"]:  # the third new entry empties the cache
        assert units.price_to_ticks(text) == instrument.price_to_ticks(text)
    assert units.price_to_ticks(60000.5) == 6000050  # numbers are never cached (1 == 1.0 == True)
    with pytest.raises(InstrumentError, match="tick size"):
        units.price_to_ticks("60000.001")
    with pytest.raises(InstrumentError, match="tick size"):
        units.price_to_ticks("60000.001")  # a refusal is not remembered as a value
    assert units.ticks_to_price(6000050) == "60000.5" and units.lots_to_quantity(10) == "0.001"
    assert units.quantity_to_lots("0.001") == 10
