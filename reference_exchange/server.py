"""Process entry point: ``reference-exchange`` / ``python -m reference_exchange``.

Builds the application from Settings (env vars, then flags), replays the journal, starts the
simulation, serves until SIGTERM or SIGINT, then shuts down cleanly: simulation first, then the
HTTP server, then the journal (flushing what it buffered).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence

import uvloop
from aiohttp import web

from reference_exchange.admin import ADMISSION, add_admin_routes
from reference_exchange.admission import CoDelAdmission
from reference_exchange.api import EXCHANGE, ROUTES, Exchange, add_trading_routes
from reference_exchange.config import ConfigError, Settings, load_settings
from reference_exchange.endpoints import add_fallback
from reference_exchange.engine import MatchingEngine
from reference_exchange.gc_policy import settle_gc
from reference_exchange.http_guard import (
    ConnectionSweeper,
    GuardedSite,
    SweptConnection,
    connection_cap,
    quiet_bad_requests,
)
from reference_exchange.instruments import default_instruments
from reference_exchange.journal import Journal, JournalError
from reference_exchange.lean_http import LeanHttp
from reference_exchange.metrics import ServerMetrics
from reference_exchange.openapi import add_openapi_route
from reference_exchange.overload import LagMonitor, OverloadCollector
from reference_exchange.service import ExchangeService, ReplayError
from reference_exchange.simulation import Simulation

log = logging.getLogger("reference_exchange")

JOURNAL = web.AppKey("journal", Journal)
SIMULATION = web.AppKey("simulation", Simulation)


def create_app(settings: Settings, journal: Journal | None = None) -> web.Application:
    """The whole exchange as an aiohttp application; ``journal`` must already be open (it is replayed
    here: ``JournalError`` if it cannot be)."""
    instruments = default_instruments()
    engine = MatchingEngine(instruments, order_retention=settings.order_retention)
    metrics = ServerMetrics(window_s=settings.metrics_collection_time)
    lag = LagMonitor(settings.overload_max_lag)
    # Each connection waits on at most one order, so by default the bound is the connection cap: a fixed
    # bound below it would refuse orders for having many clients, not for a slow journal.
    max_pending = settings.max_pending_orders or connection_cap(settings.max_connections)
    service = ExchangeService(engine, journal, metrics, max_pending=max_pending, load=lag)
    app = web.Application(client_max_size=settings.max_body_bytes)  # no middleware: see endpoints.py
    exchange = Exchange(
        instruments=instruments, service=service, metrics=metrics, settings=settings, journal=journal, lag=lag
    )
    app[EXCHANGE] = exchange
    add_trading_routes(app)
    admission = (
        CoDelAdmission(settings.admission_target, settings.admission_interval, settings.admission_share)
        if settings.lean_http
        else None
    )
    add_admin_routes(app, settings.load_test_output_dir, admission)
    add_openapi_route(app)
    add_fallback(app, metrics)  # last: it takes whatever no other route did
    metrics.registry.register(
        OverloadCollector(lambda: (service.stats(), lag, exchange.journal_error() is None))
    )

    async def start_lag_monitor(_app: web.Application) -> None:
        lag.start()

    async def stop_lag_monitor(_app: web.Application) -> None:
        await lag.stop()

    app.on_startup.append(start_lag_monitor)
    app.on_cleanup.append(stop_lag_monitor)
    if journal is not None:
        app[JOURNAL] = journal
        try:
            replayed = service.replay(journal.replay())
        except ReplayError as error:
            raise JournalError(
                f"journal {journal.path} is corrupt or from another version: {error}; "
                "restore it from a backup or move it away"
            ) from error
        log.info("journal %s: replayed %d commands", journal.path, replayed)
    if settings.simulation_enabled:
        simulation = Simulation(
            service,
            instruments,
            settings.simulation_orders_per_sec,
            settings.simulation_workers,
            settings.simulation_symbols,
        )
        app[SIMULATION] = simulation
        app.on_startup.append(lambda _app: simulation.start())
        app.on_shutdown.append(lambda _app: simulation.stop())
    return app


async def serve(settings: Settings) -> None:
    journal = (
        Journal.open(settings.journal_path, settings.journal_sync, settings.journal_commit_interval)
        if settings.journal_path
        else None
    )
    if journal is not None:
        await journal.start()
    try:
        app = create_app(settings, journal)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        settle_gc(asyncio.get_running_loop())
        cap = connection_cap(settings.max_connections)
        server = runner.server
        assert server is not None
        lean = (
            LeanHttp(
                app[ROUTES],
                app[EXCHANGE].metrics,
                server,
                settings.max_body_bytes,
                app[ADMISSION],
            )
            if settings.lean_http
            else None
        )
        site = GuardedSite(
            runner,
            settings.host,
            settings.port,
            max_connections=cap,
            protocol=lean,
            open_connections=None if lean is None else lean.open_connections,
        )

        def connections() -> Iterator[SweptConnection]:
            yield from server.connections
            if lean is not None:
                yield from lean.connections

        await site.start()
        sweeper = asyncio.create_task(ConnectionSweeper(connections, settings.client_timeout).run())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        # The bound port matters when SERVER_PORT=0: runners read it from this line.
        host, port = runner.addresses[0][:2]
        print(f"reference-exchange listening on http://{host}:{port} (pid {os.getpid()})", flush=True)
        await stop.wait()
        log.info("shutting down")
        sweeper.cancel()
        await runner.cleanup()
    finally:
        if journal is not None:
            await journal.close()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings(argv, os.environ)
    except ConfigError as error:
        print(f"reference-exchange: error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.Formatter.converter = time.gmtime
    quiet_bad_requests()
    try:
        uvloop.run(serve(settings))
    except (JournalError, OSError) as error:
        print(f"reference-exchange: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
