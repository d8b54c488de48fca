"""What a simulated trader sends next: the scenario's request mix, priced around a tracked mid.

Pure (no I/O, no Locust): an ``OrderFlow`` draws from a seeded ``random.Random``, builds request bodies in
the reference exchange's API shape, and learns from the responses it is shown (its own resting orders to
cancel, trade prices and book tops to move the mid). Prices are integer ticks internally and exact
decimal strings on the wire, so every price is a multiple of the symbol's tick size.

Pricing follows ``Mix`` (see scenarios/README.md): a limit order is priced 1..price_offset_ticks ticks from
mid, on its own side (passive: it rests) or, for ``marketable_percent`` of limits, through mid (it trades).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

from capacity.scenario import Mix

ORDERS_PATH = "/api/orders"
MAX_LOTS = 10  # order sizes are 1..MAX_LOTS lots
LIMIT_NAME = f"{ORDERS_PATH} [limit]"  # the request's name in Locust's statistics
BOOK_DEPTH = 10
K = TypeVar("K")
V = TypeVar("V")
MID_BAND = (Decimal("0.5"), Decimal("2"))  # the mid stays within this factor of the reference price
# Price strings per symbol kept for reuse (Decimal formatting costs microseconds on every order); the mid
# wanders little, so a few thousand ticks cover a run. Past this many the cache starts afresh.
PRICE_CACHE_SIZE = 20_000


def _remember(table: dict[K, V], key: K, compute: Callable[[K], V]) -> V:
    """``compute(key)``, kept in ``table`` (a per-symbol cache of PRICE_CACHE_SIZE entries at most)."""
    if len(table) >= PRICE_CACHE_SIZE:
        table.clear()
    value = table[key] = compute(key)
    return value


def _plain(value: Decimal) -> str:
    """Decimal string without exponent or trailing zeros ('0.0001', '60000')."""
    return format(value.normalize(), "f")


@dataclass(frozen=True)
class Instrument:
    """A symbol's trading rules as GET /api/symbols gives them."""

    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    reference_price: Decimal

    @classmethod
    def from_api(cls, entry: Mapping[str, Any]) -> Instrument:
        return cls(
            str(entry["symbol"]),
            Decimal(str(entry["tick_size"])),
            Decimal(str(entry["lot_size"])),
            Decimal(str(entry["reference_price"])),
        )

    def price(self, ticks: int) -> str:
        return _plain(ticks * self.tick_size)

    def quantity(self, lots: int) -> str:
        return _plain(lots * self.lot_size)

    def to_ticks(self, price: str | float) -> int:
        """Ticks of a price from the API (rounded to the nearest tick)."""
        return int((Decimal(str(price)) / self.tick_size).to_integral_value())

    @property
    def reference_ticks(self) -> int:
        return max(self.to_ticks(str(self.reference_price)), 1)


