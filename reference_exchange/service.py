"""The exchange's command path: apply to the engine, journal, wait until durable, then acknowledge.

Both the HTTP API and the background simulation go through here, so every accepted command is
journaled, counted in the metrics and subject to the same overload bounds. Admission, checked before
anything is applied, refuses a command (nothing changes, nothing is journaled) when:

- the journal has failed (``JournalFailed``): it is fail-stop, so every later write is refused until
  the process restarts and replays;
- ``max_pending`` commands already wait for durability (``Overloaded``, reason ``pending``): the
  journal cannot keep up, and queueing more would only add memory and latency;
- for new orders only, the event loop is lagging (``Overloaded``, reason ``loop_lag``): the process
  cannot keep up even without a journal. Cancels are not refused for lag: they reduce risk and work.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Iterable, Mapping
from copy import copy
from typing import Any, NamedTuple, Protocol

from reference_exchange.engine import (
    EngineError,
    MatchingEngine,
    Order,
    OrderType,
    PlaceResult,
    Side,
    TimeInForce,
)


class CommandLog(Protocol):
    """What the service needs from a journal: ordered appends and a way to wait for durability.

    A log may also have ``error``: the failure that stopped it for good (fail-stop), None while it is
    healthy. The service refuses every write while it is set (``journal_error``)."""

    def append(self, command: Mapping[str, Any]) -> int:
        """Buffer a command in apply order; returns its sequence number."""
        ...

    @property
    def last_sequence(self) -> int:
        """Sequence number of the newest appended command."""
        ...

    def durable(self, sequence: int) -> Awaitable[None]:
        """Something to await until the command with this sequence number is committed."""
        ...


class OrderObserver(Protocol):
    def observe_order(self, trades: int) -> None: ...


class LoadSignal(Protocol):
    """Something that can tell the process is falling behind (``overload.LagMonitor``)."""

    def lag_s(self) -> float:
        """How far behind the event loop is now, in seconds."""
        ...

    @property
    def max_lag_s(self) -> float:
        """Lag above which new orders are refused."""
        ...


class Overloaded(Exception):
    """The service refuses new work for now: shed instead of queueing without bound.

    ``reason`` says which bound: ``pending`` (commands awaiting durability) or ``loop_lag``.
    ``code`` is the API error code; ``retry_after_s`` what to tell the client (Retry-After)."""

    code = "overloaded"

    def __init__(self, message: str, reason: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


class JournalFailed(Overloaded):
    """The journal failed (fail-stop): no write is accepted until the exchange restarts and replays.

    A subclass of ``Overloaded`` so that callers which back off on shedding (the simulation) also back
    off here instead of spinning; the API answers it with its own code, ``journal_failed``."""

    code = "journal_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message, "journal_failed", retry_after_s=5.0)


class ReplayError(ValueError):
    """A journaled command that cannot be re-applied: the journal is corrupt or from another version."""


class PlaceCommand(NamedTuple):
    """A validated order in engine units: price in ticks (None for market), quantity in lots.

    Immutable as a tuple: built by one ``tuple.__new__``, where a frozen dataclass's ``__init__`` makes one
    ``object.__setattr__`` call per field (cost in docs/benchmarks.md, "Micro-costs behind code choices")."""

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
        load: LoadSignal | None = None,
    ) -> None:
        self.engine = engine
        self.journal = journal
        self.observer = observer
        self.max_pending = max_pending
        self.load = load
        self.pending = 0
        self.shed_pending = 0
        self.shed_loop_lag = 0
        self.shed_queue_delay = 0  # counted by the lean path's admission (``admission.py``)
        self.refused_journal_failed = 0

    @property
    def shed(self) -> int:
        """Commands refused for overload (queue delay, pending bound or loop lag); journal failures not
        included."""
        return self.shed_pending + self.shed_loop_lag + self.shed_queue_delay

    def stats(self) -> dict[str, int]:
        """Admission counters for ``/api/metrics``."""
        return {
            "pending_orders": self.pending,
            "max_pending_orders": self.max_pending,
            "shed_total": self.shed,
            "shed_pending": self.shed_pending,
            "shed_loop_lag": self.shed_loop_lag,
            "shed_queue_delay": self.shed_queue_delay,
            "refused_journal_failed": self.refused_journal_failed,
        }

    async def place(self, command: PlaceCommand, by_lag: bool = True) -> PlaceResult:
        """Match the order now; return only once it is durable. ``by_lag=False``: the caller's own
        admission (the lean path's, ``admission.py``) has decided, so the loop-lag bound does not apply.

        Raises EngineError, Overloaded (nothing was applied) or JournalFailed."""
        self._admit(by_lag)
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
        # Acknowledge the order as this command left it: while it waits for durability, later
        # commands may trade against it, and those are not durable yet when this one is. The compiled
        # constructor and Order.__copy__, not dataclasses.replace (its field introspection, per order).
        result = PlaceResult(copy(result.order), result.trades, result.duplicate)
        if result.duplicate:
            # The first attempt may still be committing: a retry must not be acknowledged earlier.
            await self._wait_for_everything_appended()
            return result
        if self.journal is not None:  # no journal, no record to build (nor a coroutine to wait in)
            await self._make_durable(place_record(command, result.order.timestamp_ns))
        if self.observer is not None:
            self.observer.observe_order(len(result.trades))
        return result

    async def cancel(self, order_id: int) -> Order:
        self._admit(by_lag=False)
        order = copy(self.engine.cancel(order_id))  # as this command left it (see place)
        await self._make_durable({"op": "cancel", "order_id": order_id})
        return order

    def admit_order(self, by_lag: bool = True) -> None:
        """Refuse a new order now (Overloaded or JournalFailed) if ``place`` would, before anything of it
        is read: a refusal that skips decoding and validating the body costs the loop far less, and under
        overload only answering faster drains the clients' queue. ``place`` checks again."""
        self._admit(by_lag)

    def replay(self, commands: Iterable[Mapping[str, Any]]) -> int:
        """Re-apply journaled commands to an empty engine at start-up; returns how many.

        Raises ``ReplayError`` naming the command (1-based) that cannot be applied."""
        count = 0
        for record in commands:
            count += 1
            try:
                apply_record(self.engine, record)
            except (EngineError, KeyError, TypeError, ValueError, AttributeError) as error:
                if isinstance(error, EngineError):
                    detail = error.message
                else:
                    detail = f"{type(error).__name__}: {error}"
                raise ReplayError(f"command {count} cannot be replayed ({detail})") from error
        return count

    def _admit(self, by_lag: bool) -> None:
        journal_error = journal_error_of(self.journal)
        if journal_error is not None:
            self.refused_journal_failed += 1
            raise JournalFailed(f"the journal failed, no order is accepted until a restart: {journal_error}")
        if self.pending >= self.max_pending:
            self.shed_pending += 1
            raise Overloaded(
                f"{self.pending} orders are waiting to be made durable; retry later", reason="pending"
            )
        if by_lag and self.load is not None:
            lag_s = self.load.lag_s()
            if lag_s > self.load.max_lag_s:
                self.shed_loop_lag += 1
                limit_ms = self.load.max_lag_s * 1000
                raise Overloaded(
                    f"the exchange is {lag_s * 1000:.0f} ms behind (limit {limit_ms:.0f} ms); retry later",
                    reason="loop_lag",
                )

    async def _wait_for_everything_appended(self) -> None:
        journal = self.journal
        if journal is not None:
            try:
                await journal.durable(journal.last_sequence)
            except Exception as error:
                _raise_if_journal_failed(journal, error)
                raise

    async def _make_durable(self, record: Mapping[str, Any]) -> None:
        # One coroutine between the caller and the journal's future: this runs for every command.
        journal = self.journal
        if journal is None:
            return
        sequence = journal.append(record)
        self.pending += 1
        try:
            await journal.durable(sequence)
        except Exception as error:
            _raise_if_journal_failed(journal, error)
            raise
        finally:
            self.pending -= 1


def _raise_if_journal_failed(journal: CommandLog, error: Exception) -> None:
    """Waiting failed because the commit failed: the command was never acknowledged, say so."""
    journal_error = journal_error_of(journal)
    if journal_error is not None:
        raise JournalFailed(f"the order could not be made durable: {journal_error}") from error


def journal_error_of(journal: CommandLog | None) -> Exception | None:
    """The log's fail-stop error, if it has failed (logs without an ``error`` attribute never do)."""
    return getattr(journal, "error", None)


def place_record(command: PlaceCommand, timestamp_ns: int) -> dict[str, Any]:
    """The journal's form of an accepted order: exactly what the engine needs to redo it.

    ``_value_`` (the enum's documented sunder attribute) rather than ``.value``: the property is a
    Python-level descriptor and cost more than the rest of the record, on every journaled order."""
    return {
        "op": "place",
        "symbol": command.symbol,
        "side": command.side._value_,
        "type": command.type._value_,
        "quantity": command.quantity,
        "price": command.price,
        "tif": command.time_in_force._value_,
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
