"""Capacity of the reference exchange exactly as shipped, on one core, under the seed mix (issue 15).

The exchange runs with its default settings (durable SQLite journal, ``JOURNAL_SYNC=full``; only the port
and the journal's file are chosen, in a fresh temporary directory) pinned to the last CPU; this generator
(``_loadgen.py``) runs on the others and its own CPU is measured. The load is the seed mix (``_mix.py``:
limit orders 70 % of which 25 % marketable, market orders 10 %, cancels of real resting order ids 15 %, book
reads 5 %) on 1,000 keep-alive connections, one request in flight each, on an open-loop constant-rate
schedule (wrk2-style: latency from the *intended* send time, HdrHistogram). Every step starts a fresh
exchange.

1. A ladder of offered rates (default 1,000, 5,000, 8,000, 12,000 requests/s, ``--seconds`` 20 each): a
   step is *held* when >= 98 % of the requests offered completed (2xx, or a cancel answered 404/409: its
   order traded first) and P99 <= 20 ms. A step not held is measured again on a fresh exchange before it
   counts as failed (one stall of a shared VM fails a step far below the ceiling); the first attempt stays
   in the JSON.
2. A search for the highest rate held: above the ladder's top when it held everything, else bisecting
   between the highest rate held and the lowest failed (``--search`` steps). The first failing step says
   who ran out of CPU: the generator (>= 85 % of its core: then the figure is the generator's limit, a lower
   bound of the server's), the server, or neither (other processes, a stall).
3. Server CPU per request at 500/s and at 8,000/s (the server's CPU from the first scheduled send, so
   connecting 1,000 clients is not counted, over the answers) and their ratio (goal <= 1.5: a server that
   costs more per request when lightly loaded burns its CPU on timers and polling).
4. Idle server CPU: the exchange after the 500/s step, its clients gone, over ``--idle-seconds`` (10) with no
   load, in cores (goal <= 0.01).
5. The generator's own CPU at 12,000/s with 1,000 connections (goal <= 70 % of its core: well below the
   85 % at which its figures would bound the server's), measured against ``_canned_server.py`` (canned
   answers: every request answered, so the generator does all of its work even where the exchange cannot
   keep up); its CPU in the exchange's own 12,000/s step is in the note, and every step prints it.

Usage: python benchmarks/shipped_capacity.py [--quick] [--seconds 20] [--rates 1000,5000,8000,12000]
       [--search 3] [--connections 1000] [--idle-seconds 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this tree's toolkit, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil
import uvloop
from _canned_server import CannedServer
from _common import ROOT, Figure, MachineLoad, busy_seconds, cpu_seconds, emit, parser, pin_server_cpu
from _loadgen import GENERATOR_LIMIT_PCT, LOST, TIMEOUT, open_loop
from _mix import SeedMix, fetch_market, plan

from capacity.run.exchange_process import EmbeddedExchange

CONNECTIONS = 1_000
LADDER = (1_000, 5_000, 8_000, 12_000)
HELD_SHARE, HELD_P99_MS = 0.98, 20.0
LOW_RATE, HIGH_RATE, GENERATOR_RATE = 500, 8_000, 12_000
GOAL_CPU_RATIO, GOAL_IDLE_CORES, GOAL_GENERATOR_PCT = 1.5, 0.01, 70.0
GRANULARITY_US = 250  # the send timer's granularity: <= 0.25 ms added to a latency, against a 20 ms limit
SEARCH_GROWTH, SEARCH_MAX, SEARCH_CLOSE = 1.5, 60_000, 0.05


def matching_build() -> str:
    """Which build of the matching engine this tree's exchange runs (compiled with mypyc, or interpreted)."""
    try:
        from reference_exchange.engine import IMPLEMENTATION
    except Exception as error:  # a stale compiled build refuses to import: the exchange would too
        return f"unknown ({error})"
    return IMPLEMENTATION


