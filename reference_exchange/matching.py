"""Matching: per-symbol limit order books with price-time priority. Pure: no I/O, no clock.

Prices are integer ticks and quantities integer lots (see ``instruments``), so matching is exact.
Callers pass timestamps in; order and trade ids are assigned sequentially, which makes the engine
deterministic: replaying the same commands rebuilds the same books and ids (the journal relies on it).

The hot path (``place``/``cancel``) is written for speed as well as for reading: each book side is a dict
of price levels plus a heap of their keys for the best price, a level is a list-backed queue in arrival
(= id) order, the maps by order id are split so that no resize stalls (``SplitDict``), finished orders
are kept as plain tuples the garbage collector stops walking, enum members are module constants, an
order's open lots are a field rather than a computed property, and the records have explicit
``__init__`` methods (mypyc compiles those; a dataclass's generated one stays interpreted).
This module is compiled with mypyc at install time when a C compiler is present (``setup.py``); import it
through ``reference_exchange.engine``, which says which build runs and refuses a stale one.
"""

from __future__ import annotations

import struct
import zlib
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from heapq import heapify, heappop, heappush, nsmallest
from typing import Final, Generic, TypeVar, cast

from reference_exchange.engine_types import (
    TERMINAL_STATUSES,
    InvalidOrder,
    OrderNotFound,
    OrderNotOpen,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TrackedDict,
    UnknownSymbol,
)

# Module constants: a global load each, cheaper than an enum class attribute lookup in the hot loop.
_BUY: Final = Side.BUY
_MARKET: Final = OrderType.MARKET
_LIMIT: Final = OrderType.LIMIT
_GTC: Final = TimeInForce.GTC
_FOK: Final = TimeInForce.FOK
_NEW: Final = OrderStatus.NEW
_PARTIALLY_FILLED: Final = OrderStatus.PARTIALLY_FILLED
_FILLED: Final = OrderStatus.FILLED
_CANCELLED: Final = OrderStatus.CANCELLED
_REJECTED: Final = OrderStatus.REJECTED
_NO_LIMIT: Final = 1 << 62  # the limit key of a market order: every price is acceptable


@dataclass(slots=True)
class Order:
    """An order and its live state. ``price`` is in ticks (None for market), quantities in lots.

    ``remaining`` (lots still open: neither filled nor cancelled) is kept up to date by the engine, so
    quantity == filled + cancelled + remaining always holds (``MatchingEngine.audit`` checks it)."""

    order_id: int
    symbol: str
    side: Side
    type: OrderType
    price: int | None
    quantity: int
    time_in_force: TimeInForce
    client_order_id: str | None
    timestamp_ns: int
    remaining: int
    filled: int
    cancelled: int
    status: OrderStatus
    reason: str | None

    def __init__(
        self,
        order_id: int,
        symbol: str,
        side: Side,
        type: OrderType,
        price: int | None,
        quantity: int,
        time_in_force: TimeInForce,
        client_order_id: str | None,
        timestamp_ns: int,
        remaining: int,
        filled: int = 0,
        cancelled: int = 0,
        status: OrderStatus = OrderStatus.NEW,
        reason: str | None = None,
    ) -> None:
        self.order_id = order_id
        self.symbol = symbol
        self.side = side
        self.type = type
        self.price = price
        self.quantity = quantity
        self.time_in_force = time_in_force
        self.client_order_id = client_order_id
        self.timestamp_ns = timestamp_ns
        self.remaining = remaining
        self.filled = filled
        self.cancelled = cancelled
        self.status = status
        self.reason = reason

    def __copy__(self) -> Order:
        """A snapshot (the service acknowledges an order as its command left it). Spelled out: a compiled
        class cannot be copied the default way, through ``__reduce_ex__``, and this is 10x faster."""
        return Order(
            self.order_id,
            self.symbol,
            self.side,
            self.type,
            self.price,
            self.quantity,
            self.time_in_force,
            self.client_order_id,
            self.timestamp_ns,
            self.remaining,
            self.filled,
            self.cancelled,
            self.status,
            self.reason,
        )


