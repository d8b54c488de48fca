"""The exchange's command path: apply to the engine, journal, wait until durable, then acknowledge.

Both the HTTP API and the background simulation go through here, so every accepted command is
journaled, counted in the metrics and subject to the same overload bound.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from reference_exchange.engine import MatchingEngine, Order, OrderType, PlaceResult, Side, TimeInForce


class CommandLog(Protocol):
    """What the service needs from a journal: ordered appends and a way to wait for durability."""

    def append(self, command: Mapping[str, Any]) -> int:
        """Buffer a command in apply order; returns its sequence number."""
        ...

    @property
    def last_sequence(self) -> int:
        """Sequence number of the newest appended command."""
        ...

    async def durable(self, sequence: int) -> None:
        """Return once the command with this sequence number is committed."""
        ...


class OrderObserver(Protocol):
    def observe_order(self, trades: int) -> None: ...


class Overloaded(Exception):
    """Too many commands admitted and not yet acknowledged: shed instead of queueing without bound."""

    def __init__(self, pending: int, retry_after_s: float = 1.0) -> None:
        super().__init__(f"{pending} orders are waiting to be acknowledged; retry later")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class PlaceCommand:
    """A validated order in engine units: price in ticks (None for market), quantity in lots."""

    symbol: str
    side: Side
    type: OrderType
    quantity: int
    price: int | None
    time_in_force: TimeInForce
    client_order_id: str | None = None


class ExchangeService:
    def __init__(
        self,
        engine: MatchingEngine,
        journal: CommandLog | None = None,
        observer: OrderObserver | None = None,
        max_pending: int = 2048,
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.observer = observer
        self.max_pending = max_pending
        self.pending = 0
        self.shed = 0

    async def place(self, command: PlaceCommand) -> PlaceResult:
        """Match the order now; return only once it is durable. Raises EngineError or Overloaded."""
        self._admit()
        result = self.engine.place(
            command.symbol,
            command.side,
            command.type,
            command.quantity,
            command.price,
            command.time_in_force,
            command.client_order_id,
            time.time_ns(),
        )
        if result.duplicate:
            # The first attempt may still be committing: a retry must not be acknowledged earlier.
            await self._wait_for_everything_appended()
            return result
        await self._make_durable(place_record(command, result.order.timestamp_ns))
        if self.observer is not None:
            self.observer.observe_order(len(result.trades))
        return result

    async def cancel(self, order_id: int) -> Order:
        self._admit()
        order = self.engine.cancel(order_id)
        await self._make_durable({"op": "cancel", "order_id": order_id})
        return order

    def replay(self, commands: Iterable[Mapping[str, Any]]) -> int:
        """Re-apply journaled commands to an empty engine at start-up; returns how many."""
        count = 0
        for record in commands:
            apply_record(self.engine, record)
            count += 1
        return count

    def _admit(self) -> None:
        if self.pending >= self.max_pending:
            self.shed += 1
            raise Overloaded(self.pending)

    async def _wait_for_everything_appended(self) -> None:
        if self.journal is not None:
            await self.journal.durable(self.journal.last_sequence)

    async def _make_durable(self, record: Mapping[str, Any]) -> None:
        if self.journal is None:
            return
        sequence = self.journal.append(record)
        self.pending += 1
        try:
            await self.journal.durable(sequence)
        finally:
            self.pending -= 1


def place_record(command: PlaceCommand, timestamp_ns: int) -> dict[str, Any]:
    """The journal's form of an accepted order: exactly what the engine needs to redo it."""
    return {
        "op": "place",
        "symbol": command.symbol,
        "side": command.side.value,
        "type": command.type.value,
        "quantity": command.quantity,
        "price": command.price,
        "tif": command.time_in_force.value,
        "client_order_id": command.client_order_id,
        "ts": timestamp_ns,
    }


def apply_record(engine: MatchingEngine, record: Mapping[str, Any]) -> None:
    """Redo one journaled command. The engine is deterministic, so ids and books come out the same."""
    if record["op"] == "place":
        engine.place(
            record["symbol"],
            Side(record["side"]),
            OrderType(record["type"]),
            record["quantity"],
            record["price"],
            TimeInForce(record["tif"]),
            record["client_order_id"],
            record["ts"],
        )
    elif record["op"] == "cancel":
        engine.cancel(record["order_id"])
    else:
        raise ValueError(f"unknown journal record op {record['op']!r}")
