"""Units of a claim: what a unit string measures (its dimension) and its factor to that dimension's base.

Bases: requests/s or orders/s for rates (``orders/s`` and ``ops/s`` count orders, ``requests/s`` every
request of the mix: they are converted with the sweep's mix, never silently equated), trades/s, seconds,
bytes (``GB`` is 10^9, ``GiB`` 2^30), a fraction (``%`` is 0.01), cores, a count, US dollars.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Dimension = Literal["rate", "trade_rate", "time", "bytes", "fraction", "cores", "count", "money"]
RateOf = Literal["orders", "requests"]


@dataclass(frozen=True)
class Unit:
    """A unit: its dimension, the factor that turns a value in it into the dimension's base, and for a
    rate whether it counts orders or every request."""

    text: str
    dimension: Dimension
    factor: float = 1.0
    rate_of: RateOf | None = None


_BYTES = {"B": 1.0} | {
    prefix + suffix: base**power
    for power, prefix in enumerate("KMGT", start=1)
    for suffix, base in (("B", 1000.0), ("iB", 1024.0))
}
UNITS: dict[str, Unit] = {
    **{text: Unit(text, "rate", rate_of="orders") for text in ("orders/s", "ops/s")},
    **{text: Unit(text, "rate", rate_of="requests") for text in ("requests/s", "req/s")},
    "trades/s": Unit("trades/s", "trade_rate"),
    "us": Unit("us", "time", 1e-6),
    "ms": Unit("ms", "time", 1e-3),
    "s": Unit("s", "time"),
    **{text: Unit(text, "bytes", factor) for text, factor in _BYTES.items()},
    "%": Unit("%", "fraction", 0.01),
    "fraction": Unit("fraction", "fraction"),
    "cores": Unit("cores", "cores"),
    **{text: Unit(text, "count") for text in ("orders", "trades", "users", "requests", "x")},
    "USD": Unit("USD", "money"),
}

#: What each dimension's base is called where a figure is printed.
BASE_TEXT: dict[Dimension, str] = {
    "rate": "/s",
    "trade_rate": "trades/s",
    "time": "s",
    "bytes": "B",
    "fraction": "",
    "cores": "cores",
    "count": "",
    "money": "USD",
}


def unit_of(text: str) -> Unit | None:
    """The unit spelled ``text`` (exactly as listed in ``UNITS``), or None."""
    return UNITS.get(text)


def to_base(value: float, unit: Unit) -> float:
    return value * unit.factor


def from_base(value: float, unit: Unit) -> float:
    return value / unit.factor
