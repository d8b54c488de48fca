"""Overload and hostile clients: what the reference exchange as shipped does past its capacity (issue 21).

The exchange runs with its default settings (durable journal) pinned to the last CPU; this generator
(``_loadgen.py``, the seed mix of ``_mix.py``) on the others. Every part starts a fresh exchange.

1. **S**, goodput at saturation: 2xx answers per second with 64 connections in a closed loop, the median of
   three runs on fresh exchanges. Once part 2 (and its wrk2 cross-check) is over, one more run measures S
   again: how far the machine itself moved meanwhile (printed, no goal; the goals stay ratios to S).
2. **Overload**: an open-loop schedule (latency from the intended send time) of 2 x S for 60 s on 1,000
   keep-alive connections, then straight away 0.5 x S for 20 s, one schedule. A request unanswered 10 s
   after its send is a *socket timeout* (its connection is dropped and reopened); a due request that finds
   no free connection for 1 s is *given up unsent* (every connection was waiting on the server: the excess
   the server neither answered nor refused), its wait recorded. While it runs, ``/health`` is polled once a
   second on a connection of its own (2 s timeout) and the server's RSS twice a second. Figures, over the
   2 x S phase: goodput (goal >= 0.85 S), all answers per second (goal >= 1.3 S: the excess refused, not
   left to time out), the refused share (503/429), socket timeouts (goal 0), RSS growth per order the
   exchange keeps (resting, or finished within its retention: what its memory grows with by design; goal
   at most ``engine_memory.GOAL_BYTES``, 400 B: nothing else, no queue, grows), counted from 5 s into the
   phase, once each connection's first use has grown it, /health failures (goal 0). Over the 0.5 x S
   phase: P99 (goal <= 20 ms) and the time from its start until the per-second P99 (requests by the second
   they were due) is back under 20 ms and stays there.
3. **Many connections**: part 2 again on 10,000 connections (``--many-connections``), the open-file limit
   raised (or lowered) to fit them, which sets the exchange's connection cap. Also: the server's RSS before
   they open and with all of them open (per connection), and its open files. Same goals but for the 0.5 x S
   P99: each turn of the loop reads every waiting connection, so with 10,000 of them an admitted order
   waits for a turn of hundreds of ms (printed, no goal).
4. **Clients that retry at once**: the seed mix in a closed loop on 3,000 connections
   (``--storm-connections``) for the overload phase's length, on a fresh exchange: every client sends again
   the moment it is answered, and a refused request is sent again as it was, as by a client that ignores
   Retry-After, so the offered rate grows as fast as the exchange refuses. More than 1,024 connections,
   because the loop reads up to 48 batches of 1,024 ready sockets in one turn: with fewer, a turn reads
   each connection once whatever it does. Figures: goodput (goal >= 0.85 S, as under 2 x S), all answers
   and the refused share, the P99 of all answers, and the generator's CPU (were it the limit, fewer would
   be offered).
5. **Hostile clients**: the exchange started with its open-file limit at 512; 600 stalled connections, half
   sending an incomplete request head one byte every 2 s, half idle. After 30 s: the share the server has
   closed (goal >= 95 %; a connection refused at once with a 503 counts as closed) and whether ``/health``
   answers a new connection (polled once a second throughout, 2 s timeout).

With ``--wrk2``, part 2's overload phase is cross-checked: wrk2 (``wrk_crosscheck.py`` finds it) sends the
same mix at the same 2 x S on the same 1,000 connections to a fresh exchange, its socket timeout set to the
same 10 s, and its goodput, answers and refused share are printed beside ours, counted over the same span
of the load: from its connections being open, for the 2 x S phase's length (the exchange's state grows
through the overload, so a later window answers less). wrk2 neither gives up a request nor reconnects:
what the server does not answer queues in wrk2.

The server's CPU is given over the 2 x S phase alone, twice: its process's (user + system) and its core's
whole busy share (interrupts and anything else that ran there included): whether the server had its core
to itself, and whether the core was full.

Today's exchange may MISS several of these: the figures are measured, not tuned. ``--part`` runs one part.

Usage: python benchmarks/overload.py [--quick] [--part all|overload|many|storm|hostile]
       [--saturation-seconds 10] [--overload-seconds 60] [--recovery-seconds 20] [--many-connections 10000]
       [--storm-connections 3000] [--hostile-seconds 30] [--wrk2 [PATH]] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this tree's toolkit, not an installed one
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil
import uvloop
from _common import ROOT, Figure, MachineLoad, ServerCpu, emit, parser, pin_server_cpu, tcp_segments_sent
from _loadgen import LOST, TIMEOUT, Result, closed_loop, open_loop_phases
from _mix import SeedMix
from engine_memory import GOAL_BYTES
from shipped_capacity import matching_build
from wrk_crosscheck import BUILD_HINT, WRK2_CONNECT_STAGGER_S, find_wrk2, run_wrk2

from capacity.generator.http_wire import ProtocolError, parse_head
from capacity.measure.sampler import ProcessSampler
from capacity.run.exchange_process import EmbeddedExchange
from reference_exchange.config import Settings

SATURATION_CONNECTIONS, OVERLOAD_CONNECTIONS, MANY_CONNECTIONS, STORM_CONNECTIONS = 64, 1_000, 10_000, 3_000
SATURATION_RUNS = 3
ACCEPT_WAIT_S = 10.0
MANY_FD_SPARE = 256  # this process's own files beside the many connections (the exchange's cap keeps 64)
OVERLOAD_FACTOR, RECOVERY_FACTOR = 2.0, 0.5
SOCKET_TIMEOUT_S, GIVE_UP_S = 10.0, 1.0
GOAL_GOODPUT, GOAL_ANSWERS, GOAL_P99_MS = 0.85, 1.3, 20.0
ORDER_RETENTION = Settings().order_retention  # the exchange as shipped
HEALTH_EVERY_S, HEALTH_TIMEOUT_S = 1.0, 2.0
RSS_EVERY_S = 0.5
WARM_S = 5.0  # into the 2 x S phase, every connection has been served (memory per order is counted from here)
HOSTILE_NOFILE, HOSTILE_CONNECTIONS, TRICKLE_EVERY_S, GOAL_CLOSED_PCT = 512, 600, 2.0, 95.0
GRANULARITY_US = 250
STALL_HEAD = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Stall: " + b"x" * 4096  # never ends
MIB = 1024 * 1024


# -- instruments beside the load --


async def health_probe(
    url: str, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None
) -> tuple[float | None, str, tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]:
    """One ``GET /health`` on ``conn`` (a new connection when None): (latency ms or None, outcome, the
    connection to reuse or None)."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S):
            if conn is None:
                conn = await asyncio.open_connection(host, int(port))
            reader, writer = conn
            writer.write(f"GET /health HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status, length = parse_head(head, len(head) - 4)
            await reader.readexactly(length)
    except (
        OSError,
        TimeoutError,
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
        ProtocolError,
    ) as e:
        if conn is not None:
            conn[1].close()
        return None, type(e).__name__, None
    latency = 1000 * (time.perf_counter() - t0)
    if status != 200 or b"connection: close" in head.lower():
        conn[1].close()
        conn = None
    return latency, str(status), conn


async def poll_health(url: str, stop: asyncio.Event, keep_alive: bool) -> list[dict]:
    """``/health`` once a second until ``stop``: on one kept-alive connection (reopened after a failure) or
    a new connection each time. Each probe: its time (monotonic), latency, outcome."""
    probes: list[dict] = []
    conn = None
    next_at = time.monotonic()
    while not stop.is_set():
        t = time.monotonic()
        latency, outcome, conn = await health_probe(url, conn)
        if not keep_alive and conn is not None:
            conn[1].close()
            conn = None
        probes.append({"t": t, "ms": latency, "outcome": outcome, "ok": outcome == "200"})
        next_at = max(next_at + HEALTH_EVERY_S, time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), next_at - time.monotonic())
    if conn is not None:
        conn[1].close()
    return probes


