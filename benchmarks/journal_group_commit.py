"""What durability costs: the same order stream through ExchangeService without a journal and with
the SQLite journal at sync=full and sync=normal, awaited by N concurrent coroutines as an HTTP
server would. Prints orders/s, the ratio to no-journal, group-commit batch sizes and ack latency.

    .venv/bin/python benchmarks/journal_group_commit.py --orders 20000 --concurrency 256

The journal lives in a temporary directory under --dir: fsync cost depends on that filesystem.
"orders/s" counts every command of the stream (limit, market, cancel; refused cancels too).
It runs on uvloop, the loop the exchange serves on (--asyncio for the standard library's loop).
Closed-loop clients are the hard case for group commit: with no journal no client ever yields,
with one every command costs a suspension, and all N clients share at most two batches (one
committing, one being served), so the loop and the disk must each keep up with the other.

Then the same question as a user meets it: the whole exchange (HTTP, one server core) saturated by the
lean generator of http_efficiency.py on --connections (default 1,000, as shipped_capacity.py: the clients
decide the batch size, and 32 clients waiting on fsync bound the rate before the server's CPU does) with
JOURNAL_SYNC=full and with no journal, alternating --repeat times (median). There every order already
suspends on its socket, so the journal pays only for its own work; in-process, the no-journal side never
suspends at all, which makes that ratio the harshest bound.
Both figures are printed against the goal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvloop
from _common import Figure, MachineLoad, emit, pin_server_cpu
from _common import parser as _parser
from http_efficiency import SATURATED_CPU_PCT, saturated
from shipped_capacity import CONNECTIONS as SHIPPED_CONNECTIONS

from capacity.run.exchange_process import EmbeddedExchange
from reference_exchange.engine import EngineError, MatchingEngine, OrderType, Side, TimeInForce
from reference_exchange.instruments import DEFAULT_INSTRUMENTS
from reference_exchange.journal import Journal
from reference_exchange.service import ExchangeService, PlaceCommand

SYMBOLS = [instrument.symbol for instrument in DEFAULT_INSTRUMENTS[:5]]
MID_TICKS = {i.symbol: int(i.reference_price / i.tick_size) for i in DEFAULT_INSTRUMENTS}


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel the order whose id is this fraction of the orders accepted so far (often already done)."""

    fraction: float


Op = PlaceCommand | Cancel


@dataclass(slots=True)
class Result:
    mode: str
    ops: int
    seconds: float
    latencies_s: list[float]
    checksums: tuple[int, ...]
    journal: Journal | None = None

    @property
    def rate(self) -> float:
        """Commands per second."""
        return self.ops / self.seconds


def order_stream(count: int, seed: int) -> list[Op]:
    """A reproducible mix: 75 % limit GTC near the mid, 10 % market IOC, 15 % cancels."""
    rng = random.Random(seed)
    ops: list[Op] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.15:
            ops.append(Cancel(rng.random()))
            continue
        symbol = rng.choice(SYMBOLS)
        market = roll < 0.25
        ops.append(
            PlaceCommand(
                symbol=symbol,
                side=rng.choice((Side.BUY, Side.SELL)),
                type=OrderType.MARKET if market else OrderType.LIMIT,
                quantity=rng.randint(1, 100),
                price=None if market else MID_TICKS[symbol] + rng.randint(-50, 50),
                time_in_force=TimeInForce.IOC if market else TimeInForce.GTC,
            )
        )
    return ops


async def run_mode(mode: str, ops: list[Op], concurrency: int, directory: Path) -> Result:
    """Push ``ops`` through a fresh engine and service with ``concurrency`` coroutines."""
    engine = MatchingEngine(SYMBOLS)
    journal = None if mode == "none" else Journal.open(str(directory / f"{mode}.sqlite3"), sync=mode)
    service = ExchangeService(engine, journal, max_pending=concurrency + 1)
    if journal is not None:
        await journal.start()
    stream: Iterator[Op] = iter(ops)
    latencies: list[float] = []

    async def client() -> None:
        # Each client takes the next op when free, so the engine applies ops in stream order in
        # every mode and all modes end with the same books.
        for op in stream:
            started = time.perf_counter()
            with contextlib.suppress(EngineError):
                if isinstance(op, Cancel):
                    await service.cancel(max(1, int(op.fraction * engine.orders_accepted)))
                else:
                    await service.place(op)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    if journal is not None:
        await journal.close()
    checksums = tuple(engine.book(symbol).checksum() for symbol in SYMBOLS)
    return Result(mode, len(ops), seconds, latencies, checksums, journal)


def percentile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def report(results: list[Result], concurrency: int) -> None:
    baseline = results[0].rate
    header = (
        ("orders/s", 11),
        ("vs none", 9),
        ("commits", 9),
        ("mean batch", 12),
        ("p50 ms", 9),
        ("p99 ms", 9),
    )
    print(f"{'mode':<16}" + "".join(f"{title:>{width}}" for title, width in header))
    for r in results:
        commits = f"{r.journal.commits}" if r.journal else "-"
        batch = f"{r.journal.mean_batch_size:.1f}" if r.journal else "-"
        name = "no journal" if r.journal is None else f"journal {r.mode}"
        print(
            f"{name:<16}{r.rate:>11,.0f}{r.rate / baseline:>9.2f}{commits:>9}{batch:>12}"
            f"{percentile_ms(r.latencies_s, 0.5):>9.2f}{percentile_ms(r.latencies_s, 0.99):>9.2f}"
        )
    same = len({r.checksums for r in results}) == 1
    print(f"concurrency {concurrency}; books identical across modes: {'yes' if same else 'NO'}")
    for r in results:
        if r.journal is not None and r.journal.commits:
            per_commit_ms = r.journal.commit_seconds_total / r.journal.commits * 1000
            # The clock stops when the writer thread has the GIL back, so a busy loop lengthens it.
            print(f"journal {r.mode}: {per_commit_ms:.2f} ms per commit (SQLite, fsync, GIL back)")


