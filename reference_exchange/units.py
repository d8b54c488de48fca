"""Memoised decimal text <-> integer units per instrument, for the order route's hot path.

``Instrument``'s conversions go through ``Decimal`` (parse, validate, divide, normalise, format): a few µs
each, and an order request and its answer need five or six of them. Clients repeat the same few prices and
sizes, so each conversion is remembered in a plain dict (a C lookup when it hits); a conversion that fails
raises as before and is not remembered. Only ``str`` inputs are cached: numbers (``1 == 1.0 == True``)
go to the instrument every time. Each cache is cleared when it reaches ``capacity`` entries, so memory
stays bounded whatever clients send.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from reference_exchange.instruments import Instrument

CAPACITY = 4096  # entries per cache: ~0.5 MB across an instrument's four caches at most

K = TypeVar("K")
V = TypeVar("V")


class _Memo(dict[K, V], Generic[K, V]):
    """``memo[key]``: ``compute(key)``, remembered; emptied when it reaches ``capacity`` entries."""

    def __init__(self, compute: Callable[[K], V], capacity: int) -> None:
        super().__init__()
        self._compute = compute
        self._capacity = capacity

    def __missing__(self, key: K) -> V:
        value = self._compute(key)  # may raise: nothing is remembered then
        if len(self) >= self._capacity:
            self.clear()
        self[key] = value
        return value


class UnitCodec:
    """``instrument``'s conversions, memoised; same results and errors as the instrument's own."""

    __slots__ = ("_lots", "_ticks", "instrument", "lots_to_quantity", "ticks_to_price")

    def __init__(self, instrument: Instrument, capacity: int = CAPACITY) -> None:
        self.instrument = instrument
        self._ticks: _Memo[str, int] = _Memo(instrument.price_to_ticks, capacity)
        self._lots: _Memo[str, int] = _Memo(instrument.quantity_to_lots, capacity)
        # Integer -> text takes any int the engine made: the memo's own __getitem__ is the whole method
        # (a C call; an answer makes five of them).
        self.ticks_to_price: Callable[[int], str] = _Memo(instrument.ticks_to_price, capacity).__getitem__
        self.lots_to_quantity: Callable[[int], str] = _Memo(instrument.lots_to_quantity, capacity).__getitem__

    def price_to_ticks(self, value: object) -> int:
        return self._ticks[value] if type(value) is str else self.instrument.price_to_ticks(value)

    def quantity_to_lots(self, value: object) -> int:
        return self._lots[value] if type(value) is str else self.instrument.quantity_to_lots(value)


_CODECS: dict[str, UnitCodec] = {}


def codec(instrument: Instrument) -> UnitCodec:
    """The shared codec of ``instrument`` (by symbol; a different instrument of that symbol replaces it)."""
    found = _CODECS.get(instrument.symbol)
    if found is None or found.instrument is not instrument:
        found = _CODECS[instrument.symbol] = UnitCodec(instrument)
    return found
