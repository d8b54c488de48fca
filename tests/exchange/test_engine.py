"""Matching engine: price-time priority, order types, idempotency and invariants (unit + property-based).

Every test runs on both builds of ``reference_exchange.matching``: the installed one (compiled with mypyc
where the machine could) and the same source interpreted."""

from __future__ import annotations

import contextlib
import gc
import tracemalloc
from copy import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_exchange.engine import (
    IMPLEMENTATION,
    InvalidOrder,
    MatchingEngine,
    OrderNotFound,
    OrderNotOpen,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    UnknownSymbol,
    interpreted_matching,
)

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET


BUILDS = [
    pytest.param(MatchingEngine, id=IMPLEMENTATION.split()[0]),
    pytest.param(interpreted_matching().MatchingEngine, id="interpreted"),
]
if IMPLEMENTATION == "interpreted":
    BUILDS.pop()  # the installed build is the interpreted one: no need to run it twice
every_build = pytest.mark.parametrize("engine_class", BUILDS)


@pytest.fixture(params=BUILDS)
def engine_class(request) -> type[MatchingEngine]:
    return request.param


@pytest.fixture
def engine(engine_class) -> MatchingEngine:
    return engine_class(["BTCUSD", "ETHUSD"])


def limit(engine: MatchingEngine, side: Side, price: int, qty: int, tif=TimeInForce.GTC, **kw):
    return engine.place("BTCUSD", side, LIMIT, qty, price=price, time_in_force=tif, **kw)


def test_resting_orders_do_not_cross(engine):
    limit(engine, BUY, 100, 5)
    limit(engine, SELL, 101, 5)
    book = engine.book("BTCUSD")
    assert book.depth(5) == ([(100, 5)], [(101, 5)])
    assert engine.audit() == []


def test_trade_executes_at_resting_price_and_reports_both_sides(engine):
    maker = limit(engine, SELL, 100, 5).order
    result = limit(engine, BUY, 105, 3)
    assert [(t.price, t.quantity, t.maker_order_id) for t in result.trades] == [(100, 3, maker.order_id)]
    assert result.order.status is OrderStatus.FILLED
    assert maker.status is OrderStatus.PARTIALLY_FILLED and maker.remaining == 2
    assert engine.book("BTCUSD").depth(5) == ([], [(100, 2)])


def test_earlier_order_at_a_price_fills_first(engine):
    first = limit(engine, SELL, 100, 2).order
    second = limit(engine, SELL, 100, 2).order
    trades = limit(engine, BUY, 100, 3).trades
    assert [(t.maker_order_id, t.quantity) for t in trades] == [(first.order_id, 2), (second.order_id, 1)]


def test_better_price_fills_before_earlier_time(engine):
    limit(engine, SELL, 101, 1)
    better = limit(engine, SELL, 100, 1).order
    trades = limit(engine, BUY, 101, 1).trades
    assert trades[0].maker_order_id == better.order_id


def test_partial_fill_rests_the_remainder_of_a_gtc_limit(engine):
    limit(engine, SELL, 100, 2)
    result = limit(engine, BUY, 100, 5)
    assert result.order.status is OrderStatus.PARTIALLY_FILLED
    assert engine.book("BTCUSD").depth(5) == ([(100, 3)], [])


def test_ioc_cancels_its_remainder(engine):
    limit(engine, SELL, 100, 2)
    result = limit(engine, BUY, 100, 5, tif=TimeInForce.IOC)
    assert result.order.filled == 2 and result.order.cancelled == 3
    assert result.order.status is OrderStatus.CANCELLED
    assert engine.book("BTCUSD").depth(5) == ([], [])


def test_fok_that_cannot_fill_leaves_book_untouched(engine):
    limit(engine, SELL, 100, 2)
    limit(engine, SELL, 102, 5)
    before = engine.book("BTCUSD").checksum()
    result = limit(engine, BUY, 101, 3, tif=TimeInForce.FOK)
    assert result.trades == () and result.order.status is OrderStatus.CANCELLED
    assert engine.book("BTCUSD").checksum() == before