GOAL_RATIO = 0.8
#: Through the exchange, the shipped configuration's own figure (issue 15).
GOAL_THROUGH_EXCHANGE = 0.9


async def main_async(args: argparse.Namespace) -> list[Result]:
    ops = order_stream(args.orders, args.seed)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="journal-bench-") as tmp:
        results = [
            await run_mode(mode, ops, args.concurrency, Path(tmp)) for mode in ("none", "full", "normal")
        ]
    report(results, args.concurrency)
    return results


EXCHANGE_MODES = {"none": {"JOURNAL_PATH": "none"}, "full": {"JOURNAL_SYNC": "full"}}


def exchange_saturated(repeat: int, seconds: float, connections: int) -> dict[str, list[dict]]:
    """The exchange saturated on one core per journal mode, the modes alternating ``repeat`` times."""
    server_cpu = pin_server_cpu()
    runs: dict[str, list[dict]] = {mode: [] for mode in EXCHANGE_MODES}
    for _ in range(repeat):
        for mode, env in EXCHANGE_MODES.items():
            runs[mode].append(saturated(EmbeddedExchange(env=env, cpus=[server_cpu]), seconds, connections))
            r = runs[mode][-1]
            print(
                f"exchange, journal {mode:<5} {r['achieved']:>9,.0f} orders/s  p99 {r['p99_ms']:6.2f} ms"
                f"  server CPU {r['server_cpu_pct']:3.0f} %  generator {r['generator_cpu_pct']:3.0f} %"
                f"  other {r['other_cpu_pct']:3.0f} %"
            )
    return runs


def figures(results: list[Result], exchange: dict[str, list[dict]], connections: int) -> list[Figure]:
    """Durable acks (sync=full) vs no journal through the exchange and in-process; sync=normal beside."""
    by_mode = {r.mode: r for r in results}
    none, full, normal = by_mode["none"], by_mode["full"], by_mode["normal"]
    http = {mode: statistics.median(r["achieved"] for r in runs) for mode, runs in exchange.items()}
    per_cpu = {  # orders per server CPU-second: what the journal costs in CPU, whatever else ran
        mode: statistics.median(100 * r["achieved"] / r["server_cpu_pct"] for r in runs)
        for mode, runs in exchange.items()
    }
    unsaturated = sum(r["server_cpu_pct"] < SATURATED_CPU_PCT for runs in exchange.values() for r in runs)
    return [
        Figure(
            "journal through the exchange: sync=full / none, saturated",
            http["full"] / http["none"],
            "ratio",
            GOAL_THROUGH_EXCHANGE,
            note=f"{http['full']:,.0f} / {http['none']:,.0f} orders/s on one server core and {connections:,} "
            f"connections, median of "
            f"{len(exchange['full'])}; per server CPU-second {per_cpu['full'] / per_cpu['none']:.2f}"
            + (
                f"; {unsaturated} run(s) had the server below {SATURATED_CPU_PCT:.0f} % of its core "
                "(contended: trust the per-CPU ratio)"
                if unsaturated
                else ""
            ),
        ),
        Figure(
            "journal in-process: durable acks (sync=full) / none",
            full.rate / none.rate,
            "ratio",
            GOAL_RATIO,
            note=f"{full.rate:,.0f} / {none.rate:,.0f} orders/s, "
            f"mean batch {full.journal.mean_batch_size if full.journal else float('nan'):.1f}",
        ),
        Figure("  same at sync=normal", normal.rate / none.rate, "ratio", None),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = _parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--orders", type=int, default=None, help="commands per mode (default 20000, quick 5000)"
    )
    parser.add_argument("--concurrency", type=int, default=256, help="concurrent clients (default 256)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the order stream")
    parser.add_argument("--dir", default=None, help="directory for the journal files (default: system temp)")
    parser.add_argument(
        "--asyncio", action="store_true", help="run on asyncio's own loop instead of uvloop (the exchange's)"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="exchange runs per journal mode (default 3, quick 1)"
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="each exchange run's length (default 6, quick 3)"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=SHIPPED_CONNECTIONS,
        help=f"the exchange runs' keep-alive connections (default {SHIPPED_CONNECTIONS:,})",
    )
    args = parser.parse_args(argv)
    args.orders = args.orders or (5_000 if args.quick else 20_000)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.seconds = args.seconds or (3.0 if args.quick else 6.0)
    if min(args.orders, args.concurrency, args.repeat, args.seconds, args.connections) <= 0:
        parser.error("--orders, --concurrency, --repeat, --seconds and --connections must be positive")
    with MachineLoad() as load:
        run = asyncio.run if args.asyncio else uvloop.run
        results = run(main_async(args))
        exchange = exchange_saturated(args.repeat, args.seconds, args.connections)
    details: dict[str, Any] = {
        r.mode: {"orders_per_s": r.rate, "p99_ms": percentile_ms(r.latencies_s, 0.99)} for r in results
    }
    details["exchange"] = exchange
    emit("journal_group_commit", figures(results, exchange, args.connections), args, load, details)


if __name__ == "__main__":
    main()