@dataclass
class Market:
    """Instruments and a mid price per symbol (in ticks), shared by all users of one process."""

    instruments: dict[str, Instrument]
    mids: dict[str, int] = field(default_factory=dict)
    _price_texts: dict[str, dict[int, str]] = field(default_factory=dict, repr=False, compare=False)
    _quantity_texts: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)
    _bands: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False, compare=False)
    _ticks_of: dict[str, dict[Any, int]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_symbols_response(cls, payload: Mapping[str, Any]) -> Market:
        instruments = {i.symbol: i for i in map(Instrument.from_api, payload["symbols"])}
        return cls(instruments, {s: i.reference_ticks for s, i in instruments.items()})

    def mid(self, symbol: str) -> int:
        return self.mids[symbol]

    def price_text(self, symbol: str, ticks: int) -> str:
        """``Instrument.price(ticks)`` of ``symbol``, formatted once and then reused."""
        texts = self._price_texts.setdefault(symbol, {})
        text = texts.get(ticks)
        return _remember(texts, ticks, self.instruments[symbol].price) if text is None else text

    def quantity_text(self, symbol: str, lots: int) -> str:
        """``Instrument.quantity(lots)`` of ``symbol`` for 1..MAX_LOTS lots, formatted once per symbol."""
        texts = self._quantity_texts.get(symbol)
        if texts is None:
            instrument = self.instruments[symbol]
            texts = self._quantity_texts[symbol] = [instrument.quantity(n) for n in range(MAX_LOTS + 1)]
        return texts[lots]

    def _set_mid(self, symbol: str, ticks: int) -> None:
        band = self._bands.get(symbol)
        if band is None:
            reference = self.instruments[symbol].reference_ticks
            low, high = (int(reference * factor) for factor in MID_BAND)
            band = self._bands[symbol] = (max(low, 1), high)
        self.mids[symbol] = min(max(ticks, band[0]), band[1])

    def ticks(self, symbol: str, price: str | float) -> int:
        """``Instrument.to_ticks(price)`` of ``symbol``, computed once per price and then reused (Decimal
        arithmetic costs microseconds on every trade and book answer)."""
        known = self._ticks_of.setdefault(symbol, {})
        ticks = known.get(price)
        return _remember(known, price, self.instruments[symbol].to_ticks) if ticks is None else ticks

    def on_trades(self, symbol: str, trades: Iterable[Mapping[str, Any]]) -> None:
        """The last trade price becomes the mid."""
        last = None
        for trade in trades:
            last = trade
        if last is not None and symbol in self.instruments:
            self._set_mid(symbol, self.ticks(symbol, last["price"]))

    def on_book(self, symbol: str, book: Mapping[str, Any]) -> None:
        """Mid of the best bid and ask; with one side only, that side's best price."""
        if symbol not in self.instruments:
            return
        bids, asks = book.get("bids") or [], book.get("asks") or []
        best_bid = self.ticks(symbol, bids[0][0]) if bids else None
        best_ask = self.ticks(symbol, asks[0][0]) if asks else None
        if best_bid is not None and best_ask is not None:
            self._set_mid(symbol, (best_bid + best_ask) // 2)
        elif best_bid is not None or best_ask is not None:
            self._set_mid(symbol, best_bid if best_bid is not None else best_ask)  # type: ignore[arg-type]

    def missing(self, symbols: Iterable[str]) -> list[str]:
        """Symbols the exchange does not list."""
        return [s for s in symbols if s not in self.instruments]


class OrderRequest(NamedTuple):
    """One HTTP request to send. ``name`` groups it in Locust's statistics (type + name, e.g. ``POST
    /api/orders [limit]``); ``kind`` is limit, market, cancel or book. (A NamedTuple: immutable and, built
    once per request, several times cheaper than a frozen dataclass.)"""

    kind: str
    method: str
    path: str
    name: str
    symbol: str
    body: dict[str, Any] | None = None
    marketable: bool = False  # for limits: priced through mid


class OrderFlow:
    """One user's stream of requests in the scenario's mix.

    A cancel targets one of this user's own resting orders (learnt from its order responses); with none
    known it places a limit order instead, which is then counted as a limit. Resting orders are
    remembered up to ``max_resting`` (the oldest are forgotten, not cancelled).
    """

    def __init__(
        self,
        mix: Mix,
        symbols: Sequence[str],
        market: Market,
        rng: random.Random,
        id_prefix: str,
        max_resting: int = 500,
    ) -> None:
        self.mix = mix
        self.symbols = list(symbols)
        self.market = market
        self.rng = rng
        self.id_prefix = id_prefix
        self.resting: deque[tuple[int, str]] = deque(maxlen=max_resting)  # (order id, symbol)
        self._sequence = 0
        # cumulative thresholds over 0..100 for one uniform draw
        self._thresholds = (mix.limit, mix.limit + mix.market, mix.limit + mix.market + mix.cancel)
        # Every draw is one rng.random() scaled (uniform to within 2**-53): random.choice and randint cost
        # four Python calls each, and this runs for every request a generator sends
        self._max_offset = mix.price_offset_ticks
        self._marketable = mix.marketable_percent

    def next_request(self) -> OrderRequest:
        draw = self.rng.random() * 100
        if draw < self._thresholds[0]:
            return self.limit_order()
        if draw < self._thresholds[1]:
            return self.market_order()
        if draw < self._thresholds[2]:
            return self.cancel() or self.limit_order()
        return self.book_read()

    def _client_order_id(self) -> str:
        self._sequence += 1
        return f"{self.id_prefix}-{self._sequence}"

    def _symbol(self) -> str:
        symbols = self.symbols
        return symbols[int(self.rng.random() * len(symbols))]

    def limit_order(self) -> OrderRequest:
        random, market = self.rng.random, self.market  # locals: this runs once per order
        symbols = self.symbols
        symbol = symbols[int(random() * len(symbols))]
        side = "buy" if random() < 0.5 else "sell"
        marketable = random() * 100 < self._marketable
        offset = 1 + int(random() * self._max_offset)
        # passive: a buy below mid, a sell above; marketable: the other way, through the spread
        below = (side == "buy") != marketable
        ticks = max(market.mids[symbol] + (-offset if below else offset), 1)
        body = {
            "symbol": symbol,
            "side": side,
            "type": "limit",
            "price": market.price_text(symbol, ticks),
            "quantity": market.quantity_text(symbol, 1 + int(random() * MAX_LOTS)),
            "time_in_force": "gtc",
            "client_order_id": self._client_order_id(),
        }
        return OrderRequest("limit", "POST", ORDERS_PATH, LIMIT_NAME, symbol, body, marketable)

    def market_order(self) -> OrderRequest:
        random = self.rng.random
        symbol = self._symbol()
        body = {
            "symbol": symbol,
            "side": "buy" if random() < 0.5 else "sell",
            "type": "market",
            "quantity": self.market.quantity_text(symbol, 1 + int(random() * MAX_LOTS)),
            "client_order_id": self._client_order_id(),
        }
        return OrderRequest("market", "POST", ORDERS_PATH, f"{ORDERS_PATH} [market]", symbol, body)

    def cancel(self) -> OrderRequest | None:
        if not self.resting:
            return None
        # a random one of the remembered orders, so cancels hit both fresh and old resting orders
        index = int(self.rng.random() * len(self.resting))
        order_id, symbol = self.resting[index]
        del self.resting[index]
        return OrderRequest(
            "cancel", "DELETE", f"{ORDERS_PATH}/{order_id}", f"{ORDERS_PATH}/{{id}} [cancel]", symbol
        )

    def book_read(self) -> OrderRequest:
        symbol = self._symbol()
        path = f"/api/orderbook/{symbol}?depth={BOOK_DEPTH}"
        return OrderRequest("book", "GET", path, "/api/orderbook/{symbol} [book]", symbol)

    def on_response(self, request: OrderRequest, status: int, payload: Mapping[str, Any] | None) -> None:
        """Learn from a response: resting orders to cancel later, and the mid from trades or the book."""
        if payload is None or not 200 <= status < 300:
            return
        if request.kind in ("limit", "market"):
            trades = payload.get("trades")
            if trades:
                self.market.on_trades(request.symbol, trades)
            if payload.get("status") in ("new", "partially_filled") and "id" in payload:
                self.resting.append((int(payload["id"]), request.symbol))
        elif request.kind == "book":
            self.market.on_book(request.symbol, payload)