def test_fok_that_can_fill_fills_completely(engine):
    limit(engine, SELL, 100, 2)
    limit(engine, SELL, 101, 2)
    result = limit(engine, BUY, 101, 3, tif=TimeInForce.FOK)
    assert result.order.status is OrderStatus.FILLED
    assert [(t.price, t.quantity) for t in result.trades] == [(100, 2), (101, 1)]


def test_market_order_sweeps_levels_and_never_rests(engine):
    limit(engine, SELL, 100, 1)
    limit(engine, SELL, 110, 1)
    result = engine.place("BTCUSD", BUY, MARKET, 5, time_in_force=TimeInForce.IOC)
    assert [t.price for t in result.trades] == [100, 110]
    assert result.order.cancelled == 3 and engine.resting_order_count == 0


def test_market_order_on_empty_side_is_rejected(engine):
    result = engine.place("BTCUSD", SELL, MARKET, 1, time_in_force=TimeInForce.IOC)
    assert result.order.status is OrderStatus.REJECTED and result.order.remaining == 0


def test_cancel_removes_order_and_cannot_repeat(engine):
    order = limit(engine, BUY, 100, 4).order
    assert engine.cancel(order.order_id).status is OrderStatus.CANCELLED
    assert engine.book("BTCUSD").depth(5) == ([], [])
    with pytest.raises(OrderNotOpen):
        engine.cancel(order.order_id)
    with pytest.raises(OrderNotFound):
        engine.cancel(999)


def test_client_order_id_is_idempotent(engine):
    limit(engine, SELL, 100, 1)
    first = limit(engine, BUY, 100, 1, client_order_id="abc")
    again = limit(engine, BUY, 100, 1, client_order_id="abc")
    assert again.duplicate and again.order.order_id == first.order.order_id
    assert again.trades == first.trades
    assert engine.orders_accepted == 2


@every_build
def test_a_repeated_client_order_id_answers_with_its_order_as_it_is_now(engine_class):
    engine = engine_class(["BTCUSD"])
    resting = engine.place("BTCUSD", BUY, LIMIT, 3, price=100, client_order_id="rests").order
    assert engine.place("BTCUSD", BUY, LIMIT, 3, price=100, client_order_id="rests").order is resting
    engine.cancel(resting.order_id)
    again = engine.place("BTCUSD", BUY, LIMIT, 3, price=100, client_order_id="rests")
    assert again.duplicate and again.trades == ()
    assert again.order == engine.get_order(resting.order_id) and again.order.status is OrderStatus.CANCELLED


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"order_type": LIMIT, "quantity": 0, "price": 1}, "invalid_quantity"),
        ({"order_type": LIMIT, "quantity": 1, "price": None}, "missing_price"),
        (
            {"order_type": MARKET, "quantity": 1, "price": 5, "time_in_force": TimeInForce.IOC},
            "unexpected_price",
        ),
        ({"order_type": MARKET, "quantity": 1}, "invalid_time_in_force"),
    ],
)
def test_invalid_orders_are_refused_with_a_code(engine, kwargs, code):
    with pytest.raises(InvalidOrder) as error:
        engine.place("BTCUSD", BUY, **kwargs)
    assert error.value.code == code
    assert engine.orders_accepted == 0


def test_unknown_symbol(engine):
    with pytest.raises(UnknownSymbol):
        engine.place("DOGEUSD", BUY, LIMIT, 1, price=1)


def test_finished_orders_are_retained_only_up_to_the_bound(engine_class):
    engine = engine_class(["BTCUSD"], order_retention=3)
    ids = [
        engine.place("BTCUSD", BUY, LIMIT, 1, price=1, client_order_id=f"c{i}").order.order_id
        for i in range(5)
    ]
    for order_id in ids:
        engine.cancel(order_id)
    with pytest.raises(OrderNotFound):
        engine.get_order(ids[0])
    assert engine.get_order(ids[-1]).status is OrderStatus.CANCELLED
    # An evicted client id is forgotten, so it places a new order.
    assert not engine.place("BTCUSD", BUY, LIMIT, 1, price=1, client_order_id="c0").duplicate


