"""Cross-check of shipped_capacity.py's instrument: wrk2 and ``_loadgen.py`` at the same rate, the same mix.

wrk2 (https://github.com/giltene/wrk2, built from source with ``make``: see docs/benchmarks.md) is a
constant-rate generator that also measures latency from the intended send time. Both tools send the seed
mix from the same pre-encoded plan (``_mix.plan``; wrk2 through ``benchmarks/wrk_seed_mix.lua``, which
learns resting order ids from 201 answers for its cancels as ``_mix.SeedMix`` does) at ``--rate`` on
``--connections`` keep-alive connections (wrk2 runs longer: it opens its connections 5 ms apart and
starts its figures afresh 10 s after the last, so both tools measure ``--seconds`` at the full rate), each
against a fresh exchange as shipped (durable journal) pinned
to the last CPU, the tool pinned to the others. Printed side by side: achieved rate, corrected P99 (and
P50, P99.9), non-2xx answers and the tool's CPU. Figure: our P99 / wrk2's, goal within 0.67-1.5 (the band
native_engine.py uses). wrk2 counts a cancel answered 409 (its order traded first) as non-2xx; ours counts
it completed, so the non-2xx lines differ by those.

wrk2 is looked for at ``--wrk2``, ``$WRK2``, ``benchmarks/tools/wrk2`` and ``wrk2`` on PATH; without it
the script says how to build it and exits 2.

Usage: python benchmarks/wrk_crosscheck.py [--rate 5000] [--seconds 20] [--connections 1000] [--wrk2 PATH]
       [--json PATH]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this tree's toolkit, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil
import uvloop
from _canned_server import CannedServer
from _common import ROOT, Figure, MachineLoad, cpu_seconds, emit, parser, pin_server_cpu
from _loadgen import encode_posts, open_loop
from _mix import KINDS, SeedMix, fetch_market, plan
from shipped_capacity import GRANULARITY_US, matching_build

from capacity.run.exchange_process import EmbeddedExchange

LUA = ROOT / "benchmarks" / "wrk_seed_mix.lua"
P99_BAND = (0.67, 1.5)
#: The floor runs' one request: a limit order as the exchange takes it (the canned sink acks anything).
PLAIN_ORDER = b'{"symbol":"BTCUSD","side":"buy","type":"limit","price":"59000","quantity":"0.5"}'
# wrk2 opens its connections 5 ms apart and, 10 s after the last, calibrates and starts its figures afresh:
# its run is that much longer than ours, so that both measure ``--seconds`` at the full rate
WRK2_CALIBRATION_S, WRK2_CONNECT_STAGGER_S = 10.0, 0.005
UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
BUILD_HINT = (
    "wrk2 not found: build it from source (git clone https://github.com/giltene/wrk2 && make -C wrk2; needs "
    "build-essential, libssl-dev, zlib1g-dev) and put the binary at benchmarks/tools/wrk2, on PATH as wrk2, "
    "or pass --wrk2 PATH"
)


def find_wrk2(given: str | None) -> str | None:
    """``given`` if it is an executable (else None: a path asked for is not silently replaced), else the
    first of ``$WRK2``, ``benchmarks/tools/wrk2`` and ``wrk2`` on PATH."""
    if given:
        return given if _executable(given) else None
    for candidate in (os.environ.get("WRK2"), str(ROOT / "benchmarks" / "tools" / "wrk2")):
        if candidate and _executable(candidate):
            return candidate
    return shutil.which("wrk2")


def _executable(path: str) -> bool:
    return Path(path).is_file() and os.access(path, os.X_OK)


def lua_string(data: bytes) -> str:
    text = data.decode("ascii")
    return (
        '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n") + '"'
    )


def write_plan(path: Path, url: str, planned: list[tuple[bytes, int]]) -> None:
    """The plan as a Lua chunk for wrk_seed_mix.lua: the requests, their kinds and the Host header."""
    host = url.split("://", 1)[1]
    lines = ["return {", f"  host = {lua_string(host.encode())},", "  requests = {"]
    lines += [f"    {lua_string(request)}," for request, _ in planned]
    lines += ["  },", "  kinds = {"]
    lines += [f'    "{KINDS[kind]}",' for _, kind in planned]
    lines += ["  },", "}"]
    path.write_text("\n".join(lines) + "\n")


def ms(match: re.Match[str] | None) -> float | None:
    return float(match.group(1)) * UNITS_MS[match.group(2)] if match else None


def wrk2_seconds(args: argparse.Namespace) -> float:
    return round(args.seconds + WRK2_CALIBRATION_S + args.connections * WRK2_CONNECT_STAGGER_S + 0.5)


def measured_window(args: argparse.Namespace) -> float:
    """The part of wrk2's run its figures cover (from its calibration on)."""
    return wrk2_seconds(args) - WRK2_CALIBRATION_S - args.connections * WRK2_CONNECT_STAGGER_S


