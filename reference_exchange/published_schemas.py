"""The request schemas as the OpenAPI document publishes them: the server's schemas plus the rules it checks
after them.

The server validates a body with the schemas in ``schemas.py`` and then checks what they leave open in code
(the symbol, tick and lot sizes, a market order's price and time in force, a duration's range), answering
those with their own error codes (``unknown_symbol``, ``invalid_price``, ``unexpected_price``, ...). A
client or a fuzzer reading the document needs those rules too, so the published schemas add them as JSON
Schema, derived here from the same sources as the server's checks (``DEFAULT_INSTRUMENTS``, ``MAX_UNITS``,
the duration units and bounds). The server keeps compiling its own schemas, so no answer changes.

What JSON Schema cannot say exactly is left out of the schema (never made looser than the server) and
written in the operation's description (``RULES_IN_WORDS``):

- decimal strings in exponent notation ("6e4"): the server reads them by the same rules;
- durations written as a sum ("1m30s") and in days: accepted within the same range;
- a ramp no longer than the run, and ``start_percent`` not above ``end_percent``: two fields compared.

The patterns use only what Python's ``re`` and ECMA 262 read alike (no lookaround, no ``\\s`` or ``\\d``).
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from reference_exchange import schemas
from reference_exchange.config import _DURATION_UNITS
from reference_exchange.instruments import DEFAULT_INSTRUMENTS, MAX_UNITS

# What ``str.strip()`` removes around a price or quantity (every character for which ``str.isspace()``
# holds; tests/exchange/test_published_schemas.py checks the list).
SPACE = "[\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"


# --- decimal text -> regular expressions ------------------------------------------------------------------


def _integers(low: int, high: int) -> list[str]:
    """Alternatives matching exactly the integers ``low``..``high`` (1 <= low), without leading zeros."""
    parts: list[str] = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        first, last = max(low, 10 ** (digits - 1)), min(high, 10**digits - 1)
        if first <= last:
            parts += _same_length(str(first), str(last))
    return parts


def _same_length(low: str, high: str) -> list[str]:
    """Alternatives for the digit strings from ``low`` to ``high`` (of one length)."""
    if not low:
        return [""]
    if low[0] == high[0]:
        return [low[0] + rest for rest in _same_length(low[1:], high[1:])]
    width = len(low) - 1
    parts: list[str] = []
    start, end = int(low[0]), int(high[0])
    if low[1:].strip("0"):
        parts += [low[0] + rest for rest in _same_length(low[1:], "9" * width)]
        start += 1
    tail = [high[0] + rest for rest in _same_length("0" * width, high[1:])] if high[1:].strip("9") else []
    if tail:
        end -= 1
    if start <= end:
        digit = str(start) if start == end else f"[{start}-{end}]"
        parts.append(digit + ("" if width == 0 else "[0-9]" if width == 1 else f"[0-9]{{{width}}}"))
    return parts + tail


def _digits_at_least(digits: str) -> str:
    """Digit strings whose value as a fraction (0.<digits>) is at least 0.``digits``."""
    choices = [
        f"{digits[:i]}[{int(digit) + 1}-9]" if digit != "8" else f"{digits[:i]}9"
        for i, digit in enumerate(digits)
        if digit != "9"
    ]
    return "(?:" + "|".join([*choices, digits]) + ")[0-9]*"


def decimal_range(low: Decimal, high: int, *, exclusive_low: bool = False) -> str:
    """A pattern (unanchored) for decimal text (``[0-9]+(\\.[0-9]*)?|\\.[0-9]+``, the duration grammar) whose
    value is from ``low`` to ``high``; above ``low`` only with ``exclusive_low`` (then ``low`` must be 0)."""
    assert 0 <= low < high and (low == 0 or not exclusive_low)
    fraction = "(?:\\.[0-9]*)?"
    floor = int(low)
    parts: list[str] = []
    if exclusive_low:
        parts.append("0*\\.0*[1-9][0-9]*")  # 0 < value < 1
    elif low != floor:
        wanted = format(low - floor, "f")[2:].rstrip("0")
        head = "0*" if floor == 0 else f"0*{floor}"
        parts.append(f"{head}\\.{_digits_at_least(wanted)}")
    first = floor + 1 if low != floor or floor == 0 else floor
    if first <= high - 1:
        parts.append(f"0*(?:{'|'.join(_integers(first, high - 1))}){fraction}")
    parts.append(f"0*{high}(?:\\.0*)?")
    return "(?:" + "|".join(parts) + ")"


def duration_pattern(low_s: float, high_s: int, *, exclusive_low: bool = False) -> str:
    """Single-unit duration text (bare seconds, ms, s, m or h, as ``config.parse_duration`` reads it) from
    ``low_s`` to ``high_s`` seconds. Bounds that are not whole in a unit are rounded inwards (6 places)."""
    forms = []
    for units, scale in (("", "s"), ("[sS]", "s"), ("[mM][sS]", "ms"), ("[mM]", "m"), ("[hH]", "h")):
        per = Decimal(str(_DURATION_UNITS[scale]))
        high = int(Decimal(high_s) / per) if Decimal(high_s) / per >= 1 else None
        if high is None:
            continue  # e.g. hours below 1 h: described in words, not worth a pattern
        low = (Decimal(str(low_s)) / per).quantize(Decimal("0.000001"), rounding="ROUND_CEILING")
        forms.append(decimal_range(low.normalize(), high, exclusive_low=exclusive_low) + units)
    return "^(?:" + "|".join(forms) + ")$"


def multiple_pattern(unit: Decimal) -> str:
    """Plain decimal text (optional ``+``, no exponent, surrounding space allowed) that ``Instrument`` reads
    as a positive multiple of ``unit`` of at most ``MAX_UNITS`` units. ``unit`` must be a power of ten."""
    _, digits, exponent = unit.normalize().as_tuple()
    assert digits == (1,) and isinstance(exponent, int) and exponent <= 0, f"{unit} is not 10^-k"
    assert str(MAX_UNITS).strip("0") == "1", "MAX_UNITS is a power of ten"
    places = -exponent  # digits after the point that may be nonzero
    whole = len(str(MAX_UNITS)) - 1 - places  # the largest value is 10 ** whole
    fraction = f"(?:\\.[0-9]{{0,{places}}}0*)?" if places else "(?:\\.0*)?"
    parts = [f"0*[1-9][0-9]{{0,{whole - 1}}}{fraction}"]  # 1 <= value < 10 ** whole
    if places:  # 0 < value < 1
        below_one = [
            "0" * zeros + "[1-9]" + (f"[0-9]{{0,{places - 1 - zeros}}}" if places - 1 - zeros else "")
            for zeros in range(places)
        ]
        parts.append(f"0*\\.(?:{'|'.join(below_one)})0*")
    parts.append(f"0*1{'0' * whole}(?:\\.0*)?")  # 10 ** whole, the largest
    return f"^{SPACE}*\\+?(?:{'|'.join(parts)}){SPACE}*$"


def _amount(unit: Decimal) -> dict[str, Any]:
    """A price or quantity of one instrument: decimal text or a JSON number (read exactly)."""
    largest = MAX_UNITS * unit
    number = {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": int(largest) if largest == int(largest) else float(largest),
        "multipleOf": int(unit) if unit == int(unit) else float(unit),
    }
    return {"anyOf": [{"type": "string", "pattern": multiple_pattern(unit)}, number]}


# --- the published schemas ---------------------------------------------------------------------------------

_MARKET = [text for text in schemas.ORDER_REQUEST["properties"]["type"]["enum"] if text.lower() == "market"]
_RESTING_TIF = {"gtc"}  # a market order cannot rest (matching.py: invalid_time_in_force)


def published_order_request() -> dict[str, Any]:
    schema = copy.deepcopy(schemas.ORDER_REQUEST)
    fields = schema["properties"]
    fields["symbol"] = {"enum": list(schemas.KNOWN_SYMBOLS), "description": "one of GET /api/symbols"}
    tif = fields["time_in_force"]["enum"]
    market = {
        "if": {"properties": {"type": {"enum": _MARKET}}},
        "then": {
            "not": {"required": ["price"]},
            "properties": {"time_in_force": {"enum": [t for t in tif if t.lower() not in _RESTING_TIF]}},
        },
        "else": {"required": ["price"]},
    }
    per_symbol = [
        {
            "if": {"properties": {"symbol": {"const": instrument.symbol}}},
            "then": {
                "properties": {
                    "price": _amount(instrument.tick_size),
                    "quantity": _amount(instrument.lot_size),
                }
            },
        }
        for instrument in DEFAULT_INSTRUMENTS
    ]
    schema["allOf"] = [market, *per_symbol]
    return schema


def _durations(schema: dict[str, Any], low_s: float, high_s: int, *, exclusive_low: bool = False) -> None:
    schema["pattern"] = duration_pattern(low_s, high_s, exclusive_low=exclusive_low)


def published_load_test_request() -> dict[str, Any]:
    schema = copy.deepcopy(schemas.LOAD_TEST_REQUEST)
    fields = schema["properties"]
    _durations(fields["duration"], schemas.MIN_LOAD_TEST_DURATION_S, schemas.MAX_LOAD_TEST_DURATION_S)
    ramp = fields["ramp_up"]["properties"]["duration"]
    _durations(ramp, 0, schemas.MAX_LOAD_TEST_DURATION_S, exclusive_low=True)
    return schema


def published_chaos_request() -> dict[str, Any]:
    schema = copy.deepcopy(schemas.CHAOS_REQUEST)
    _durations(schema["properties"]["duration"], schemas.MIN_CHAOS_DURATION_S, schemas.MAX_CHAOS_DURATION_S)
    return schema


ORDER_REQUEST = published_order_request()
LOAD_TEST_REQUEST = published_load_test_request()
CHAOS_REQUEST = published_chaos_request()

_DURATION_WORDS = (
    "A duration as text is described for one unit (500ms, 90s, 1.5m, 1h); the server also reads a sum "
    "such as 1m30s, and days, within the same range."
)
RULES_IN_WORDS = {
    "order": (
        "symbol: one of GET /api/symbols (400 unknown_symbol). price and quantity: greater than 0, "
        "a multiple of the symbol's tick size (price) or lot size (quantity), at most 10^15 ticks or "
        "lots; a decimal string (plain or exponent notation, such as 60000.5 or 6e4, spaces around it "
        "ignored) or a JSON number, read exactly as written (400 invalid_price / invalid_quantity). The "
        "schema describes plain notation only. A limit order needs a price (400 missing_price); a market "
        "order takes none (400 unexpected_price) and cannot rest: time_in_force ioc or fok "
        "(400 invalid_time_in_force)."
    ),
    "load_test": (
        "duration: 1 s to 1 h; ramp_up.duration: more than 0 and not longer than the run; "
        "ramp_up.start_percent not above end_percent (default 20 and 100). " + _DURATION_WORDS
    ),
    "chaos": "duration: 1 ms to 1 h. " + _DURATION_WORDS,
}
