"""Two admission shares compared within one overload run, the share switched every few seconds.

    python benchmarks/admission_shares.py [--quick] [--shares 0.9,0.8] [--seconds 90] [--period 3]
        [--connections 1000]

Issue 21 sets two goals at 2 x S that pull against each other: goodput >= 0.85 S and all answers >= 1.3 S.
``ADMISSION_SHARE`` trades one for the other. Separate runs minutes apart cannot tell two shares apart
on this machine: its speed moves by 10-15 % between them (docs/benchmarks.md, "How much the machine moves").
So one exchange as shipped (pinned to the last CPU) takes the overload part's load (``overload.py``: the
seed mix at 2 x S on 1,000 connections, or ``--connections``, open loop) for ``--seconds``, and
``PUT /demo/admission`` switches its share between the two values every ``--period`` seconds, counted
from the start of the schedule.
Each second of answers is binned by the share in force; the second in which a switch happens is left out
(the switch lands within it). Printed per share: goodput, all answers and refusals over S (the median of
three saturation runs, as ``overload.py`` measures it), and the difference between the two shares, measured
at the same moments. No goals here: the goals belong to ``overload.py``, which runs the share as shipped.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this tree's toolkit, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
import uvloop
from _common import ROOT, Figure, MachineLoad, emit, parser, pin_server_cpu
from _mix import SeedMix
from overload import (
    OVERLOAD_CONNECTIONS,
    OVERLOAD_FACTOR,
    SOCKET_TIMEOUT_S,
    connections_refused,
    file_limit_raised_for,
    median_saturation,
    overload_schedule,
)

from capacity.run.exchange_process import EmbeddedExchange
from reference_exchange.admission import SHARE_BOUNDS

DEFAULT_SHARES = (0.9, 0.8)


def retune(url: str, share: float) -> None:
    """Set the exchange's admission share (admin route; the benchmark is a loopback client)."""
    request = urllib.request.Request(
        url + "/demo/admission",
        data=orjson.dumps({"share": share}),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=SOCKET_TIMEOUT_S) as response:
        assert orjson.loads(response.read())["share"] == share


def alternated(
    s: float, shares: tuple[float, float], seconds: int, period: int, server_cpu: int, connections: int
) -> dict:
    """The overload schedule on one exchange, the share switched every ``period`` s: answers per share."""
    # the exchange inherits the limit, and derives its connection cap from it
    with file_limit_raised_for(connections), EmbeddedExchange(cpus=[server_cpu]) as exchange:
        mix = SeedMix.for_exchange(exchange.url)
        retune(exchange.url, shares[0])
        stop = threading.Event()

        def switch(start: float) -> None:
            for window in range(1, seconds // period + 1):
                if stop.wait(max(0.0, start + window * period - time.monotonic())):
                    return
                retune(exchange.url, shares[window % 2])

        def started() -> None:
            threading.Thread(target=switch, args=(time.monotonic(),), daemon=True).start()

        try:
            result = uvloop.run(
                overload_schedule(
                    exchange.url, mix, [(OVERLOAD_FACTOR * s, float(seconds))], connections, started
                )
            )
        finally:
            stop.set()
    timeline = result.timeline
    assert timeline is not None
    per_share: dict[str, dict[str, int]] = {
        f"{share:g}": {"seconds": 0, "ok": 0, "shed": 0, "other": 0} for share in shares
    }
    for second in range(seconds):
        if second % period == 0:
            continue  # a switch lands within this second
        counts = per_share[f"{shares[(second // period) % 2]:g}"]
        counts["seconds"] += 1
        for kind, n in timeline.answers(second, second + 1).items():
            if kind in counts:
                counts[kind] += n
    return {"shares": per_share, "timeouts": result.timeouts, "result": result.summary()}


def share_figures(measured: dict, s: float, shares: tuple[float, float], connections: int) -> list[Figure]:
    figures, rates = [], {}
    for share in shares:
        c = measured["shares"][f"{share:g}"]
        per_s = max(1, c["seconds"]) * s
        r = rates[share] = {
            "goodput": c["ok"] / per_s,
            "answers": (c["ok"] + c["shed"] + c["other"]) / per_s,
            "refused": c["shed"] / per_s,
        }
        figures += [
            Figure(
                f"share {share:g}: goodput / S",
                r["goodput"],
                "x S",
                None,
                note=f"over {c['seconds']} s, {connections:,} connections",
            ),
            Figure("  all answers / S", r["answers"], "x S", None),
            Figure("  refused / S", r["refused"], "x S", None),
        ]
    first, second = shares
    for what in ("goodput", "answers"):
        figures.append(
            Figure(
                f"{what}: share {second:g} less share {first:g}",
                rates[second][what] - rates[first][what],
                "x S",
                None,
                note="the same minutes, interleaved",
            )
        )
    return figures


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--shares",
        default=",".join(f"{x:g}" for x in DEFAULT_SHARES),
        help="the two shares to alternate (0.9,0.8)",
    )
    p.add_argument("--seconds", type=int, default=None, help="the 2 x S schedule (90, quick 24)")
    p.add_argument("--period", type=int, default=3, help="seconds between switches (3)")
    p.add_argument("--saturation-seconds", type=float, default=None, help="closed loop for S (10, quick 4)")
    p.add_argument(
        "--connections", type=int, default=OVERLOAD_CONNECTIONS, help=f"({OVERLOAD_CONNECTIONS:,}; S uses 64)"
    )
    args = p.parse_args(argv)
    try:
        shares = tuple(float(x) for x in args.shares.split(","))
    except ValueError:
        p.error(f"--shares takes two numbers such as 0.9,0.8, got {args.shares!r}")
    low, high = SHARE_BOUNDS  # what the exchange itself takes, so no PUT is refused mid-run
    if len(shares) != 2 or shares[0] == shares[1] or not all(low < x < high for x in shares):
        p.error(f"--shares takes two different fractions between {low:g} and {high:g}, got {args.shares!r}")
    seconds = args.seconds or (24 if args.quick else 90)
    sat_s = args.saturation_seconds or (4.0 if args.quick else 10.0)
    if args.period < 2 or seconds < 2 * args.period or sat_s <= 0:
        p.error("--period must be at least 2 s, --seconds at least two periods, durations positive")
    refused = connections_refused("--connections", args.connections)
    if refused:
        p.error(refused)
    if args.json:
        args.json = str(Path(args.json).resolve())
    os.chdir(ROOT)  # the exchange is started as `python -m reference_exchange`: this tree's
    server_cpu = pin_server_cpu()
    pair = (shares[0], shares[1])
    with MachineLoad() as load:
        sat = median_saturation(sat_s, server_cpu)
        s = sat["goodput"]
        measured = alternated(s, pair, seconds, args.period, server_cpu, args.connections)
    figures = [
        Figure(
            "S: goodput at saturation (64 conns)",
            s,
            "2xx/s",
            None,
            note="median of 3: " + ", ".join(f"{g:,.0f}" for g in sat["goodput_runs"]),
        ),
        *share_figures(measured, s, pair, args.connections),
        Figure("socket timeouts", measured["timeouts"], "requests", None),
    ]
    emit("admission_shares", figures, args, load, {"saturation": sat, "alternated": measured})
    return 0


if __name__ == "__main__":
    sys.exit(main())
