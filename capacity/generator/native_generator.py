"""The native load generator: ``python -m capacity.generator.native_generator --scenario FILE --host URL``.

It runs a capacity scenario as ``capacity/generator/locustfile.py`` does and writes the same results directory
(``docs/loadgen-results.md``: progress.json, loadgen.json, HDR interval logs), at a fraction of Locust's CPU
per request (``capacity.generator.native_engine``). ``capacity run --engine native`` (the default) starts it.

- ``--processes N``: N generator processes (one per core), each running every N-th user on its own uvloop;
  this process coordinates them. They connect their users first, then all start on one t = 0. Every second
  each sends its recorder's delta (counts and encoded HdrHistograms, ``LatencyRecorder.take_delta``) over a
  pipe and this process merges them exactly, as Locust's master merges its workers'.
- SIGINT or SIGTERM stops the load early and keeps what was measured: the processes send their last delta,
  and loadgen.json is written as for a finished run. A second signal writes what has arrived and exits.
- Exit status: 0 once the results are written (finished or stopped), 2 for bad input (scenario, options),
  3 when the target cannot be load-tested (no connection, not the exchange API), 1 for anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capacity.exit_codes import EXIT_INVALID
from capacity.generator.native_engine import EngineConfig, NativeEngine, TargetError
from capacity.generator.order_flow import Market
from capacity.generator.preflight import TargetNotTheApi, fetch_market
from capacity.measure.latency import LatencyRecorder
from capacity.results.loadgen_file import loadgen_document, progress_document, write_final, write_json_atomic
from capacity.scenario import Scenario, ScenarioError, load_scenario

ENGINE = "native"
EXIT_TARGET = 3
READY_TIMEOUT_S = 120.0  # every process connected its first users
START_DELAY_S = 0.05  # t = 0 a little after the start message, so every process receives it in time
FINAL_TIMEOUT_S = 10.0  # after the schedule (or a stop), for the processes' last data
REPORT_INTERVAL_S = 1.0
SETTLE_S = 2.0  # progress rates are over seconds whose deltas have all arrived


class GeneratorError(Exception):
    """A problem that stops the generator before it sends load; ``code`` is the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------- options


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m capacity.generator.native_generator",
        description="Run a capacity scenario with the native load generator (docs/loadgen-results.md).",
    )
    parser.add_argument("--scenario", required=True, metavar="PATH", help="capacity scenario YAML")
    parser.add_argument(
        "--host", required=True, metavar="URL", help="the exchange, e.g. http://127.0.0.1:8080"
    )
    parser.add_argument(
        "--results-dir", metavar="DIR", help="write progress.json, loadgen.json, HDR logs here"
    )
    parser.add_argument(
        "--processes", type=int, default=1, metavar="N", help="generator processes (default 1)"
    )
    parser.add_argument(
        "--cpus", metavar="LIST", help="pin process i to the i-th of these CPUs, e.g. 0 or 0,2"
    )
    parser.add_argument("--late-threshold-ms", type=float, default=10.0, metavar="MS")
    parser.add_argument("--rate-override", type=float, metavar="PER_S")
    parser.add_argument("--duration-override", type=float, metavar="SECONDS")
    parser.add_argument("--users-override", type=int, metavar="N")
    return parser.parse_args(argv)


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    return load_scenario(args.scenario).with_overrides(
        args.duration_override, args.rate_override, args.users_override
    )


