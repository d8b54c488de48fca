"""Admin routes: ``/demo/*`` (chaos injection; the load-test demo goes here too) and book checksums.

Access (``admin_only``): a request is served when it comes from a loopback address (127.0.0.0/8,
::1, or IPv4-mapped loopback) or carries the configured ADMIN_TOKEN as ``Authorization: Bearer
<token>`` or ``X-Admin-Token: <token>``, compared in constant time. Anything else gets 403 JSON.
The decision looks at the TCP peer only, never at X-Forwarded-For: behind a reverse proxy on the same
host every client looks local, so there keep /demo/ off the proxy or rely on the token alone.

Chaos (``/demo/chaos-test``): the seed's ``{"type": "latency_injection", "duration": 60,
"parameters": {"latency_ms": 50}}`` makes every journal commit sleep that long first, for that many
seconds (or a duration such as "60s"), and then stops by itself. GET shows what is active, DELETE
ends it early, a new POST replaces the one in progress. It needs the journal: with JOURNAL_PATH=none
there is nothing to slow down and POST answers 409.

Admission (``/demo/admission``): GET shows the lean path's admission controller (``admission.py``): its
settings, whether a standing queue has it refusing, how many it refused and the Retry-After it gives; PUT
changes ``share``, ``target_s`` or ``interval_s`` while running, until a restart (409 with LEAN_HTTP=off).

Load test (``/demo/load-test``): the seed's body starts a capacity run against this exchange itself
(``load_test_request.py`` checks the body, ``load_test.py`` launches and tracks the run): POST answers 202
with the run id and ``status_url``; GET ``/demo/load-test/{run_id}`` shows progress and, once it has ended,
capacity's summary of the run; GET ``/demo/load-test`` lists recent ones; DELETE
``/demo/load-test/{run_id}`` cancels. One at a time (409 names the running one).
"""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web

from reference_exchange import load_test, load_test_request
from reference_exchange.admission import CoDelAdmission
from reference_exchange.api import EXCHANGE, json_response, read_json, validated
from reference_exchange.config import ConfigError, parse_duration
from reference_exchange.endpoints import add_endpoint
from reference_exchange.errors import ApiError
from reference_exchange.schemas import (
    MAX_CHAOS_DURATION_S,
    MIN_CHAOS_DURATION_S,
    validate_admission_request,
    validate_chaos_request,
)