@every_build
def test_amounts_a_record_cannot_hold_are_refused_before_anything_changes(engine_class):
    engine = engine_class(["BTCUSD"])
    too_large = 1 << 63
    with pytest.raises(InvalidOrder, match="quantity must be at most"):
        engine.place("BTCUSD", BUY, MARKET, too_large, time_in_force=TimeInForce.IOC)
    with pytest.raises(InvalidOrder, match="price must be at most"):
        engine.place("BTCUSD", BUY, LIMIT, 1, price=too_large)
    assert engine.orders_accepted == 0 and not engine.audit()
    engine.place("BTCUSD", SELL, LIMIT, too_large - 1, price=too_large - 1, time_in_force=TimeInForce.IOC)
    assert engine.get_order(1).cancelled == too_large - 1  # the largest amounts archive and read back


@every_build
def test_a_finished_order_reads_back_as_it_finished_from_its_compact_record(engine_class):
    engine = engine_class(["BTCUSD"])
    rejected = engine.place("BTCUSD", SELL, MARKET, 7, time_in_force=TimeInForce.IOC, timestamp_ns=1 << 61)
    rested = engine.place(
        "BTCUSD", BUY, LIMIT, 12_345, price=4_000_000, client_order_id="mine", timestamp_ns=9
    )
    filled = engine.place("BTCUSD", SELL, LIMIT, 345, price=3_999_999, timestamp_ns=10)
    engine.cancel(rested.order.order_id)
    for result in (rejected, rested, filled):
        finished = copy(result.order)
        assert engine.get_order(finished.order_id) == finished and finished.remaining == 0
    assert engine.get_order(rejected.order.order_id).price is None
    assert engine.get_order(rested.order.order_id).filled == 345
    assert not engine.audit()


@pytest.mark.parametrize(("client_ids", "most"), [(False, 300), (True, 500)])
def test_a_finished_order_is_kept_in_a_few_hundred_bytes(client_ids, most):
    """The archive keeps up to ORDER_RETENTION (a million) finished orders: each in about 240 bytes with its
    share of the dict, where a tuple of its fields took about 430 (every int above 256 an object). With a
    client order id, about 430, where keeping its first answer (the Order itself) took about 590."""
    engine = MatchingEngine(["BTCUSD"])
    stamp = 1_733_000_000_000_000_000
    placed = iter(range(10**9))

    def place_and_cancel(count: int) -> None:
        for i in range(count):
            client_order_id = f"client-{next(placed):08d}" if client_ids else None
            order = engine.place(
                "BTCUSD", BUY, LIMIT, 500, price=59_000 + i % 50, client_order_id=client_order_id,
                timestamp_ns=stamp + i,
            ).order  # fmt: skip
            engine.cancel(order.order_id)

    place_and_cancel(1_000)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        place_and_cancel(50_000)
        gc.collect()
        per_order = (tracemalloc.get_traced_memory()[0] - before) / 50_000
    finally:
        tracemalloc.stop()
    assert per_order < most, per_order


# -- property-based: random streams of commands keep every invariant --------------------------

commands = st.lists(
    st.one_of(
        st.tuples(
            st.just("place"),
            st.sampled_from([BUY, SELL]),
            st.sampled_from([LIMIT, LIMIT, LIMIT, MARKET]),
            st.integers(95, 105),
            st.integers(1, 10),
            st.sampled_from(list(TimeInForce)),
            st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),
        ),
        st.tuples(st.just("cancel"), st.integers(1, 60)),
    ),
    max_size=60,
)


def run(stream, engine_class=MatchingEngine) -> tuple[MatchingEngine, list]:
    engine = engine_class(["BTCUSD"])
    results = []
    for command in stream:
        if command[0] == "cancel":
            with contextlib.suppress(OrderNotFound, OrderNotOpen):
                engine.cancel(command[1])
            continue
        _, side, kind, price, qty, tif, client_id = command
        if kind is MARKET:
            price, tif = None, TimeInForce.FOK if tif is TimeInForce.FOK else TimeInForce.IOC
        results.append(engine.place("BTCUSD", side, kind, qty, price, tif, client_id))
        assert engine.audit() == []
    return engine, results