def step(rate: float, seconds: float, server_cpu: int, connections: int, idle_s: float = 0.0) -> dict:
    """One open-loop run at ``rate`` on a fresh exchange as shipped; with ``idle_s``, the exchange's CPU over
    that long afterwards, with no clients."""
    marks: dict[str, float] = {}
    with EmbeddedExchange(cpus=[server_cpu]) as exchange:
        server = psutil.Process(exchange.pid)
        mix = SeedMix.for_exchange(exchange.url)

        def started() -> None:
            marks.update(cpu=cpu_seconds(server), busy=busy_seconds(), t=time.perf_counter())

        result = uvloop.run(
            open_loop(exchange.url, mix, rate, seconds, connections, GRANULARITY_US, on_start=started)
        )
        elapsed = time.perf_counter() - marks["t"]
        server_s = cpu_seconds(server) - marks["cpu"]
        other_s = busy_seconds() - marks["busy"] - server_s - result.generator_cpu_s
        idle = None
        if idle_s:
            time.sleep(1.0)  # the clients' connections close
            c0, t0 = cpu_seconds(server), time.perf_counter()
            time.sleep(idle_s)
            idle = (cpu_seconds(server) - c0) / (time.perf_counter() - t0)
    summary = result.summary()
    answered = sum(n for status, n in result.statuses.items() if status not in (LOST, TIMEOUT))
    offered = rate * seconds
    summary.update(
        completed_pct=100 * result.completed / offered,
        server_cpu_pct=100 * server_s / elapsed,
        server_cpu_us_per_request=1e6 * server_s / answered if answered else None,
        generator_cpu_us_per_request=1e6 * result.generator_cpu_s / result.sent if result.sent else None,
        other_cpu_pct=max(0.0, 100 * other_s / elapsed),
        mix=mix.report(),
        idle_cores=idle,
    )
    summary["held"] = summary["completed_pct"] >= 100 * HELD_SHARE and summary["p99_ms"] <= HELD_P99_MS
    return summary


def generator_headroom(rate: float, seconds: float, server_cpu: int, connections: int) -> dict:
    """The generator alone at ``rate``: the same mix and connections against ``_canned_server.py`` (answers
    from canned bytes, never the limit), so every request is answered and the generator does all its work."""
    with CannedServer(cpus=[server_cpu]) as sink:
        mix = SeedMix(sink.url, plan(sink.url, fetch_market(sink.url)))
        result = uvloop.run(open_loop(sink.url, mix, rate, seconds, connections, GRANULARITY_US))
    s = result.summary()
    s.update(
        generator_cpu_us_per_request=1e6 * result.generator_cpu_s / result.sent if result.sent else None,
        mix=mix.report(),
    )
    print(
        f"  generator alone, canned sink, {rate:,.0f}/s: CPU {s['generator_cpu_pct']:.0f} % of its core "
        f"({s['generator_cpu_us_per_request']:.0f} us per request), p99 {s['p99_ms']:.2f} ms, "
        f"send lag p99 {s['send_lag_p99_ms']:.2f} ms",
        flush=True,
    )
    return s


def show(label: str, s: dict) -> None:
    print(
        f"  {label:<22} completed {s['completed_pct']:5.1f} %  p50 {s['p50_ms']:7.2f} ms  "
        f"p99 {s['p99_ms']:8.2f} ms  shed {s['shed']} errors {s['errors']}  CPU % server "
        f"{s['server_cpu_pct']:3.0f} generator {s['generator_cpu_pct']:3.0f} other {s['other_cpu_pct']:3.0f}"
        f"  server {s['server_cpu_us_per_request'] or 0:.0f} us/request: "
        f"{'held' if s['held'] else 'NOT held'}",
        flush=True,
    )


def measured(rate: float, args: argparse.Namespace, server_cpu: int, label: str) -> dict:
    """``step`` at ``rate``; a step not held is measured once more before it counts (first attempt kept)."""
    s = step(rate, args.seconds, server_cpu, args.connections)
    show(f"{label} {rate:>8,.0f}/s", s)
    if not s["held"]:
        first, s = s, step(rate, args.seconds, server_cpu, args.connections)
        s["failed_attempts"] = [first]
        show(f"  again {rate:>8,.0f}/s", s)
    return s


