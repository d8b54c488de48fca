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

from reference_exchange.admission import SHARE_BOUNDS
from reference_exchange.instruments import DEFAULT_INSTRUMENTS

KNOWN_SYMBOLS = tuple(instrument.symbol for instrument in DEFAULT_INSTRUMENTS)
MAX_CHAOS_LATENCY_MS = 10_000  # 10 s per commit is already an outage; more is a typo
MAX_CHAOS_DURATION_S = 3600  # an injection that outlives the demo by hours is a mistake
MIN_CHAOS_DURATION_S = 0.001

DECIMAL: dict[str, Any] = {
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

_ORDER_FIELDS = ORDER_REQUEST["properties"]
_ORDER_KEYS = frozenset(_ORDER_FIELDS)
_SIDES = frozenset(_ORDER_FIELDS["side"]["enum"])
_TYPES = frozenset(_ORDER_FIELDS["type"]["enum"])
_TIME_IN_FORCE = frozenset(_ORDER_FIELDS["time_in_force"]["enum"])
_SYMBOL_MAX: int = _ORDER_FIELDS["symbol"]["maxLength"]
_DECIMAL_MAX: int = DECIMAL["maxLength"]
_CLIENT_ORDER_ID_MAX = _ORDER_FIELDS["client_order_id"]["maxLength"]


def _short_text(value: object, limit: int) -> bool:
    return type(value) is str and 0 < len(value) <= limit


def plain_order_request(body: object) -> bool:
    """True only for a body ``ORDER_REQUEST`` accepts, in its usual shape: all values strings. About 5x
    cheaper than the compiled schema, so the order route asks it first and the schema only when it says
    False (which means "not sure": a number for a price, a missing field, ... and the schema words the
    error). It may refuse what the schema accepts, never the reverse (tests/exchange/test_api.py checks
    that)."""
    if type(body) is not dict or not body.keys() <= _ORDER_KEYS:
        return False
    side, kind = body.get("side"), body.get("type")
    tif = body.get("time_in_force", "gtc")
    return (
        _short_text(body.get("symbol"), _SYMBOL_MAX)
        and type(side) is str
        and side in _SIDES
        and type(kind) is str
        and kind in _TYPES
        and _short_text(body.get("quantity"), _DECIMAL_MAX)
        and ("price" not in body or _short_text(body["price"], _DECIMAL_MAX))
        and type(tif) is str
        and tif in _TIME_IN_FORCE
        and ("client_order_id" not in body or _short_text(body["client_order_id"], _CLIENT_ORDER_ID_MAX))
    )


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

# --- the load-test demo (POST /demo/load-test) --------------------------------------------------------

LOAD_TEST_INTENSITIES = ("light", "medium", "heavy", "extreme")
MIN_LOAD_TEST_DURATION_S = 1  # capacity needs whole seconds to measure anything
MAX_LOAD_TEST_DURATION_S = 3600
MAX_LOAD_TEST_RATE = 100_000  # far beyond any one machine; more is a typo
MIN_LOAD_TEST_RATE = 1  # below one request a second a 1-second run may send nothing (5e-324 was a 202)
MAX_LOAD_TEST_USERS = 10_000
MAX_LOAD_TEST_P99_MS = 60_000

_LOAD_TEST_DURATION = {
    "type": ["number", "string"],
    "pattern": DURATION_TEXT_PATTERN,
    "maxLength": 32,
}

LOAD_TEST_REQUEST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["duration", "orders_per_second", "concurrent_users"],
    "properties": {
        "intensity": {
            "enum": list(LOAD_TEST_INTENSITIES),
            "description": "a label recorded with the run (the rate and users say how hard it pushes)",
        },
        "duration": {
            **_LOAD_TEST_DURATION,
            "minimum": MIN_LOAD_TEST_DURATION_S,
            "maximum": MAX_LOAD_TEST_DURATION_S,
            "description": "seconds (number) or a duration such as 60s or 2m, ramp included; 1 s to 1 h",
        },
        "orders_per_second": {
            "type": "number",
            "minimum": MIN_LOAD_TEST_RATE,
            "maximum": MAX_LOAD_TEST_RATE,
            "description": "offered requests/s on an open-model schedule (every request of the mix counts)",
        },
        "concurrent_users": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_LOAD_TEST_USERS,
            "description": "simulated users the rate is spread over",
        },
        "symbols": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"enum": list(KNOWN_SYMBOLS)},
            "description": "default: every symbol of the exchange",
        },
        "ramp_up": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean", "description": "default true; false: no ramp"},
                "duration": {
                    **_LOAD_TEST_DURATION,
                    "exclusiveMinimum": 0,
                    "maximum": MAX_LOAD_TEST_DURATION_S,
                    "description": "default 30 s, at most half the run; never longer than the run",
                },
                "start_percent": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 100,
                    "description": "default 20",
                },
                "end_percent": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": 100,
                    "description": "default 100",
                },
            },
            "description": "linear ramp of rate and users from start_percent to end_percent of the target",
        },
        "slo": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "p99_ms": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_LOAD_TEST_P99_MS},
                "error_rate": {"type": "number", "minimum": 0, "maximum": 1},
            },
            "description": "default: the seed matrix's objective for the tier of this rate",
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
                "shed_queue_delay": {**_COUNT, "description": "refused: a standing queue (ADMISSION_TARGET)"},
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

MAX_ADMISSION_SECONDS = 3600.0
_SECONDS = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_ADMISSION_SECONDS}
_SHARE = {"type": "number", "exclusiveMinimum": SHARE_BOUNDS[0], "exclusiveMaximum": SHARE_BOUNDS[1]}