def health_summary(probes: list[dict]) -> dict:
    latencies = [p["ms"] for p in probes if p["ms"] is not None]
    failed = [p for p in probes if not p["ok"]]
    return {
        "probes": len(probes),
        "failed": len(failed),
        "outcomes": sorted({p["outcome"] for p in failed}),
        "max_ms": max(latencies, default=None),
    }


# -- 1. saturation --


def median_saturation(seconds: float, server_cpu: int) -> dict:
    """``saturation`` on ``SATURATION_RUNS`` fresh exchanges: the run of median goodput, with every run's
    goodput (``goodput_runs``). S from one run moved by 10 % and more from run to run on this machine, and
    every overload figure is a ratio to it."""
    runs = sorted(
        (saturation(seconds, server_cpu) for _ in range(SATURATION_RUNS)), key=lambda r: r["goodput"]
    )
    median = runs[len(runs) // 2]
    median["goodput_runs"] = [r["goodput"] for r in runs]
    return median


def closed_run(
    seconds: float,
    server_cpu: int,
    connections: int,
    retry_refused: bool = False,
    env: dict[str, str] | None = None,
) -> dict:
    """The seed mix in a closed loop on ``connections`` against a fresh exchange (with ``env`` set): each
    connection sends its next request as soon as it has an answer (the refused one again, with
    ``retry_refused``)."""
    segments: list[int] = []

    def mark() -> None:
        cpu.mark()
        segments.append(tcp_segments_sent())

    with EmbeddedExchange(env=env, cpus=[server_cpu]) as exchange:
        cpu = ServerCpu(psutil.Process(exchange.pid), server_cpu)
        mix = SeedMix.for_exchange(exchange.url)
        result = uvloop.run(
            closed_loop(exchange.url, mix, seconds, connections, mark, retry_refused=retry_refused)
        )
        mark()
    server_pct, core_pct = cpu.percent()
    s = result.summary()
    s.update(
        goodput=result.ok / result.seconds,
        server_cpu_pct=server_pct,
        server_core_pct=core_pct,
        segments_per_answer=(segments[-1] - segments[0]) / max(1, result.completed + result.shed),
        mix=mix.report(),
    )
    return s


def saturation(seconds: float, server_cpu: int) -> dict:
    s = closed_run(seconds, server_cpu, SATURATION_CONNECTIONS)
    print(
        f"  saturation, {SATURATION_CONNECTIONS} connections: S = {s['goodput']:,.0f} 2xx/s "
        f"(p99 {s['p99_ms']:.1f} ms, shed {s['shed']}, errors {s['errors']}, CPU % server "
        f"{s['server_cpu_pct']:.0f} (its core busy {s['server_core_pct']:.0f}) generator "
        f"{s['generator_cpu_pct']:.0f})",
        flush=True,
    )
    return s


def drift_figure(after: float, s: float, goodput: float) -> Figure:
    """S measured again once the overload is over: how far the machine itself moved meanwhile. The overload
    phase's goodput moves between runs minutes apart at one setting, and so does the engine alone on an
    idle guest (docs/benchmarks.md): a drift that a ratio to S taken before cannot tell from the
    exchange's own."""
    return Figure(
        "S again, after the overload (one fresh exchange)",
        after,
        "2xx/s",
        None,
        note=f"{100 * (after / s - 1):+.1f} % from S; the goodput over this S: {goodput / after:.3f}",
    )


# -- 2. overload, then recovery --


def orders_kept(url: str) -> int | None:
    """Orders the exchange keeps, resting or finished (up to its retention): the state its memory grows
    with by design. None when ``/api/metrics`` does not answer."""
    try:
        with urllib.request.urlopen(url + "/api/metrics", timeout=SOCKET_TIMEOUT_S) as response:
            data = json.load(response)["data"]
        resting, total = int(data["resting_orders"]), int(data["total_orders"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return resting + min(total - resting, ORDER_RETENTION)


async def overload_schedule(
    url: str, mix: SeedMix, phases: list[tuple[float, float]], connections: int, on_start: Callable[[], None]
) -> Result:
    """The overload parts' open loop: socket timeouts, giving up, reconnecting, and a per-second timeline."""
    return await open_loop_phases(
        url,
        mix,
        phases,
        connections,
        GRANULARITY_US,
        timeout_s=SOCKET_TIMEOUT_S,
        give_up_s=GIVE_UP_S,
        reconnect=True,
        timeline=True,
        on_start=on_start,
    )


def overload(goodput: float, over_s: int, recovery_s: int, server_cpu: int, connections: int) -> dict:
    phases = [(OVERLOAD_FACTOR * goodput, float(over_s)), (RECOVERY_FACTOR * goodput, float(recovery_s))]
    marks: dict[str, float] = {}
    # (server RSS, orders the exchange keeps) once every connection has been served a while into the 2 x S
    # phase, and at its end: memory per order, apart from what each connection grows when first used
    kept: dict[str, tuple[int, int | None]] = {}
    with (
        EmbeddedExchange(cpus=[server_cpu]) as exchange,
        ProcessSampler(exchange.pid, RSS_EVERY_S) as sampler,
    ):
        server = psutil.Process(exchange.pid)
        over_cpu = ServerCpu(server, server_cpu)  # over the 2 x S phase alone, marked from a timer

        def phase_ended() -> None:
            over_cpu.mark()
            kept.update(end=(server.memory_info().rss, orders_kept(exchange.url)))

        phase_end = threading.Timer(over_s, phase_ended)
        warm_s = min(WARM_S, over_s / 3)
        warmed = threading.Timer(
            warm_s, lambda: kept.update(warm=(server.memory_info().rss, orders_kept(exchange.url)))
        )
        mix = SeedMix.for_exchange(exchange.url)
        rss_unconnected = server.memory_info().rss

        def started() -> None:
            accepted_by = time.monotonic() + ACCEPT_WAIT_S  # connected here is not yet accepted there
            while server.num_fds() < connections and time.monotonic() < accepted_by:
                time.sleep(0.01)
            marks.update(rss=server.memory_info().rss, fds=server.num_fds())
            marks.update(t=time.monotonic(), unix=time.time())
            over_cpu.mark()
            phase_end.start()
            warmed.start()

        async def run() -> tuple:
            stop = asyncio.Event()
            health = asyncio.ensure_future(poll_health(exchange.url, stop, keep_alive=True))
            try:
                result = await overload_schedule(exchange.url, mix, phases, connections, started)
            finally:
                stop.set()
            return result, await health

        result, probes = uvloop.run(run())
        phase_end.cancel()
        warmed.cancel()
        server_pct, core_pct = over_cpu.percent()
        alive = exchange.process is not None and exchange.process.poll() is None
    t0 = marks["t"]
    (rss_warm, kept_warm), (rss_end, kept_end) = kept.get("warm", (0, None)), kept.get("end", (0, None))
    kept_growth = kept_end - kept_warm if kept_warm is not None and kept_end is not None else None
    timeline = result.timeline
    assert timeline is not None
    answers = timeline.answers(0, over_s)
    all_answers = answers["ok"] + answers["shed"] + answers["other"]
    rss = [(x.time - marks["unix"], x.server_rss_bytes) for x in sampler.samples if x.server_rss_bytes]
    before = [b for t, b in rss if -5 <= t <= 0]
    during = [b for t, b in rss if 0 <= t <= over_s]
    recovery = timeline.merged(over_s, over_s + recovery_s)
    per_second = {s: timeline.p99_ms(s) for s in range(over_s + recovery_s)}
    bad = [s for s in range(over_s, over_s + recovery_s) if (per_second[s] or 0.0) > GOAL_P99_MS]
    back = None if bad and bad[-1] == over_s + recovery_s - 1 else (bad[-1] + 1 - over_s if bad else 0)
    phase_probes = [p for p in probes if p["t"] >= t0]
    out = {
        "connections": connections,
        "over_s": over_s,
        "recovery_s": recovery_s,
        "rss_unconnected_mib": rss_unconnected / MIB,
        "rss_connected_mib": marks["rss"] / MIB,
        "rss_per_connection_kib": (marks["rss"] - rss_unconnected) / connections / 1024,
        "server_fds_connected": marks["fds"],
        "offered_over": phases[0][0],
        "offered_recovery": phases[1][0],
        "goodput": answers["ok"] / over_s,
        "answers_per_s": all_answers / over_s,
        "refused_pct": 100 * answers["shed"] / all_answers if all_answers else None,
        "other_answers": answers["other"],
        "failed_in_overload": answers["failed"],
        "timeouts": result.timeouts,
        "lost": result.statuses[LOST],
        "given_up_unsent": result.dropped,
        "reconnects": result.reconnects,
        "rss_start_mib": (before[-1] if before else (during[0] if during else 0)) / MIB,
        "rss_max_mib": max(during, default=0) / MIB,
        "rss_end_mib": (rss[-1][1] / MIB) if rss else None,
        "warm_s": warm_s,
        "orders_kept_growth": kept_growth,
        "rss_per_order_kept_b": (rss_end - rss_warm) / kept_growth if kept_growth else None,
        "health": health_summary(phase_probes),
        "recovery_p99_ms": recovery.get_value_at_percentile(99) / 1000
        if recovery.get_total_count()
        else None,
        "recovery_completed": timeline.answers(over_s, over_s + recovery_s)["ok"],
        "back_under_s": back,
        "per_second_p99_ms": per_second,
        "per_second_answers": {
            s: timeline.answers(s, s + 1) for s in range(over_s + recovery_s + int(SOCKET_TIMEOUT_S) + 2)
        },
        "server_cpu_pct": server_pct,
        "server_core_pct": core_pct,
        "generator_cpu_pct": result.generator_cpu_pct,
        "server_alive": alive,
        "mix": mix.report(),
        "result": result.summary(),
    }
    print(
        f"  2 x S = {phases[0][0]:,.0f}/s for {over_s} s on {connections:,} connections (server RSS "
        f"{out['rss_connected_mib']:.0f} MiB once connected, {out['server_fds_connected']:,} files): goodput "
        f"{out['goodput']:,.0f}/s, answers {out['answers_per_s']:,.0f}/s ({out['refused_pct'] or 0:.1f} % "
        f"refused), timeouts {out['timeouts']}, given up unsent {out['given_up_unsent']:,}, RSS max "
        f"{out['rss_max_mib']:.0f} MiB, /health failed {out['health']['failed']} of "
        f"{out['health']['probes']}; "
        f"CPU % server {out['server_cpu_pct']:.0f} (its core busy {out['server_core_pct']:.0f}) generator "
        f"{out['generator_cpu_pct']:.0f} (over both phases)",
        flush=True,
    )
    print(
        f"  then 0.5 x S = {phases[1][0]:,.0f}/s for {recovery_s} s: p99 {out['recovery_p99_ms']} ms, "
        f"per-second p99 back under {GOAL_P99_MS:g} ms after "
        f"{'never (within the phase)' if back is None else f'{back} s'}",
        flush=True,
    )
    return out


def storm(seconds: float, server_cpu: int, connections: int) -> dict:
    """Part 4: clients that retry at once (see the module docstring)."""
    with open_file_limit(connections + MANY_FD_SPARE):
        r = closed_run(seconds, server_cpu, connections, retry_refused=True)
    answers = sum(n for status, n in r["statuses"].items() if int(status) not in (LOST, TIMEOUT))
    r.update(answers_per_s=answers / r["seconds"], refused_pct=100 * r["shed"] / answers if answers else None)
    print(
        f"  closed loop on {connections:,} connections for {seconds:g} s: goodput {r['goodput']:,.0f}/s, "
        f"answers {r['answers_per_s']:,.0f}/s ({r['refused_pct'] or 0:.1f} % refused), p99 {r['p99_ms']:.0f} "
        f"ms; CPU % server {r['server_cpu_pct']:.0f} (its core busy {r['server_core_pct']:.0f}) generator "
        f"{r['generator_cpu_pct']:.0f}",
        flush=True,
    )
    return r


def storm_figures(r: dict, s: float) -> list[Figure]:
    return [
        Figure(
            f"storm: {r['connections']:,} conns retrying at once: goodput / S",
            r["goodput"] / s,
            "x S",
            GOAL_GOODPUT,
            note=f"{r['goodput']:,.0f} 2xx/s for {r['seconds']:g} s, closed loop",
        ),
        Figure("  all answers / S", r["answers_per_s"] / s, "x S", None, note=f"{r['answers_per_s']:,.0f}/s"),
        Figure("  refused (503/429)", r["refused_pct"], "% answers", None),
        Figure("  P99, all answers", r["p99_ms"], "ms", None),
        Figure(
            "  server CPU (its process)",
            r["server_cpu_pct"],
            "% core",
            None,
            note=f"its core busy {r['server_core_pct']:.0f} %; generator {r['generator_cpu_pct']:.0f} %",
        ),
    ]


def wrk2_overload(wrk2: str, goodput: float, over_s: int, server_cpu: int) -> dict:
    """Part 2's overload phase sent by wrk2 instead: the same mix, rate, connections and socket timeout."""
    args = argparse.Namespace(
        rate=OVERLOAD_FACTOR * goodput, connections=OVERLOAD_CONNECTIONS, seconds=float(over_s)
    )
    generator_cpus = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="overload-wrk2-") as tmp:
        # Counted over the same span as ours: from its connections being open, for the 2 x S phase's length.
        r = run_wrk2(
            wrk2,
            args,
            server_cpu,
            generator_cpus,
            Path(tmp),
            timeout_s=SOCKET_TIMEOUT_S,
            count_after_s=OVERLOAD_CONNECTIONS * WRK2_CONNECT_STAGGER_S,
        )
    counted, seconds = r["counted"], r["counted_seconds"]
    answers = sum(counted.values())
    refused = counted["503"] + counted["429"]
    timeouts = re.search(r"timeout (\d+)", r["socket_errors"])
    out = {
        "offered": args.rate,
        "seconds": seconds,
        "goodput": counted["2xx"] / seconds,
        "answers_per_s": answers / seconds,
        "refused_pct": 100 * refused / answers if answers else None,
        "timeouts": int(timeouts.group(1)) if timeouts else 0,
        "socket_errors": r["socket_errors"],
        "p99_ms": r["p99_ms"],
        "tool_cpu_pct": r["tool_cpu_pct"],
        "server_cpu_pct": r["server_cpu_pct"],
        "counted": counted,
        "output_tail": r["output_tail"],
    }
    print(
        f"  wrk2 at 2 x S = {args.rate:,.0f}/s on {OVERLOAD_CONNECTIONS:,} connections, {seconds:.0f} s "
        f"counted: goodput {out['goodput']:,.0f}/s, answers {out['answers_per_s']:,.0f}/s "
        f"({out['refused_pct'] or 0:.1f} % refused), socket errors: {out['socket_errors'] or 'none'}; "
        f"corrected p99 {out['p99_ms']} ms; "
        f"CPU % server {out['server_cpu_pct']:.0f} wrk2 {out['tool_cpu_pct']:.0f}",
        flush=True,
    )
    return out


def wrk2_figures(w: dict, ours: dict, s: float) -> list[Figure]:
    """wrk2's overload figures beside ours (the goals are ours: wrk2 confirms or contradicts them)."""
    return [
        Figure(
            "wrk2 cross-check, 2 x S: goodput / S",
            w["goodput"] / s,
            "x S",
            None,
            note=f"{w['goodput']:,.0f} 2xx/s; ours {ours['goodput'] / s:.3f} S",
        ),
        Figure(
            "  all answers / S",
            w["answers_per_s"] / s,
            "x S",
            None,
            note=f"{w['answers_per_s']:,.0f}/s; ours {ours['answers_per_s'] / s:.3f} S",
        ),
        Figure(
            "  refused (503/429)",
            w["refused_pct"],
            "% answers",
            None,
            note=f"ours {ours['refused_pct'] or 0:.1f} %",
        ),
        Figure(
            f"  socket timeouts (no answer in {SOCKET_TIMEOUT_S:g} s)",
            w["timeouts"],
            "requests",
            None,
            note=f"ours {ours['timeouts']}; corrected P99 of wrk2's own queue {w['p99_ms']} ms",
        ),
    ]


# -- 3. hostile clients --


def files_short_of(connections: int) -> str | None:
    """Why this process cannot open ``connections`` and its own files, or None if the hard limit allows."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    needed = connections + MANY_FD_SPARE
    if hard != resource.RLIM_INFINITY and hard < needed:
        return f"needs {needed:,} open files; the hard limit here is {hard:,} (ulimit -Hn)"
    return None


def connections_refused(flag: str, connections: int) -> str | None:
    """Why ``flag`` cannot ask for ``connections`` here (a count below one, or more than the open-file limit
    allows), or None."""
    if connections < 1:
        return f"{flag} must be at least 1, got {connections}"
    short = files_short_of(connections)
    return f"{flag} {connections:,} {short}" if short else None


@contextlib.contextmanager
def open_file_limit(limit: int) -> Iterator[None]:
    """This process's soft open-file limit at ``limit`` (children started inside inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def file_limit_raised_for(connections: int) -> contextlib.AbstractContextManager[None]:
    """``open_file_limit`` raised, never lowered, to fit ``connections`` beside this process's own files
    (the many and storm parts set it exactly, which sets the exchange's connection cap)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return open_file_limit(soft if soft == resource.RLIM_INFINITY else max(soft, connections + MANY_FD_SPARE))


class _Stalled(asyncio.Protocol):
    """A client that never finishes a request: notes whether and when the server answered or closed."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answered = b""
        self.closed_at: float | None = None
        self.sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.answered = self.answered or data[:12]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed_at = time.monotonic()


async def stall(url: str, seconds: float, connections: int) -> dict:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    health = asyncio.ensure_future(poll_health(url, stop, keep_alive=False))
    clients: list[_Stalled] = []
    failed_connects = 0
    t0 = time.monotonic()
    for start in range(0, connections, 100):
        made = await asyncio.gather(
            *(
                loop.create_connection(_Stalled, host, int(port))
                for _ in range(start, min(start + 100, connections))
            ),
            return_exceptions=True,
        )
        for item in made:
            if isinstance(item, BaseException):
                failed_connects += 1
            else:
                clients.append(item[1])
    tricklers = clients[::2]  # half send a byte of a never-ending head every 2 s, half stay idle
    deadline = t0 + seconds
    while (now := time.monotonic()) < deadline:
        for client in tricklers:
            if client.closed_at is None and client.transport is not None and client.sent < len(STALL_HEAD):
                client.transport.write(STALL_HEAD[client.sent : client.sent + 1])
                client.sent += 1
        await asyncio.sleep(min(TRICKLE_EVERY_S, deadline - now))
    closed = [c for c in clients if c.closed_at is not None]
    final, outcome, conn = await health_probe(url, None)
    if conn is not None:
        conn[1].close()
    stop.set()
    probes = await health
    for client in clients:
        if client.transport is not None:
            client.transport.abort()
    refused = sum(1 for c in closed if c.answered.startswith(b"HTTP/1.1 503"))
    return {
        "connections": connections,
        "connected": len(clients),
        "failed_connects": failed_connects,
        "closed": len(closed) + failed_connects,
        "refused_503": refused,
        "closed_later": len(closed) - refused,
        "closed_pct": 100 * (len(closed) + failed_connects) / connections,
        "closed_trickling": sum(1 for c in tricklers if c.closed_at is not None),
        "closed_idle": sum(1 for c in clients[1::2] if c.closed_at is not None),
        "closed_by_s": sorted(round(c.closed_at - t0) for c in closed if c.closed_at is not None),
        "health_during": health_summary(probes),
        "health_at_end": {"ok": outcome == "200", "outcome": outcome, "ms": final},
    }


def hostile(seconds: float, server_cpu: int) -> dict:
    with open_file_limit(HOSTILE_NOFILE):
        exchange = EmbeddedExchange(cpus=[server_cpu]).start()
    try:
        limit = psutil.Process(exchange.pid).rlimit(psutil.RLIMIT_NOFILE)
        out = uvloop.run(stall(exchange.url, seconds, HOSTILE_CONNECTIONS))
        out["server_nofile"] = list(limit)
        out["server_alive"] = exchange.process is not None and exchange.process.poll() is None
    finally:
        exchange.stop()
    h = out["health_during"]
    print(
        f"  {HOSTILE_CONNECTIONS} stalled connections, server open-file limit {out['server_nofile'][0]}: "
        f"after {seconds:g} s the server had closed {out['closed']} ({out['refused_503']} refused with 503 "
        f"at once, {out['closed_later']} later: {out['closed_trickling']} trickling, "
        f"{out['closed_idle']} idle); /health failed {h['failed']} of {h['probes']} probes, at the end: "
        f"{out['health_at_end']['outcome']}",
        flush=True,
    )
    return out


def overload_figures(o: dict, s: float, goal_p99_ms: float | None) -> list[Figure]:
    """The figures of one ``overload`` run against S, ``s``."""
    over_s, rec_s, connections, h = o["over_s"], o["recovery_s"], o["connections"], o["health"]
    return [
        Figure(
            f"2 x S for {over_s} s on {connections:,} conns: goodput / S",
            o["goodput"] / s,
            "x S",
            GOAL_GOODPUT,
            note=f"{o['goodput']:,.0f} 2xx/s of {o['offered_over']:,.0f}/s offered",
        ),
        Figure(
            "  all answers / S",
            o["answers_per_s"] / s,
            "x S",
            GOAL_ANSWERS,
            note=f"{o['answers_per_s']:,.0f}/s; given up unsent (all {connections:,} conns "
            f"waiting >= {GIVE_UP_S:g} s) {o['given_up_unsent']:,}",
        ),
        Figure("  refused (503/429)", o["refused_pct"], "% answers", None),
        Figure(
            "  server CPU (its process)",
            o["server_cpu_pct"],
            "% core",
            None,
            note=f"its core busy {o['server_core_pct']:.0f} %",
        ),
        Figure(
            f"  socket timeouts (no answer in {SOCKET_TIMEOUT_S:g} s)",
            o["timeouts"],
            "requests",
            0,
            "<=",
            note=f"connections lost with a request in flight {o['lost']}",
        ),
        Figure(
            "  server RSS max",
            o["rss_max_mib"],
            "MiB",
            None,
            note=f"{o['rss_start_mib']:.0f} MiB at the start",
        ),
        Figure(
            "  server RSS growth during it",
            o["rss_max_mib"] - o["rss_start_mib"],
            "MiB",
            None,
            note=f"{o['rss_end_mib']:.0f} MiB at the end of the run" if o["rss_end_mib"] is not None else "",
        ),
        Figure(
            "  server RSS growth per order kept",
            o["rss_per_order_kept_b"],
            "B",
            GOAL_BYTES,
            "<=",
            note=f"from {o['warm_s']:.3g} s into it (every connection served) to its end: "
            f"{o['orders_kept_growth'] or 0:,} more orders kept, resting or finished (retention "
            f"{ORDER_RETENTION:,})",
        ),
        Figure(
            "  /health failures (1/s, own connection)",
            h["failed"],
            "probes",
            0,
            "<=",
            note=f"of {h['probes']}; slowest {h['max_ms'] or 0:.0f} ms"
            + (f"; {', '.join(h['outcomes'])}" if h["outcomes"] else "")
            + ("" if o["server_alive"] else "; SERVER DIED"),
        ),
        Figure(
            f"then 0.5 x S for {rec_s} s: P99",
            o["recovery_p99_ms"],
            "ms",
            goal_p99_ms,
            "<=",
            note=f"{o['offered_recovery']:,.0f}/s offered",
        ),
        Figure(
            f"  per-second P99 back under {GOAL_P99_MS:g} ms after",
            o["back_under_s"],
            "s",
            None,
            note="" if o["back_under_s"] is not None else f"not within the {rec_s} s",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--part", choices=("all", "overload", "many", "storm", "hostile"), default="all")
    p.add_argument(
        "--many-connections",
        type=int,
        default=MANY_CONNECTIONS,
        help=f"connections of the 'many' part ({MANY_CONNECTIONS:,})",
    )
    p.add_argument(
        "--storm-connections",
        type=int,
        default=STORM_CONNECTIONS,
        help=f"connections of the 'storm' part ({STORM_CONNECTIONS:,})",
    )
    p.add_argument("--saturation-seconds", type=float, default=None, help="closed loop for S (10, quick 4)")
    p.add_argument("--overload-seconds", type=int, default=None, help="2 x S phase (60, quick 15)")
    p.add_argument("--recovery-seconds", type=int, default=None, help="0.5 x S phase (20, quick 8)")
    p.add_argument("--hostile-seconds", type=float, default=None, help="stalled clients (30, quick 15)")
    p.add_argument(
        "--wrk2",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="cross-check the overload phase with wrk2 (at PATH, else where wrk_crosscheck.py looks)",
    )
    args = p.parse_args(argv)
    quick = args.quick
    sat_s = args.saturation_seconds or (4.0 if quick else 10.0)
    over_s = args.overload_seconds or (15 if quick else 60)
    rec_s = args.recovery_seconds or (8 if quick else 20)
    hostile_s = args.hostile_seconds or (15.0 if quick else 30.0)
    if min(sat_s, over_s, rec_s, hostile_s) <= 0:
        p.error("every duration must be positive")
    for flag, part, connections in (
        ("--many-connections", "many", args.many_connections),
        ("--storm-connections", "storm", args.storm_connections),
    ):
        refused = connections_refused(flag, connections)
        if refused and (connections < 1 or args.part in ("all", part)):  # the file limit only if it runs
            p.error(refused)
    wrk2 = None if args.wrk2 is None else find_wrk2(args.wrk2 or None)
    if args.wrk2 is not None and wrk2 is None:
        print(BUILD_HINT, file=sys.stderr)
        return 2
    if wrk2 is not None and args.part not in ("all", "overload"):
        p.error("--wrk2 cross-checks the overload part: use it with --part all or overload")
    if args.json:
        args.json = str(Path(args.json).resolve())
    os.chdir(ROOT)  # the exchange is started as `python -m reference_exchange`: this tree's
    server_cpu = pin_server_cpu()
    print(
        f"exchange as shipped (durable journal), matching engine {matching_build()}, on CPU {server_cpu}; "
        f"generator on CPUs {sorted(os.sched_getaffinity(0))}; seed mix",
        flush=True,
    )
    figures: list[Figure] = []
    details: dict = {}
    with MachineLoad() as load:
        if args.part != "hostile":
            sat = details["saturation"] = median_saturation(sat_s, server_cpu)
            s = sat["goodput"]
            figures.append(
                Figure(
                    f"S: goodput at saturation ({SATURATION_CONNECTIONS} conns)",
                    s,
                    "2xx/s",
                    None,
                    note=f"median of {SATURATION_RUNS} fresh exchanges: "
                    + ", ".join(f"{g:,.0f}" for g in sat["goodput_runs"])
                    + f"; CPU % server {sat['server_cpu_pct']:.0f} (its core busy "
                    + f"{sat['server_core_pct']:.0f}), generator {sat['generator_cpu_pct']:.0f}",
                )
            )
        if args.part in ("all", "overload"):
            o = details["overload"] = overload(s, over_s, rec_s, server_cpu, OVERLOAD_CONNECTIONS)
            figures += overload_figures(o, s, GOAL_P99_MS)
            if wrk2 is not None:
                w = details["wrk2_overload"] = wrk2_overload(wrk2, s, over_s, server_cpu)
                figures += wrk2_figures(w, o, s)
            after = details["saturation_after"] = saturation(sat_s, server_cpu)
            figures.append(drift_figure(after["goodput"], s, o["goodput"]))
        if args.part in ("all", "many"):
            with open_file_limit(args.many_connections + MANY_FD_SPARE):
                m = details["many_connections"] = overload(
                    s, over_s, rec_s, server_cpu, args.many_connections
                )
            figures += [
                Figure(
                    f"{args.many_connections:,} connections: server RSS per connection",
                    m["rss_per_connection_kib"],
                    "KiB",
                    None,
                    note=f"{m['rss_unconnected_mib']:.0f} MiB before they opened, "
                    f"{m['rss_connected_mib']:.0f} MiB with all open; {m['server_fds_connected']:,} files",
                ),
                # The turn, and so every admitted order's wait, grows with the connections: no P99 goal.
                *overload_figures(m, s, None),
            ]
        if args.part in ("all", "storm"):
            details["storm"] = storm(over_s, server_cpu, args.storm_connections)
            figures += storm_figures(details["storm"], s)
        if args.part in ("all", "hostile"):
            hs = details["hostile"] = hostile(hostile_s, server_cpu)
            figures += [
                Figure(
                    f"hostile: {HOSTILE_CONNECTIONS} stalled conns closed after {hostile_s:g} s",
                    hs["closed_pct"],
                    "%",
                    GOAL_CLOSED_PCT,
                    note=f"open-file limit {hs['server_nofile'][0]}; {hs['refused_503']} refused with 503 at "
                    f"once, {hs['closed_later']} closed later",
                ),
                Figure(
                    "  /health answers a new connection at the end",
                    1.0 if hs["health_at_end"]["ok"] else 0.0,
                    "yes=1",
                    1,
                    note=f"{hs['health_at_end']['outcome']}; during: {hs['health_during']['failed']} of "
                    f"{hs['health_during']['probes']} probes failed"
                    + ("" if hs["server_alive"] else "; SERVER DIED"),
                ),
            ]
    emit("overload", figures, args, load, details)
    return 0


if __name__ == "__main__":
    sys.exit(main())
