"""The load-test demo (``POST /demo/load-test``): a capacity run against this very exchange.

The exchange launches, the toolkit decides. The exchange imports nothing from ``capacity`` (they talk over
HTTP and files). For each request this module writes a scenario file into a working directory of its own,
``<LOAD_TEST_OUTPUT_DIR>/load-test-<run_id>/``, and starts ``capacity run <scenario> --target
http://127.0.0.1:<our port> --server-pid <our pid> --output-dir <that directory> --seed-slo --summary-json
<that directory>/summary.json --quiet`` as a child process in its own session. capacity picks the SLO
limits the request leaves out (the seed matrix's tier for its rate), creates the run directory inside the
working directory (``<UTC time>-<name>/``, with ``run.json`` and ``loadgen/progress.json``) and writes its
summary (``capacity-run-summary/1``). This module only reads files: progress while it runs, the summary,
passed through as the load test's ``result``, once it has ended.

- One at a time: while a load test runs, another POST gets 409 naming it. A POST arriving when the
  running one has come to the end of its schedule (it is writing its results) waits up to
  ``FINISHING_WAIT_S`` for it, so a script that sleeps "duration + a few seconds" between POSTs (the
  seed's gauntlet) is not refused for capacity's start-up and wind-down.
- Cancel (DELETE, and server shutdown): SIGINT to capacity, which stops its load generator, keeps what was
  measured and writes ``run.json`` marked interrupted; after a grace period everything left (capacity and
  the generator, which runs in a session of its own) is killed.
- CPU placement is capacity's (``capacity run --target``): the generator goes to the lower half of the CPUs
  (CPU 0 of 2), the exchange, which capacity did not start, is not re-pinned. If this exchange was started
  pinned (``taskset -c 1 reference-exchange``), the child first widens its own affinity, which it inherits
  from us, and the generator gets the CPUs the exchange does not use.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.util
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

from reference_exchange.errors import ApiError
from reference_exchange.load_test_request import LoadTestPlan
from reference_exchange.schemas import (
    RUN_SUMMARY_FORMAT,
    SchemaViolation,
    validate_run_summary,
)

log = logging.getLogger("reference_exchange.load_test")

STATES = ("queued", "running", "completed", "failed", "cancelled")
FINISHED = frozenset({"completed", "failed", "cancelled"})
FINISHING_WAIT_S = 20.0  # a POST waits this long for a load test that is past its schedule
CANCEL_GRACE_S = 20.0  # after SIGINT, before SIGKILL (capacity gives its generator 30 s, rarely needs 2)
SHUTDOWN_GRACE_S = 10.0  # the same when the exchange itself is stopping
WATCHDOG_MARGIN_S = 180.0  # capacity run is stopped if it outlives its schedule by this much
SUMMARY_FILE = "summary.json"  # capacity run --summary-json, in the load test's working directory
KEEP_FINISHED = 20  # finished load tests listed by GET /demo/load-test (their directories stay on disk)

# What the child process runs (``python -c``): capacity's CLI, after two adjustments of what it inherited
# from the exchange. SIGINT goes back to Python's default (a server started in the background by a shell
# can have it ignored, and cancel relies on it). The CPU affinity is widened: if the exchange was pinned
# (taskset), the generator gets the CPUs the exchange does not use instead of sharing the exchange's.
CHILD_BOOTSTRAP = """\
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
args = sys.argv[1:]
server_cpus = os.sched_getaffinity(0)
try:
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
except OSError:
    pass
free = sorted(os.sched_getaffinity(0) - server_cpus)
if free and "--generator-cpus" not in args:
    args += ["--generator-cpus", ",".join(map(str, free))]
from capacity.cli.main import main
main(args, prog_name="capacity")
"""


def toolkit_problem() -> str | None:
    """Why this interpreter cannot run ``capacity run`` (None: it can). Looks, never imports."""
    missing = [name for name in ("capacity", "locust") if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (
        f"the capacity toolkit is not installed in this exchange's Python ({sys.executable}: "
        f"no {' or '.join(missing)} module): install the project (pip install -e .) into the environment "
        "the exchange runs from to use POST /demo/load-test"
    )


# --- one load test ------------------------------------------------------------------------------------------


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None if it is missing, partial or not an object."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no output)"
    return " | ".join(text[-lines:]) or "(no output)"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def describe_progress(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``loadgen/progress.json`` (docs/loadgen-results.md) the status shows."""
    return {
        "elapsed_s": max(0.0, _number(snapshot.get("elapsed_s")) or 0.0),
        **{
            key: _number(snapshot.get(key))
            for key in ("offered_rate", "achieved_rate", "p99_corrected_ms", "p99_raw_ms")
        },
        **{
            key: _integer(snapshot.get(key))
            for key in ("sent_total", "ok_total", "errors_total", "late_total", "users")
        },
    }


