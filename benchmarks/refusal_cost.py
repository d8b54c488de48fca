"""What a refusal costs the exchange: server CPU per 503 against server CPU per accepted limit order.

    python benchmarks/refusal_cost.py [--quick] [--connections 64]

Issue 21: under overload, only answering faster drains the clients' queue, so a refusal must be cheap
(goal: at most a quarter of an accepted order's CPU). Two closed-loop runs against the exchange as shipped
(durable journal, sync=full), pinned to one CPU, the same pre-encoded orders: one where every order is
accepted, one where every order is refused (``OVERLOAD_MAX_LAG`` 1 µs: the loop is always later than
that). Server CPU-seconds (psutil) over answers of each kind, measured in the same run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, MachineLoad, cpu_seconds, emit, parser, pin_server_cpu
from _loadgen import closed_loop
from http_orders import order_requests

from capacity.run.exchange_process import EmbeddedExchange


def cpu_per_answer(env: dict[str, str], seconds: float, connections: int, cpu: int) -> tuple[float, dict]:
    """Server CPU microseconds per answer of the run's one kind (2xx, or 503), and the counts."""
    with EmbeddedExchange(env=env, cpus=[cpu]) as exchange:
        server = psutil.Process(exchange.pid)
        before = cpu_seconds(server)
        result = uvloop.run(closed_loop(exchange.url, order_requests(exchange.url), seconds, connections))
        used = cpu_seconds(server) - before
    answers = result.ok + result.shed
    return (1e6 * used / answers if answers else float("nan")), result.summary()


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=64)
    args = p.parse_args(argv)
    seconds = 3.0 if args.quick else 10.0
    cpu = pin_server_cpu()
    with MachineLoad() as load:
        accepted_us, accepted = cpu_per_answer({}, seconds, args.connections, cpu)
        refused_us, refused = cpu_per_answer({"OVERLOAD_MAX_LAG": "0.001ms"}, seconds, args.connections, cpu)
    print(f"accepted: {accepted['ok']:,} orders, {accepted_us:.1f} µs of server CPU each")
    print(f"refused:  {refused['shed']:,} orders answered 503, {refused_us:.1f} µs of server CPU each")
    figures = [
        Figure("server CPU per refusal / per accepted order", refused_us / accepted_us, "ratio", 0.25, "<="),
        Figure("  server CPU per accepted limit order", accepted_us, "µs", None),
        Figure("  server CPU per refusal (503)", refused_us, "µs", None),
    ]
    emit("refusal_cost", figures, args, load, {"accepted": accepted, "refused": refused})
    return 0


if __name__ == "__main__":
    sys.exit(main())