def limited_by(s: dict) -> str:
    """Who ran out of CPU at a failing step. A busy generator is named first: its figures bound the
    server's from below and are never the server's limit."""
    generator = s["generator_cpu_pct"] >= GENERATOR_LIMIT_PCT
    server = s["server_cpu_pct"] >= GENERATOR_LIMIT_PCT
    if generator:
        return "generator limit (not the server's: the server may hold more)" + (
            ", server busy too" if server else ""
        )
    if server:
        return "server-limited (its core full)"
    return "neither server nor generator CPU-bound (other processes, a stall, or a queue)"


def search(
    steps: dict[float, dict], args: argparse.Namespace, server_cpu: int
) -> tuple[float | None, dict | None]:
    """The highest rate held: above the ladder while every step holds, then bisecting. Returns it and the
    first failing step (the lowest rate that failed)."""

    def bounds() -> tuple[float | None, float | None]:
        held = [r for r, s in steps.items() if s["held"]]
        failed = [r for r, s in steps.items() if not s["held"]]
        low = max(held, default=None)
        high = min((r for r in failed if low is None or r > low), default=None)
        return low, high

    for _ in range(args.search):
        low, high = bounds()
        if low is None:
            break  # even the lowest rate failed: nothing to search between
        if high is None:
            rate = float(min(round(low * SEARCH_GROWTH, -2), SEARCH_MAX))
            if rate <= low:
                break
        else:
            if high - low <= SEARCH_CLOSE * low:
                break
            rate = float(round((low + high) / 2, -2))
        steps[rate] = measured(rate, args, server_cpu, "search")
    low, high = bounds()
    return low, steps.get(high) if high is not None else None


