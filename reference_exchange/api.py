"""HTTP transport for trading: orders, books, trades, symbols, health and metrics.

Handlers translate between JSON (decimal strings) and the service (integer ticks and lots); they
hold no trading logic of their own.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from reference_exchange.config import Settings
from reference_exchange.endpoints import CLIENT_CLOSED, Handler, add_endpoint
from reference_exchange.engine import (
    EngineError,
    Order,
    OrderNotFound,
    OrderNotOpen,
    OrderType,
    PlaceResult,
    Side,
    TimeInForce,
    Trade,
    UnknownSymbol,
)
from reference_exchange.errors import ApiError
from reference_exchange.http_guard import read_body
from reference_exchange.instruments import Instrument, InstrumentError
from reference_exchange.journal import Journal
from reference_exchange.metrics import ServerMetrics
from reference_exchange.overload import LagMonitor
from reference_exchange.schemas import (
    ORDER_REQUEST,
    SchemaViolation,
    plain_order_request,
    validate_order_request,
)
from reference_exchange.service import ExchangeService, Overloaded, PlaceCommand
from reference_exchange.units import codec

MAX_DEPTH = 1000
MAX_TRADES = 1000


@dataclass
class Exchange:
    """Everything the handlers need, stored once on the application."""

    instruments: dict[str, Instrument]
    service: ExchangeService
    metrics: ServerMetrics
    started_monotonic: float = field(default_factory=time.monotonic)
    extra_stats: dict[str, Any] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    journal: Journal | None = None  # the service's journal, typed for chaos injection and health
    lag: LagMonitor | None = None

    def journal_error(self) -> Exception | None:
        """Why the journal stopped (fail-stop), or None while it is healthy or disabled."""
        return None if self.journal is None else self.journal.error

    def overloaded(self) -> bool:
        """Whether new orders are being shed right now (loop lag or the pending bound)."""
        lagging = self.lag is not None and self.lag.overloaded()
        return lagging or self.service.pending >= self.service.max_pending

    def live_stats(self) -> dict[str, Any]:
        """Admission and overload figures for ``/api/metrics``, after ``extra_stats``."""
        stats: dict[str, Any] = {**self.extra_stats, **self.service.stats()}
        if self.lag is not None:
            stats.update(self.lag.stats())
        stats["overloaded"] = self.overloaded()
        stats["journal_healthy"] = self.journal_error() is None
        return stats


EXCHANGE = web.AppKey("exchange", Exchange)


def json_response(payload: Any, status: int = 200) -> web.Response:
    body = orjson.dumps(payload)
    return web.Response(status=status, body=body, content_type="application/json")


async def read_json(request: web.Request) -> Any:
    """Parse the body as JSON; aiohttp raises 413 itself past client_max_size. A body that cannot be
    decoded (garbage sent as ``Content-Encoding: gzip``, a broken chunked encoding) is the client's 400."""
    try:
        raw = await read_body(request, request.app[EXCHANGE].settings.client_timeout)
    except RequestPayloadError as error:
        raise ApiError(400, "invalid_body", f"request body could not be read: {error}") from None
    if not raw:
        raise ApiError(400, "invalid_json", "request body is empty: expected a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {error}") from None