@dataclass(slots=True)
class Trade:
    """One execution, always at the resting (maker) order's price. Never changed once made."""

    trade_id: int
    symbol: str
    price: int
    quantity: int
    maker_order_id: int
    taker_order_id: int
    taker_side: Side
    timestamp_ns: int

    def __init__(
        self,
        trade_id: int,
        symbol: str,
        price: int,
        quantity: int,
        maker_order_id: int,
        taker_order_id: int,
        taker_side: Side,
        timestamp_ns: int,
    ) -> None:
        self.trade_id = trade_id
        self.symbol = symbol
        self.price = price
        self.quantity = quantity
        self.maker_order_id = maker_order_id
        self.taker_order_id = taker_order_id
        self.taker_side = taker_side
        self.timestamp_ns = timestamp_ns


@dataclass(slots=True)
class PlaceResult:
    order: Order
    trades: tuple[Trade, ...]
    duplicate: bool  # True when the client order id was seen before: nothing new happened

    def __init__(self, order: Order, trades: tuple[Trade, ...], duplicate: bool = False) -> None:
        self.order = order
        self.trades = trades
        self.duplicate = duplicate


T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

#: How many dicts a ``SplitDict`` spreads its entries over: a power of two, so a key's part is a mask away.
SPLIT_PARTS: Final = 256
#: Consecutive order ids (an int's hash is itself) share a part in runs of 2**SPLIT_RUN_BITS: the engine's
#: inserts and deletions then stay in one part's memory for a while, as in one dict. Spread one id to a
#: part, they missed the cache and slowed the engine (docs/benchmarks.md, "Engine stalls").
SPLIT_RUN_BITS: Final = 10


class SplitDict(Generic[K, V]):
    """A mapping kept as ``SPLIT_PARTS`` dicts, each key in the one its hash picks, so that no single
    resize moves more than a small share of the entries.

    A dict grows, and sheds the slots its deletions left, by copying every entry into a new table in one
    step, with the GIL held. The engine's order maps reach a million entries, and one such step (the new
    table's memory first faulted in from the kernel) broke the exchange's latency objective on its own
    while it answered nothing (docs/benchmarks.md, "Engine stalls"). Split, each step moves about 1/256."""

    __slots__ = ("_parts",)

    def __init__(self, part: Callable[[], dict[K, V]] = dict) -> None:
        self._parts: list[dict[K, V]] = [part() for _ in range(SPLIT_PARTS)]

    def _part(self, key: K) -> dict[K, V]:
        return self._parts[(hash(key) >> SPLIT_RUN_BITS) & (SPLIT_PARTS - 1)]

    def __len__(self) -> int:
        return sum([len(part) for part in self._parts])

    def __contains__(self, key: K) -> bool:
        return key in self._part(key)

    def __getitem__(self, key: K) -> V:
        return self._part(key)[key]

    def __setitem__(self, key: K, value: V) -> None:
        self._part(key)[key] = value

    def __delitem__(self, key: K) -> None:
        del self._part(key)[key]

    def get(self, key: K) -> V | None:
        return self._part(key).get(key)

    def pop(self, key: K) -> V | None:
        """The value removed, or None when ``key`` is absent."""
        return self._part(key).pop(key, None)

    def __iter__(self) -> Iterator[K]:
        for part in self._parts:
            yield from part

    def values(self) -> Iterator[V]:
        for part in self._parts:
            yield from part.values()

    def items(self) -> Iterator[tuple[K, V]]:
        for part in self._parts:
            yield from part.items()


class Fifo(Generic[T]):
    """A first-in, first-out queue: a list and the index of its head, trimmed once a quarter of it is done
    (what is done is garbage the collector would otherwise keep walking).

    Not a deque: a price level also finds a cancelled order by binary search, which needs O(1) indexing,
    and mypyc compiles list operations to C where deque methods stay Python method calls."""

    __slots__ = ("head", "items")

    def __init__(self) -> None:
        self.items: list[T] = []
        self.head = 0

    def __len__(self) -> int:
        return len(self.items) - self.head

    def push(self, item: T) -> None:
        self.items.append(item)

    def first(self) -> T:
        return self.items[self.head]

    def pop(self) -> T:
        item = self.items[self.head]
        self.head += 1
        if self.head >= 16 and 4 * self.head >= len(self.items):
            del self.items[: self.head]
            self.head = 0
        return item

    def pending(self) -> list[T]:
        return self.items[self.head :]


class PriceLevel(Fifo[Order]):
    """The orders at one price, in arrival order (which is also order id order), and their open total."""

    __slots__ = ("price", "total")

    def __init__(self, price: int) -> None:
        super().__init__()
        self.price = price
        self.total = 0

    def add(self, order: Order) -> None:
        self.push(order)
        self.total += order.remaining

    def withdraw(self, order: Order, open_lots: int) -> None:
        """Take a cancelled order out of the queue, found by binary search on its id."""
        items = self.items
        del items[bisect_left(items, order.order_id, self.head, len(items), key=_order_id)]
        self.total -= open_lots


