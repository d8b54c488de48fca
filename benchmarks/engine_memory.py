"""Bytes per resting order in the matching engine: RSS delta and tracemalloc delta with N resting orders.

Places ``--orders`` (default 1,000,000; quick 10,000) non-crossing GTC limits (buys below a mid, sells above,
spread over 5 symbols and 2,000 price levels a side) into a fresh engine and divides the memory it grew by
the order count, for the engine build that is installed (compiled with mypyc where it could be). Two
passes, each with a fresh engine: RSS (what the OS sees, psutil) and tracemalloc (Python allocations only;
slower, so it runs second). Goal: <= 400 B per resting order.

Usage: python benchmarks/engine_memory.py [--orders N] [--quick] [--json PATH]
"""

from __future__ import annotations

import gc
import random
import sys
import time
import tracemalloc
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, MachineLoad, emit, parser

from reference_exchange.engine import IMPLEMENTATION, MatchingEngine, OrderType, Side, TimeInForce

SYMBOLS = ("BTCUSD", "ETHUSD", "ADAUSD", "DOTUSD", "SOLUSD")
GOAL_BYTES = 400


def resting_orders(count: int, seed: int = 1) -> list[tuple]:
    rng = random.Random(seed)
    orders = []
    for _ in range(count):
        side = rng.choice((Side.BUY, Side.SELL))
        offset = rng.randint(1, 2_000)
        price = 10_000 - offset if side is Side.BUY else 10_000 + offset
        orders.append((rng.choice(SYMBOLS), side, rng.randint(1, 10), price))
    return orders


def fill(orders: list[tuple]) -> MatchingEngine:
    engine = MatchingEngine(SYMBOLS)
    place, limit, gtc = engine.place, OrderType.LIMIT, TimeInForce.GTC
    for symbol, side, quantity, price in orders:
        place(symbol, side, limit, quantity, price, gtc)
    assert engine.resting_order_count == len(orders)
    return engine


def rss_per_order(orders: list[tuple]) -> float:
    gc.collect()
    before = psutil.Process().memory_info().rss
    engine = fill(orders)
    gc.collect()
    grown = psutil.Process().memory_info().rss - before
    del engine
    return grown / len(orders)


def traced_per_order(orders: list[tuple]) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    engine = fill(orders)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del engine
    return grown / len(orders)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=None, help="resting orders (default 1000000, quick 10000)")
    args = p.parse_args(argv)
    count = args.orders or (10_000 if args.quick else 1_000_000)
    orders = resting_orders(count)
    with MachineLoad() as load:
        started = time.perf_counter()
        rss = rss_per_order(orders)
        traced = traced_per_order(orders)
        seconds = time.perf_counter() - started
    figures = [
        Figure(f"RSS bytes per resting order ({count:,}, {IMPLEMENTATION})", rss, "B", GOAL_BYTES, "<="),
        Figure(f"tracemalloc bytes per resting order ({count:,})", traced, "B", GOAL_BYTES, "<="),
    ]
    details = {"orders": count, "seconds": seconds, "implementation": IMPLEMENTATION}
    emit("engine_memory", figures, args, load, details)
    return 0


if __name__ == "__main__":
    sys.exit(main())
