"""Background order flow (SIMULATION_*): books with depth and a steady trickle of trades, as the seed's
"Idle" row ("background simulation only").

``workers`` asyncio tasks share ``orders_per_sec``. Each sends on an absolute schedule (send k of a worker
is due at ``start + offset + k * interval``), so sleeping late never makes the rate drift; after a stall
it catches up with at most ``MAX_CATCH_UP`` back-to-back sends and skips the rest (counted in
``skipped``) instead of bursting. Every send is one of:

- a **maker**: a GTC limit a few ticks either side of the symbol's fair value, post-only (never through
  the opposite best). Each symbol keeps at most ``max_resting_per_symbol`` maker orders; past that the
  oldest is cancelled (one cancel per new order). ``stop()`` cancels the rest (see there); after a crash
  the replayed orders of the old run stay in the book untracked, a one-off extra set.
- a **taker** (share ``taker_share``): an IOC limit a few ticks through the fair value, or an IOC market
  order, which trades against the makers' orders.

Fair values random-walk one tick at a time from ``Instrument.reference_price``, pulled gently back towards
it so long runs stay near it. With the defaults, about 0.3-0.4 trades happen per order.

Orders go through ``ExchangeService.place`` / ``.cancel``, so they are journaled, counted in the metrics
and shed under overload like client orders. A worker awaits each command (at most ``workers`` in flight):
if the journal slows down, the simulation slows down with it rather than piling up commands.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reference_exchange.engine import TERMINAL_STATUSES, EngineError, OrderType, Side, TimeInForce
from reference_exchange.instruments import Instrument
from reference_exchange.service import ExchangeService, Overloaded, PlaceCommand

log = logging.getLogger(__name__)

MAX_CATCH_UP = 3  # sends a worker may make back to back when it is behind schedule
MAKER_MAX_OFFSET_TICKS = 5  # makers quote 1..5 ticks from fair value: a few levels of depth
TAKER_MAX_THROUGH_TICKS = 3  # IOC takers cross up to 3 ticks past fair value
MARKET_TAKER_SHARE = 0.5  # of takers: market orders; the others are IOC limits
MAX_LOTS = 5
MEAN_REVERSION = 0.001  # share of the distance to the reference price recovered per step
ERROR_BACKOFF_S = 0.1  # pause after an unexpected rejection so a persistent fault cannot spin
MAX_SHED_BACKOFF_S = 1.0
WITHDRAW_BATCH = 256  # concurrent cancels when withdrawing, well under the service's pending bound
STOP_TIMEOUT_S = 5.0  # for in-flight commands to finish at stop, and again for withdrawing


@dataclass(slots=True)
class _SymbolState:
    """Per-symbol fair value (ticks) and the simulation's own resting maker orders, oldest first."""

    instrument: Instrument
    reference_ticks: int
    fair_ticks: int
    makers: deque[int] = field(default_factory=deque)