async def exact_amounts(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with a price or quantity sent as a JSON number read exactly as written: orjson reads
    numbers as floats, and ``40000.0000000000000001`` is the float 40000.0, which would be accepted as a
    price the client never sent. Read again from the bytes with decimal numbers (rare: clients send
    strings)."""
    exact = json.loads(await request.read(), parse_float=Decimal)
    amounts = {
        key: format(exact[key], "f") for key in ("price", "quantity") if type(exact.get(key)) is Decimal
    }
    return {**body, **amounts}


def validated(validate, body: Any) -> Any:
    try:
        return validate(body)
    except SchemaViolation as error:
        raise ApiError(400, "invalid_request", str(error)) from None
    except RecursionError:  # the compiled validator recurses once per level (orjson allows 1,024)
        raise ApiError(400, "invalid_request", "the body is nested too deeply") from None


def engine_error(error: EngineError) -> ApiError:
    status = {UnknownSymbol: 400, OrderNotFound: 404, OrderNotOpen: 409}.get(type(error), 400)
    return ApiError(status, error.code, error.message)


def overloaded(error: Overloaded) -> ApiError:
    """503 with Retry-After (whole seconds, as HTTP wants) for shedding and for a failed journal."""
    retry = str(max(1, round(error.retry_after_s)))
    return ApiError(503, error.code, str(error), headers={"Retry-After": retry})


# -- orders ------------------------------------------------------------------------------------


_E = TypeVar("_E", Side, OrderType, TimeInForce)


def _by_text(enum: type[_E], field: str) -> dict[str, _E]:
    """The schema's spellings of ``field`` (either case) to ``enum``'s members: one dict lookup per use."""
    return {text: enum(text.lower()) for text in ORDER_REQUEST["properties"][field]["enum"]}


_SIDES = _by_text(Side, "side")
_ORDER_TYPES = _by_text(OrderType, "type")
_TIME_IN_FORCE = _by_text(TimeInForce, "time_in_force")
_DEFAULT_TIME_IN_FORCE = {OrderType.LIMIT: TimeInForce.GTC, OrderType.MARKET: TimeInForce.IOC}


def parse_place_command(body: dict[str, Any], instruments: dict[str, Instrument]) -> PlaceCommand:
    """A schema-valid order body in engine units; ApiError for what the schema cannot check."""
    instrument = instruments.get(body["symbol"])
    if instrument is None:
        raise ApiError(400, "unknown_symbol", f"unknown symbol {body['symbol']!r}: see GET /api/symbols")
    units = codec(instrument)
    order_type = _ORDER_TYPES[body["type"]]
    try:
        quantity = units.quantity_to_lots(body["quantity"])
        price = body.get("price")
        if order_type is OrderType.LIMIT:
            if price is None:
                raise ApiError(400, "missing_price", "a limit order needs a price")
            price = units.price_to_ticks(price)
        elif price is not None:
            raise ApiError(400, "unexpected_price", "a market order takes no price")
    except InstrumentError as error:
        raise ApiError(400, error.code, error.message) from None
    tif = body.get("time_in_force")
    return PlaceCommand(
        instrument.symbol,
        _SIDES[body["side"]],
        order_type,
        quantity,
        price,
        _DEFAULT_TIME_IN_FORCE[order_type] if tif is None else _TIME_IN_FORCE[tif],
        body.get("client_order_id"),
    )


# Enum members go to orjson as they are: they are str enums, serialised as their value.


def order_json(order: Order, instrument: Instrument) -> dict[str, Any]:
    units = codec(instrument)
    lots = units.lots_to_quantity
    return {
        "id": order.order_id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "type": order.type,
        "price": None if order.price is None else units.ticks_to_price(order.price),
        "quantity": lots(order.quantity),
        "filled_quantity": lots(order.filled),
        "remaining_quantity": lots(order.remaining),
        "cancelled_quantity": lots(order.cancelled),
        "status": order.status,
        "time_in_force": order.time_in_force,
        "reason": order.reason,
        "timestamp_ns": order.timestamp_ns,
    }


def trade_json(trade: Trade, instrument: Instrument) -> dict[str, Any]:
    units = codec(instrument)
    return {
        "id": trade.trade_id,
        "symbol": trade.symbol,
        "price": units.ticks_to_price(trade.price),
        "quantity": units.lots_to_quantity(trade.quantity),
        "maker_order_id": trade.maker_order_id,
        "taker_order_id": trade.taker_order_id,
        "taker_side": trade.taker_side,
        "timestamp_ns": trade.timestamp_ns,
    }


def place_result_json(result: PlaceResult, instrument: Instrument) -> dict[str, Any]:
    body = order_json(result.order, instrument)  # added to, not merged into a new dict: once per order
    trades = result.trades
    # Most orders trade nothing: no comprehension (a function call in 3.11) for them.
    body["trades"] = [trade_json(trade, instrument) for trade in trades] if trades else []
    return body


def order_placement(exchange: Exchange) -> Handler:
    """``POST /api/orders`` with what it needs bound once: it runs for every order."""
    instruments = exchange.instruments
    place, admit = exchange.service.place, exchange.service.admit_order

    async def place_order(request: web.Request) -> web.Response:
        try:
            admit()
        except Overloaded as error:
            raise overloaded(error) from None
        body = await read_json(request)
        if not plain_order_request(body):  # the schema decides, and words the error, for anything unusual
            body = validated(validate_order_request, body)
            if type(body.get("price")) is float or type(body.get("quantity")) is float:
                body = await exact_amounts(request, body)
        command = parse_place_command(body, instruments)
        transport = request.transport
        if transport is None or transport.is_closing():
            # The client left while its order waited: matching and journalling it now would be work no one
            # waits for, and nothing was acknowledged, so dropping it loses nothing (counted as 499).
            return web.Response(status=CLIENT_CLOSED)
        try:
            result = await place(command)
        except EngineError as error:
            raise engine_error(error) from None
        except Overloaded as error:
            raise overloaded(error) from None
        # A repeated client order id answers 200 with the first result: nothing new was created. That
        # result is the first order's, which may be for another symbol than this request names.
        status = 200 if result.duplicate else 201
        return json_response(place_result_json(result, instruments[result.order.symbol]), status)

    return place_order


def ascii_digits(text: str) -> bool:
    """Only 0-9: ``str.isdigit`` also accepts '²' and '٣', which ``int`` then refuses or converts."""
    return text.isascii() and text.isdigit()


def order_id_from(request: web.Request) -> int:
    text = request.match_info["order_id"]
    if not ascii_digits(text) or len(text) > 18:
        raise ApiError(400, "invalid_order_id", f"order id {text!r} is not a positive integer")
    return int(text)


async def get_order(request: web.Request) -> web.Response:
    exchange = request.app[EXCHANGE]
    try:
        order = exchange.service.engine.get_order(order_id_from(request))
    except EngineError as error:
        raise engine_error(error) from None
    return json_response(order_json(order, exchange.instruments[order.symbol]))


async def cancel_order(request: web.Request) -> web.Response:
    exchange = request.app[EXCHANGE]
    try:
        order = await exchange.service.cancel(order_id_from(request))
    except EngineError as error:
        raise engine_error(error) from None
    except Overloaded as error:
        raise overloaded(error) from None
    return json_response(order_json(order, exchange.instruments[order.symbol]))


# -- market data -------------------------------------------------------------------------------


def bounded_int(request: web.Request, name: str, default: int, maximum: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not ascii_digits(text) or len(text) > 9 or not 1 <= int(text) <= maximum:
        raise ApiError(400, f"invalid_{name}", f"{name} must be an integer from 1 to {maximum}, got {text!r}")
    return int(text)


def instrument_from(request: web.Request) -> Instrument:
    symbol = request.match_info["symbol"]
    instrument = request.app[EXCHANGE].instruments.get(symbol)
    if instrument is None:
        raise ApiError(404, "unknown_symbol", f"unknown symbol {symbol!r}: see GET /api/symbols")
    return instrument


async def get_orderbook(request: web.Request) -> web.Response:
    instrument = instrument_from(request)
    depth = bounded_int(request, "depth", 10, MAX_DEPTH)
    book = request.app[EXCHANGE].service.engine.book(instrument.symbol)
    bids, asks = book.depth(depth)

    def levels(side: list[tuple[int, int]]) -> list[list[str]]:
        return [[instrument.ticks_to_price(p), instrument.lots_to_quantity(q)] for p, q in side]

    return json_response(
        {"symbol": instrument.symbol, "bids": levels(bids), "asks": levels(asks), "sequence": book.sequence}
    )


async def get_trades(request: web.Request) -> web.Response:
    instrument = instrument_from(request)
    limit = bounded_int(request, "limit", 50, MAX_TRADES)
    book = request.app[EXCHANGE].service.engine.book(instrument.symbol)
    recent = list(book.trades)[-limit:]
    recent.reverse()  # newest first
    return json_response({"symbol": instrument.symbol, "trades": [trade_json(t, instrument) for t in recent]})


async def get_symbols(request: web.Request) -> web.Response:
    instruments = request.app[EXCHANGE].instruments.values()
    return json_response({"symbols": [instrument.describe() for instrument in instruments]})


# -- operations --------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    """200 while the process can do its job; 503 once the journal failed, so an orchestrator restarts
    it (replay rebuilds the state). Overload is not ill health: restarting would only make it worse."""
    exchange = request.app[EXCHANGE]
    uptime = round(time.monotonic() - exchange.started_monotonic, 3)
    error = exchange.journal_error()
    journal = "disabled" if exchange.journal is None else "ok" if error is None else "failed"
    body: dict[str, Any] = {
        "status": "ok",
        "uptime_seconds": uptime,
        "journal": journal,
        "overloaded": exchange.overloaded(),
    }
    if error is not None:
        body.update(status="unhealthy", reason=str(error))
        return json_response(body, status=503)
    return json_response(body)


async def api_metrics(request: web.Request) -> web.Response:
    exchange = request.app[EXCHANGE]
    snapshot = exchange.metrics.snapshot(exchange.service.engine.resting_order_count, exchange.live_stats())
    return json_response(snapshot)


async def prometheus_metrics(request: web.Request) -> web.Response:
    exchange = request.app[EXCHANGE]
    body, content_type = exchange.metrics.render_prometheus(exchange.service.engine.resting_order_count)
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def add_trading_routes(app: web.Application) -> None:
    """The trading and operations routes; needs ``app[EXCHANGE]``."""
    add = partial(add_endpoint, app, app[EXCHANGE].metrics)
    add("POST", "/api/orders", order_placement(app[EXCHANGE]))
    add("GET", "/api/orders/{order_id}", get_order)
    add("DELETE", "/api/orders/{order_id}", cancel_order)
    add("GET", "/api/orderbook/{symbol}", get_orderbook)
    add("GET", "/api/trades/{symbol}", get_trades)
    add("GET", "/api/symbols", get_symbols)
    add("GET", "/api/metrics", api_metrics)
    add("GET", "/metrics", prometheus_metrics)
    add("GET", "/health", health)
