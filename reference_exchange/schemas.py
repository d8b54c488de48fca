"""JSON Schemas of every request body and response, the one source of truth for the API's shapes.

Request schemas are compiled once with fastjsonschema for the hot path; all of them, requests and
responses, are published in the OpenAPI document (``openapi.py``), so clients, fuzzers and the server
agree on one definition. The tests validate live responses against the response schemas, so a field
added to a handler but not here fails the suite.

Schemas use only keywords that mean the same in JSON Schema draft 7 (fastjsonschema) and 2020-12
(OpenAPI 3.1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fastjsonschema

MAX_CHAOS_LATENCY_MS = 10_000  # 10 s per commit is already an outage; more is a typo
MAX_CHAOS_DURATION_S = 3600  # an injection that outlives the demo by hours is a mistake
MIN_CHAOS_DURATION_S = 0.001

DECIMAL = {
    "type": ["string", "number"],
    "maxLength": 64,
    "description": "decimal as a string (exact) or a number",
}

# --- requests -------------------------------------------------------------------------------------

ORDER_REQUEST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["symbol", "side", "type", "quantity"],
    "properties": {
        "symbol": {"type": "string", "minLength": 1, "maxLength": 32},
        "side": {"enum": ["buy", "sell", "BUY", "SELL"]},
        "type": {"enum": ["limit", "market", "LIMIT", "MARKET"]},
        "price": {**DECIMAL, "description": "limit price, a multiple of the symbol's tick size"},
        "quantity": {**DECIMAL, "description": "a multiple of the symbol's lot size, > 0"},
        "time_in_force": {
            "enum": ["gtc", "ioc", "fok", "GTC", "IOC", "FOK"],
            "description": "default gtc for limit, ioc for market",
        },
        "client_order_id": {"type": "string", "minLength": 1, "maxLength": 64},
    },
}

_NUMBER_TEXT = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
DURATION_TEXT_PATTERN = rf"^(?:{_NUMBER_TEXT}|(?:{_NUMBER_TEXT}(?:[mM][sS]|[sSmMhHdD]))+)$"

CHAOS_REQUEST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "duration", "parameters"],
    "properties": {
        "type": {"enum": ["latency_injection"], "description": "the only kind of chaos so far"},
        "duration": {
            "type": ["number", "string"],
            "minimum": MIN_CHAOS_DURATION_S,
            "maximum": MAX_CHAOS_DURATION_S,
            "pattern": DURATION_TEXT_PATTERN,
            "maxLength": 32,
            "description": "seconds (number), or a duration such as 60s, 500ms, 2m or 1h; 1ms to 1h",
        },
        "parameters": {
            "type": "object",
            "additionalProperties": False,
            "required": ["latency_ms"],
            "properties": {
                "latency_ms": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": MAX_CHAOS_LATENCY_MS,
                    "description": "added before every journal commit, in milliseconds (at most 10 s)",
                },
            },
        },
    },
}

# --- responses ------------------------------------------------------------------------------------

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_COUNT = {"type": "integer", "minimum": 0}
_QUANTITY = {"type": "string", "description": "decimal string"}


def _object(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """An object schema with these properties, all required unless ``required`` says otherwise."""
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


ERROR: dict[str, Any] = _object(
    {
        "error": _object(
            {
                "code": {**_STRING, "description": "stable, machine-readable, e.g. invalid_price"},
                "message": {**_STRING, "description": "one line for a human, naming the field"},
            }
        )
    },
    description="Every 4xx and 5xx answer has this shape.",
)

ORDER: dict[str, Any] = _object(
    {
        "id": {"type": "integer", "minimum": 1},
        "client_order_id": _NULLABLE_STRING,
        "symbol": _STRING,
        "side": {"enum": ["buy", "sell"]},
        "type": {"enum": ["limit", "market"]},
        "price": {**_NULLABLE_STRING, "description": "null for market orders"},
        "quantity": _QUANTITY,
        "filled_quantity": _QUANTITY,
        "remaining_quantity": _QUANTITY,
        "cancelled_quantity": _QUANTITY,
        "status": {"enum": ["new", "partially_filled", "filled", "cancelled", "rejected"]},
        "time_in_force": {"enum": ["gtc", "ioc", "fok"]},
        "reason": {**_NULLABLE_STRING, "description": "why a remainder was cancelled or rejected"},
        "timestamp_ns": _COUNT,
    }
)

TRADE: dict[str, Any] = _object(
    {
        "id": {"type": "integer", "minimum": 1},
        "symbol": _STRING,
        "price": _QUANTITY,
        "quantity": _QUANTITY,
        "maker_order_id": {"type": "integer", "minimum": 1},
        "taker_order_id": {"type": "integer", "minimum": 1},
        "taker_side": {"enum": ["buy", "sell"]},
        "timestamp_ns": _COUNT,
    }
)

PLACE_RESULT: dict[str, Any] = _object(
    {**ORDER["properties"], "trades": {"type": "array", "items": TRADE}},
    description="The order as it stands after matching, and the trades it made.",
)

_LEVEL = {
    "type": "array",
    "items": _QUANTITY,
    "minItems": 2,
    "maxItems": 2,
    "description": "[price, open quantity]",
}

ORDER_BOOK: dict[str, Any] = _object(
    {
        "symbol": _STRING,
        "bids": {"type": "array", "items": _LEVEL, "description": "best (highest) first"},
        "asks": {"type": "array", "items": _LEVEL, "description": "best (lowest) first"},
        "sequence": {**_COUNT, "description": "bumps on every change of this book"},
    }
)

TRADES: dict[str, Any] = _object(
    {"symbol": _STRING, "trades": {"type": "array", "items": TRADE, "description": "newest first"}}
)

SYMBOLS: dict[str, Any] = _object(
    {
        "symbols": {
            "type": "array",
            "items": _object(
                {
                    "symbol": _STRING,
                    "tick_size": _QUANTITY,
                    "lot_size": _QUANTITY,
                    "reference_price": _QUANTITY,
                }
            ),
        }
    }
)

_SEED_METRICS = ("orders_per_sec", "trades_per_sec", "avg_latency", "p99_latency", "cpu_percent")

METRICS: dict[str, Any] = _object(
    {
        "data": {
            "type": "object",
            "required": [*_SEED_METRICS, "shed_total", "journal_healthy"],
            "properties": {
                **{name: {"type": "number"} for name in _SEED_METRICS},
                "shed_total": {**_COUNT, "description": "new orders and cancels refused with 503"},
                "shed_pending": {**_COUNT, "description": "refused: too many awaiting durability"},
                "shed_loop_lag": {**_COUNT, "description": "refused: event loop behind OVERLOAD_MAX_LAG"},
                "loop_lag_ms": {"type": "number"},
                "overloaded": {"type": "boolean"},
                "journal_healthy": {"type": "boolean"},
            },
            "additionalProperties": True,
            "description": "latencies in ms, rates per second, shares 0..1; more keys than listed",
        }
    }
)

HEALTH: dict[str, Any] = _object(
    {
        "status": {"enum": ["ok", "unhealthy"]},
        "uptime_seconds": {"type": "number", "minimum": 0},
        "journal": {"enum": ["ok", "disabled", "failed"]},
        "overloaded": {"type": "boolean", "description": "new orders are being shed (not ill health)"},
        "reason": {**_STRING, "description": "why the process is unhealthy"},
    },
    required=["status", "uptime_seconds", "journal", "overloaded"],
)

CHAOS_STATUS: dict[str, Any] = _object(
    {
        "type": {"enum": ["latency_injection"]},
        "latency_ms": {"type": "number", "minimum": 0},
        "duration_s": {"type": "number", "exclusiveMinimum": 0},
        "remaining_s": {"type": "number", "minimum": 0},
        "started_at": {**_STRING, "description": "UTC, ISO 8601"},
        "ends_at": {**_STRING, "description": "UTC, ISO 8601"},
    }
)

CHAOS_STATE: dict[str, Any] = _object(
    {
        "active": {"anyOf": [CHAOS_STATUS, {"type": "null"}], "description": "null when none is active"},
        "ended": {
            "anyOf": [CHAOS_STATUS, {"type": "null"}],
            "description": "DELETE only: what was active until now",
        },
    },
    required=["active"],
)

CHECKSUMS: dict[str, Any] = _object(
    {
        "checksums": {
            "type": "object",
            "additionalProperties": {"type": "integer", "minimum": 0},
            "description": "symbol -> CRC32 over its resting orders in priority order",
        },
        "resting_orders": _COUNT,
        "journal_sequence": {
            "type": ["integer", "null"],
            "description": "last journaled command reflected in the books (null without a journal)",
        },
    }
)


class SchemaViolation(ValueError):
    """A request body that does not match its schema; the message names the field."""


def compile_schema(schema: dict[str, Any]) -> Callable[[Any], Any]:
    """Return a validator that raises SchemaViolation with a message like 'body.price must be ...'."""
    check = fastjsonschema.compile(schema)

    def validate(body: Any) -> Any:
        try:
            return check(body)
        except fastjsonschema.JsonSchemaValueException as error:
            raise SchemaViolation(error.message.replace("data", "body", 1)) from None

    return validate


validate_order_request = compile_schema(ORDER_REQUEST)
validate_chaos_request = compile_schema(CHAOS_REQUEST)
