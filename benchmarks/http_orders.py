"""HTTP order throughput of the reference exchange with the lean closed-loop generator (``_loadgen.py``).

Starts the embedded exchange pinned to one CPU, pins this generator to another, and posts limit orders
(a quarter of them marketable) from ``--connections`` concurrent clients for ``--seconds``. Prints
orders/s, client-side P50/P99 (HdrHistogram) and both processes' CPU, for the journal off and on
in one run, so the ratio is measured at the same moment. This is a quick probe, not an open-model
load test: `capacity run` is that.

Usage: python benchmarks/http_orders.py [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import orjson
import psutil
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_seconds, pin_server_cpu
from _loadgen import closed_loop, encode_posts

from capacity.run.exchange_process import EmbeddedExchange


def order_body(rng: random.Random) -> dict[str, str]:
    """A BTCUSD limit order around 60,000, a quarter of them marketable (shared with http_efficiency.py)."""
    side = rng.choice(("buy", "sell"))
    offset = rng.randint(-2, 1) if rng.random() < 0.25 else rng.randint(1, 30)
    price = 60000 - offset if side == "buy" else 60000 + offset
    return {"symbol": "BTCUSD", "side": side, "type": "limit", "price": str(price), "quantity": "0.001"}


def order_requests(url: str, count: int = 1024) -> list[bytes]:
    """``count`` pre-encoded ``POST /api/orders`` requests of ``order_body`` orders (seeded: runs alike)."""
    rng = random.Random(7)
    return encode_posts(url, "/api/orders", [orjson.dumps(order_body(rng)) for _ in range(count)])


def measure(env: dict[str, str], seconds: float, connections: int, server_cpu: int) -> dict[str, float]:
    with EmbeddedExchange(env=env, cpus=[server_cpu]) as exchange:
        server = psutil.Process(exchange.pid)
        s0, t0 = cpu_seconds(server), time.perf_counter()
        result = uvloop.run(closed_loop(exchange.url, order_requests(exchange.url), seconds, connections))
        elapsed = time.perf_counter() - t0
        return {
            "orders_per_s": result.achieved,
            "errors": result.errors + result.shed,
            "p50_ms": result.percentile_ms(50),
            "p99_ms": result.percentile_ms(99),
            "server_cpu": 100 * (cpu_seconds(server) - s0) / elapsed,
            "client_cpu": result.generator_cpu_pct,
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
    print(
        f"{'journal':<16}{'orders/s':>10}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}{'server CPU%':>13}"
        f"{'client CPU%':>13}"
    )
    results = {}
    for label, env in (
        ("off", {"JOURNAL_PATH": "none"}),
        ("sync=normal", {"JOURNAL_SYNC": "normal"}),
        ("sync=full", {"JOURNAL_SYNC": "full"}),
    ):
        r = results[label] = measure(env, args.seconds, args.connections, server_cpu)
        print(
            f"{label:<16}{r['orders_per_s']:>10,.0f}{r['errors']:>8}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['server_cpu']:>13.0f}{r['client_cpu']:>13.0f}"
        )
    ratio = results["sync=full"]["orders_per_s"] / results["off"]["orders_per_s"]
    print(f"journal full / off throughput ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
