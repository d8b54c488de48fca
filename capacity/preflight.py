"""Is the target the exchange API? Checked before any load is sent, by every engine.

A target that answers HTML 200 to everything, or 200 on /health and 500 elsewhere, used to give a
"completed" Locust run that sent nothing (every user died at start-up, visible only in locust.log). The
pre-flight reads what every generator needs first, ``GET /api/symbols``, and refuses a target whose answer
is not the exchange's symbol list or lacks a symbol the scenario trades. The refusal names the request and
what came back: ``GET http://127.0.0.1:8081/api/symbols answered 200 (text/html) without the exchange's
symbol list: not the exchange API``. Orders are not tried: the generators' error accounting reports an
order endpoint that fails, as the server's limit.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence

from capacity.order_flow import Market

#: How long the pre-flight waits for the symbol list; a healthy exchange answers in milliseconds.
PREFLIGHT_TIMEOUT_S = 10.0


class TargetNotTheApi(Exception):
    """The target does not speak the exchange API (one line saying what was asked and what came back)."""


def fetch_market(url: str, symbols: Sequence[str], timeout_s: float = PREFLIGHT_TIMEOUT_S) -> Market:
    """Instruments from ``GET {url}/api/symbols``; TargetNotTheApi unless it is the exchange API and lists
    every symbol in ``symbols``."""
    address = url.rstrip("/") + "/api/symbols"
    try:
        with urllib.request.urlopen(address, timeout=timeout_s) as response:
            status, content_type, body = (
                response.status,
                response.headers.get("Content-Type", ""),
                response.read(),
            )
    except urllib.error.HTTPError as error:
        raise TargetNotTheApi(f"GET {address} answered HTTP {error.code}: not the exchange API") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise TargetNotTheApi(f"GET {address} failed: {reason}") from None
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
