"""The command path: acknowledge only what is durable, shed past the pending bound."""

from __future__ import annotations

import asyncio

import pytest

from reference_exchange.engine import MatchingEngine, OrderType, Side, TimeInForce
from reference_exchange.journal import Journal
from reference_exchange.service import ExchangeService, Overloaded, PlaceCommand


def command(client_order_id: str | None = None) -> PlaceCommand:
    return PlaceCommand("BTCUSD", Side.BUY, OrderType.LIMIT, 1, 100, TimeInForce.GTC, client_order_id)


@pytest.fixture
async def slow_journal():
    journal = Journal.open(":memory:")
    await journal.start()
    journal.inject_latency(0.2, 10)
    yield journal
    journal.clear_chaos()
    await journal.close()


async def test_retry_of_a_client_order_id_waits_for_the_first_commit(slow_journal):
    service = ExchangeService(MatchingEngine(["BTCUSD"]), slow_journal)
    first = asyncio.create_task(service.place(command("c1")))
    await asyncio.sleep(0.01)
    retry = asyncio.create_task(service.place(command("c1")))
    await asyncio.sleep(0.1)
    assert not first.done() and not retry.done()  # neither acknowledged before the commit
    assert (await retry).duplicate and (await first).order.order_id == (await retry).order.order_id
    assert slow_journal.committed_sequence >= 1


async def test_orders_beyond_the_pending_bound_are_shed(slow_journal):
    service = ExchangeService(MatchingEngine(["BTCUSD"]), slow_journal, max_pending=3)
    admitted = [asyncio.create_task(service.place(command())) for _ in range(3)]
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded):
        await service.place(command())
    assert service.shed == 1
    await asyncio.gather(*admitted)
    assert service.engine.resting_order_count == 3


async def test_ack_shows_the_order_as_its_own_command_left_it(slow_journal):
    """A later, not yet durable, command that fills the order must not show in the earlier order's ack:
    after a crash the journal would replay the order without that fill."""
    service = ExchangeService(MatchingEngine(["BTCUSD"]), slow_journal)
    resting = asyncio.create_task(service.place(command()))
    await asyncio.sleep(0.01)
    crossing = PlaceCommand("BTCUSD", Side.SELL, OrderType.LIMIT, 1, 100, TimeInForce.GTC)
    filled_by = asyncio.create_task(service.place(crossing))
    acked = await resting
    assert acked.order.status.value == "new" and acked.order.filled == 0
    assert service.engine.get_order(acked.order.order_id).status.value == "filled"  # live state moved on
    assert (await filled_by).order.status.value == "filled"


class Lagging:
    """A load signal whose loop is always far behind."""

    max_lag_s = 0.2

    def lag_s(self) -> float:
        return 10.0


async def test_the_loop_lag_bound_applies_only_where_the_caller_did_not_admit():
    """The lean path's own admission (by_lag=False) decides instead of the lag bound; everything else
    keeps it, and cancels are never refused for lag."""
    service = ExchangeService(MatchingEngine(["BTCUSD"]), load=Lagging())
    with pytest.raises(Overloaded) as refused:
        await service.place(command())
    assert refused.value.reason == "loop_lag"
    with pytest.raises(Overloaded):
        service.admit_order()
    service.admit_order(by_lag=False)
    placed = await service.place(command(), by_lag=False)
    assert service.shed_loop_lag == 2 and service.engine.resting_order_count == 1
    await service.cancel(placed.order.order_id)
    assert service.engine.resting_order_count == 0
