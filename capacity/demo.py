"""``make demo``: start the embedded exchange with its background simulation and watch it live.

This is the seed's "Idle" row, measured: the exchange's own ``/api/metrics`` sampled every second.
The full demo (quick sweep, fit, report) replaces this once those stages exist.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from collections.abc import Sequence

from rich.console import Console
from rich.live import Live
from rich.table import Table

from capacity.exchange_process import EmbeddedExchange, ExchangeStartError

COLUMNS = (
    ("t (s)", None),
    ("orders/s", "orders_per_sec"),
    ("trades/s", "trades_per_sec"),
    ("avg ms", "avg_latency"),
    ("p99 ms", "p99_latency"),
    ("cpu %", "cpu_percent"),
    ("rss MB", "memory_mb"),
    ("resting", "resting_orders"),
)


def fetch_metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/api/metrics", timeout=2) as response:
        return json.load(response)["data"]


def metrics_table(rows: list[list[str]], url: str) -> Table:
    table = Table(title=f"reference exchange at {url} — live /api/metrics (seed 'Idle' row)")
    for header, _ in COLUMNS:
        table.add_column(header, justify="right")
    for row in rows[-15:]:
        table.add_row(*row)
    return table


def format_row(elapsed: float, data: dict[str, float]) -> list[str]:
    cells = [f"{elapsed:.0f}"]
    for _, key in COLUMNS[1:]:
        value = data.get(key, float("nan"))
        cells.append(f"{value:,.2f}" if isinstance(value, float) else f"{value:,}")
    return cells


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="capacity-demo", description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0, help="how long to watch (default 15)")
    parser.add_argument("--rate", type=float, default=200.0, help="simulation orders/s (default 200)")
    args = parser.parse_args(argv)
    console = Console()
    env = {
        "SIMULATION_ENABLED": "true",
        "SIMULATION_ORDERS_PER_SEC": str(args.rate),
        "METRICS_COLLECTION_TIME": "5s",
    }
    try:
        with EmbeddedExchange(env=env) as exchange:
            rows: list[list[str]] = []
            started = time.monotonic()
            with Live(metrics_table(rows, exchange.url), console=console, refresh_per_second=2) as live:
                while (elapsed := time.monotonic() - started) < args.seconds:
                    time.sleep(1.0)
                    rows.append(format_row(elapsed + 1, fetch_metrics(exchange.url)))
                    live.update(metrics_table(rows, exchange.url))
    except ExchangeStartError as error:
        console.print(f"[red]demo: {error}")
        return 1
    console.print("demo: the exchange stopped cleanly. Next: the quick sweep and report (issue 6).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
