"""In-process matching engine throughput on a mixed order stream (no I/O, no HTTP).

Prints orders/s for the engine alone and, measured in the same run, for a baseline that does only
the stream's bookkeeping (a dict insert per order) so the figure can be compared across machines
as a ratio. Usage: python benchmarks/engine_throughput.py [--orders 200000] [--seed 1]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import time

from reference_exchange.engine import (
    MatchingEngine,
    OrderNotFound,
    OrderNotOpen,
    OrderType,
    Side,
    TimeInForce,
)

SYMBOLS = ("BTCUSD", "ETHUSD", "ADAUSD", "DOTUSD", "SOLUSD")


def mixed_stream(count: int, seed: int) -> list[tuple]:
    """70 % limit around a mid of 10,000 ticks (a quarter marketable), 10 % market, 20 % cancels."""
    rng = random.Random(seed)
    stream = []
    for _ in range(count):
        roll = rng.random()
        symbol = rng.choice(SYMBOLS)
        side = rng.choice((Side.BUY, Side.SELL))
        if roll < 0.7:
            offset = rng.randint(-3, 2) if rng.random() < 0.25 else rng.randint(1, 20)
            price = 10_000 - offset if side is Side.BUY else 10_000 + offset
            stream.append(("limit", symbol, side, rng.randint(1, 10), price))
        elif roll < 0.8:
            stream.append(("market", symbol, side, rng.randint(1, 10), None))
        else:
            stream.append(("cancel", rng.random()))
    return stream


def run_engine(stream: list[tuple]) -> tuple[float, MatchingEngine]:
    engine = MatchingEngine(SYMBOLS)
    open_ids: list[int] = []
    started = time.perf_counter()
    for item in stream:
        if item[0] == "cancel":
            if open_ids:
                order_id = open_ids.pop(int(item[1] * len(open_ids)))
                # Already filled: a real client's cancel races the same way.
                with contextlib.suppress(OrderNotFound, OrderNotOpen):
                    engine.cancel(order_id)
            continue
        kind, symbol, side, quantity, price = item
        if kind == "limit":
            result = engine.place(symbol, side, OrderType.LIMIT, quantity, price, TimeInForce.GTC)
            if result.order.remaining:
                open_ids.append(result.order.order_id)
        else:
            engine.place(symbol, side, OrderType.MARKET, quantity, None, TimeInForce.IOC)
    return time.perf_counter() - started, engine


def run_baseline(stream: list[tuple]) -> float:
    seen: dict[int, tuple] = {}
    started = time.perf_counter()
    for index, item in enumerate(stream):
        seen[index] = item
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    stream = mixed_stream(args.orders, args.seed)
    elapsed, engine = run_engine(stream)
    baseline = run_baseline(stream)
    assert engine.audit() == [], engine.audit()
    print(f"commands            {len(stream):>12,}")
    per_command_us = elapsed * 1e6 / len(stream)
    print(f"engine              {len(stream) / elapsed:>12,.0f} commands/s  ({per_command_us:.2f} µs each)")
    print(f"baseline dict loop  {len(stream) / baseline:>12,.0f} commands/s")
    print(f"engine / baseline   {elapsed / baseline:>12.1f}x the cost of the bookkeeping loop")
    print(f"trades              {engine.trades_executed:>12,}  resting {engine.resting_order_count:,}")


if __name__ == "__main__":
    main()
