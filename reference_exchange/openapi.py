"""The OpenAPI 3.1 document served at ``/openapi.json``, assembled from the schemas in ``schemas.py``.

Every route of the server is listed with its parameters, request body, responses and the shared error
shape; a test checks that the router and this document name the same routes, and the fuzz tests
validate live responses against the schemas referenced here.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from reference_exchange import published_schemas, schemas
from reference_exchange.api import EXCHANGE, MAX_DEPTH, MAX_TRADES
from reference_exchange.endpoints import add_endpoint

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"

COMPONENT_SCHEMAS: dict[str, dict[str, Any]] = {
    # The server's schemas plus the rules it checks after them (published_schemas.py).
    "OrderRequest": published_schemas.ORDER_REQUEST,
    "ChaosRequest": published_schemas.CHAOS_REQUEST,
    "AdmissionRequest": schemas.ADMISSION_REQUEST,
    "LoadTestRequest": published_schemas.LOAD_TEST_REQUEST,
    "Error": schemas.ERROR,
    "Order": schemas.ORDER,
    "Trade": schemas.TRADE,
    "PlaceResult": schemas.PLACE_RESULT,
    "OrderBook": schemas.ORDER_BOOK,
    "Trades": schemas.TRADES,
    "Symbols": schemas.SYMBOLS,
    "Metrics": schemas.METRICS,
    "Health": schemas.HEALTH,
    "ChaosState": schemas.CHAOS_STATE,
    "AdmissionState": schemas.ADMISSION_STATE,
    "Checksums": schemas.CHECKSUMS,
    "LoadTest": schemas.LOAD_TEST,
    "LoadTests": schemas.LOAD_TESTS,
}

_ERROR_STATUSES = {
    "400": "The request is malformed or names something invalid; the message names the field",
    "403": "Admin route: not a loopback client and no valid admin token",
    "404": "No such order, symbol or route",
    "405": "Method not allowed on this route (see the Allow header)",
    "409": "Conflicts with the current state",
    "413": "Body larger than MAX_BODY_BYTES",
    "503": (
        "Shed (overloaded) or the journal failed; retry after Retry-After seconds. "
        "POST /demo/load-test: the capacity toolkit is not installed (no Retry-After)"
    ),
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema_name: str, description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema_name)}},
    }
    if headers:
        response["headers"] = headers
    return response


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): {"$ref": f"#/components/responses/Error{status}"} for status in statuses}


def _operation(
    summary: str,
    ok: dict[str, Any],
    errors: tuple[int, ...],
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: str | None = None,
    admin: bool = False,
    tag: str = "trading",
    description: str | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "tags": [tag]}
    if description is not None:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if admin:
        operation["security"] = [{}, {"bearerToken": []}, {"adminTokenHeader": []}]
        errors = (*errors, 403)
    # 405 can answer any route, and 413 any route that reads a body.
    operation["responses"] = {**ok, **_errors(*sorted({*errors, 405}))}
    return operation


def _path_parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def _query_parameter(name: str, maximum: int, default: int, description: str) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


ORDER_ID = _path_parameter(
    "order_id",
    {"type": "string", "pattern": "^[0-9]{1,18}$"},
    "order id as returned by POST /api/orders (decimal digits)",
)
LOAD_TEST_ID = _path_parameter(
    "run_id",
    {"type": "string"},
    "as returned by POST /demo/load-test, e.g. 20261125T120552-3fa9c1",
)
SYMBOL = _path_parameter("symbol", {"type": "string"}, "a symbol from GET /api/symbols, e.g. BTCUSD")
RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def build_openapi() -> dict[str, Any]:
    """The whole document as a dict (JSON-serialisable)."""
    place_ok = {
        "201": _json("PlaceResult", "Accepted and durable: the order after matching, and its trades"),
        "200": _json("PlaceResult", "A repeated client_order_id: the first attempt's result, nothing new"),
    }
    paths: dict[str, Any] = {
        "/api/orders": {
            "post": _operation(
                "Place an order (acknowledged once durable)",
                place_ok,
                (400, 413, 503),
                body="OrderRequest",
                description=published_schemas.RULES_IN_WORDS["order"],
            )
        },
        "/api/orders/{order_id}": {
            "get": _operation(
                "One order", {"200": _json("Order", "The order")}, (400, 404), parameters=[ORDER_ID]
            ),
            "delete": _operation(
                "Cancel an order (acknowledged once durable)",
                {"200": _json("Order", "The cancelled order")},
                (400, 404, 409, 503),
                parameters=[ORDER_ID],
            ),
        },
        "/api/orderbook/{symbol}": {
            "get": _operation(
                "Aggregated price levels, best first",
                {"200": _json("OrderBook", "The book")},
                (400, 404),
                parameters=[SYMBOL, _query_parameter("depth", MAX_DEPTH, 10, "levels per side")],
                tag="market data",
            )
        },
        "/api/trades/{symbol}": {
            "get": _operation(
                "Recent trades, newest first",
                {"200": _json("Trades", "The trades")},
                (400, 404),
                parameters=[SYMBOL, _query_parameter("limit", MAX_TRADES, 50, "how many")],
                tag="market data",
            )
        },
        "/api/symbols": {
            "get": _operation(
                "Tradable symbols",
                {"200": _json("Symbols", "Symbols and their rules")},
                (),
                tag="market data",
            )
        },
        "/api/metrics": {
            "get": _operation(
                "Windowed server metrics in the seed's shape",
                {"200": _json("Metrics", "Rates per second, latencies in ms, shed counts")},
                (),
                tag="operations",
            )
        },
        "/metrics": {
            "get": _operation(
                "Prometheus text exposition",
                {
                    "200": {
                        "description": "Prometheus text format 0.0.4",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                (),
                tag="operations",
            )
        },
        "/health": {
            "get": _operation(
                "Liveness: 503 once the journal failed, so an orchestrator restarts the process",
                {
                    "200": _json("Health", "Healthy"),
                    "503": _json("Health", "Unhealthy: restart it (a journal replay rebuilds the state)"),
                },
                (),
                tag="operations",
            )
        },
        "/openapi.json": {
            "get": _operation(
                "This document",
                {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
                (),
                tag="operations",
            )
        },
        "/api/books/checksum": {
            "get": _operation(
                "CRC32 of every book's resting orders, to compare with a journal replay",
                {"200": _json("Checksums", "Checksums per symbol")},
                (),
                admin=True,
                tag="admin",
            )
        },
        "/demo/chaos-test": {
            "post": _operation(
                "Inject latency into every journal commit for a while",
                {"200": _json("ChaosState", "Now active")},
                (400, 409, 413),
                body="ChaosRequest",
                admin=True,
                tag="admin",
                description=published_schemas.RULES_IN_WORDS["chaos"],
            ),
            "get": _operation(
                "The active injection, if any",
                {"200": _json("ChaosState", "active is null when none is")},
                (),
                admin=True,
                tag="admin",
            ),
            "delete": _operation(
                "End the injection now",
                {"200": _json("ChaosState", "Ended (ended is null when none was active)")},
                (),
                admin=True,
                tag="admin",
            ),
        },
        "/demo/admission": {
            "get": _operation(
                "The admission controller's settings and state (the lean path's; 409 with LEAN_HTTP=off)",
                {"200": _json("AdmissionState", "Settings and state")},
                (409,),
                admin=True,
                tag="admin",
            ),
            "put": _operation(
                "Change the admission controller's settings while running (not kept across a restart)",
                {"200": _json("AdmissionState", "Settings and state, changed")},
                (400, 409, 413),
                body="AdmissionRequest",
                admin=True,
                tag="admin",
            ),
        },
        "/demo/load-test": {
            "post": _operation(
                "Start a capacity run against this exchange (the seed's body; one at a time)",
                {
                    "202": _json(
                        "LoadTest",
                        "Started: follow it at status_url",
                        {
                            "Location": {
                                "description": "status_url",
                                "schema": {"type": "string"},
                            }
                        },
                    )
                },
                (400, 409, 413, 503),
                body="LoadTestRequest",
                admin=True,
                tag="admin",
                description=published_schemas.RULES_IN_WORDS["load_test"],
            ),
            "get": _operation(
                "The running load test's id and the recent ones, newest first",
                {"200": _json("LoadTests", "Load tests since the exchange started (the last 20 finished)")},
                (),
                admin=True,
                tag="admin",
            ),
        },
        "/demo/load-test/{run_id}": {
            "get": _operation(
                "State, progress (loadgen/progress.json) and, once ended, the run.json summary",
                {"200": _json("LoadTest", "The load test")},
                (404,),
                parameters=[LOAD_TEST_ID],
                admin=True,
                tag="admin",
            ),
            "delete": _operation(
                "Cancel it: capacity stops the load and keeps what was measured; answers once stopped",
                {"200": _json("LoadTest", "Cancelled (state cancelled, or completed if it ended first)")},
                (404, 409),
                parameters=[LOAD_TEST_ID],
                admin=True,
                tag="admin",
            ),
        },
    }
    error_responses = {
        f"Error{status}": {
            "description": description,
            "content": {"application/json": {"schema": _ref("Error")}},
            **({"headers": RETRY_AFTER} if status == 503 else {}),
        }
        for status, description in ((int(code), text) for code, text in _ERROR_STATUSES.items())
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "capacity reference exchange",
            "version": API_VERSION,
            "description": (
                "A lean matching engine for capacity benchmarks. Prices and quantities are decimal "
                "strings. Every error is JSON {error: {code, message}}. Writes are acknowledged only "
                "once journaled durably; under overload new orders get 503 with Retry-After."
            ),
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {
            "schemas": COMPONENT_SCHEMAS,
            "responses": error_responses,
            "securitySchemes": {
                "bearerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "ADMIN_TOKEN; loopback clients need none",
                },
                "adminTokenHeader": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Admin-Token",
                    "description": "ADMIN_TOKEN; loopback clients need none",
                },
            },
        },
    }


def add_openapi_route(app: web.Application) -> None:
    """``GET /openapi.json``: the document, serialised once."""
    body = orjson.dumps(build_openapi())

    async def openapi_json(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    add_endpoint(app, app[EXCHANGE].metrics, "GET", "/openapi.json", openapi_json)
