"""Tradable instruments: tick and lot sizes, and exact decimal <-> integer conversion.

The engine works in integer ticks (price) and lots (quantity) so that matching is exact; this
module is the only place where decimal strings from clients become integers and back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

MAX_UNITS = 10**15  # the largest price in ticks or quantity in lots
# No unit is below 1e-8 here, so an amount of 1e20 or more is always more than MAX_UNITS units.
_MAX_ADJUSTED_EXPONENT = 19
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class InstrumentError(ValueError):
    """A price or quantity that does not fit the instrument (off tick, off lot, not positive)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Instrument:
    """A symbol's trading rules. ``reference_price`` seeds the simulation's fair value."""

    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    reference_price: Decimal

    def price_to_ticks(self, value: object, field: str = "price") -> int:
        """Exact conversion of a client price to ticks; rejects off-tick and non-positive prices."""
        return _to_units(value, self.tick_size, field, "tick size")

    def quantity_to_lots(self, value: object, field: str = "quantity") -> int:
        """Exact conversion of a client quantity to lots; rejects off-lot and non-positive sizes."""
        return _to_units(value, self.lot_size, field, "lot size")

    def ticks_to_price(self, ticks: int) -> str:
        return _format(ticks * self.tick_size)

    def lots_to_quantity(self, lots: int) -> str:
        return _format(lots * self.lot_size)

    def describe(self) -> dict[str, str]:
        return {
            "symbol": self.symbol,
            "tick_size": _format(self.tick_size),
            "lot_size": _format(self.lot_size),
            "reference_price": _format(self.reference_price),
        }


def _to_units(value: object, unit: Decimal, field: str, unit_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise InstrumentError("invalid_" + field, f"{field} must be a decimal string or a number")
    # float goes through str() so that 0.1 means the decimal 0.1 the client wrote.
    text = str(value).strip()
    shown = _clip(text)
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise InstrumentError("invalid_" + field, f"{field} {shown!r} is not a decimal number") from None
    if not amount.is_finite():
        raise InstrumentError("invalid_" + field, f"{field} must be finite")
    if not _PLAIN_DECIMAL.fullmatch(text):
        # Decimal() also takes '1_000', non-ASCII digits and the like; a price is plain ASCII.
        raise InstrumentError(
            "invalid_" + field, f"{field} {shown!r} is not a plain decimal number such as 60000.5"
        )
    if amount <= 0:
        raise InstrumentError("invalid_" + field, f"{field} must be greater than 0, got {shown}")
    # Checked before dividing: decimal arithmetic rounds to 28 digits and refuses quotients beyond
    # that, while comparisons are exact, so an absurd exponent is refused here and never reaches it.
    if amount.adjusted() > _MAX_ADJUSTED_EXPONENT:
        raise InstrumentError("invalid_" + field, f"{field} {shown} is too large")
    if amount < unit:
        raise InstrumentError(
            "invalid_" + field, f"{field} {shown} is not a multiple of the {unit_name} {_format(unit)}"
        )
    units, remainder = divmod(amount, unit)
    if remainder != 0:
        raise InstrumentError(
            "invalid_" + field, f"{field} {shown} is not a multiple of the {unit_name} {_format(unit)}"
        )
    if units > MAX_UNITS:
        raise InstrumentError("invalid_" + field, f"{field} {shown} is too large")
    return int(units)


def _clip(text: str, limit: int = 40) -> str:
    """``text`` for an error message, cut to ``limit`` characters so a huge input is not echoed whole."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _format(value: Decimal) -> str:
    """Plain decimal notation without exponent or trailing zeros ('0.0001', '60000')."""
    text = format(value.normalize(), "f")
    return text


# The seed's symbols. Tick and lot sizes follow common spot-exchange conventions.
DEFAULT_INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("BTCUSD", Decimal("0.01"), Decimal("0.0001"), Decimal("60000")),
    Instrument("ETHUSD", Decimal("0.01"), Decimal("0.001"), Decimal("3000")),
    Instrument("ADAUSD", Decimal("0.0001"), Decimal("1"), Decimal("0.45")),
    Instrument("DOTUSD", Decimal("0.001"), Decimal("0.01"), Decimal("6.5")),
    Instrument("SOLUSD", Decimal("0.01"), Decimal("0.01"), Decimal("150")),
    Instrument("LINKUSD", Decimal("0.001"), Decimal("0.01"), Decimal("15")),
    Instrument("AVAXUSD", Decimal("0.01"), Decimal("0.01"), Decimal("35")),
    Instrument("MATICUSD", Decimal("0.0001"), Decimal("1"), Decimal("0.7")),
)


def default_instruments() -> dict[str, Instrument]:
    return {instrument.symbol: instrument for instrument in DEFAULT_INSTRUMENTS}
