"""HTTP transport for trading: orders, books, trades, symbols, health and metrics.

Handlers translate between JSON (decimal strings) and the service (integer ticks and lots); they
hold no trading logic of their own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, NamedTuple, TypeVar

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


class Reply(NamedTuple):
    """A route's answer before any HTTP framing: the lean path (``lean_http``) writes it as bytes, the aiohttp
    path wraps it in a ``web.Response`` (``as_response``); both frame it identically."""

    status: int
    body: bytes
    headers: Mapping[str, str] | None = None


def reply(payload: Any, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(payload))


def as_response(answer: Reply) -> web.Response:
    return web.Response(
        status=answer.status, body=answer.body, content_type="application/json", headers=answer.headers
    )


def json_response(payload: Any, status: int = 200) -> web.Response:
    return as_response(reply(payload, status))


async def read_raw(request: web.Request) -> bytes:
    """The body's bytes; aiohttp raises 413 itself past client_max_size. A body that cannot be decoded
    (garbage sent as ``Content-Encoding: gzip``, a broken chunked encoding) is the client's 400."""
    try:
        return await read_body(request, request.app[EXCHANGE].settings.client_timeout)
    except RequestPayloadError as error:
        raise ApiError(400, "invalid_body", f"request body could not be read: {error}") from None


def parse_json(raw: bytes) -> Any:
    if not raw:
        raise ApiError(400, "invalid_json", "request body is empty: expected a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {error}") from None


async def read_json(request: web.Request) -> Any:
    return parse_json(await read_raw(request))


