"""Simulation: real asyncio, real engine and service (no journal). Each test runs for well under 3 s."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from reference_exchange.engine import InvalidOrder, MatchingEngine
from reference_exchange.instruments import Instrument, default_instruments
from reference_exchange.metrics import ServerMetrics
from reference_exchange.service import ExchangeService, PlaceCommand
from reference_exchange.simulation import MAX_CATCH_UP, Simulation

INSTRUMENTS = default_instruments()
pytestmark = pytest.mark.timeout(10)


def make_service(observer: ServerMetrics | None = None) -> ExchangeService:
    return ExchangeService(MatchingEngine(INSTRUMENTS), journal=None, observer=observer)


async def run_for(simulation: Simulation, seconds: float, withdraw: bool = True) -> None:
    await simulation.start()
    try:
        await asyncio.sleep(seconds)
    finally:
        await simulation.stop(withdraw=withdraw)


async def test_rate_trades_and_depth():
    metrics = ServerMetrics()
    service = make_service(metrics)
    symbols = ["BTCUSD", "ETHUSD"]
    simulation = Simulation(service, INSTRUMENTS, 200, 4, symbols, seed=7)
    await run_for(simulation, 1.0, withdraw=False)

    assert 150 <= simulation.orders_sent <= 250
    assert simulation.trades > 0
    assert metrics.total_orders == simulation.orders_sent  # went through the service like client orders
    for symbol in symbols:
        bids, asks = service.engine.book(symbol).depth(10)
        assert bids, f"{symbol} has no bids"
        assert asks, f"{symbol} has no asks"
        assert all(price > 0 for price, _ in bids + asks)
    assert service.engine.audit() == []
    assert (simulation.rejected, simulation.shed) == (0, 0)


async def test_trades_are_a_quarter_to_a_half_of_orders():
    service = make_service()
    simulation = Simulation(service, INSTRUMENTS, 2000, 8, ["BTCUSD", "SOLUSD"], seed=3)
    await run_for(simulation, 1.0)
    assert 0.25 <= simulation.trades / simulation.orders_sent <= 0.5


async def test_stop_ends_all_tasks_and_is_idempotent():
    simulation = Simulation(make_service(), INSTRUMENTS, 500, 6, ["BTCUSD"], seed=1)
    await simulation.start()
    await simulation.start()  # already running: no second set of workers
    await asyncio.sleep(0.1)
    assert simulation.running
    await simulation.stop()
    assert not simulation.running
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("simulation-")]
    sent = simulation.orders_sent
    await asyncio.sleep(0.05)
    assert simulation.orders_sent == sent
    await simulation.stop()


async def test_resting_orders_stay_bounded():
    service = make_service()
    simulation = Simulation(service, INSTRUMENTS, 3000, 8, ["ADAUSD"], seed=5, max_resting_per_symbol=50)
    await simulation.start()
    peak = 0
    for _ in range(30):
        await asyncio.sleep(0.05)
        peak = max(peak, service.engine.resting_order_count)
    await simulation.stop()
    assert simulation.orders_sent > 2000
    assert simulation.cancels_sent > 0
    assert peak <= 50
    assert service.engine.audit() == []


async def test_stop_withdraws_the_resting_orders():
    service = make_service()
    simulation = Simulation(service, INSTRUMENTS, 1000, 4, ["BTCUSD", "ETHUSD"], seed=9)
    await run_for(simulation, 0.3)
    assert simulation.orders_sent > 200
    assert service.engine.resting_order_count == 0
    assert service.engine.audit() == []


async def test_stop_lets_commands_in_flight_finish_so_nothing_is_left_untracked():
    service = ExchangeService(MatchingEngine(INSTRUMENTS), journal=SlowJournal())
    simulation = Simulation(service, INSTRUMENTS, 400, 8, ["BTCUSD"], seed=6)
    await run_for(simulation, 0.5)
    assert simulation.orders_sent > 100
    assert service.engine.resting_order_count == 0
    assert service.pending == 0


async def test_rate_zero_sends_nothing():
    simulation = Simulation(make_service(), INSTRUMENTS, 0, 4, ["BTCUSD"])
    await run_for(simulation, 0.2)
    assert simulation.orders_sent == 0
    assert not simulation.running


async def test_a_stall_is_not_followed_by_a_burst():
    simulation = Simulation(make_service(), INSTRUMENTS, 100, 1, ["BTCUSD"], seed=2)
    await simulation.start()
    await asyncio.sleep(0.2)
    time.sleep(0.3)  # block the event loop: ~30 sends fall due meanwhile
    await asyncio.sleep(0.2)
    await simulation.stop()
    # ~0.4 s of sending at 100/s plus at most MAX_CATCH_UP catch-up sends, not the 30 missed ones.
    assert simulation.orders_sent <= 0.45 * 100 + MAX_CATCH_UP + 1
    assert simulation.skipped >= 25


async def test_prices_stay_positive_near_a_one_tick_reference():
    tiny = Instrument("TINYUSD", Decimal("1"), Decimal("1"), Decimal("1"))
    service = ExchangeService(MatchingEngine(["TINYUSD"]))
    simulation = Simulation(service, {"TINYUSD": tiny}, 1000, 2, ["TINYUSD"], seed=4)
    await run_for(simulation, 0.3)
    assert simulation.orders_sent > 200
    assert simulation.rejected == 0
    assert service.engine.audit() == []


class RefusingService(ExchangeService):
    """Rejects every order, as an engine would an invalid one."""

    async def place(self, command: PlaceCommand):
        raise InvalidOrder("invalid_price", "refused for the test")


class SlowJournal:
    """Every command takes 20 ms to become durable, so workers are usually mid-command."""

    def append(self, command) -> int:
        return 0

    async def durable(self, sequence: int) -> None:
        await asyncio.sleep(0.02)


class StuckJournal:
    """A journal that never makes anything durable, so admitted orders pile up as pending."""

    def append(self, command) -> int:
        return 0

    async def durable(self, sequence: int) -> None:
        await asyncio.Event().wait()


async def test_rejections_are_counted_and_the_workers_survive():
    simulation = Simulation(RefusingService(MatchingEngine(INSTRUMENTS)), INSTRUMENTS, 200, 2, ["BTCUSD"])
    await simulation.start()
    await asyncio.sleep(0.3)
    assert simulation.rejected >= 2
    assert simulation.running and not any(t.done() for t in simulation._tasks)
    await simulation.stop()


async def test_overload_is_counted_and_backed_off_from(monkeypatch):
    monkeypatch.setattr("reference_exchange.simulation.STOP_TIMEOUT_S", 0.2)  # two workers never finish
    service = ExchangeService(MatchingEngine(INSTRUMENTS), journal=StuckJournal(), max_pending=2)
    simulation = Simulation(service, INSTRUMENTS, 200, 4, ["BTCUSD"])
    await simulation.start()
    await asyncio.sleep(0.3)
    # Two workers wait on the stuck journal; the other two are shed and back off instead of spinning.
    assert 2 <= simulation.shed <= 4
    assert not any(t.done() for t in simulation._tasks)
    await simulation.stop()
    assert service.pending == 0


@pytest.mark.parametrize(
    ("rate", "workers", "symbols", "message"),
    [(-1, 1, ["BTCUSD"], "orders_per_sec"), (10, 0, ["BTCUSD"], "workers"), (10, 1, ["XXXUSD"], "XXXUSD")],
)
def test_bad_settings_are_refused(rate, workers, symbols, message):
    with pytest.raises(ValueError, match=message):
        Simulation(make_service(), INSTRUMENTS, rate, workers, symbols)


async def test_withdrawing_gives_up_on_a_stuck_journal(monkeypatch):
    monkeypatch.setattr("reference_exchange.simulation.STOP_TIMEOUT_S", 0.2)
    service = make_service()
    simulation = Simulation(service, INSTRUMENTS, 1000, 2, ["BTCUSD"], seed=1)
    await run_for(simulation, 0.2, withdraw=False)  # its orders stay resting, and tracked
    assert service.engine.resting_order_count > 0
    service.journal = StuckJournal()  # from now on nothing becomes durable
    started = time.monotonic()
    await simulation.stop()
    assert time.monotonic() - started < 1.0
    assert service.pending == 0