class Simulation:
    """Background makers and takers at ``orders_per_sec`` (0 sends nothing) over ``symbols``."""

    def __init__(
        self,
        service: ExchangeService,
        instruments: Mapping[str, Instrument],
        orders_per_sec: float,
        workers: int,
        symbols: Sequence[str],
        seed: int | None = None,
        max_resting_per_symbol: int = 200,
        taker_share: float = 0.3,
    ) -> None:
        if orders_per_sec < 0:
            raise ValueError(f"orders_per_sec must be >= 0, got {orders_per_sec}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if not symbols:
            raise ValueError("the simulation needs at least one symbol")
        unknown = [s for s in symbols if s not in instruments or s not in service.engine.books]
        if unknown:
            raise ValueError(f"simulation symbols not traded here: {', '.join(unknown)}")
        self.service = service
        self.orders_per_sec = float(orders_per_sec)
        self.workers = workers
        self.max_resting_per_symbol = max_resting_per_symbol
        self.taker_share = taker_share
        self._rng = random.Random(seed)
        self._symbols = [_new_state(instruments[symbol]) for symbol in symbols]
        self._tasks: list[asyncio.Task[None]] = []
        self._pausing: set[asyncio.Task[None]] = set()  # workers between commands: safe to cancel
        self._stopping = False
        self.orders_sent = 0  # orders the service accepted
        self.cancels_sent = 0
        self.trades = 0  # trades executed by the simulation's orders (as takers: makers are post-only)
        self.rejected = 0  # EngineError
        self.shed = 0  # Overloaded
        self.skipped = 0  # scheduled sends dropped because a worker fell too far behind

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    async def start(self) -> None:
        """Start the workers (no-op when already running or when the rate is 0)."""
        if self._tasks or self.orders_per_sec == 0:
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        for worker in range(self.workers):
            # Staggered by one total-rate interval so the workers' sends interleave evenly.
            first = start + worker / self.orders_per_sec
            self._tasks.append(asyncio.create_task(self._run(first), name=f"simulation-{worker}"))

    async def stop(self, withdraw: bool = True) -> None:
        """Stop the workers and wait for them to finish; safe to call repeatedly.

        Workers waiting for their next send are cancelled at once; one in the middle of a command finishes
        it first (up to ``STOP_TIMEOUT_S``), so that no order it placed is left resting untracked. With
        ``withdraw`` the simulation then cancels its resting orders, like a market maker pulling its
        quotes: a journaled server replays its books at start-up, and the next run's simulation would
        otherwise add its own bounded set on top of orders nobody tracks any more."""
        tasks, self._tasks = self._tasks, []
        self._stopping = True
        for task in tasks:
            if task in self._pausing:
                task.cancel()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
            for task in late:  # stuck on a command (a stalled journal): interrupt it after all
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._stopping = False
        if withdraw:
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):  # a stuck journal must not block shutdown
                    await self._withdraw()
            except TimeoutError:
                log.warning("simulation: withdrawing resting orders timed out after %s s", STOP_TIMEOUT_S)

    async def _withdraw(self) -> None:
        order_ids = [order_id for state in self._symbols for order_id in state.makers]
        for state in self._symbols:
            state.makers.clear()
        failed = 0
        # Concurrent, so the journal commits them in groups; in batches, to stay under the pending bound.
        for first in range(0, len(order_ids), WITHDRAW_BATCH):
            batch = order_ids[first : first + WITHDRAW_BATCH]
            results = await asyncio.gather(*map(self._cancel_if_open, batch), return_exceptions=True)
            failed += sum(isinstance(result, Exception) for result in results)
        if failed:
            log.warning(
                "simulation: %d of its %d resting orders could not be cancelled", failed, len(order_ids)
            )

    def stats(self) -> dict[str, float | int | bool]:
        """Counters for ``/api/metrics`` (the server passes them as ``extra``)."""
        return {
            "running": self.running,
            "orders_per_sec_target": self.orders_per_sec,
            "orders_sent": self.orders_sent,
            "cancels_sent": self.cancels_sent,
            "trades": self.trades,
            "rejected": self.rejected,
            "shed": self.shed,
            "skipped": self.skipped,
        }

    # -- workers ---------------------------------------------------------------------------------

    async def _run(self, first_send: float) -> None:
        """One worker: send on its schedule until cancelled."""
        loop = asyncio.get_running_loop()
        interval = self.workers / self.orders_per_sec  # seconds between this worker's sends
        due = first_send
        while not self._stopping:
            # pause(0) when due or late still yields, so a late worker never starves the event loop.
            await self._pause(due - loop.time())
            due = self._skip_backlog(due, loop.time(), interval)
            await self._send_guarded()
            due += interval

    async def _pause(self, seconds: float) -> None:
        """Sleep between commands, marked as safe for ``stop`` to cancel; returns at once when stopping."""
        if self._stopping:
            return
        task = asyncio.current_task()
        assert task is not None
        self._pausing.add(task)
        try:
            await asyncio.sleep(max(0.0, seconds))
        finally:
            self._pausing.discard(task)

    def _skip_backlog(self, due: float, now: float, interval: float) -> float:
        """Drop sends missed beyond ``MAX_CATCH_UP`` so a stall is not followed by a burst; stays on the
        schedule's grid, so the long-run rate is unchanged while the worker keeps up."""
        behind = int((now - due) / interval)
        if behind < MAX_CATCH_UP:
            return due
        self.skipped += behind
        return due + behind * interval

    async def _send_guarded(self) -> None:
        """One send; refusals are counted and backed off from, never raised (the task must not die)."""
        try:
            await self._send()
        except Overloaded as overloaded:
            self.shed += 1
            await self._pause(min(overloaded.retry_after_s, MAX_SHED_BACKOFF_S))
        except EngineError as error:
            self.rejected += 1
            log.debug("simulation order rejected: %s %s", error.code, error.message)
            await self._pause(ERROR_BACKOFF_S)
        except Exception:  # a bug: log it loudly, but keep the background flow alive
            self.rejected += 1
            log.exception("simulation send failed")
            await self._pause(ERROR_BACKOFF_S)

    async def _send(self) -> None:
        state = self._rng.choice(self._symbols)
        _walk(state, self._rng)
        if self._rng.random() < self.taker_share:
            await self._place(self._taker_order(state))
        else:
            await self._make(state)

    async def _make(self, state: _SymbolState) -> None:
        """Place a maker order; if that puts the symbol over its bound, cancel its oldest."""
        side = self._rng.choice((Side.BUY, Side.SELL))
        price = self._maker_price(state, side)
        order = await self._place(_limit(state, side, price, self._lots(), TimeInForce.GTC))
        if order is not None:
            state.makers.append(order)
        while len(state.makers) > self.max_resting_per_symbol:
            await self._cancel_oldest(state)

    async def _cancel_oldest(self, state: _SymbolState) -> None:
        order_id = state.makers.popleft()
        try:
            await self._cancel_if_open(order_id)
        except Overloaded:
            state.makers.appendleft(order_id)  # still resting: keep tracking it so the bound holds
            raise

    def _maker_price(self, state: _SymbolState, side: Side) -> int:
        """A few ticks from fair value on the passive side, and post-only: never through the opposite
        best, so trades come from the takers (a controlled share) and not from stale quotes."""
        offset = self._rng.randint(1, MAKER_MAX_OFFSET_TICKS)
        book = self.service.engine.book(state.instrument.symbol)
        if side is Side.BUY:
            best_ask = book.best_ask()
            price = state.fair_ticks - offset
            # Never below one tick, even if someone offers at one tick (then the bid trades, harmlessly).
            return max(1, price if best_ask is None else min(price, best_ask - 1))
        best_bid = book.best_bid()
        price = state.fair_ticks + offset
        return price if best_bid is None else max(price, best_bid + 1)

    def _taker_order(self, state: _SymbolState) -> PlaceCommand:
        """An IOC market order, or an IOC limit a few ticks through fair value (so it can miss)."""
        side = self._rng.choice((Side.BUY, Side.SELL))
        if self._rng.random() < MARKET_TAKER_SHARE:
            return PlaceCommand(
                state.instrument.symbol, side, OrderType.MARKET, self._lots(), None, TimeInForce.IOC
            )
        through = self._rng.randint(1, TAKER_MAX_THROUGH_TICKS)
        price = state.fair_ticks + through if side is Side.BUY else state.fair_ticks - through
        return _limit(state, side, price, self._lots(), TimeInForce.IOC)

    async def _place(self, command: PlaceCommand) -> int | None:
        """Place through the service; returns the order id when the order is left resting."""
        result = await self.service.place(command)
        self.orders_sent += 1
        self.trades += len(result.trades)
        order = result.order
        return order.order_id if order.status not in TERMINAL_STATUSES else None

    async def _cancel_if_open(self, order_id: int) -> None:
        """Cancel one of our maker orders unless a taker already filled it (then it is simply forgotten)."""
        try:
            order = self.service.engine.get_order(order_id)
        except EngineError:  # evicted from the engine's finished-order history: long gone
            return
        if order.status in TERMINAL_STATUSES:
            return
        await self.service.cancel(order_id)
        self.cancels_sent += 1

    def _lots(self) -> int:
        return self._rng.randint(1, MAX_LOTS)


def _new_state(instrument: Instrument) -> _SymbolState:
    # Rounded to the nearest tick rather than price_to_ticks, which refuses Decimal and off-tick values.
    ticks = int((instrument.reference_price / instrument.tick_size).to_integral_value())
    reference = max(ticks, _min_fair_ticks())
    return _SymbolState(instrument, reference, reference)


def _min_fair_ticks() -> int:
    """The lowest fair value that keeps every simulated price at least one tick."""
    return max(MAKER_MAX_OFFSET_TICKS, TAKER_MAX_THROUGH_TICKS) + 1


def _walk(state: _SymbolState, rng: random.Random) -> None:
    """One random-walk step of the fair value: -1, 0 or +1 tick, plus a pull back to the reference."""
    pull = round((state.reference_ticks - state.fair_ticks) * MEAN_REVERSION)
    state.fair_ticks = max(_min_fair_ticks(), state.fair_ticks + rng.randint(-1, 1) + pull)


def _limit(state: _SymbolState, side: Side, price: int, lots: int, tif: TimeInForce) -> PlaceCommand:
    return PlaceCommand(state.instrument.symbol, side, OrderType.LIMIT, lots, price, tif)