def exact_amounts(raw: bytes, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with a price or quantity sent as a JSON number read exactly as written: orjson reads
    numbers as floats, and ``40000.0000000000000001`` is the float 40000.0, which would be accepted as a
    price the client never sent. Read again from the bytes with decimal numbers (rare: clients send
    strings)."""
    exact = json.loads(raw, parse_float=Decimal)
    amounts = {
        key: format(exact[key], "f") for key in ("price", "quantity") if type(exact.get(key)) is Decimal
    }
    return {**body, **amounts}


def validated(validate: Callable[[Any], Any], body: Any) -> Any:
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


def ascii_digits(text: str) -> bool:
    """Only 0-9: ``str.isdigit`` also accepts '²' and '٣', which ``int`` then refuses or converts."""
    return text.isascii() and text.isdigit()


def parse_order_id(text: str) -> int:
    if not ascii_digits(text) or len(text) > 18:
        raise ApiError(400, "invalid_order_id", f"order id {text!r} is not a positive integer")
    return int(text)


def bounded_int(name: str, text: str | None, default: int, maximum: int) -> int:
    if text is None:
        return default
    if not ascii_digits(text) or len(text) > 9 or not 1 <= int(text) <= maximum:
        raise ApiError(400, f"invalid_{name}", f"{name} must be an integer from 1 to {maximum}, got {text!r}")
    return int(text)


class TradingRoutes:
    """The trading and operations routes without HTTP: each takes the parts of the request it reads and
    returns a ``Reply`` or raises ``ApiError``. The aiohttp handlers (``add_trading_routes``) and the lean
    path (``lean_http``) both call these, so the two cannot answer differently."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self._instruments = exchange.instruments
        self._place, self._admit = exchange.service.place, exchange.service.admit_order

    def admit_order(self, by_lag: bool = True) -> None:
        """Refuse a new order now if the service would (before its body is read: a cheap refusal).
        ``by_lag=False`` where the lean path's admission decides instead of the loop-lag bound."""
        try:
            self._admit(by_lag)
        except Overloaded as error:
            raise overloaded(error) from None

    async def place_order(
        self, raw: bytes, transport: asyncio.BaseTransport | None, by_lag: bool = True
    ) -> Reply:
        """``POST /api/orders`` once admitted (``admit_order``, the same ``by_lag``) and its body read."""
        body = parse_json(raw)
        if not plain_order_request(body):  # the schema decides, and words the error, for anything unusual
            body = validated(validate_order_request, body)
            if type(body.get("price")) is float or type(body.get("quantity")) is float:
                body = exact_amounts(raw, body)
        command = parse_place_command(body, self._instruments)
        if transport is None or transport.is_closing():
            # The client left while its order waited: matching and journalling it now would be work no one
            # waits for, and nothing was acknowledged, so dropping it loses nothing (counted as 499).
            return Reply(CLIENT_CLOSED, b"")
        try:
            result = await self._place(command, by_lag)
        except EngineError as error:
            raise engine_error(error) from None
        except Overloaded as error:
            raise overloaded(error) from None
        # A repeated client order id answers 200 with the first result: nothing new was created. That
        # result is the first order's, which may be for another symbol than this request names.
        status = 200 if result.duplicate else 201
        return reply(place_result_json(result, self._instruments[result.order.symbol]), status)

    def get_order(self, order_id: str) -> Reply:
        try:
            order = self.exchange.service.engine.get_order(parse_order_id(order_id))
        except EngineError as error:
            raise engine_error(error) from None
        return reply(order_json(order, self._instruments[order.symbol]))

    async def cancel_order(self, order_id: str) -> Reply:
        try:
            order = await self.exchange.service.cancel(parse_order_id(order_id))
        except EngineError as error:
            raise engine_error(error) from None
        except Overloaded as error:
            raise overloaded(error) from None
        return reply(order_json(order, self._instruments[order.symbol]))

    def _instrument(self, symbol: str) -> Instrument:
        instrument = self._instruments.get(symbol)
        if instrument is None:
            raise ApiError(404, "unknown_symbol", f"unknown symbol {symbol!r}: see GET /api/symbols")
        return instrument

    def orderbook(self, symbol: str, depth: str | None) -> Reply:
        instrument = self._instrument(symbol)
        book = self.exchange.service.engine.book(instrument.symbol)
        bids, asks = book.depth(bounded_int("depth", depth, 10, MAX_DEPTH))

        def levels(side: list[tuple[int, int]]) -> list[list[str]]:
            return [[instrument.ticks_to_price(p), instrument.lots_to_quantity(q)] for p, q in side]

        sequence = book.sequence
        return reply(
            {"symbol": instrument.symbol, "bids": levels(bids), "asks": levels(asks), "sequence": sequence}
        )

    def trades(self, symbol: str, limit: str | None) -> Reply:
        instrument = self._instrument(symbol)
        count = bounded_int("limit", limit, 50, MAX_TRADES)
        recent = list(self.exchange.service.engine.book(instrument.symbol).trades)[-count:]
        recent.reverse()  # newest first
        return reply({"symbol": instrument.symbol, "trades": [trade_json(t, instrument) for t in recent]})

    def symbols(self) -> Reply:
        return reply({"symbols": [instrument.describe() for instrument in self._instruments.values()]})

    def health(self) -> Reply:
        """200 while the process can do its job; 503 once the journal failed, so an orchestrator restarts
        it (replay rebuilds the state). Overload is not ill health: restarting would only make it worse."""
        exchange = self.exchange
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
            return reply(body, status=503)
        return reply(body)


ROUTES = web.AppKey("routes", TradingRoutes)


def order_placement(routes: TradingRoutes) -> Handler:
    """``POST /api/orders`` on aiohttp: refused before its body is read, then ``place_order``."""

    async def place_order(request: web.Request) -> web.Response:
        routes.admit_order()
        return as_response(await routes.place_order(await read_raw(request), request.transport))

    return place_order


async def get_order(request: web.Request) -> web.Response:
    return as_response(request.app[ROUTES].get_order(request.match_info["order_id"]))


async def cancel_order(request: web.Request) -> web.Response:
    return as_response(await request.app[ROUTES].cancel_order(request.match_info["order_id"]))


async def get_orderbook(request: web.Request) -> web.Response:
    symbol = request.match_info["symbol"]
    return as_response(request.app[ROUTES].orderbook(symbol, request.query.get("depth")))


async def get_trades(request: web.Request) -> web.Response:
    symbol = request.match_info["symbol"]
    return as_response(request.app[ROUTES].trades(symbol, request.query.get("limit")))


async def get_symbols(request: web.Request) -> web.Response:
    return as_response(request.app[ROUTES].symbols())


async def health(request: web.Request) -> web.Response:
    return as_response(request.app[ROUTES].health())


# -- operations --------------------------------------------------------------------------------


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
    app[ROUTES] = TradingRoutes(app[EXCHANGE])
    add = partial(add_endpoint, app, app[EXCHANGE].metrics)
    add("POST", "/api/orders", order_placement(app[ROUTES]))
    add("GET", "/api/orders/{order_id}", get_order)
    add("DELETE", "/api/orders/{order_id}", cancel_order)
    add("GET", "/api/orderbook/{symbol}", get_orderbook)
    add("GET", "/api/trades/{symbol}", get_trades)
    add("GET", "/api/symbols", get_symbols)
    add("GET", "/api/metrics", api_metrics)
    add("GET", "/metrics", prometheus_metrics)
    add("GET", "/health", health)
