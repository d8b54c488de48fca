"""The one middleware: every request timed and counted, every error answered in JSON.

Timing and error shaping used to be two middlewares; aiohttp runs each as one more coroutine per request
(plus its own ``_fix_request_current_app`` once there is any), so they are one here:

- the handler's ``ApiError`` and aiohttp's ``HTTPException`` (404 and 405 from the router, 413 from reading
  the body, ...) become the ``{"error": ...}`` JSON of ``errors.py``, anything else a logged 500 so shaped;
- the handling time and status go to ``ServerMetrics`` under the route pattern (``unmatched`` when no
  route matched), so label sets stay bounded.

A middleware rather than a wrapper per route because only a middleware sees the router's own 404/405,
including requests whose target has no path at all (``CONNECT host:port``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from time import perf_counter

from aiohttp import web

from reference_exchange.errors import ApiError, error_response, http_error_response
from reference_exchange.metrics import ServerMetrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

UNMATCHED = "unmatched"  # the route label of requests no route matched

log = logging.getLogger("reference_exchange.http")


def handled_requests(metrics: ServerMetrics) -> Middleware:
    """The middleware, recording into ``metrics``."""
    observe, route_stats = metrics.observe, metrics.route_stats

    @web.middleware
    async def handled(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = perf_counter()
        status = 500  # what is recorded if the handler is cancelled or re-raises a non-error status
        try:
            try:
                response = await handler(request)
            except ApiError as error:
                response = error_response(error.status, error.code, error.message, error.headers)
            except web.HTTPException as error:
                if error.status < 400:
                    raise
                response = http_error_response(error)
            except Exception:
                log.exception("unhandled error on %s %s", request.method, request.path)
                response = error_response(500, "internal_error", "internal error: see the server log")
            status = response.status
            return response
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else UNMATCHED
            observe(route_stats(route, request.method), status, perf_counter() - started)

    return handled
