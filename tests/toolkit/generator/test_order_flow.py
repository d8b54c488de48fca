"""OrderFlow: the scenario's mix, prices on the tick around a tracked mid, cancels of own resting orders."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest

from capacity.generator.order_flow import Market, OrderFlow
from capacity.scenario import Mix

SYMBOLS = {
    "symbols": [
        {"symbol": "BTCUSD", "tick_size": "0.01", "lot_size": "0.0001", "reference_price": "60000"},
        {"symbol": "ADAUSD", "tick_size": "0.0001", "lot_size": "1", "reference_price": "0.45"},
        {"symbol": "DOTUSD", "tick_size": "0.001", "lot_size": "0.01", "reference_price": "6.5"},
    ]
}
NAMES = [s["symbol"] for s in SYMBOLS["symbols"]]


def flow(mix: Mix | None = None, seed: int = 1) -> OrderFlow:
    market = Market.from_symbols_response(SYMBOLS)
    return OrderFlow(mix or Mix(), NAMES, market, random.Random(seed), "t-1")


def test_prices_and_quantities_are_exact_multiples_of_tick_and_lot() -> None:
    trader = flow()
    for _ in range(3000):
        order = trader.limit_order()
        instrument = trader.market.instruments[order.symbol]
        assert order.body is not None
        price, quantity = Decimal(order.body["price"]), Decimal(order.body["quantity"])
        assert price > 0 and price % instrument.tick_size == 0
        assert quantity > 0 and quantity % instrument.lot_size == 0
        assert "E" not in order.body["price"] and "e" not in order.body["price"]  # plain decimal strings
        offset = abs(instrument.to_ticks(order.body["price"]) - trader.market.mid(order.symbol))
        assert 1 <= offset <= trader.mix.price_offset_ticks


def test_marketable_share_and_side_of_mid() -> None:
    trader = flow(Mix(marketable_percent=25))
    orders = [trader.limit_order() for _ in range(20_000)]
    marketable = [o for o in orders if o.marketable]
    assert len(marketable) / len(orders) == pytest.approx(0.25, abs=0.015)
    for order in orders:
        assert order.body is not None
        ticks = trader.market.instruments[order.symbol].to_ticks(order.body["price"])
        above = ticks > trader.market.mid(order.symbol)
        # passive buys rest below mid and sells above; marketable ones cross
        assert above == ((order.body["side"] == "buy") == order.marketable)


def _resting_response(order_id: int) -> dict:
    return {"id": order_id, "status": "new", "trades": []}


def test_mix_proportions_over_many_draws() -> None:
    trader = flow(Mix(limit=60, market=10, cancel=20, book=10))
    kinds: Counter[str] = Counter()
    n = 40_000
    for i in range(n):
        request = trader.next_request()
        kinds[request.kind] += 1
        if request.kind == "limit":  # every limit rests, so cancels always find one
            trader.on_response(request, 201, _resting_response(i))
    for kind, percent in (("limit", 60), ("market", 10), ("cancel", 20), ("book", 10)):
        assert kinds[kind] / n * 100 == pytest.approx(percent, abs=1.0), kinds


def test_cancel_targets_own_resting_orders_or_places_a_limit() -> None:
    trader = flow(Mix(limit=0, market=0, cancel=100, book=0), seed=3)
    first = trader.next_request()
    assert first.kind == "limit"  # nothing resting yet: a limit instead, counted as a limit
    trader.on_response(first, 201, _resting_response(42))
    cancel = trader.next_request()
    assert (cancel.kind, cancel.method, cancel.path) == ("cancel", "DELETE", "/api/orders/42")
    assert cancel.name == "/api/orders/{id} [cancel]"
    assert trader.next_request().kind == "limit"  # the resting order was used up
    trader.on_response(first, 201, {"id": 43, "status": "filled", "trades": []})
    assert not trader.resting  # filled orders are not cancel targets


def test_client_order_ids_are_unique_and_names_group_requests() -> None:
    trader = flow()
    requests = [trader.next_request() for _ in range(2000)]
    ids = [r.body["client_order_id"] for r in requests if r.body is not None]
    assert len(ids) == len(set(ids)) and all(len(i) <= 64 for i in ids)
    names = {r.kind: (r.method, r.name) for r in requests}
    assert names["limit"] == ("POST", "/api/orders [limit]")
    assert names["market"] == ("POST", "/api/orders [market]")
    assert names["book"] == ("GET", "/api/orderbook/{symbol} [book]")


def test_mid_follows_trades_and_book_and_stays_in_band() -> None:
    market = Market.from_symbols_response(SYMBOLS)
    assert market.mid("BTCUSD") == 6_000_000  # 60000 / 0.01
    market.on_trades("BTCUSD", [{"price": "60010.5"}, {"price": "60012.00"}])
    assert market.mid("BTCUSD") == 6_001_200
    market.on_book("ADAUSD", {"bids": [["0.4498", "10"]], "asks": [["0.4510", "5"]]})
    assert market.mid("ADAUSD") == 4504
    market.on_book("ADAUSD", {"bids": [], "asks": [["0.4600", "5"]]})
    assert market.mid("ADAUSD") == 4600
    market.on_trades("DOTUSD", [{"price": "1000"}])
    assert market.mid("DOTUSD") == 13_000  # clamped to twice the reference price
    assert market.missing(["BTCUSD", "XYZUSD"]) == ["XYZUSD"]


def test_same_seed_same_stream() -> None:
    a, b = flow(seed=9), flow(seed=9)
    assert [a.next_request() for _ in range(200)] == [b.next_request() for _ in range(200)]


def test_cached_price_and_quantity_texts_are_the_instruments_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "capacity.generator.order_flow.PRICE_CACHE_SIZE", 50
    )  # so the cache also starts afresh
    market = Market.from_symbols_response(SYMBOLS)
    rng = random.Random(4)
    for _ in range(2000):
        symbol = rng.choice(NAMES)
        instrument = market.instruments[symbol]
        ticks = market.mid(symbol) + rng.randint(-120, 120)
        lots = rng.randint(1, 10)
        assert market.price_text(symbol, ticks) == instrument.price(ticks)
        assert market.quantity_text(symbol, lots) == instrument.quantity(lots)
    assert all(len(texts) <= 50 for texts in market._price_texts.values())
