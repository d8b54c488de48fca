"""What a refusal costs the exchange: server CPU per 503 against server CPU per accepted limit order.

    python benchmarks/refusal_cost.py [--quick] [--connections 64]

Issue 21: under overload, only answering faster drains the clients' queue, so a refusal must be cheap
(goal: at most a quarter of an accepted order's CPU). Closed-loop runs against the exchange as shipped
(durable journal, sync=full), pinned to one CPU, the same pre-encoded orders: one where every order is
accepted; one where the admission controller stands from the start and refuses all but a handful (the cheap
503 of a standing queue: the figure); one where the loop-lag bound refuses (``OVERLOAD_MAX_LAG`` 1 µs with
``LEAN_HTTP=off``, the only path it refuses on). Server CPU-seconds (psutil); a refusal's cost is the run's
CPU less what its accepted orders cost at the first run's rate, over its refusals.
"""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _canned_server import CannedServer
from _common import Figure, MachineLoad, cpu_seconds, emit, parser, pin_server_cpu
from _loadgen import closed_loop
from http_orders import order_requests

from capacity.run.exchange_process import EmbeddedExchange

# The admission controller (reference_exchange/admission.py) in a standing queue from the first turns on,
# admitting orders for a millionth of each turn: a few dozen in a run, so the figure is the refusal's own
# cost, not an estimate of what the admitted orders cost subtracted (those commit in small batches, dearer).
ADMISSION_REFUSES = {
    "ADMISSION_TARGET": "0.000001",
    "ADMISSION_INTERVAL": "0.000001",
    "ADMISSION_SHARE": "0.000001",
}
#: The loop-lag bound refuses only on the aiohttp path (the lean path's admission decides by its turns).
LAG_REFUSES = {"OVERLOAD_MAX_LAG": "0.001ms", "LEAN_HTTP": "off"}


def server_cpu_us(
    env: dict[str, str],
    seconds: float,
    connections: int,
    cpu: int,
    kind: type[EmbeddedExchange] = EmbeddedExchange,
) -> tuple[float, dict]:
    """Server CPU microseconds used during a closed-loop run of orders, and the run's counts."""
    with kind(env=env, cpus=[cpu]) as exchange:
        process = psutil.Process(exchange.pid)
        before = cpu_seconds(process)
        result = uvloop.run(closed_loop(exchange.url, order_requests(exchange.url), seconds, connections))
        used = cpu_seconds(process) - before
    return 1e6 * used, result.summary()


def per_refusal_us(used_us: float, counts: dict, accepted_us: float) -> float:
    """CPU per 503 in a run that also accepted some orders: what the accepted ones cost taken out."""
    return (used_us - counts["ok"] * accepted_us) / counts["shed"] if counts["shed"] else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=64)
    args = p.parse_args(argv)
    seconds = 3.0 if args.quick else 10.0
    cpu = pin_server_cpu()
    with MachineLoad() as load:
        used, accepted = server_cpu_us({}, seconds, args.connections, cpu)
        accepted_us = used / accepted["ok"]
        used, admission = server_cpu_us(ADMISSION_REFUSES, seconds, args.connections, cpu)
        admission_us = per_refusal_us(used, admission, accepted_us)
        used, lag = server_cpu_us(LAG_REFUSES, seconds, args.connections, cpu)
        lag_us = per_refusal_us(used, lag, accepted_us)
        used, canned = server_cpu_us({}, seconds, args.connections, cpu, CannedServer)
        floor_us = used / (canned["ok"] + canned["shed"])
    print(f"accepted: {accepted['ok']:,} orders, {accepted_us:.1f} µs of server CPU each")
    for name, counts, each_us in (("by admission", admission, admission_us), ("for loop lag", lag, lag_us)):
        print(f"refused {name}: {counts['shed']:,} (+{counts['ok']:,} accepted), {each_us:.1f} µs each")
    figures = [
        Figure(
            "server CPU per refusal / per accepted order", admission_us / accepted_us, "ratio", 0.25, "<="
        ),
        Figure("  server CPU per accepted limit order", accepted_us, "µs", None),
        Figure("  server CPU per refusal (admission, 503)", admission_us, "µs", None),
        Figure("  server CPU per refusal (loop lag, 503)", lag_us, "µs", None),
        Figure(
            "  floor: any answer from canned bytes",
            floor_us,
            "µs",
            None,
            note="_canned_server.py, the same closed loop: what any answer over these sockets costs",
        ),
        Figure(
            "  floor / per accepted order",
            floor_us / accepted_us,
            "ratio",
            None,
            note="above 0.25, no answer over these sockets meets the goal on this machine",
        ),
        Figure("  refusal / floor", admission_us / floor_us, "ratio", None),
    ]
    detail = {"accepted": accepted, "admission": admission, "lag": lag, "canned": canned}
    emit("refusal_cost", figures, args, load, detail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
