"""Bugs that fuzzing and the recovery test found, each pinned where it was fixed at the root."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from reference_exchange.config import Settings
from reference_exchange.engine import MatchingEngine, OrderStatus, OrderType, Side, TimeInForce
from reference_exchange.instruments import InstrumentError, default_instruments
from reference_exchange.journal import Journal, JournalError
from reference_exchange.server import create_app
from reference_exchange.service import ExchangeService

ORDER = {"symbol": "BTCUSD", "side": "buy", "type": "limit", "price": "60000", "quantity": "0.5"}
BTC = default_instruments()["BTCUSD"]


@pytest.fixture
async def client(aiohttp_client):
    return await aiohttp_client(
        create_app(dataclasses.replace(Settings(), journal_path=None, max_body_bytes=2048))
    )


async def error_of(response, status: int) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return (await response.json())["error"]


# str.isdigit() accepts superscript 2, Arabic-Indic 3, fullwidth 1: int() then raised (500) or converted.
@pytest.mark.parametrize("text", ["%C2%B2", "%D9%A3", "%EF%BC%91"])
async def test_non_ascii_digits_in_ids_and_query_are_400(client, text):
    assert (await error_of(await client.get(f"/api/orders/{text}"), 400))["code"] == "invalid_order_id"
    assert (await error_of(await client.delete(f"/api/orders/{text}"), 400))["code"] == "invalid_order_id"
    response = await client.get(f"/api/orderbook/BTCUSD?depth={text}")
    assert (await error_of(response, 400))["code"] == "invalid_depth"
    response = await client.get(f"/api/trades/BTCUSD?limit={text}")
    assert (await error_of(response, 400))["code"] == "invalid_limit"


async def test_huge_query_numbers_are_400(client):
    response = await client.get("/api/orderbook/BTCUSD?depth=" + "9" * 5000)
    assert (await error_of(response, 400))["code"] == "invalid_depth"


# Decimal arithmetic raised InvalidOperation (500) for quotients beyond 28 digits.
@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("price", "1e999999999", "too large"),
        ("price", 1e300, "too large"),
        ("price", "9" * 40, "too large"),
        ("quantity", "1e-999999999", "not a multiple"),
        ("quantity", 1e-300, "not a multiple"),
        ("price", "60000." + "0" * 40 + "1", "not a multiple"),
        ("price", "1_000", "not a plain decimal"),
        ("price", "\u0663", "not a plain decimal"),
        ("price", "Infinity", "finite"),
        ("price", "NaN", "finite"),
    ],
)
async def test_absurd_decimals_are_400_naming_the_field(client, field, value, needle):
    error = await error_of(await client.post("/api/orders", json={**ORDER, field: value}), 400)
    assert error["code"] == f"invalid_{field}" and needle in error["message"], error
    assert len(error["message"]) < 200  # the input is quoted clipped, never echoed whole


def test_decimal_conversion_is_exact_at_the_edges():
    assert BTC.price_to_ticks("60000." + "0" * 40) == 6_000_000
    assert BTC.price_to_ticks("6e4") == BTC.price_to_ticks(Decimal("6E+4")) == 6_000_000
    assert BTC.quantity_to_lots("0.0001") == 1
    assert BTC.price_to_ticks("10000000000000") == 10**15  # the largest price in ticks
    with pytest.raises(InstrumentError, match="too large"):
        BTC.price_to_ticks("10000000000000.01")


# Rejected market orders and killed FOK orders got an id and a 201 but GET answered 404.
async def test_orders_finished_on_arrival_can_be_looked_up(client):
    market = {k: v for k, v in ORDER.items() if k != "price"} | {"type": "market"}
    body = await (await client.post("/api/orders", json=market)).json()
    assert body["status"] == "rejected"
    found = await client.get(f"/api/orders/{body['id']}")
    assert found.status == 200 and (await found.json())["status"] == "rejected"

    killed = await (await client.post("/api/orders", json={**ORDER, "time_in_force": "fok"})).json()
    assert killed["status"] == "cancelled"
    found = await client.get(f"/api/orders/{killed['id']}")
    assert found.status == 200 and (await found.json())["reason"].startswith("fill or kill")
    assert (await error_of(await client.delete(f"/api/orders/{killed['id']}"), 409))[
        "code"
    ] == "order_not_open"


def test_engine_keeps_orders_finished_on_arrival_and_replays_them():
    engine = MatchingEngine(["BTCUSD"])
    market = engine.place("BTCUSD", Side.BUY, OrderType.MARKET, 1, None, TimeInForce.IOC)
    fok = engine.place("BTCUSD", Side.BUY, OrderType.LIMIT, 1, 5, TimeInForce.FOK)
    assert engine.get_order(market.order.order_id).status is OrderStatus.REJECTED
    assert engine.get_order(fok.order.order_id).status is OrderStatus.CANCELLED
    assert engine.audit() == [] and engine.resting_order_count == 0


# A retried client_order_id naming another symbol was answered with the first order formatted using the
# retry's instrument (wrong lot size, so wrong quantities).
async def test_retry_is_formatted_with_the_original_orders_instrument(client):
    first = {**ORDER, "symbol": "ETHUSD", "price": "3000", "quantity": "0.005", "client_order_id": "once"}
    created = await client.post("/api/orders", json=first)
    assert created.status == 201
    retry = await client.post("/api/orders", json={**ORDER, "client_order_id": "once"})
    assert retry.status == 200
    assert await retry.json() == await created.json()


async def test_body_limit_is_413_json_on_every_route_that_reads_a_body(client):
    for path in ("/api/orders", "/demo/chaos-test"):
        response = await client.post(path, data=b"{" + b" " * 4096 + b"}")
        assert (await error_of(response, 413))["code"] == "body_too_large"
    assert (await client.get("/health")).status == 200


async def test_failed_journal_replay_never_half_starts(tmp_path):
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(str(path))
    journal.append({"op": "cancel", "order_id": 7})  # a cancel of an order that never existed
    await journal.close()
    journal = Journal.open(str(path))
    with pytest.raises(JournalError, match="command 1 cannot be replayed"):
        create_app(Settings(journal_path=str(path)), journal)
    await journal.close()
    assert ExchangeService(MatchingEngine(["BTCUSD"])).replay([]) == 0