def rate_list(p: argparse.ArgumentParser, text: str) -> list[float]:
    try:
        rates = sorted({float(r) for r in text.split(",") if r.strip()})
    except ValueError:
        p.error(f"--rates: expected comma-separated requests/s, got {text!r}")
    if not rates or rates[0] <= 0:
        p.error(f"--rates: every rate must be positive, got {text!r}")
    return rates


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=None, help="per step (default 20, quick 5)")
    p.add_argument("--rates", default=None, help="the ladder, requests/s (default 1000,5000,8000,12000)")
    p.add_argument("--search", type=int, default=None, help="search steps after the ladder (3, quick 1)")
    p.add_argument("--connections", type=int, default=CONNECTIONS, help="keep-alive connections (1000)")
    p.add_argument("--idle-seconds", type=float, default=None, help="idle CPU window (default 10, quick 5)")
    p.add_argument("--low-rate", type=float, default=LOW_RATE, help="the light load for CPU per request")
    args = p.parse_args(argv)
    args.seconds = args.seconds or (5.0 if args.quick else 20.0)
    args.search = (1 if args.quick else 3) if args.search is None else args.search
    args.idle_seconds = args.idle_seconds or (5.0 if args.quick else 10.0)
    rates = rate_list(p, args.rates or ",".join(map(str, LADDER)))
    if args.seconds <= 0 or args.connections < 1 or args.search < 0 or args.low_rate <= 0:
        p.error("--seconds, --connections and --low-rate must be positive, --search >= 0")
    if args.json:
        args.json = str(Path(args.json).resolve())
    os.chdir(ROOT)  # the exchange is started as `python -m reference_exchange`: this tree's
    server_cpu = pin_server_cpu()
    build = matching_build()
    print(
        f"exchange as shipped (durable journal), matching engine {build}, on CPU {server_cpu}; generator on "
        f"CPUs {sorted(os.sched_getaffinity(0))}; seed mix, {args.connections:,} connections, "
        f"{args.seconds:g} s a step",
        flush=True,
    )
    with MachineLoad() as load:
        low = step(args.low_rate, args.seconds, server_cpu, args.connections, idle_s=args.idle_seconds)
        show(f"light {args.low_rate:>8,.0f}/s", low)
        print(f"  idle afterwards: {low['idle_cores']:.4f} cores over {args.idle_seconds:g} s", flush=True)
        steps: dict[float, dict] = {}
        for rate in rates:
            steps[rate] = measured(rate, args, server_cpu, "ladder")
        best, failed = search(steps, args, server_cpu)
        alone = generator_headroom(GENERATOR_RATE, args.seconds, server_cpu, args.connections)
    ladder = [steps[r] for r in rates]
    figures = []
    for r, s in zip(rates, ladder, strict=True):
        note = (
            f"CPU % server {s['server_cpu_pct']:.0f}, generator {s['generator_cpu_pct']:.0f}, "
            f"other {s['other_cpu_pct']:.0f}"
        )
        if s["generator_cpu_pct"] >= GENERATOR_LIMIT_PCT:
            note += "; GENERATOR-LIMITED: a bound, not the server's figure"
        figures += [
            Figure(f"P99 at {r:,.0f}/s offered (seed mix)", s["p99_ms"], "ms", HELD_P99_MS, "<=", note=note),
            Figure(f"  completed at {r:,.0f}/s", s["completed_pct"], "% offered", 100 * HELD_SHARE, ">="),
        ]
    if failed is None:
        limit = f"every rate tried held (up to {max(steps):,.0f}/s)"
    else:
        limit = (
            f"{failed['offered']:,.0f}/s failed: {limited_by(failed)} (CPU % server "
            f"{failed['server_cpu_pct']:.0f}, generator {failed['generator_cpu_pct']:.0f}, other "
            f"{failed['other_cpu_pct']:.0f})"
        )
    figures.append(
        Figure("highest rate held (1 server core, as shipped)", best, "requests/s", None, note=limit)
    )
    high = steps.get(float(HIGH_RATE))
    low_cost = low["server_cpu_us_per_request"]
    high_cost = high["server_cpu_us_per_request"] if high else None
    ratio = low_cost / high_cost if low_cost and high_cost else None
    figures += [
        Figure(f"server CPU per request at {args.low_rate:,.0f}/s", low_cost, "us", None),
        Figure(
            f"server CPU per request at {HIGH_RATE:,}/s",
            high_cost,
            "us",
            None,
            note="" if high else f"{HIGH_RATE:,}/s not on the ladder",
        ),
        Figure(f"  ratio {args.low_rate:,.0f}/s / {HIGH_RATE:,}/s", ratio, "ratio", GOAL_CPU_RATIO, "<="),
        Figure(
            f"idle server CPU ({args.idle_seconds:g} s, no load)",
            low["idle_cores"],
            "cores",
            GOAL_IDLE_CORES,
            "<=",
        ),
    ]
    top = steps.get(float(GENERATOR_RATE))
    figures.append(
        Figure(
            f"generator CPU at {GENERATOR_RATE:,}/s, {args.connections:,} conns",
            alone["generator_cpu_pct"],
            "% its core",
            GOAL_GENERATOR_PCT,
            "<=",
            note=f"all answered (canned sink), {alone['generator_cpu_us_per_request']:.0f} us per request; "
            + (
                f"against the exchange {top['generator_cpu_pct']:.0f} %"
                if top
                else f"{GENERATOR_RATE:,}/s not on the exchange's ladder"
            )
            + f"; its figures bound the server's from {GENERATOR_LIMIT_PCT:.0f} %",
        )
    )
    emit(
        "shipped_capacity",
        figures,
        args,
        load,
        {
            "matching_engine": build,
            "connections": args.connections,
            "seconds": args.seconds,
            "light": low,
            "generator_alone": alone,
            "steps": [steps[r] for r in sorted(steps)],
            "highest_held": best,
            "limit": limit,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