@every_build
@settings(max_examples=300, deadline=None)
@given(commands)
def test_invariants_hold_for_any_command_stream(engine_class, stream):
    engine, results = run(stream, engine_class)
    assert engine.audit() == []
    book = engine.book("BTCUSD")
    fresh = [r for r in results if not r.duplicate]
    placed = sum(r.order.quantity for r in fresh)
    filled = sum(r.order.filled for r in fresh)
    cancelled = sum(r.order.cancelled for r in fresh)
    resting = sum(o.remaining for o in book.resting_orders())
    # Conservation: every placed lot is filled, resting or cancelled; each trade fills two orders.
    assert placed == filled + resting + cancelled
    assert filled == 2 * sum(t.quantity for r in fresh for t in r.trades)


@every_build
@settings(max_examples=200, deadline=None)
@given(commands)
def test_trades_happen_at_maker_price_within_taker_limit(engine_class, stream):
    _, results = run(stream, engine_class)
    orders = {r.order.order_id: r.order for r in results}
    for result in results:
        for trade in result.trades:
            maker = orders[trade.maker_order_id]
            taker = result.order
            assert trade.price == maker.price
            assert maker.order_id < taker.order_id
            if taker.price is not None:
                assert trade.price <= taker.price if taker.side is BUY else trade.price >= taker.price


@every_build
@settings(max_examples=100, deadline=None)
@given(commands)
def test_replaying_the_same_commands_rebuilds_the_same_book(engine_class, stream):
    first, _ = run(stream, engine_class)
    second, _ = run(stream, engine_class)
    assert first.book("BTCUSD").checksum() == second.book("BTCUSD").checksum()


@settings(max_examples=100, deadline=None)
@given(commands)
def test_compiled_and_interpreted_builds_agree_on_every_command(stream):
    """The journal replays with whichever build is installed: both must give the same ids, fills, books."""
    installed, installed_results = run(stream)
    interpreted, interpreted_results = run(stream, interpreted_matching().MatchingEngine)
    assert [_outcome(r) for r in installed_results] == [_outcome(r) for r in interpreted_results]
    assert installed.book("BTCUSD").checksum() == interpreted.book("BTCUSD").checksum()
    assert installed.book("BTCUSD").depth(20) == interpreted.book("BTCUSD").depth(20)


def _outcome(result) -> tuple:
    order = result.order
    fills = [(t.trade_id, t.price, t.quantity, t.maker_order_id, t.taker_order_id) for t in result.trades]
    return order.order_id, order.status, order.filled, order.cancelled, order.remaining, fills


def test_copy_of_an_order_is_a_snapshot(engine):
    """The service acknowledges an order as its command left it: a copy must not follow later fills."""
    maker = limit(engine, SELL, 100, 5).order
    snapshot = copy(maker)
    assert snapshot == maker and snapshot is not maker  # equal in every field
    limit(engine, BUY, 100, 2)
    assert (snapshot.filled, snapshot.remaining, snapshot.status) == (0, 5, OrderStatus.NEW)
    assert (maker.filled, maker.remaining) == (2, 3) and snapshot.order_id == maker.order_id


def test_a_deep_book_keeps_price_priority_through_level_churn(engine):
    """Levels emptied below the best leave stale keys in the side's heap; the best price must stay exact."""
    for price in range(100, 140):
        limit(engine, SELL, price, 1)
    for order_id in range(2, 41, 2):  # cancel every other level, none of them the best
        engine.cancel(order_id)
    for price in range(101, 140, 2):
        limit(engine, SELL, price, 1)  # re-create every emptied level
    assert engine.audit() == [] and engine.book("BTCUSD").best_ask() == 100
    fills = [t.price for t in limit(engine, BUY, 200, 100, tif=TimeInForce.IOC).trades]
    assert fills == list(range(100, 140))
    assert engine.book("BTCUSD").depth(5) == ([], []) and engine.audit() == []
