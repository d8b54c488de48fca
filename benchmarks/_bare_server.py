"""The baseline for HTTP efficiency: a bare aiohttp app speaking the exchange's order API with no exchange.

Same framework and event loop (aiohttp on uvloop, no access log), same JSON library (orjson) in and out:
``POST /api/orders`` parses the body and answers 201 with an order-shaped document; ``DELETE
/api/orders/{id}`` and ``GET /api/orderbook/{symbol}`` answer canned documents; ``GET /api/symbols`` and
``/health`` are there so the exchange's clients (capacity's Locust user) start against it. What the
exchange does beyond this (validation, the engine, metrics, overload control) is what the ratio measures.

``BareServer`` runs it as a subprocess the way ``EmbeddedExchange`` runs the exchange (same start-up line,
pinning, health wait and stop).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time

import orjson
import psutil
import uvloop
from aiohttp import web

from capacity.run.exchange_process import READY_PREFIX, EmbeddedExchange
from reference_exchange.instruments import DEFAULT_INSTRUMENTS

SYMBOLS = {
    "symbols": [
        {
            "symbol": i.symbol,
            "tick_size": str(i.tick_size),
            "lot_size": str(i.lot_size),
            "reference_price": str(i.reference_price),
        }
        for i in DEFAULT_INSTRUMENTS
    ]
}
ids = itertools.count(1)


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")


async def place(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    quantity = body.get("quantity", "0")
    return _json(
        {
            "id": next(ids),
            "client_order_id": body.get("client_order_id"),
            "symbol": body.get("symbol"),
            "side": body.get("side"),
            "type": body.get("type"),
            "price": body.get("price"),
            "quantity": quantity,
            "filled_quantity": "0",
            "remaining_quantity": quantity,
            "cancelled_quantity": "0",
            "status": "new",
            "time_in_force": body.get("time_in_force", "gtc"),
            "reason": None,
            "timestamp_ns": time.time_ns(),
            "trades": [],
        },
        201,
    )


async def cancel(request: web.Request) -> web.Response:
    return _json({"id": int(request.match_info["order_id"]), "status": "cancelled"})


async def book(request: web.Request) -> web.Response:
    return _json({"symbol": request.match_info["symbol"], "bids": [], "asks": []})


async def symbols(request: web.Request) -> web.Response:
    return _json(SYMBOLS)


async def health(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def serve() -> None:
    app = web.Application()
    app.router.add_post("/api/orders", place)
    app.router.add_delete("/api/orders/{order_id}", cancel)
    app.router.add_get("/api/orderbook/{symbol}", book)
    app.router.add_get("/api/symbols", symbols)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096, reuse_address=True)
    await site.start()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    host, port = runner.addresses[0][:2]
    print(f"{READY_PREFIX}http://{host}:{port} (pid {os.getpid()})", flush=True)
    await stop.wait()
    await runner.cleanup()


class BareServer(EmbeddedExchange):
    """``with BareServer(cpus=[1]) as bare: bare.url`` — this module's app in a pinned subprocess."""

    script = __file__  # a server module that prints the ready line and serves until SIGTERM

    def start(self) -> BareServer:
        self.process = subprocess.Popen(
            [sys.executable, self.script],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        if self.cpus:
            psutil.Process(self.process.pid).cpu_affinity(self.cpus)
        self.url = self._read_url()
        self._wait_healthy()
        return self


if __name__ == "__main__":
    uvloop.run(serve())
