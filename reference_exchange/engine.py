"""Matching engine: per-symbol limit order books with price-time priority. Pure: no I/O, no clock.

Prices are integer ticks and quantities integer lots (see ``instruments``), so matching is exact.
Callers pass timestamps in; order and trade ids are assigned sequentially, which makes the engine
deterministic: replaying the same commands rebuilds the same books and ids (the journal relies on it).
"""

from __future__ import annotations

import zlib
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from sortedcontainers import SortedDict


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(StrEnum):
    GTC = "gtc"  # rests until filled or cancelled
    IOC = "ioc"  # fills what it can now, cancels the rest
    FOK = "fok"  # fills completely now or not at all, leaving the book untouched


class OrderStatus(StrEnum):
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


TERMINAL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED})


class EngineError(Exception):
    """A command the engine refuses. ``code`` is stable and machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UnknownSymbol(EngineError):
    pass


class InvalidOrder(EngineError):
    pass


class OrderNotFound(EngineError):
    pass


class OrderNotOpen(EngineError):
    """Cancel of an order that is already filled, cancelled or rejected."""


@dataclass(slots=True)
class Order:
    """An order and its live state. ``price`` is in ticks (None for market), quantities in lots."""

    order_id: int
    symbol: str
    side: Side
    type: OrderType
    price: int | None
    quantity: int
    time_in_force: TimeInForce
    client_order_id: str | None
    timestamp_ns: int
    filled: int = 0
    cancelled: int = 0
    status: OrderStatus = OrderStatus.NEW
    reason: str | None = None

    @property
    def remaining(self) -> int:
        """Lots still open: neither filled nor cancelled."""
        return self.quantity - self.filled - self.cancelled


@dataclass(frozen=True, slots=True)
class Trade:
    """One execution, always at the resting (maker) order's price."""

    trade_id: int
    symbol: str
    price: int
    quantity: int
    maker_order_id: int
    taker_order_id: int
    taker_side: Side
    timestamp_ns: int


@dataclass(frozen=True, slots=True)
class PlaceResult:
    order: Order
    trades: tuple[Trade, ...]
    duplicate: bool = False  # True when the client order id was seen before: nothing new happened


@dataclass(slots=True)
class PriceLevel:
    """Orders at one price in arrival order (dicts keep insertion order) and their open total."""

    orders: dict[int, Order] = field(default_factory=dict)
    total: int = 0