def write_plain_order(path: Path) -> None:
    """A wrk2 script of one static request, ``PLAIN_ORDER`` (no Lua per request: wrk2's own fast path)."""
    path.write_text(
        f'wrk.method = "POST"\nwrk.path = "/api/orders"\nwrk.body = {lua_string(PLAIN_ORDER)}\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )


def run_wrk2(
    wrk2: str,
    args: argparse.Namespace,
    server_cpu: int,
    generator_cpus: list[int],
    workdir: Path,
    sink: bool = False,
    timeout_s: float | None = None,
    count_after_s: float | None = None,
) -> dict:
    """wrk2 against a fresh exchange with the seed mix, or (``sink``) against canned bytes with
    ``PLAIN_ORDER``. With the mix, answers are also counted by class over ``args.seconds`` whole seconds,
    from the first whole second ``count_after_s`` after its start (by default, after its ramp: its
    connecting and its calibration). ``timeout_s``: its socket timeout (its own default is 2 s)."""
    with (CannedServer if sink else EmbeddedExchange)(cpus=[server_cpu]) as exchange:
        if sink:
            script, script_args = workdir / "plain.lua", []
            write_plain_order(script)
        else:
            script, plan_file = LUA, workdir / "plan.lua"
            write_plan(plan_file, exchange.url, plan(exchange.url, fetch_market(exchange.url)))
            script_args = ["--", str(plan_file)]
        server = psutil.Process(exchange.pid)
        after_s = wrk2_seconds(args) - args.seconds if count_after_s is None else count_after_s
        count_from = math.ceil(time.time() + after_s)
        count_until = count_from + round(args.seconds)
        command = [
            "taskset",
            "-c",
            ",".join(map(str, generator_cpus)),
            wrk2,
            "-t1",
            f"-c{args.connections}",
            f"-d{wrk2_seconds(args):g}s",
            f"-R{args.rate:.0f}",  # whole requests/s: wrk2 refuses a fraction
            *([] if timeout_s is None else [f"--timeout={timeout_s:g}s"]),
            "--latency",
            "-s",
            str(script),
            exchange.url,
            *script_args,
            *([] if sink else [str(count_from), str(count_until)]),
        ]
        c0, t0 = cpu_seconds(server), time.perf_counter()
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
        )
        assert process.stdout is not None
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)  # its CPU: the resource usage of the process
        process.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - t0
        counted_seconds = min(time.time(), count_until) - count_from
        server_s = cpu_seconds(server) - c0
    if process.returncode != 0:
        raise RuntimeError(f"wrk2 exited {process.returncode}: {output[-800:]}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)  # over its whole run, the ramp included
    counted = re.search(r"Total count\s+=\s+(\d+)", output)  # answers in its measured window
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket = re.search(r"Socket errors:(.*)", output)
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    sent = re.search(r"seed mix sent: (.*)", output)
    by_class = re.search(r"answers counted: 2xx (\d+) 503 (\d+) 429 (\d+) other (\d+)", output)
    return {
        "requests_per_sec_whole_run": float(rate.group(1)) if rate else None,
        # the answers it measured over its measured window (its run less the connecting and calibration)
        "achieved": int(counted.group(1)) / measured_window(args) if counted else None,
        "requests": int(total.group(1)) if total else None,
        "p50_ms": ms(re.search(r"^\s*50\.000%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)),
        "p99_ms": ms(re.search(r"^\s*99\.000%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)),
        "p999_ms": ms(re.search(r"^\s*99\.900%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": socket.group(1).strip() if socket else "",
        "mix": sent.group(1).strip() if sent else "",
        "counted": dict(zip(("2xx", "503", "429", "other"), map(int, by_class.groups()), strict=True))
        if by_class
        else {},
        "counted_seconds": counted_seconds,
        "tool_cpu_s": usage.ru_utime + usage.ru_stime,
        "tool_cpu_pct": 100 * (usage.ru_utime + usage.ru_stime) / elapsed,
        "server_cpu_pct": 100 * server_s / elapsed,
        "output_tail": output[-1500:],
    }


def run_ours(args: argparse.Namespace, server_cpu: int, sink: bool = False) -> dict:
    """``_loadgen`` as ``run_wrk2`` runs wrk2."""
    marks: dict[str, float] = {}
    with (CannedServer if sink else EmbeddedExchange)(cpus=[server_cpu]) as exchange:
        server = psutil.Process(exchange.pid)
        mix = (
            encode_posts(exchange.url, "/api/orders", [PLAIN_ORDER])
            if sink
            else SeedMix.for_exchange(exchange.url)
        )

        def started() -> None:
            marks.update(cpu=cpu_seconds(server), t=time.perf_counter())

        result = uvloop.run(
            open_loop(
                exchange.url, mix, args.rate, args.seconds, args.connections, GRANULARITY_US, on_start=started
            )
        )
        server_s = cpu_seconds(server) - marks["cpu"]
        elapsed = time.perf_counter() - marks["t"]
    s = result.summary()
    s.update(
        p999_ms=result.percentile_ms(99.9),
        answers_per_s=sum(n for status, n in result.statuses.items() if status > 0) / result.seconds,
        non_2xx=sum(n for status, n in result.statuses.items() if not 200 <= status < 300),
        server_cpu_pct=100 * server_s / elapsed,
        tool_cpu_s=result.generator_cpu_s,
        tool_cpu_pct=result.generator_cpu_pct,
        mix=mix.report() if isinstance(mix, SeedMix) else {"sent_pct": {"plain order": 100.0}},
    )
    return s


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=5000.0, help="requests/s offered by both tools (5000)")
    p.add_argument("--seconds", type=float, default=None, help="measured, each tool (default 20, quick 10)")
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--wrk2", default=None, help="the wrk2 binary")
    p.add_argument(
        "--no-floor",
        action="store_true",
        help="skip each tool's own floor (one plain order at the same rate against canned bytes)",
    )
    args = p.parse_args(argv)
    args.seconds = args.seconds or (10.0 if args.quick else 20.0)
    if args.rate <= 0 or args.connections < 1 or args.seconds <= 0:
        p.error("--rate, --seconds and --connections must be positive")
    wrk2 = find_wrk2(args.wrk2)
    if wrk2 is None:
        print(BUILD_HINT, file=sys.stderr)
        return 2
    if args.json:
        args.json = str(Path(args.json).resolve())
    os.chdir(ROOT)
    server_cpu = pin_server_cpu()
    generator_cpus = sorted(os.sched_getaffinity(0))
    print(
        f"exchange as shipped, matching engine {matching_build()}, on CPU {server_cpu}; tools on CPUs "
        f"{generator_cpus}; seed mix at {args.rate:,.0f}/s on {args.connections:,} connections, "
        f"{args.seconds:g} s measured each (wrk2 runs {wrk2_seconds(args):g} s: it opens its connections "
        f"5 ms apart and measures afresh 10 s after the last); wrk2 = {wrk2}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="wrk-crosscheck-") as tmp, MachineLoad() as load:
        theirs = run_wrk2(wrk2, args, server_cpu, generator_cpus, Path(tmp))
        ours = run_ours(args, server_cpu)
        floors = (
            {}
            if args.no_floor
            else {
                "wrk2": run_wrk2(wrk2, args, server_cpu, generator_cpus, Path(tmp), sink=True),
                "_loadgen": run_ours(args, server_cpu, sink=True),
            }
        )
    for name, r in (("wrk2", theirs), ("_loadgen", ours), *((f"{n} floor", r) for n, r in floors.items())):
        cpu, answers = r["tool_cpu_s"], r.get("answers_per_s", r["achieved"]) or 0
        print(
            f"  {name:<9} answers {answers:>8,.0f}/s  p50 {r['p50_ms'] or 0:7.2f} ms  "
            f"p99 {r['p99_ms'] or 0:8.2f} ms  p99.9 {r['p999_ms'] or 0:8.2f} ms  non-2xx {r['non_2xx']:,}  "
            f"CPU s tool {cpu if cpu is None else round(cpu, 1)}, server {r['server_cpu_pct']:.0f} %",
            flush=True,
        )
    print(f"  wrk2 {theirs['mix']}")
    print(f"  _loadgen sent {ours['mix']['sent_pct']} %")
    ratio = ours["p99_ms"] / theirs["p99_ms"] if theirs["p99_ms"] else None
    figures = [
        Figure(
            f"P99 at {args.rate:,.0f}/s: _loadgen / wrk2",
            ratio,
            "ratio",
            P99_BAND[0],
            upper=P99_BAND[1],
            note=f"{ours['p99_ms']:.2f} / {theirs['p99_ms'] or 0:.2f} ms"
            + (
                "; the server fell behind (P99 > 20 ms): both P99s measure a backlog, which the tools pace "
                "differently (wrk2 per connection, catching up at 2x): compare at a rate the server holds"
                if ours["p99_ms"] > 20
                else ""
            ),
        ),
        Figure("  answers/s, _loadgen", ours["answers_per_s"], "requests/s", None),
        Figure(
            "  answers/s, wrk2 (its measured window)",
            theirs["achieved"],
            "requests/s",
            None,
            note=f"its Requests/sec, whole run and ramp: {theirs['requests_per_sec_whole_run']}",
        ),
    ]
    for name, r in floors.items():
        figures.append(
            Figure(
                f"  {name}'s own P99 floor (canned bytes, one plain order)",
                r["p99_ms"],
                "ms",
                None,
                note=f"its CPU {r['tool_cpu_pct']:.0f} % of its core: a P99 near this is the tool's, not the "
                "server's",
            )
        )
    details = {"wrk2": theirs, "ours": ours, "floors": floors, "wrk2_binary": wrk2}
    emit("wrk_crosscheck", figures, args, load, details)
    return 0


if __name__ == "__main__":
    sys.exit(main())