log = logging.getLogger("reference_exchange.admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ADMIN_TOKEN_HEADER = "X-Admin-Token"
FORBIDDEN_MESSAGE = (
    "admin routes answer loopback clients, or requests with the admin token "
    f"(Authorization: Bearer <token> or {ADMIN_TOKEN_HEADER}: <token>; the server sets it with ADMIN_TOKEN)"
)


# --- access ---------------------------------------------------------------------------------------


def is_loopback(remote: str | None) -> bool:
    """Whether the peer address ``remote`` is a loopback address (IPv4-mapped IPv6 included)."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def presented_tokens(headers: Mapping[str, str]) -> list[str]:
    """The tokens a request carries: ``Authorization: Bearer <token>`` and/or ``X-Admin-Token``."""
    tokens = []
    scheme, _, credentials = headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        tokens.append(credentials.strip())
    header_token = headers.get(ADMIN_TOKEN_HEADER, "").strip()
    if header_token:
        tokens.append(header_token)
    return tokens


def token_matches(presented: str | None, expected: str | None) -> bool:
    """Constant-time comparison; False when either side is missing (no token configured = no access)."""
    if not presented or not expected:
        return False
    # Bytes, not str: compare_digest refuses non-ASCII str, and a header may hold anything.
    # surrogatepass keeps distinct inputs distinct even when they are not valid UTF-8.
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def admin_allowed(remote: str | None, headers: Mapping[str, str], token: str | None) -> bool:
    """The access decision for admin routes (see the module docstring): either header may carry it."""
    if is_loopback(remote):
        return True
    # Every presented token is compared (no early exit), so timing does not say which one was wrong.
    matches = [token_matches(presented, token) for presented in presented_tokens(headers)]
    return any(matches)


def admin_only(handler: Handler) -> Handler:
    """Wrap an admin handler: 403 JSON unless ``admin_allowed``; checked before the body is read."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        token = request.app[EXCHANGE].settings.admin_token
        if not admin_allowed(request.remote, request.headers, token):
            log.info("refused admin request %s %s from %s", request.method, request.path, request.remote)
            raise ApiError(403, "forbidden", FORBIDDEN_MESSAGE)
        return await handler(request)

    guarded.__name__ = getattr(handler, "__name__", "admin_handler")
    guarded.__doc__ = handler.__doc__
    return guarded


# --- chaos ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class ChaosRun:
    """What was asked for, to report alongside the journal's own view of the injection."""

    latency_ms: float
    duration_s: float
    started_wall: float
    started_monotonic: float


ADMISSION = web.AppKey("admission", CoDelAdmission)  # absent with LEAN_HTTP=off
CHAOS = web.AppKey("chaos", dict)  # {"run": ChaosRun | None}; a dict because the app is frozen later


def _iso(timestamp: float) -> str:
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _describe(run: ChaosRun, remaining_s: float) -> dict[str, Any]:
    return {
        "type": "latency_injection",
        "latency_ms": run.latency_ms,
        "duration_s": run.duration_s,
        "remaining_s": round(remaining_s, 3),
        "started_at": _iso(run.started_wall),
        "ends_at": _iso(run.started_wall + run.duration_s),
    }


def _chaos_status(request: web.Request) -> dict[str, Any] | None:
    """The active injection as the API shows it, or None (also once it has run out)."""
    journal = request.app[EXCHANGE].journal
    live = journal.chaos_status() if journal is not None else None
    run: ChaosRun | None = request.app[CHAOS].get("run")
    if live is None or run is None:
        request.app[CHAOS]["run"] = None
        return None
    return _describe(run, live["remaining_s"])


def chaos_duration_s(value: float | str) -> float:
    """Seconds from the request's ``duration`` (already schema-checked): a number or "60s"-style text."""
    if isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ConfigError:  # the schema's pattern makes this unreachable; keep the 400 anyway
            raise ApiError(400, "invalid_request", f"body.duration {value!r} is not a duration") from None
    else:
        seconds = float(value)
    if not MIN_CHAOS_DURATION_S <= seconds <= MAX_CHAOS_DURATION_S:
        raise ApiError(
            400,
            "invalid_request",
            f"body.duration must be from 1ms to 1h ({MAX_CHAOS_DURATION_S} s), got {value!r}",
        )
    return seconds


@admin_only
async def start_chaos(request: web.Request) -> web.Response:
    """POST /demo/chaos-test: start (or replace) a latency injection."""
    body = validated(validate_chaos_request, await read_json(request))
    duration_s = chaos_duration_s(body["duration"])
    latency_ms = float(body["parameters"]["latency_ms"])
    journal = request.app[EXCHANGE].journal
    if journal is None:
        raise ApiError(
            409,
            "journal_disabled",
            "chaos latency injection needs the journal (it slows down journal commits), "
            "but this exchange runs without one: start it with JOURNAL_PATH set",
        )
    journal.inject_latency(latency_ms / 1000, duration_s)
    run = ChaosRun(latency_ms, duration_s, time.time(), time.monotonic())
    request.app[CHAOS]["run"] = run
    log.warning(
        "chaos: +%g ms on every journal commit for %g s (requested by %s)",
        latency_ms,
        duration_s,
        request.remote,
    )
    # Described from the request, not read back: a 1 ms injection may be over by the time we answer.
    return json_response({"active": _describe(run, duration_s)})


@admin_only
async def get_chaos(request: web.Request) -> web.Response:
    """GET /demo/chaos-test: the active injection, or ``{"active": null}``."""
    return json_response({"active": _chaos_status(request)})


@admin_only
async def stop_chaos(request: web.Request) -> web.Response:
    """DELETE /demo/chaos-test: end the injection now (a no-op when none is active)."""
    ended = _chaos_status(request)
    journal = request.app[EXCHANGE].journal
    if journal is not None:
        journal.clear_chaos()
    request.app[CHAOS]["run"] = None
    if ended is not None:
        log.warning("chaos: ended early by %s", request.remote)
    return json_response({"active": None, "ended": ended})


# --- load test ------------------------------------------------------------------------------------

LOAD_TESTS = web.AppKey("load_tests", load_test.LoadTests)


def _url_host(address: str) -> str | None:
    """``address`` as the host part of a loopback URL, or None if it is not a loopback address."""
    if not is_loopback(address):
        return None
    mapped = address.removeprefix("::ffff:")
    return mapped if "." in mapped else f"[{address.split('%', 1)[0]}]"


def own_url(request: web.Request) -> str:
    """This exchange's own URL over loopback: the port the request came in on, on a loopback address.

    An exchange listening on one non-loopback address only cannot be load-tested from here: capacity
    sends load over loopback only (409)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        raise ApiError(409, "no_loopback", "cannot tell which port this exchange listens on")
    address, port = str(sockname[0]), int(sockname[1])
    host = _url_host(address)
    if host is None:
        configured = request.app[EXCHANGE].settings.host
        if configured in ("0.0.0.0", "", "*"):
            host = "127.0.0.1"
        elif configured == "::":
            host = "[::1]"
        else:
            raise ApiError(
                409,
                "no_loopback",
                f"this exchange listens on {configured} only, and capacity sends load over loopback only: "
                "start it with SERVER_HOST=127.0.0.1 (or 0.0.0.0) to run load tests against it",
            )
    return f"http://{host}:{port}"


@admin_only
async def start_load_test(request: web.Request) -> web.Response:
    """POST /demo/load-test: start a capacity run against this exchange; 202 with where to follow it."""
    exchange = request.app[EXCHANGE]
    plan = load_test_request.parse_request(await read_json(request), tuple(exchange.instruments))
    problem = load_test.toolkit_problem()
    if problem is not None:
        raise ApiError(503, "toolkit_not_installed", problem)
    test = await request.app[LOAD_TESTS].start(plan, own_url(request), os.getpid())
    response = json_response(test.describe(), status=202)
    response.headers["Location"] = test.status_url
    return response


@admin_only
async def list_load_tests(request: web.Request) -> web.Response:
    """GET /demo/load-test: the running load test's id and the recent ones, newest first."""
    return json_response(request.app[LOAD_TESTS].listing())


@admin_only
async def get_load_test(request: web.Request) -> web.Response:
    """GET /demo/load-test/{run_id}: state, progress and, once ended, the result."""
    return json_response(request.app[LOAD_TESTS].get(request.match_info["run_id"]).describe())


@admin_only
async def cancel_load_test(request: web.Request) -> web.Response:
    """DELETE /demo/load-test/{run_id}: stop it (what was measured is kept); answers once it has stopped."""
    tests = request.app[LOAD_TESTS]
    test = tests.get(request.match_info["run_id"])
    if test.finished:
        raise ApiError(409, "load_test_finished", f"load test {test.run_id} has already ended ({test.state})")
    await tests.cancel(test, f"DELETE from {request.remote}")
    return json_response(test.describe())


# --- the admission controller -----------------------------------------------------------------------


def _admission(request: web.Request) -> CoDelAdmission:
    if ADMISSION not in request.app:
        raise ApiError(
            409,
            "admission_off",
            "this exchange runs with LEAN_HTTP=off, where no admission controller runs "
            "(the loop-lag bound OVERLOAD_MAX_LAG sheds instead)",
        )
    return request.app[ADMISSION]


def _admission_state(admission: CoDelAdmission) -> dict[str, Any]:
    return {
        "share": admission.share,
        "target_s": admission.target_s,
        "interval_s": admission.interval_s,
        "standing": admission.standing,
        "refused": admission.refused,
        "last_turn_s": admission.last_turn_s,
        "retry_after_s": admission.retry_after_s(),
    }


@admin_only
async def get_admission(request: web.Request) -> web.Response:
    """GET /demo/admission: the controller's settings and state."""
    return json_response(_admission_state(_admission(request)))


@admin_only
async def retune_admission(request: web.Request) -> web.Response:
    """PUT /demo/admission: change any of share, target_s, interval_s while running (an SRE's knob, and
    how ``benchmarks/admission_shares.py`` compares two shares within one run)."""
    body = validated(validate_admission_request, await read_json(request))
    admission = _admission(request)
    admission.retune(body.get("target_s"), body.get("interval_s"), body.get("share"))
    log.warning("admission: now %s (requested by %s)", body, request.remote)
    return json_response(_admission_state(admission))


# --- diagnostics ----------------------------------------------------------------------------------


@admin_only
async def book_checksums(request: web.Request) -> web.Response:
    """GET /api/books/checksum: ``OrderBook.checksum()`` per symbol, to compare with a journal replay.

    Admin-only because it walks every resting order (O(n)), unlike the public market-data routes."""
    exchange = request.app[EXCHANGE]
    engine = exchange.service.engine
    return json_response(
        {
            "checksums": {symbol: book.checksum() for symbol, book in engine.books.items()},
            "resting_orders": engine.resting_order_count,
            "journal_sequence": None if exchange.journal is None else exchange.journal.last_sequence,
        }
    )


def add_admin_routes(
    app: web.Application, load_test_output_dir: str, admission: CoDelAdmission | None
) -> None:
    """Admin routes; every handler here is wrapped in ``admin_only``. Needs ``app[EXCHANGE]``.
    ``admission``: the lean path's controller (``app[ADMISSION]``), None with LEAN_HTTP=off."""
    add = partial(add_endpoint, app, app[EXCHANGE].metrics)
    if admission is not None:
        app[ADMISSION] = admission
    add("GET", "/demo/admission", get_admission)
    add("PUT", "/demo/admission", retune_admission)
    app[CHAOS] = {"run": None}
    add("POST", "/demo/chaos-test", start_chaos)
    add("GET", "/demo/chaos-test", get_chaos)
    add("DELETE", "/demo/chaos-test", stop_chaos)
    app[LOAD_TESTS] = load_test.LoadTests(Path(load_test_output_dir))
    add("POST", "/demo/load-test", start_load_test)
    add("GET", "/demo/load-test", list_load_tests)
    add("GET", "/demo/load-test/{run_id}", get_load_test)
    add("DELETE", "/demo/load-test/{run_id}", cancel_load_test)

    async def stop_load_test(app: web.Application) -> None:
        await app[LOAD_TESTS].shutdown()

    app.on_shutdown.append(stop_load_test)
    add("GET", "/api/books/checksum", book_checksums)