def _order_id(order: Order) -> int:
    return order.order_id


class BookSide:
    """One side of a book: price levels by key, and a min-heap of the keys whose top is the best level.

    Keys are prices on the ask side and negated prices on the bid side, so smaller is better on both.
    A removed level's key may stay in the heap (it is skipped and dropped once it reaches the top), but
    the top is always a live level: ``heap`` is non-empty exactly when ``levels`` is."""

    __slots__ = ("heap", "levels", "sign")

    def __init__(self, sign: int) -> None:
        self.sign = sign  # key = sign * price
        self.levels: dict[int, PriceLevel] = {}
        self.heap: list[int] = []

    def level_for(self, key: int, price: int) -> PriceLevel:
        """The level at ``key``, created (and its key pushed on the heap) when it does not exist."""
        level = self.levels.get(key)
        if level is None:
            level = self.levels[key] = PriceLevel(price)
            heap = self.heap
            heappush(heap, key)
            if len(heap) > 2 * len(self.levels) + 32:  # too many stale keys: rebuild, amortised O(1)
                heap[:] = self.levels
                heapify(heap)
        return level

    def drop_level(self, key: int) -> None:
        """Remove an emptied level; pop the heap's top while it is not a live level."""
        levels, heap = self.levels, self.heap
        del levels[key]
        while heap and heap[0] not in levels:
            heappop(heap)

    def available(self, limit_key: int, wanted: int) -> bool:
        """Whether levels at or better than ``limit_key`` hold ``wanted`` lots. The order of summing
        does not matter, so walk whichever is shorter: the ticks from the best price to the limit, or
        all levels."""
        if not self.heap:
            return False
        best, levels = self.heap[0], self.levels
        total = 0
        if limit_key - best < len(levels):
            for key in range(best, limit_key + 1):
                level = levels.get(key)
                if level is not None:
                    total += level.total
                    if total >= wanted:
                        return True
            return False
        for key, level in levels.items():
            if key <= limit_key:
                total += level.total
                if total >= wanted:
                    return True
        return False

    def sorted_levels(self) -> list[PriceLevel]:
        """Every level, best first."""
        levels = self.levels
        return [levels[key] for key in sorted(levels)]


