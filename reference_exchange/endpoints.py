"""Route registration: every request timed and counted, every error answered in JSON, with no middleware.

aiohttp runs each middleware as one more coroutine per request, and as soon as there is one it adds its own
(``_fix_request_current_app``) and an ``lru_cache`` lookup to build the chain, a sizeable share of the
order route's server CPU (docs/benchmarks.md). So each handler is wrapped once, at registration, by
``instrumented``, which knows its route pattern and method up front (no label lookup per request):

- the handler's ``ApiError`` and aiohttp ``HTTPException`` (413 from reading the body, ...) become the
  ``{"error": ...}`` JSON of ``errors.py``, anything else a logged 500 so shaped; a client that closed
  its connection mid-request is counted as 499 and not logged;
- the handling time and status go to ``ServerMetrics`` under the route pattern.

What no route takes is handled by ``add_fallback``: a catch-all route, resolved after every other, answers
aiohttp's own 404 or 405 (with ``Allow``) the same way, counted as ``unmatched``. A request whose target has
no path at all (``CONNECT host:port``) never reaches a route; aiohttp answers it with its plain-text 404,
which a response-prepare hook rewrites into the same JSON (counted as ``unmatched`` with a handling time
of 0: nothing ran). The hook costs an order a small part of what the middleware it replaces did.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from time import perf_counter

from aiohttp import web

from reference_exchange.errors import (
    INTERNAL_ERROR,
    ApiError,
    error_response,
    http_error_body,
    http_error_response,
)
from reference_exchange.metrics import ServerMetrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UNMATCHED = "unmatched"  # the route label of requests no route matched
CLIENT_CLOSED = 499  # nginx's status for a request whose client closed the connection first
_FALLBACK_PATH = r"/{unmatched_path:[\s\S]*}"  # any path, newlines included

log = logging.getLogger("reference_exchange.http")


def instrumented(handler: Handler, metrics: ServerMetrics, route: str, method: str | None) -> Handler:
    """``handler`` answering errors in JSON and recording every request under (``route``, ``method``);
    ``method`` None: the request's own."""
    stats = None if method is None else metrics.route_stats(route, method)
    observe = metrics.observe

    async def endpoint(request: web.Request) -> web.StreamResponse:
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
            except ConnectionResetError:
                # The client left before its request was read (aiohttp's "Connection lost"): no answer can
                # reach it, and it is no error of the server's. Counted as nginx's 499, never as a 500;
                # aiohttp drops the answer quietly (re-raised, it would log a traceback as a 500).
                response = web.Response(status=CLIENT_CLOSED)
            except Exception:
                log.exception("unhandled error on %s %s", request.method, request.path)
                response = error_response(*INTERNAL_ERROR)
            status = response.status
            return response
        finally:
            seconds = perf_counter() - started
            observe(stats or metrics.route_stats(route, request.method), status, seconds)

    return endpoint


def add_endpoint(
    app: web.Application, metrics: ServerMetrics, method: str, path: str, handler: Handler
) -> None:
    """``app.router.add_route`` with the handler ``instrumented``; GET also answers HEAD, as in aiohttp."""
    for each in ("HEAD", "GET") if method == "GET" else (method,):
        app.router.add_route(each, path, instrumented(handler, metrics, path, each))


def add_fallback(app: web.Application, metrics: ServerMetrics) -> None:
    """The catch-all for unmatched requests, and the hook for those without a path; add it last."""
    resource = app.router.add_resource(_FALLBACK_PATH)

    async def unmatched(request: web.Request) -> web.StreamResponse:
        # The router only gets here when no route took the request; ask the others which methods their
        # path allows, as aiohttp does, to tell 405 from 404.
        allowed: set[str] = set()
        for other in app.router.resources():
            if other is not resource:
                allowed |= (await other.resolve(request))[1]
        if allowed:
            raise web.HTTPMethodNotAllowed(request.method, allowed)
        raise web.HTTPNotFound()

    resource.add_route("*", instrumented(unmatched, metrics, UNMATCHED, None))

    async def json_router_errors(request: web.Request, response: web.StreamResponse) -> None:
        # Only aiohttp's own error responses arrive here as HTTPException: every route returns a Response.
        # The status first: isinstance against an aiohttp response class is a Python-level ABC check.
        if response.status >= 400 and isinstance(response, web.HTTPException):
            body = response.body = http_error_body(response)
            # Set both headers outright: aiohttp has already sized the plain-text body it replaces.
            response.headers.update({"Content-Type": "application/json", "Content-Length": str(len(body))})
            metrics.observe(metrics.route_stats(UNMATCHED, request.method), response.status, 0.0)

    app.on_response_prepare.append(json_router_errors)