def cpu_list(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise GeneratorError(
            f"--cpus {text!r}: expected CPU numbers such as 0 or 0,2", EXIT_INVALID
        ) from None


# ---------------------------------------------------------------------------------------------- the target


def market_of(url: str, symbols: Sequence[str]) -> Market:
    """``preflight.fetch_market``, its refusal as the generator's exit 3 (the target is not the API)."""
    try:
        return fetch_market(url, symbols)
    except TargetNotTheApi as error:
        raise GeneratorError(str(error), EXIT_TARGET) from None


# ---------------------------------------------------------------------------------------------- one process


def _child(config: EngineConfig, conn: multiprocessing.connection.Connection, cpu: int | None) -> None:
    """A generator process: its share of the users on its own uvloop, reporting over ``conn``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator stops us (a terminal's Ctrl-C reaches all)
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError as error:
            conn.send(("note", f"process {config.process_index}: not pinned to CPU {cpu}: {error}"))
    import uvloop

    uvloop.run(_child_main(config, conn))


async def _child_main(config: EngineConfig, conn: multiprocessing.connection.Connection) -> None:
    loop = asyncio.get_running_loop()
    recorder = LatencyRecorder(config.late_threshold_ms)
    engine = NativeEngine(config, recorder)
    cpu0 = time.process_time()  # reset at t = 0: the figure is the CPU of sending, not of connecting
    try:
        connected = await engine.connect_initial()
    except TargetError as error:
        conn.send(("error", str(error)))
        return
    conn.send(("ready", connected))
    inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def receive() -> None:
        try:
            inbox.put_nowait(conn.recv())
        except (EOFError, OSError):  # the coordinator is gone: stop
            loop.remove_reader(conn.fileno())
            inbox.put_nowait(("stop", None))

    loop.add_reader(conn.fileno(), receive)
    kind, started_at = await inbox.get()
    if kind != "start":
        conn.send(("final", recorder.take_delta(), _stats(engine, cpu0)))
        return
    start_ns = time.monotonic_ns() - round((time.time() - started_at) * 1e9)
    last_report = [time.monotonic()]

    def on_tick(engine: NativeEngine) -> None:
        while not inbox.empty():
            if inbox.get_nowait()[0] == "stop":
                engine.stop()
        if time.monotonic() - last_report[0] >= REPORT_INTERVAL_S:
            last_report[0] = time.monotonic()
            conn.send(("delta", recorder.take_delta(), len(engine.users)))

    delay_s = (start_ns - time.monotonic_ns()) / 1e9
    if delay_s > 0:
        await asyncio.sleep(delay_s)
    cpu0 = time.process_time()
    await engine.run(start_ns, on_tick)
    loop.remove_reader(conn.fileno())
    conn.send(("final", recorder.take_delta(), _stats(engine, cpu0)))


def _stats(engine: NativeEngine, cpu0: float) -> dict[str, Any]:
    return {
        "cpu_s": round(time.process_time() - cpu0, 3),
        "requests_sent": engine.requests_sent,
        "connect_failures": engine.connect_failures,
        "last_connect_error": engine.last_connect_error or None,
        "last_protocol_error": engine.last_protocol_error or None,
        "stalls": engine.stalls,
    }


# ---------------------------------------------------------------------------------------------- coordinator


def merge_intervals(intervals: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """``(start, length)`` intervals with overlapping ones merged, sorted: each process sees a server stall
    on its own connections."""
    merged: list[list[int]] = []
    for start, length in sorted(intervals):
        if merged and start <= merged[-1][0] + merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], start + length - merged[-1][0])
        else:
            merged.append([start, length])
    return [(start, length) for start, length in merged]


@dataclass
class _Process:
    conn: multiprocessing.connection.Connection
    process: multiprocessing.process.BaseProcess
    users: int = 0
    final: bool = False
    stats: dict[str, Any] = field(default_factory=dict)


class Coordinator:
    """Starts the generator processes, merges their data and writes the results directory."""

    def __init__(self, scenario: Scenario, args: argparse.Namespace, market: Market) -> None:
        self.scenario = scenario
        self.args = args
        self.market = market
        self.recorder = LatencyRecorder(args.late_threshold_ms)
        self.results_dir = args.results_dir
        self.processes: list[_Process] = []
        self.notes: list[str] = []
        self.stop_requested = False
        self.hurry = False
        self.started_at = 0.0
        self.collect_cpu_s = 0.0

    def request_stop(self, _signum: int = 0, _frame: object = None) -> None:
        if self.stop_requested:
            self.hurry = True
        self.stop_requested = True

    def run(self) -> int:
        context = multiprocessing.get_context("fork")
        cpus = cpu_list(self.args.cpus)
        tag = uuid.uuid4().hex[:8]
        for index in range(self.args.processes):
            config = EngineConfig(
                scenario=self.scenario,
                url=self.args.host,
                market=self.market,
                process_index=index,
                processes=self.args.processes,
                late_threshold_ms=self.args.late_threshold_ms,
                seed=int.from_bytes(os.urandom(4), "big"),
                tag=f"{tag}{index}",
            )
            parent_end, child_end = context.Pipe()
            cpu = cpus[index % len(cpus)] if cpus else None
            process = context.Process(target=_child, args=(config, child_end, cpu), daemon=True)
            process.start()
            child_end.close()
            self.processes.append(_Process(parent_end, process))
        try:
            self._wait_ready()
            self.started_at = time.time() + START_DELAY_S
            for p in self.processes:
                p.conn.send(("start", self.started_at))
            cpu0 = time.process_time()
            self._collect()
            self.collect_cpu_s = time.process_time() - cpu0
        finally:
            for p in self.processes:
                p.process.join(timeout=2)
                if p.process.is_alive():
                    p.process.kill()
        self._write_final()
        return 0

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = {id(p.conn): p for p in self.processes}
        while waiting:
            if self.stop_requested or time.monotonic() > deadline:
                self._stop_all()
                raise GeneratorError(
                    "stopped before the load started"
                    if self.stop_requested
                    else f"the generator processes did not connect within {READY_TIMEOUT_S:.0f} s",
                    EXIT_TARGET,
                )
            for conn in multiprocessing.connection.wait([p.conn for p in waiting.values()], timeout=0.2):
                p = waiting[id(conn)]
                try:
                    kind, *rest = p.conn.recv()
                except EOFError:
                    self._stop_all()
                    raise GeneratorError(
                        f"generator process {p.process.pid} died while connecting", 1
                    ) from None
                if kind == "error":
                    self._stop_all()
                    raise GeneratorError(str(rest[0]), EXIT_TARGET)
                if kind == "note":
                    self.notes.append(str(rest[0]))
                elif kind == "ready":
                    del waiting[id(conn)]

    def _stop_all(self) -> None:
        for p in self.processes:
            with contextlib.suppress(OSError):
                p.conn.send(("stop", None))

    def _collect(self) -> None:
        """Merge deltas until every process has sent its final one; progress.json once a second."""
        stop_sent = False
        end_s = self.scenario.total_duration_s
        final_deadline: float | None = None
        next_progress = time.monotonic() + REPORT_INTERVAL_S
        while not all(p.final for p in self.processes):
            if self.stop_requested and not stop_sent:
                self._stop_all()
                stop_sent = True
            elapsed = time.time() - self.started_at
            if final_deadline is None and (stop_sent or elapsed > end_s):
                final_deadline = time.monotonic() + FINAL_TIMEOUT_S + (0 if stop_sent else 2.0)
            if self.hurry or (final_deadline is not None and time.monotonic() > final_deadline):
                self.notes.append(
                    "some generator processes sent no final data: their last second may be missing"
                )
                return
            live = [p.conn for p in self.processes if not p.final]
            for conn in multiprocessing.connection.wait(live, timeout=0.2):
                self._receive(next(p for p in self.processes if p.conn is conn))
            if time.monotonic() >= next_progress:
                next_progress += REPORT_INTERVAL_S
                self._write_progress()

    def _receive(self, p: _Process) -> None:
        try:
            kind, *rest = p.conn.recv()
        except (EOFError, OSError):
            p.final = True
            self.notes.append(f"generator process {p.process.pid} ended without its final data")
            return
        if kind == "delta":
            self.recorder.add_delta(rest[0])
            p.users = int(rest[1])
        elif kind == "final":
            self.recorder.add_delta(rest[0])
            p.stats = dict(rest[1])
            p.final = True
            p.users = 0
        elif kind == "note":
            self.notes.append(str(rest[0]))

    def _write_progress(self) -> None:
        if not self.results_dir:
            return
        document = progress_document(
            self.scenario,
            self.recorder,
            elapsed_s=time.time() - self.started_at,
            users=sum(p.users for p in self.processes),
            workers=len(self.processes),
            settle_s=SETTLE_S,
        )
        try:
            write_json_atomic(Path(self.results_dir) / "progress.json", document)
        except OSError as error:
            print(f"capacity native generator: cannot write progress.json: {error}", file=sys.stderr)

    def generator_stats(self) -> dict[str, Any]:
        """What the generator reports of itself in loadgen.json: CPU seconds of its processes from t = 0
        (``cpu_s``) and of this coordinating process (``coordinator_cpu_s``), connection trouble, notes."""
        return {
            "cpu_s": round(sum(p.stats.get("cpu_s", 0.0) for p in self.processes), 3),
            "coordinator_cpu_s": round(self.collect_cpu_s, 3),
            "connect_failures": sum(p.stats.get("connect_failures", 0) for p in self.processes),
            "last_connect_error": next(
                (p.stats["last_connect_error"] for p in self.processes if p.stats.get("last_connect_error")),
                None,
            ),
            "last_protocol_error": next(
                (
                    p.stats["last_protocol_error"]
                    for p in self.processes
                    if p.stats.get("last_protocol_error")
                ),
                None,
            ),
            "stalls": [
                {"start_s": round(start / 1e9, 3), "duration_s": round(length / 1e9, 3)}
                for start, length in merge_intervals(
                    [tuple(s) for p in self.processes for s in p.stats.get("stalls", [])]
                )
            ],
            "notes": self.notes,
        }

    def _write_final(self) -> None:
        elapsed = time.time() - self.started_at
        document = loadgen_document(
            self.scenario,
            self.recorder,
            target=self.args.host,
            started_at=self.started_at,
            workers=len(self.processes),
            elapsed_s=elapsed,
            engine=ENGINE,
            generator=self.generator_stats(),
        )
        totals = document["totals"]
        print(
            f"capacity native generator: {totals['scheduled']:,} scheduled, {totals['sent']:,} sent, "
            f"{totals['ok']:,} ok, {totals['errors']:,} errors, {totals['late']:,} late "
            f"({totals['generator_late']:,} by the generator) in {elapsed:.1f} s",
            flush=True,
        )
        if self.results_dir:
            write_final(self.results_dir, document, self.recorder)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.processes < 1:
            raise GeneratorError(f"--processes {args.processes}: expected at least 1", EXIT_INVALID)
        cpu_list(args.cpus)
        if not args.host.startswith("http://"):
            raise GeneratorError(f"--host {args.host!r}: expected an http:// URL", EXIT_INVALID)
        try:
            scenario = scenario_from_args(args)
        except ScenarioError as error:
            problems = "\n".join(f"  {problem}" for problem in error.problems)
            raise GeneratorError(f"cannot start the load test:\n{problems}", EXIT_INVALID) from None
        coordinator = Coordinator(scenario, args, market_of(args.host, scenario.load.symbols))
        signal.signal(signal.SIGINT, coordinator.request_stop)
        signal.signal(signal.SIGTERM, coordinator.request_stop)
        return coordinator.run()
    except GeneratorError as error:
        print(f"capacity native generator: {error}", file=sys.stderr)
        return error.code


if __name__ == "__main__":
    sys.exit(main())