ADMISSION_REQUEST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "share": {**_SHARE, "description": "ADMISSION_SHARE: each turn's share given to admitted orders"},
        "target_s": {**_SECONDS, "description": "ADMISSION_TARGET in seconds (at most 1 h)"},
        "interval_s": {**_SECONDS, "description": "ADMISSION_INTERVAL in seconds (at most 1 h)"},
    },
}

ADMISSION_STATE: dict[str, Any] = _object(
    {
        "share": _SHARE,
        # as configured: ADMISSION_TARGET and ADMISSION_INTERVAL have no upper bound, only PUT has
        "target_s": {"type": "number", "exclusiveMinimum": 0},
        "interval_s": {"type": "number", "exclusiveMinimum": 0},
        "standing": {"type": "boolean", "description": "a standing queue: new orders are being refused"},
        "refused": {**_COUNT, "description": "orders refused by this controller since the start"},
        "last_turn_s": {"type": "number", "minimum": 0, "description": "the last busy turn's length"},
        "retry_after_s": {"type": "integer", "minimum": 1, "description": "what a refusal says now"},
    }
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

_NUMBER_OR_NULL = {"type": ["number", "null"]}

LOAD_TEST_PLAN: dict[str, Any] = _object(
    {
        "intensity": {"enum": [*LOAD_TEST_INTENSITIES, None]},
        "duration_s": {"type": "number", "exclusiveMinimum": 0},
        "orders_per_second": {"type": "number", "exclusiveMinimum": 0},
        "concurrent_users": {"type": "integer", "minimum": 1},
        "symbols": {"type": "array", "items": _STRING},
        "ramp_up": {
            "anyOf": [
                _object(
                    {
                        "duration_s": {"type": "number", "exclusiveMinimum": 0},
                        "start_percent": {"type": "number"},
                        "end_percent": {"type": "number"},
                    }
                ),
                {"type": "null"},
            ],
            "description": "null: no ramp",
        },
        "slo": _object(
            {"p99_ms": _NUMBER_OR_NULL, "error_rate": _NUMBER_OR_NULL},
            description="as requested; null: capacity takes the seed matrix tier's limit for this rate",
        ),
    },
    description="The request with its defaults filled in: what the scenario file says.",
)

LOAD_TEST_PROGRESS: dict[str, Any] = _object(
    {
        "elapsed_s": {"type": "number", "minimum": 0},
        "offered_rate": {**_NUMBER_OR_NULL, "description": "requests/s, last few complete seconds"},
        "achieved_rate": {**_NUMBER_OR_NULL, "description": "successful responses/s, same seconds"},
        "p99_corrected_ms": _NUMBER_OR_NULL,
        "p99_raw_ms": _NUMBER_OR_NULL,
        "sent_total": {"type": ["integer", "null"]},
        "ok_total": {"type": ["integer", "null"]},
        "errors_total": {"type": ["integer", "null"]},
        "late_total": {"type": ["integer", "null"]},
        "users": {"type": ["integer", "null"]},
    },
    description="The load generator's last live snapshot (loadgen/progress.json, about once a second).",
)

#: The one summary format this exchange reads from ``capacity run --summary-json``.
RUN_SUMMARY_FORMAT = "capacity-run-summary/1"

# capacity owns the summary (capacity/schemas/run-summary.schema.json publishes it whole); the exchange
# checks what it relies on and passes the rest through as capacity wrote it.
LOAD_TEST_RESULT: dict[str, Any] = {
    "type": "object",
    "required": ["format", "status"],
    "properties": {
        "format": {"const": RUN_SUMMARY_FORMAT},
        "status": {"enum": ["completed", "interrupted", "failed"]},
        "problem": _NULLABLE_STRING,
    },
    "description": "capacity's summary of the run, format capacity-run-summary/1: rates, counts, latency "
    "(corrected and raw), CPU, the limit and the SLO verdict (capacity/schemas/run-summary.schema.json).",
}

LOAD_TEST: dict[str, Any] = _object(
    {
        "run_id": _STRING,
        "status_url": {**_STRING, "description": "GET it for progress, DELETE it to cancel"},
        "state": {"enum": ["queued", "running", "completed", "failed", "cancelled"]},
        "request": LOAD_TEST_PLAN,
        "target": {**_STRING, "description": "this exchange, over loopback"},
        "created_at": {**_STRING, "description": "UTC, ISO 8601"},
        "finished_at": _NULLABLE_STRING,
        "elapsed_s": {"type": "number", "minimum": 0, "description": "of the load schedule"},
        "remaining_s": {"type": "number", "minimum": 0},
        "progress": {"anyOf": [LOAD_TEST_PROGRESS, {"type": "null"}], "description": "null until it runs"},
        "result": {"anyOf": [LOAD_TEST_RESULT, {"type": "null"}], "description": "null until it ends"},
        "run_directory": {**_NULLABLE_STRING, "description": "capacity's run directory (run.json)"},
        "working_directory": {**_STRING, "description": "request, scenario file and capacity's log"},
        "problem": {**_NULLABLE_STRING, "description": "why it failed or was cancelled"},
        "exit_code": {"type": ["integer", "null"], "description": "of capacity run"},
    }
)

LOAD_TESTS: dict[str, Any] = _object(
    {
        "running": {**_NULLABLE_STRING, "description": "run_id of the load test in progress"},
        "load_tests": {"type": "array", "items": LOAD_TEST, "description": "newest first"},
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
validate_admission_request = compile_schema(ADMISSION_REQUEST)
validate_load_test_request = compile_schema(LOAD_TEST_REQUEST)
validate_run_summary = compile_schema(LOAD_TEST_RESULT)