class OrderBook:
    """One symbol's book: bids (keyed by negated price) and asks, both iterated best first."""

    def __init__(self, symbol: str, trade_history: int = 1000) -> None:
        self.symbol = symbol
        self.bids = BookSide(-1)
        self.asks = BookSide(1)
        self.sequence = 0  # bumps on every change of the book, for clients that poll depth
        self.trades: deque[Trade] = deque(maxlen=trade_history)

    def best_bid(self) -> int | None:
        heap = self.bids.heap
        return -heap[0] if heap else None

    def best_ask(self) -> int | None:
        heap = self.asks.heap
        return heap[0] if heap else None

    def depth(self, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Top ``levels`` price levels per side as (price ticks, open lots), best first."""
        return _depth(self.bids, levels), _depth(self.asks, levels)

    def resting_orders(self) -> Iterator[Order]:
        """Every resting order in priority order: bids best first, then asks best first."""
        for book_side in (self.bids, self.asks):
            for level in book_side.sorted_levels():
                yield from level.pending()

    def checksum(self) -> int:
        """CRC32 over every resting order in priority order: equal books give equal checksums."""
        crc = 0
        for order in self.resting_orders():
            crc = zlib.crc32(f"{order.order_id}:{order.side}:{order.price}:{order.remaining};".encode(), crc)
        return crc


def _depth(book_side: BookSide, count: int) -> list[tuple[int, int]]:
    levels = book_side.levels
    return [(levels[key].price, levels[key].total) for key in nsmallest(count, levels)]


# A finished order, as ``MatchingEngine._archive`` keeps it under its id: its numbers packed in one bytes
# object (``_PACKED``), then symbol, client_order_id and reason (shared strings, or the client's own).
# A tuple of its fields held each int above 256 as an object of its own (the id three times, the
# timestamp, quantities): about 430 bytes a finished order with its share of the dict, against about 240
# packed (docs/benchmarks.md), and a million are kept.
# Enums are kept as their index in these tuples (tuple.index compares as str, in C; an enum's ``value`` and
# hash are Python calls).
FinishedRecord = tuple[bytes, str, str | None, str | None]
# price (_NO_PRICE for none), quantity, timestamp_ns, filled, cancelled; side, type, time_in_force, status
_PACKED: Final = struct.Struct("<qqqqqBBBB")
_NO_PRICE: Final = -1  # prices are positive ticks
# The largest price or quantity a record holds (a signed 64-bit field). The API's bound (instruments'
# MAX_UNITS, 10**15) is far below it; this one keeps the engine itself from archiving what it cannot pack.
_MAX_AMOUNT: Final = (1 << 63) - 1
_CLIENT_ORDER_ID: Final = 2
_STATUS_BYTE: Final = _PACKED.size - 1
_SIDES: Final = tuple(Side)
_TYPES: Final = tuple(OrderType)
_TIME_IN_FORCES: Final = tuple(TimeInForce)
_STATUSES: Final = tuple(OrderStatus)


class MatchingEngine:
    """All books plus order lookup, client-order-id idempotency and bounded history of finished orders."""

    def __init__(self, symbols: Iterable[str], order_retention: int = 1_000_000, trade_history: int = 1000):
        self.books: dict[str, OrderBook] = {s: OrderBook(s, trade_history) for s in symbols}
        self.order_retention = order_retention
        self._open: SplitDict[int, Order] = SplitDict()  # resting orders
        # Finished orders stay queryable, as records (see ``_archive``), until ``order_retention`` newer
        # ones push them out (``_finished_ids`` is that queue): a long load test cannot grow memory
        # without bound.
        # Keyed by the id object the queue holds too: an int converted again would be another object.
        # Its parts are TrackedDicts: never re-walked by the collector (see TrackedDict).
        self._finished: SplitDict[object, FinishedRecord] = SplitDict(TrackedDict)
        # A deque, not a Fifo: trimming a list of a million ids released a quarter of a million objects and
        # copied them in one step (a stall of its own); a deque frees each block of 64 as it empties.
        self._finished_ids: deque[object] = deque()
        # A client order id's first answer, as its order's id and trades: the order itself is looked up
        # (resting, or rebuilt from its record), so a finished Order does not stay in memory beside it.
        self._by_client_id: SplitDict[str, tuple[int, tuple[Trade, ...]]] = SplitDict()
        self._next_order_id = 1
        self._next_trade_id = 1
        self.orders_accepted = 0
        self.trades_executed = 0

    # -- queries -------------------------------------------------------------------------------

    def book(self, symbol: str) -> OrderBook:
        book = self.books.get(symbol)
        if book is None:
            raise UnknownSymbol("unknown_symbol", f"unknown symbol {symbol!r}")
        return book

    def get_order(self, order_id: int) -> Order:
        """The live order while it rests; once finished, an equal copy rebuilt from its record."""
        order = self._open.get(order_id)
        if order is not None:
            return order
        record = self._finished.get(order_id)
        if record is None:
            raise OrderNotFound("order_not_found", f"order {order_id} not found")
        return _restore(order_id, record)

    @property
    def resting_order_count(self) -> int:
        return len(self._open)

    def audit(self) -> list[str]:
        """Invariant violations (empty when healthy): books uncrossed, level totals and per-order
        quantities consistent (quantity = filled + cancelled + open), open orders all resting."""
        problems: list[str] = []
        resting_ids: set[int] = set()
        for book in self.books.values():
            bid, ask = book.best_bid(), book.best_ask()
            if bid is not None and ask is not None and bid >= ask:
                problems.append(f"{book.symbol}: crossed book, bid {bid} >= ask {ask}")
            for book_side in (book.bids, book.asks):
                problems.extend(_audit_side(book.symbol, book_side, resting_ids))
        if resting_ids != set(self._open):
            problems.append("open orders and resting orders differ")
        archived = (_restore(cast(int, order_id), record) for order_id, record in self._finished.items())
        for order in (*self._open.values(), *archived):
            finished = order.status in TERMINAL_STATUSES
            if finished == (order.order_id in self._open):
                problems.append(f"order {order.order_id}: status {order.status!s} disagrees with the book")
            lots = (order.filled, order.cancelled, order.remaining)
            if min(lots) < 0 or sum(lots) != order.quantity or (finished and order.remaining):
                problems.append(f"order {order.order_id}: quantities do not add up")
        return problems

    # -- commands ------------------------------------------------------------------------------

    def place(
        self,
        symbol: str,
        side: Side,
        order_type: OrderType,
        quantity: int,
        price: int | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        client_order_id: str | None = None,
        timestamp_ns: int = 0,
    ) -> PlaceResult:
        """Match an incoming order, rest what a GTC limit leaves, and return it with its trades."""
        if client_order_id is not None:
            first = self._by_client_id.get(client_order_id)
            if first is not None:
                return PlaceResult(self.get_order(first[0]), first[1], True)
        book = self.book(symbol)
        _validate(order_type, quantity, price, time_in_force)

        order_id = self._next_order_id
        self._next_order_id = order_id + 1
        self.orders_accepted += 1
        order = Order(
            order_id, symbol, side, order_type, price, quantity, time_in_force, client_order_id,
            timestamp_ns, quantity,
        )  # fmt: skip

        opposite = book.asks if side is _BUY else book.bids
        # Matching compares keys (sign * price, smaller is better) with the taker's limit as a key.
        limit_key = _NO_LIMIT if price is None else opposite.sign * price
        trades: tuple[Trade, ...] = ()
        if order_type is _MARKET and not opposite.heap:
            order.cancelled, order.remaining = quantity, 0  # nothing executes and nothing stays open
            order.status, order.reason = _REJECTED, "no liquidity on the opposite side"
            self._archive(order)  # it has an id and was acknowledged: it must stay queryable
        elif time_in_force is _FOK and not opposite.available(limit_key, quantity):
            order.cancelled, order.remaining = quantity, 0
            order.status, order.reason = _CANCELLED, "fill or kill: not enough liquidity"
            self._archive(order)
        else:
            if opposite.heap and opposite.heap[0] <= limit_key:
                trades = self._match(book, order, opposite, limit_key)
            self._settle(book, order)

        if client_order_id is not None:
            self._by_client_id[client_order_id] = (order_id, trades)
        return PlaceResult(order, trades)

    def cancel(self, order_id: int) -> Order:
        order = self._open.pop(order_id)
        if order is None:
            record = self._finished.get(order_id)
            if record is None:
                raise OrderNotFound("order_not_found", f"order {order_id} not found")
            status = _STATUSES[record[0][_STATUS_BYTE]]
            raise OrderNotOpen("order_not_open", f"order {order_id} is already {status!s}")
        book = self.books[order.symbol]
        book_side = book.bids if order.side is _BUY else book.asks
        key = book_side.sign * order.price  # type: ignore[operator]  # resting orders are limits
        open_lots = order.remaining
        order.cancelled += open_lots
        order.remaining = 0
        order.status = _CANCELLED
        level = book_side.levels[key]
        level.withdraw(order, open_lots)
        if not len(level):
            book_side.drop_level(key)
        book.sequence += 1
        self._archive(order)
        return order

    # -- internals -----------------------------------------------------------------------------

    def _match(self, book: OrderBook, taker: Order, opposite: BookSide, limit_key: int) -> tuple[Trade, ...]:
        """Fill ``taker`` against the best levels of ``opposite`` up to ``limit_key``; the trades made."""
        trades: list[Trade] = []
        levels, heap = opposite.levels, opposite.heap
        symbol, taker_id, taker_side, timestamp = book.symbol, taker.order_id, taker.side, taker.timestamp_ns
        wanted = taker.remaining
        while wanted and heap and heap[0] <= limit_key:
            key = heap[0]
            level = levels[key]
            while wanted and len(level):
                maker = level.first()
                lots = wanted if wanted < maker.remaining else maker.remaining
                wanted -= lots
                maker.filled += lots
                maker.remaining -= lots
                level.total -= lots
                if maker.remaining:
                    maker.status = _PARTIALLY_FILLED
                else:
                    level.pop()
                    maker.status = _FILLED
                    del self._open[maker.order_id]
                    self._archive(maker)
                trade = Trade(
                    self._next_trade_id, symbol, level.price, lots, maker.order_id, taker_id, taker_side,
                    timestamp,
                )  # fmt: skip
                self._next_trade_id += 1
                trades.append(trade)
            if not len(level):
                opposite.drop_level(key)
        taker.filled += taker.remaining - wanted
        taker.remaining = wanted
        self.trades_executed += len(trades)
        book.trades.extend(trades)
        book.sequence += len(trades)
        return tuple(trades)

    def _settle(self, book: OrderBook, order: Order) -> None:
        """After matching: rest a GTC limit remainder, cancel any other remainder."""
        if not order.remaining:
            order.status = _FILLED
        elif order.time_in_force is _GTC:  # only limits can be GTC (see _validate)
            order.status = _PARTIALLY_FILLED if order.filled else _NEW
            price: int = order.price  # type: ignore[assignment]
            own = book.bids if order.side is _BUY else book.asks
            level = own.level_for(own.sign * price, price)
            level.add(order)
            book.sequence += 1
            self._open[order.order_id] = order
            return
        else:
            order.cancelled += order.remaining
            order.remaining = 0
            order.status = _CANCELLED
            order.reason = "unfilled remainder of an immediate order"
        self._archive(order)

    def _archive(self, order: Order) -> None:
        """Keep a finished order as a record, evicting the oldest beyond ``order_retention``.

        A record is a tuple of bytes, strings and None, which the garbage collector stops tracking: a
        million retained Order objects would be walked again on every full collection (measured: that
        alone cost a third of the engine's time on the benchmark stream)."""
        order_id: object = order.order_id  # converted to an object once: the key and the queue's entry
        price = order.price
        packed = _PACKED.pack(
            _NO_PRICE if price is None else price, order.quantity, order.timestamp_ns, order.filled,
            order.cancelled, _SIDES.index(order.side), _TYPES.index(order.type),
            _TIME_IN_FORCES.index(order.time_in_force), _STATUSES.index(order.status),
        )  # fmt: skip
        self._finished[order_id] = (packed, order.symbol, order.client_order_id, order.reason)
        finished = self._finished_ids
        finished.append(order_id)
        if len(finished) > self.order_retention:
            evicted = self._finished.pop(finished.popleft())
            client_order_id = None if evicted is None else evicted[_CLIENT_ORDER_ID]
            if client_order_id is not None:
                self._by_client_id.pop(client_order_id)


def _restore(order_id: int, record: FinishedRecord) -> Order:
    """The finished order a record was made from (``remaining`` is 0: nothing of it is open)."""
    packed, symbol, client_order_id, reason = record
    price, quantity, timestamp_ns, filled, cancelled, side, order_type, time_in_force, status = (
        _PACKED.unpack(packed)
    )
    return Order(
        order_id, symbol, _SIDES[side], _TYPES[order_type], None if price == _NO_PRICE else price, quantity,
        _TIME_IN_FORCES[time_in_force], client_order_id, timestamp_ns, 0, filled, cancelled,
        _STATUSES[status], reason,
    )  # fmt: skip


def _audit_side(symbol: str, book_side: BookSide, resting_ids: set[int]) -> list[str]:
    problems: list[str] = []
    if bool(book_side.heap) != bool(book_side.levels) or (
        book_side.heap and book_side.heap[0] != min(book_side.levels)
    ):
        problems.append(f"{symbol}: best-price heap does not match the levels")
    for key, level in book_side.levels.items():
        orders = level.pending()
        if not orders:
            problems.append(f"{symbol}: empty level at {level.price}")
        if [o.order_id for o in orders] != sorted(o.order_id for o in orders):
            problems.append(f"{symbol}: level {level.price} is out of arrival order")
        if key != book_side.sign * level.price:
            problems.append(f"{symbol}: level {level.price} filed under key {key}")
        if level.total != sum(o.remaining for o in orders):
            problems.append(f"{symbol}: level {level.price} total {level.total} is off")
        for order in orders:
            resting_ids.add(order.order_id)
            if order.price != level.price or order.remaining <= 0:
                problems.append(f"order {order.order_id} misplaced at level {level.price}")
    return problems


def _validate(order_type: OrderType, quantity: int, price: int | None, time_in_force: TimeInForce) -> None:
    if quantity <= 0:
        raise InvalidOrder("invalid_quantity", "quantity must be greater than 0")
    if quantity > _MAX_AMOUNT:
        raise InvalidOrder("invalid_quantity", f"quantity must be at most {_MAX_AMOUNT} lots")
    if order_type is _LIMIT:
        if price is None:
            raise InvalidOrder("missing_price", "a limit order needs a price")
        if price <= 0:
            raise InvalidOrder("invalid_price", "price must be greater than 0")
        if price > _MAX_AMOUNT:
            raise InvalidOrder("invalid_price", f"price must be at most {_MAX_AMOUNT} ticks")
    else:
        if price is not None:
            raise InvalidOrder("unexpected_price", "a market order takes no price")
        if time_in_force is _GTC:
            raise InvalidOrder("invalid_time_in_force", "a market order cannot rest: use ioc or fok")
