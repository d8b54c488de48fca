"""The core that overload.py's 2 x S goals need: what an order and a refusal cost on its connections, times S.

    python benchmarks/overload_budget.py [--quick] [--rounds 2] [--seconds 10] [--connections 1000]
                                         [--json PATH]

Issue 21 takes S, the goodput at saturation, on 64 connections, and asks of the exchange at 2 x S on 1,000
connections a goodput of at least 0.85 S and answers of at least 1.3 S: each second, 0.85 S orders and the
0.45 S refusals beside them, on one core. Whether any admission policy can do that depends on what an order
and a refusal cost *on 1,000 connections*, where every turn of the event loop reads every connection, and
not on the 64 that S is measured on. Each round, every run on a fresh exchange as shipped pinned to the
last CPU, closed loops, the generator on the other CPUs:

1. **S**: the seed mix on 64 connections, overload.py's saturation run. Its goodput, and the server's CPU
   per 2xx answer (its process, user + system, over the run).
2. **Orders** on the overload's connections (``--connections``): the same mix, the admission controller out
   of the way (``ADMISSION_TARGET`` 1 s: no turn stands that long, so nothing is refused). Server CPU per
   2xx answer.
3. **Refusals** on the same connections: plain limit orders, all but a millionth refused (refusal_cost.py's
   settings). Server CPU per answer.

Figures, medians over ``--rounds``: the three costs, the order's cost on the overload's connections over its
cost in S's run, TCP segments per answer in runs 1 and 2 (the machine's own count, /proc/net/snmp: on
loopback, the client's segments and the server's), and the core the goals need: S x (0.85 x an order's cost
+ 0.45 x a refusal's), goal <= 1. Above 1, no admission policy meets both goals on this machine at that
moment; just below it, only a policy that spends the core on nothing else does (overload.py's runs measure
what the exchange's policy does).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this tree's toolkit, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, MachineLoad, emit, parser, pin_server_cpu
from overload import (
    GOAL_ANSWERS,
    GOAL_GOODPUT,
    OVERLOAD_CONNECTIONS,
    SATURATION_CONNECTIONS,
    closed_run,
    connections_refused,
    file_limit_raised_for,
)
from refusal_cost import ADMISSION_REFUSES, server_cpu_us

#: A turn of the loop over 1,000 busy connections lasts tens of ms, never a second: the controller never
#: sees a standing queue, so every order is admitted.
ADMISSION_OFF = {"ADMISSION_TARGET": "1s"}


def order_cost_us(run: dict) -> float:
    """Server CPU per 2xx answer of an ``overload.closed_run``, in µs."""
    return 1e6 * run["server_cpu_pct"] / 100 / run["goodput"]


def needed_cores(s: float, order_us: float, refusal_us: float) -> float:
    """Cores that ``s`` x (goodput goal) orders and ``s`` x (answers goal - goodput goal) refusals a second
    take at these costs."""
    return s * (GOAL_GOODPUT * order_us + (GOAL_ANSWERS - GOAL_GOODPUT) * refusal_us) / 1e6


def one_round(seconds: float, connections: int, cpu: int) -> dict:
    saturated = closed_run(seconds, cpu, SATURATION_CONNECTIONS)
    orders = closed_run(seconds, cpu, connections, env=ADMISSION_OFF)
    used_us, refusals = server_cpu_us(ADMISSION_REFUSES, seconds, connections, cpu)
    answers = refusals["ok"] + refusals["shed"]
    round_ = {
        "s": saturated["goodput"],
        "s_order_us": order_cost_us(saturated),
        "order_us": order_cost_us(orders),
        "refusal_us": used_us / answers if answers else float("nan"),
        "s_segments_per_answer": saturated["segments_per_answer"],
        "order_segments_per_answer": orders["segments_per_answer"],
        "orders_refused": orders["shed"],
        "server_cpu_pct": {"s": saturated["server_cpu_pct"], "orders": orders["server_cpu_pct"]},
        "p99_ms": {"s": saturated["p99_ms"], "orders": orders["p99_ms"]},
    }
    print(
        f"  round: S {round_['s']:,.0f} 2xx/s at {round_['s_order_us']:.1f} µs each "
        f"({round_['s_segments_per_answer']:.2f} segments an answer); on {connections:,} connections an "
        f"order {round_['order_us']:.1f} µs ({round_['order_segments_per_answer']:.2f} segments), "
        f"a refusal {round_['refusal_us']:.1f} µs",
        flush=True,
    )
    return round_


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, help="rounds of the three runs, alternated (2, quick 1)")
    p.add_argument("--seconds", type=float, help="each closed loop's length (10, quick 3)")
    p.add_argument("--connections", type=int, default=OVERLOAD_CONNECTIONS, help="the overload's (1,000)")
    args = p.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 2)
    seconds = args.seconds if args.seconds is not None else (3.0 if args.quick else 10.0)
    if rounds < 1:
        p.error(f"--rounds must be at least 1, got {rounds}")
    if not seconds > 0:
        p.error(f"--seconds must be a positive number, got {seconds}")
    refused = connections_refused("--connections", args.connections)
    if refused:
        p.error(refused)
    cpu = pin_server_cpu()
    with MachineLoad() as load, file_limit_raised_for(args.connections):
        measured = [one_round(seconds, args.connections, cpu) for _ in range(rounds)]

    def median(key: str) -> float:
        return statistics.median(r[key] for r in measured)

    s, s_order_us, order_us, refusal_us = (median(k) for k in ("s", "s_order_us", "order_us", "refusal_us"))
    on = f"on {args.connections:,} conns"
    figures = [
        Figure(
            "core the 2 x S goals need",
            needed_cores(s, order_us, refusal_us),
            "cores",
            1.0,
            "<=",
            note=f"S x ({GOAL_GOODPUT:g} x order + {GOAL_ANSWERS - GOAL_GOODPUT:.2g} x refusal), {on}",
        ),
        Figure(f"  S ({SATURATION_CONNECTIONS} conns, closed loop)", s, "2xx/s", None),
        Figure(f"  server CPU per 2xx in S's run ({SATURATION_CONNECTIONS} conns)", s_order_us, "µs", None),
        Figure(f"  server CPU per 2xx {on}, nothing refused", order_us, "µs", None),
        Figure(f"  an order {on} / in S's run", order_us / s_order_us, "ratio", None),
        Figure(f"  server CPU per refusal {on}", refusal_us, "µs", None),
        Figure(
            f"  TCP segments per answer {on} / in S's run",
            median("order_segments_per_answer") / median("s_segments_per_answer"),
            "ratio",
            None,
            note=f"{median('order_segments_per_answer'):.2f} against {median('s_segments_per_answer'):.2f}",
        ),
    ]
    emit("overload_budget", figures, args, load, {"rounds": measured, "connections": args.connections})
    return 0


if __name__ == "__main__":
    sys.exit(main())