@dataclass(eq=False)
class LoadTest:
    """One load test: its plan, its child process and what is known about its run."""

    run_id: str
    plan: LoadTestPlan
    target: str
    workdir: Path
    created_wall: float = field(default_factory=time.time)
    created_monotonic: float = field(default_factory=time.monotonic)
    state: str = "queued"
    process: asyncio.subprocess.Process | None = None
    exit_code: int | None = None
    problem: str | None = None
    result: dict[str, Any] | None = None
    run_dir: Path | None = None
    finished_wall: float | None = None
    cancel_requested: str | None = None  # by whom, once asked to stop
    last_progress: dict[str, Any] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    watcher: asyncio.Task[None] | None = None

    @property
    def status_url(self) -> str:
        return f"/demo/load-test/{self.run_id}"

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def past_schedule(self) -> bool:
        """Whether its schedule should be over by now (capacity is then stopping and writing results)."""
        return time.monotonic() >= self.created_monotonic + self.plan.duration_s

    def find_run_dir(self) -> Path | None:
        """capacity's run directory: the one directory it creates in ``workdir``."""
        if self.run_dir is None:
            with contextlib.suppress(OSError):
                found = [path for path in self.workdir.iterdir() if path.is_dir()]
                if len(found) == 1:
                    self.run_dir = found[0]
        return self.run_dir

    def refresh(self) -> None:
        """Read the generator's live snapshot (cheap: a small file written about once a second)."""
        if self.finished:
            return
        run_dir = self.find_run_dir()
        snapshot = _read_json(run_dir / "loadgen" / "progress.json") if run_dir else None
        if snapshot is not None:
            self.last_progress = describe_progress(snapshot)
            if self.state == "queued":
                self.state = "running"

    def describe(self) -> dict[str, Any]:
        self.refresh()
        elapsed = self.last_progress["elapsed_s"] if self.last_progress else 0.0
        if self.result is not None and self.state == "completed":
            elapsed = max(elapsed, self.plan.duration_s)
        remaining = 0.0 if self.finished else max(0.0, self.plan.duration_s - elapsed)
        return {
            "run_id": self.run_id,
            "status_url": self.status_url,
            "state": self.state,
            "request": self.plan.describe(),
            "target": self.target,
            "created_at": _iso(self.created_wall),
            "finished_at": _iso(self.finished_wall),
            "elapsed_s": round(min(elapsed, self.plan.duration_s), 3),
            "remaining_s": round(remaining, 3),
            "progress": self.last_progress,
            "result": self.result,
            "run_directory": str(self.run_dir) if self.run_dir else None,
            "working_directory": str(self.workdir),
            "problem": self.problem,
            "exit_code": self.exit_code,
        }


# --- the manager --------------------------------------------------------------------------------------------


