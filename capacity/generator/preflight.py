"""Is the target the exchange API? Checked before any load is sent, by every engine.

A target that answers HTML 200 to everything, or 200 on /health and 500 elsewhere, used to give a
"completed" Locust run that sent nothing (every user died at start-up, visible only in locust.log). The
pre-flight reads what every generator needs first, ``GET /api/symbols``, and refuses a target whose answer
is not the exchange's symbol list or lacks a symbol the scenario trades. The refusal names the request and
what came back: ``GET http://127.0.0.1:8081/api/symbols answered 200 (text/html) without the exchange's
symbol list: not the exchange API``.

Then ``check_round_trip`` tries what the scenario will send, once: a scenario that sends orders places one
passive limit order (one lot, a tick below the reference price, its own client order id) and cancels it;
a read-only mix reads one order book. A target that lists symbols but refuses orders (a read-only
replica, a mock, the wrong version) is refused here, before its errors would be read as its capacity.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from capacity.generator.order_flow import BOOK_DEPTH, ORDERS_PATH, Market
from capacity.scenario import Scenario

#: How long the pre-flight waits for the symbol list; a healthy exchange answers in milliseconds.
PREFLIGHT_TIMEOUT_S = 10.0


class TargetNotTheApi(Exception):
    """The target does not speak the exchange API (one line saying what was asked and what came back)."""


def fetch_market(url: str, symbols: Sequence[str], timeout_s: float = PREFLIGHT_TIMEOUT_S) -> Market:
    """Instruments from ``GET {url}/api/symbols``; TargetNotTheApi unless it is the exchange API and lists
    every symbol in ``symbols``."""
    address = url.rstrip("/") + "/api/symbols"
    status, content_type, body = _fetch("GET", address, None, timeout_s)
    try:
        market = Market.from_symbols_response(json.loads(body))
    except (ValueError, KeyError, TypeError, AttributeError, ArithmeticError):
        shown = content_type or "no Content-Type"
        raise TargetNotTheApi(
            f"GET {address} answered {status} ({shown}) without the exchange's symbol list: "
            "not the exchange API"
        ) from None
    missing = market.missing(symbols)
    if missing:
        raise TargetNotTheApi(f"the scenario trades symbols {address} does not list: {', '.join(missing)}")
    return market


def check_round_trip(
    url: str, scenario: Scenario, market: Market, timeout_s: float = PREFLIGHT_TIMEOUT_S
) -> None:
    """What ``scenario`` sends, tried once: an order placed and cancelled when its mix sends orders, else
    one book read. TargetNotTheApi naming the request and its answer otherwise."""
    base = url.rstrip("/")
    symbol = scenario.load.symbols[0]
    mix = scenario.mix
    if mix.limit + mix.market + mix.cancel == 0:
        book = _request("GET", f"{base}/api/orderbook/{symbol}?depth={BOOK_DEPTH}", None, timeout_s)
        if not isinstance(book.get("bids"), list) or not isinstance(book.get("asks"), list):
            raise TargetNotTheApi(f"GET {base}/api/orderbook/{symbol} answered without bids and asks")
        return
    order = {
        "symbol": symbol,
        "side": "buy",
        "type": "limit",
        "price": market.price_text(symbol, max(market.mid(symbol) - 1, 1)),
        "quantity": market.quantity_text(symbol, 1),
        "time_in_force": "gtc",
        "client_order_id": f"capacity-preflight-{os.getpid()}",
    }
    placed = _request("POST", base + ORDERS_PATH, order, timeout_s)
    order_id = placed.get("id")
    if not isinstance(order_id, int) or isinstance(order_id, bool):
        raise TargetNotTheApi(f"POST {base}{ORDERS_PATH} answered without an order id: not the exchange API")
    if placed.get("status") in ("new", "partially_filled"):  # it rests: take it off the book again
        _request("DELETE", f"{base}{ORDERS_PATH}/{order_id}", None, timeout_s)


def _fetch(
    method: str, address: str, body: dict[str, Any] | None, timeout_s: float
) -> tuple[int, str, bytes]:
    """Status, Content-Type and body of a 2xx answer to ``method address``; TargetNotTheApi saying what
    came back (the status and the start of the body) or why nothing did."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(address, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        detail = error.read(300).decode("utf-8", "replace").strip()
        said = f": {detail}" if detail else ""
        raise TargetNotTheApi(f"{method} {address} answered HTTP {error.code}{said}") from None
    except (urllib.error.URLError, OSError) as error:
        raise TargetNotTheApi(f"{method} {address} failed: {getattr(error, 'reason', error)}") from None


def _request(method: str, address: str, body: dict[str, Any] | None, timeout_s: float) -> dict[str, Any]:
    """The JSON object ``method address`` answers with a 2xx; TargetNotTheApi saying what came back."""
    status, content_type, payload = _fetch(method, address, body, timeout_s)
    try:
        parsed = json.loads(payload)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        shown = content_type or "no Content-Type"
        raise TargetNotTheApi(
            f"{method} {address} answered {status} ({shown}), not a JSON object: not the exchange API"
        )
    return parsed
