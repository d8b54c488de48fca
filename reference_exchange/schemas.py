"""JSON Schemas of every request body, compiled once with fastjsonschema for the hot path.

The same dictionaries are published in the OpenAPI document, so clients, fuzzers and the server
agree on one definition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fastjsonschema

DECIMAL = {"type": ["string", "number"], "description": "decimal as a string (exact) or a number"}

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