class LoadTests:
    """The exchange's load tests: starts them one at a time, watches, cancels, remembers the last few."""

    def __init__(self, output_dir: str | os.PathLike[str]) -> None:
        self.output_dir = Path(output_dir)
        self.tests: dict[str, LoadTest] = {}
        self.command_prefix: list[str] = [sys.executable, "-c", CHILD_BOOTSTRAP]  # tests swap in a fake
        self._lock: asyncio.Lock | None = None

    def running(self) -> LoadTest | None:
        return next((test for test in self.tests.values() if not test.finished), None)

    def get(self, run_id: str) -> LoadTest:
        test = self.tests.get(run_id)
        if test is None:
            raise ApiError(404, "not_found", f"no load test {run_id!r}: GET /demo/load-test lists them")
        return test

    def listing(self) -> dict[str, Any]:
        running = self.running()
        return {
            "running": running.run_id if running else None,
            "load_tests": [test.describe() for test in reversed(self.tests.values())],
        }

    async def start(self, plan: LoadTestPlan, target: str, server_pid: int) -> LoadTest:
        """Start a load test, or ApiError 409 while another one runs (see ``FINISHING_WAIT_S``)."""
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            current = self.running()
            if current is not None and current.past_schedule():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(current.done.wait(), FINISHING_WAIT_S)
                current = self.running()
            if current is not None:
                current.refresh()
                raise ApiError(
                    409,
                    "load_test_running",
                    f"load test {current.run_id} is {current.state} (one at a time): follow it at "
                    f"GET {current.status_url}, or cancel it with DELETE {current.status_url}",
                )
            test = self._prepare(plan, target)
            await self._spawn(test, server_pid)
            self.tests[test.run_id] = test
            self._forget_old()
        return test

    def _prepare(self, plan: LoadTestPlan, target: str) -> LoadTest:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        run_id = f"{stamp}-{secrets.token_hex(3)}"
        workdir = (self.output_dir / f"load-test-{run_id}").resolve()
        try:
            workdir.mkdir(parents=True)
            request = {"run_id": run_id, "target": target, "request": plan.describe()}
            (workdir / "request.json").write_bytes(orjson.dumps(request, option=orjson.OPT_INDENT_2))
            # JSON is YAML: capacity reads this as any scenario file.
            (workdir / "scenario.yaml").write_bytes(
                orjson.dumps(plan.scenario(run_id), option=orjson.OPT_INDENT_2)
            )
        except OSError as error:
            raise ApiError(
                503,
                "load_test_unavailable",
                f"cannot write the load test's files under {self.output_dir.resolve()}: {error} "
                "(set LOAD_TEST_OUTPUT_DIR to a writable directory)",
            ) from None
        return LoadTest(run_id=run_id, plan=plan, target=target, workdir=workdir)

    async def _spawn(self, test: LoadTest, server_pid: int) -> None:
        command = [
            *self.command_prefix,
            "run",
            str(test.workdir / "scenario.yaml"),
            "--target",
            test.target,
            "--server-pid",
            str(server_pid),
            "--output-dir",
            str(test.workdir),
            "--seed-slo",
            "--summary-json",
            str(test.workdir / SUMMARY_FILE),
            "--quiet",
        ]
        try:
            with (test.workdir / "capacity.log").open("wb") as output:
                test.process = await asyncio.create_subprocess_exec(
                    *command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=output,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,  # its own process group: cancel signals it alone
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
        except OSError as error:
            raise ApiError(503, "load_test_unavailable", f"cannot start capacity run: {error}") from None
        test.watcher = asyncio.create_task(self._watch(test), name=f"load-test-{test.run_id}")
        p = test.plan
        log.warning(
            "load test %s started (pid %d): %g orders/s, %d users, %g s against %s; files in %s",
            test.run_id,
            test.process.pid,
            p.orders_per_second,
            p.concurrent_users,
            p.duration_s,
            test.target,
            test.workdir,
        )

    def _forget_old(self) -> None:
        finished = [run_id for run_id, test in self.tests.items() if test.finished]
        for run_id in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self.tests[run_id]

    async def _watch(self, test: LoadTest) -> None:
        """Wait for capacity run to end (stopping it if it overruns by far), then read its run.json."""
        assert test.process is not None
        try:
            try:
                limit_s = test.plan.duration_s + WATCHDOG_MARGIN_S
                test.exit_code = await asyncio.wait_for(test.process.wait(), limit_s)
            except TimeoutError:
                test.problem = f"capacity run was still running {limit_s:.0f} s after it started; stopped it"
                test.exit_code = await self._stop(test, CANCEL_GRACE_S)
            test.refresh()
            await self._collect(test)
        except Exception:  # never leave a load test "running" forever
            log.exception("load test %s: watching it failed", test.run_id)
            test.state = "failed"
            test.problem = test.problem or "watching capacity run failed: see the exchange's log"
        finally:
            test.finished_wall = time.time()
            test.done.set()
            log.warning(
                "load test %s ended %s%s",
                test.run_id,
                test.state,
                f" ({test.problem})" if test.problem else "",
            )

    async def _collect(self, test: LoadTest) -> None:
        summary = await asyncio.to_thread(_read_json, test.workdir / SUMMARY_FILE)
        if summary is not None:
            try:
                test.result = validate_run_summary(summary)
            except SchemaViolation as error:
                test.problem = (
                    f"capacity wrote a summary this exchange cannot read ({error}; it reads "
                    f"{RUN_SUMMARY_FORMAT}): install capacity and the exchange from the same revision"
                )
        status = test.result["status"] if test.result else None
        if status == "completed" and test.problem is None:
            test.state = "completed"
        elif test.cancel_requested:
            test.state = "cancelled"
            test.problem = f"cancelled by {test.cancel_requested}; what was measured until then is kept"
        elif status == "interrupted":
            test.state = "cancelled"
            test.problem = "interrupted from outside the exchange (SIGINT to capacity run)"
        else:
            test.state = "failed"
            why = test.result["problem"] if test.result and test.result["problem"] else None
            test.problem = (
                test.problem
                or why
                or (f"capacity run exited with code {test.exit_code}: {_tail(test.workdir / 'capacity.log')}")
            )

    async def cancel(self, test: LoadTest, reason: str, grace_s: float = CANCEL_GRACE_S) -> None:
        """Stop a running load test (SIGINT, then SIGKILL after ``grace_s``) and wait until it is written;
        what was measured until then is kept (run.json marked interrupted)."""
        if test.finished:
            return
        if test.cancel_requested:  # a second DELETE: a second SIGINT would make capacity kill, not stop
            await asyncio.shield(test.done.wait())
            return
        test.cancel_requested = reason
        log.warning("load test %s: cancelling", test.run_id)
        await self._stop(test, grace_s)
        if test.watcher is not None:
            await asyncio.shield(test.done.wait())

    async def _stop(self, test: LoadTest, grace_s: float) -> int | None:
        process = test.process
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGINT)  # capacity's own group; it stops its generator
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(process.wait()), grace_s)
        if process.returncode is None:
            log.warning(
                "load test %s: capacity run ignored SIGINT for %g s; killing it", test.run_id, grace_s
            )
            _kill_tree(process.pid)
            await process.wait()
        return process.returncode

    async def shutdown(self) -> None:
        """Cancel whatever runs, so that nothing is left behind when the exchange stops."""
        test = self.running()
        if test is not None:
            await self.cancel(test, "the exchange shutting down", SHUTDOWN_GRACE_S)


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid``, its process group and every descendant (Locust runs in a session of its own)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        children = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()
