"""HTTP order throughput of the reference exchange with a simple closed-loop aiohttp generator.

Starts the embedded exchange pinned to one CPU, pins this generator to another, and posts limit orders
(a quarter of them marketable) from ``--connections`` concurrent clients for ``--seconds``. Prints
orders/s, client-side P50/P99 (HdrHistogram) and both processes' CPU, for the journal off and on
in one run, so the ratio is measured at the same moment. This is a quick probe, not an open-model
load test: `capacity run` is that.

Usage: python benchmarks/http_orders.py [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from pathlib import Path

import aiohttp
import psutil
from hdrh.histogram import HdrHistogram

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import pin_server_cpu

from capacity.exchange_process import EmbeddedExchange


def order_body(rng: random.Random) -> dict[str, str]:
    """A BTCUSD limit order around 60,000, a quarter of them marketable (shared with http_efficiency.py)."""
    side = rng.choice(("buy", "sell"))
    offset = rng.randint(-2, 1) if rng.random() < 0.25 else rng.randint(1, 30)
    price = 60000 - offset if side == "buy" else 60000 + offset
    return {"symbol": "BTCUSD", "side": side, "type": "limit", "price": str(price), "quantity": "0.001"}


async def client_loop(
    session: aiohttp.ClientSession, url: str, deadline: float, hist: HdrHistogram, rng
) -> int:
    count = 0
    while time.perf_counter() < deadline:
        body = order_body(rng)
        started = time.perf_counter()
        async with session.post(url + "/api/orders", json=body) as response:
            await response.read()
            if response.status != 201:
                raise RuntimeError(f"unexpected status {response.status}")
        hist.record_value(max(1, int((time.perf_counter() - started) * 1e6)))
        count += 1
    return count


async def drive(url: str, seconds: float, connections: int) -> tuple[int, HdrHistogram]:
    hist = HdrHistogram(1, 60_000_000, 3)
    rng = random.Random(7)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds
        counts = await asyncio.gather(
            *(client_loop(session, url, deadline, hist, rng) for _ in range(connections))
        )
    return sum(counts), hist


def measure(env: dict[str, str], seconds: float, connections: int, server_cpu: int) -> dict[str, float]:
    with EmbeddedExchange(env=env, cpus=[server_cpu]) as exchange:
        server = psutil.Process(exchange.pid)
        me = psutil.Process()
        server.cpu_percent(None)
        me.cpu_percent(None)
        started = time.perf_counter()
        orders, hist = asyncio.run(drive(exchange.url, seconds, connections))
        elapsed = time.perf_counter() - started
        return {
            "orders_per_s": orders / elapsed,
            "p50_ms": hist.get_value_at_percentile(50) / 1000,
            "p99_ms": hist.get_value_at_percentile(99) / 1000,
            "server_cpu": server.cpu_percent(None),
            "client_cpu": me.cpu_percent(None),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    server_cpu = pin_server_cpu()
    print(
        f"server on CPU {server_cpu}, generator on CPUs {sorted(os.sched_getaffinity(0))}, "
        f"{args.connections} connections, {args.seconds:.0f} s each"
    )
    print(f"{'journal':<16}{'orders/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'server CPU%':>13}{'client CPU%':>13}")
    results = {}
    for label, env in (
        ("off", {"JOURNAL_PATH": "none"}),
        ("sync=normal", {"JOURNAL_SYNC": "normal"}),
        ("sync=full", {"JOURNAL_SYNC": "full"}),
    ):
        r = results[label] = measure(env, args.seconds, args.connections, server_cpu)
        print(
            f"{label:<16}{r['orders_per_s']:>10,.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['server_cpu']:>13.0f}{r['client_cpu']:>13.0f}"
        )
    ratio = results["sync=full"]["orders_per_s"] / results["off"]["orders_per_s"]
    print(f"journal full / off throughput ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