class OrderBook:
    """One symbol's book. Bids are keyed by negated price so both sides iterate best-first."""

    def __init__(self, symbol: str, trade_history: int = 1000) -> None:
        self.symbol = symbol
        self.bids: SortedDict = SortedDict()  # -price -> PriceLevel
        self.asks: SortedDict = SortedDict()  # price -> PriceLevel
        self.sequence = 0  # bumps on every change of the book, for clients that poll depth
        self.trades: deque[Trade] = deque(maxlen=trade_history)

    def _side(self, side: Side) -> SortedDict:
        return self.bids if side is Side.BUY else self.asks

    @staticmethod
    def _key(side: Side, price: int) -> int:
        return -price if side is Side.BUY else price

    def best_bid(self) -> int | None:
        return -self.bids.peekitem(0)[0] if self.bids else None

    def best_ask(self) -> int | None:
        return self.asks.peekitem(0)[0] if self.asks else None

    def depth(self, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Top ``levels`` price levels per side as (price ticks, open lots), best first."""
        bids = [(-key, level.total) for key, level in self.bids.items()[:levels]]
        asks = [(key, level.total) for key, level in self.asks.items()[:levels]]
        return bids, asks

    def resting_orders(self) -> Iterator[Order]:
        for book_side in (self.bids, self.asks):
            for level in book_side.values():
                yield from level.orders.values()

    def rest(self, order: Order) -> None:
        assert order.price is not None
        book_side = self._side(order.side)
        key = self._key(order.side, order.price)
        level = book_side.get(key)
        if level is None:
            level = book_side[key] = PriceLevel()
        level.orders[order.order_id] = order
        level.total += order.remaining

    def remove(self, order: Order, open_lots: int) -> None:
        """Take a resting order out of its level; ``open_lots`` is what it contributed to the total."""
        assert order.price is not None
        book_side = self._side(order.side)
        key = self._key(order.side, order.price)
        level = book_side[key]
        del level.orders[order.order_id]
        level.total -= open_lots
        if not level.orders:
            del book_side[key]

    def fillable(self, side: Side, limit: int | None, wanted: int) -> bool:
        """Whether an incoming order could fill ``wanted`` lots now without passing ``limit``."""
        available = 0
        for key, level in self._side(_opposite(side)).items():
            if limit is not None and not _price_acceptable(side, limit, abs(key)):
                break
            available += level.total
            if available >= wanted:
                return True
        return False

    def checksum(self) -> int:
        """CRC32 over every resting order in priority order: equal books give equal checksums."""
        crc = 0
        for order in self.resting_orders():
            crc = zlib.crc32(f"{order.order_id}:{order.side}:{order.price}:{order.remaining};".encode(), crc)
        return crc


def _opposite(side: Side) -> Side:
    return Side.SELL if side is Side.BUY else Side.BUY


def _price_acceptable(taker_side: Side, limit: int, maker_price: int) -> bool:
    return maker_price <= limit if taker_side is Side.BUY else maker_price >= limit


class MatchingEngine:
    """All books plus order lookup, client-order-id idempotency and bounded history of finished orders."""

    def __init__(self, symbols: Iterable[str], order_retention: int = 1_000_000, trade_history: int = 1000):
        self.books: dict[str, OrderBook] = {s: OrderBook(s, trade_history) for s in symbols}
        self.order_retention = order_retention
        self._open: dict[int, Order] = {}
        # Finished orders stay queryable until ``order_retention`` newer ones push them out, so a
        # long load test cannot grow memory without bound.
        self._finished: OrderedDict[int, Order] = OrderedDict()
        self._by_client_id: dict[str, PlaceResult] = {}
        self._next_order_id = 1
        self._next_trade_id = 1
        self.orders_accepted = 0
        self.trades_executed = 0

    # -- queries -------------------------------------------------------------------------------

    def book(self, symbol: str) -> OrderBook:
        try:
            return self.books[symbol]
        except KeyError:
            raise UnknownSymbol("unknown_symbol", f"unknown symbol {symbol!r}") from None

    def get_order(self, order_id: int) -> Order:
        order = self._open.get(order_id) or self._finished.get(order_id)
        if order is None:
            raise OrderNotFound("order_not_found", f"order {order_id} not found")
        return order

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
                for key, level in book_side.items():
                    if not level.orders:
                        problems.append(f"{book.symbol}: empty level at {abs(key)}")
                    if level.total != sum(o.remaining for o in level.orders.values()):
                        problems.append(f"{book.symbol}: level {abs(key)} total {level.total} is off")
                    for order in level.orders.values():
                        resting_ids.add(order.order_id)
                        if order.price != abs(key) or order.remaining <= 0:
                            problems.append(f"order {order.order_id} misplaced at level {abs(key)}")
        if resting_ids != set(self._open):
            problems.append("open orders and resting orders differ")
        for order in (*self._open.values(), *self._finished.values()):
            finished = order.status in TERMINAL_STATUSES
            if order.remaining < 0 or order.filled < 0 or (finished and order.remaining != 0):
                problems.append(f"order {order.order_id}: quantities do not add up")
            if finished == (order.order_id in self._open):
                problems.append(f"order {order.order_id}: status {order.status} disagrees with the book")
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
        if client_order_id is not None and client_order_id in self._by_client_id:
            first = self._by_client_id[client_order_id]
            return PlaceResult(first.order, first.trades, duplicate=True)
        book = self.book(symbol)
        _validate(order_type, quantity, price, time_in_force)

        order = Order(
            order_id=self._next_order_id,
            symbol=symbol,
            side=side,
            type=order_type,
            price=price,
            quantity=quantity,
            time_in_force=time_in_force,
            client_order_id=client_order_id,
            timestamp_ns=timestamp_ns,
        )
        self._next_order_id += 1
        self.orders_accepted += 1

        opposite = book.asks if side is Side.BUY else book.bids
        if order_type is OrderType.MARKET and not opposite:
            order.cancelled = quantity  # nothing executes and nothing stays open
            order.status, order.reason = OrderStatus.REJECTED, "no liquidity on the opposite side"
            trades: tuple[Trade, ...] = ()
            self._finish(order)  # it has an id and was acknowledged: it must stay queryable
        elif time_in_force is TimeInForce.FOK and not book.fillable(side, price, quantity):
            order.cancelled = quantity
            order.status, order.reason = OrderStatus.CANCELLED, "fill or kill: not enough liquidity"
            trades = ()
            self._finish(order)
        else:
            trades = tuple(self._match(book, order))
            self._settle(book, order)

        result = PlaceResult(order, trades)
        if client_order_id is not None:
            self._by_client_id[client_order_id] = result
        return result

    def cancel(self, order_id: int) -> Order:
        order = self._open.get(order_id)
        if order is None:
            known = self.get_order(order_id)  # raises OrderNotFound for unknown ids
            raise OrderNotOpen("order_not_open", f"order {order_id} is already {known.status}")
        book = self.books[order.symbol]
        open_lots = order.remaining
        book.remove(order, open_lots)
        order.cancelled += open_lots
        order.status = OrderStatus.CANCELLED
        book.sequence += 1
        self._finish(order)
        return order

    # -- internals -----------------------------------------------------------------------------

    def _match(self, book: OrderBook, taker: Order) -> Iterator[Trade]:
        opposite = book.asks if taker.side is Side.BUY else book.bids
        while taker.remaining > 0 and opposite:
            key, level = opposite.peekitem(0)
            maker_price = abs(key)
            if taker.price is not None and not _price_acceptable(taker.side, taker.price, maker_price):
                break
            maker = next(iter(level.orders.values()))
            lots = min(taker.remaining, maker.remaining)
            maker.filled += lots
            taker.filled += lots
            level.total -= lots
            if maker.remaining == 0:
                book.remove(maker, 0)
                maker.status = OrderStatus.FILLED
                self._finish(maker)
            else:
                maker.status = OrderStatus.PARTIALLY_FILLED
            trade = Trade(
                trade_id=self._next_trade_id,
                symbol=book.symbol,
                price=maker_price,
                quantity=lots,
                maker_order_id=maker.order_id,
                taker_order_id=taker.order_id,
                taker_side=taker.side,
                timestamp_ns=taker.timestamp_ns,
            )
            self._next_trade_id += 1
            self.trades_executed += 1
            book.trades.append(trade)
            book.sequence += 1
            yield trade

    def _settle(self, book: OrderBook, order: Order) -> None:
        """After matching: rest a GTC limit remainder, cancel any other remainder."""
        if order.remaining == 0:
            order.status = OrderStatus.FILLED
        elif order.type is OrderType.LIMIT and order.time_in_force is TimeInForce.GTC:
            order.status = OrderStatus.PARTIALLY_FILLED if order.filled else OrderStatus.NEW
            book.rest(order)
            book.sequence += 1
            self._open[order.order_id] = order
            return
        else:
            order.cancelled = order.remaining
            order.status = OrderStatus.CANCELLED
            order.reason = "unfilled remainder of an immediate order"
        self._finish(order)

    def _finish(self, order: Order) -> None:
        self._open.pop(order.order_id, None)
        self._finished[order.order_id] = order
        while len(self._finished) > self.order_retention:
            _, evicted = self._finished.popitem(last=False)
            if evicted.client_order_id is not None:
                self._by_client_id.pop(evicted.client_order_id, None)


def _validate(order_type: OrderType, quantity: int, price: int | None, time_in_force: TimeInForce) -> None:
    if quantity <= 0:
        raise InvalidOrder("invalid_quantity", "quantity must be greater than 0")
    if order_type is OrderType.LIMIT:
        if price is None:
            raise InvalidOrder("missing_price", "a limit order needs a price")
        if price <= 0:
            raise InvalidOrder("invalid_price", "price must be greater than 0")
    else:
        if price is not None:
            raise InvalidOrder("unexpected_price", "a market order takes no price")
        if time_in_force is TimeInForce.GTC:
            raise InvalidOrder("invalid_time_in_force", "a market order cannot rest: use ioc or fok")
