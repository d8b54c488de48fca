"""Locust glue for capacity: ``locust -f capacity/generator/locustfile.py --scenario scenarios/average.yaml``.

- ``ScenarioShape`` (a LoadTestShape) follows the scenario's ramp and stages, then stops the test.
- ``Trader`` users send the scenario's order mix to the exchange's HTTP API on an open-model schedule
  (capacity.generator.pacing) and record every request into this process's LatencyRecorder
  (capacity.measure.latency), as well as into Locust's own statistics, so the web UI's charts and tables
  work as usual.
- Workers attach their recorder's per-second delta (encoded HdrHistograms) to Locust's regular worker
  report (``report_to_master``); the master merges them (``worker_report``). The local runner feeds its own
  delta through the same encode/merge path once a second.
- The master (or local runner) writes progress.json once a second and loadgen.json + HDR interval logs at
  test stop, as docs/loadgen-results.md specifies.

The pure parts live in capacity.generator.pacing, capacity.generator.order_flow, capacity.measure.latency
and capacity.results.loadgen_file; this module only wires them to Locust's classes and events. It never
imports reference_exchange: the exchange is reached over HTTP only.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import math
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import gevent
import orjson
from gevent.lock import Semaphore
from locust import FastHttpUser, LoadTestShape, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import WORKER_REPORT_INTERVAL, MasterRunner, Runner, WorkerRunner

from capacity.exit_codes import EXIT_INVALID
from capacity.generator.locust_web import LiveFigures
from capacity.generator.locust_web import install as install_tab
from capacity.generator.order_flow import Market, OrderFlow, OrderRequest
from capacity.generator.pacing import UserPacer
from capacity.measure.latency import LatencyRecorder, Second
from capacity.measure.sampler import MetricsPoller
from capacity.results.loadgen_file import loadgen_document, progress_document, write_final, write_json_atomic
from capacity.scenario import (
    MIN_DURATION_S,
    Problem,
    Scenario,
    ScenarioError,
    load_scenario,
    scenario_from_mapping,
)

log = logging.getLogger("capacity.generator.locustfile")

DEFAULT_HOST = "http://127.0.0.1:8080"
# Attribute the master sets on its parsed options at test start. Locust forwards custom options to the
# workers with every spawn message, so each worker learns the run's t = 0 and the resolved scenario there.
RUN_OPTION = "capacity_run"
REPORT_KEY = "capacity"  # key of our data in Locust's worker report
DRAIN_S = 1.0  # after the schedule ends, users send nothing new but in-flight responses still count
# What Locust's json= adds; bodies are encoded here with orjson (stdlib json costs ~3 % of a request).
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


# ---------------------------------------------------------------------------------------------- options


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--scenario",
        metavar="PATH",
        default=None,
        help="capacity scenario YAML (e.g. scenarios/average.yaml); required except on workers",
        include_in_web_ui=True,
    )
    parser.add_argument(
        "--results-dir",
        metavar="DIR",
        default=None,
        env_var="CAPACITY_RESULTS_DIR",
        help="write progress.json, loadgen.json and HDR logs here (docs/loadgen-results.md); none if unset",
        include_in_web_ui=False,
    )
    parser.add_argument(
        "--late-threshold-ms",
        type=float,
        default=10.0,
        help="a request sent more than this after its intended time counts as late (default 10)",
        include_in_web_ui=True,
    )
    parser.add_argument(
        "--rate-override",
        type=float,
        default=None,
        metavar="PER_S",
        help="quick try: the scenario's requests/s (stages scaled to this peak)",
        include_in_web_ui=True,
    )
    parser.add_argument(
        "--duration-override",
        type=float,
        default=None,
        metavar="SECONDS",
        help="quick try: the scenario's duration in seconds (stages and ramp scaled)",
        include_in_web_ui=True,
    )
    parser.add_argument(
        "--users-override",
        type=int,
        default=None,
        metavar="N",
        help="quick try: the scenario's concurrent users (stages scaled to this peak)",
        include_in_web_ui=True,
    )


def _number(value: Any, kind: type[float] | type[int]) -> float | int | None:
    """An option's value as a number; the web UI hands over strings, and empty means unset."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return kind(value)


def scenario_from_options(options: Any) -> Scenario:
    """The scenario file named by --scenario with the --*-override options applied.

    Raises ScenarioError (problems named by file, line and field) for a missing or invalid scenario.
    """
    path = getattr(options, "scenario", None)
    if not path:
        raise ScenarioError(
            [
                Problem(
                    "--scenario", None, "", "required: the scenario YAML to run, e.g. scenarios/average.yaml"
                )
            ]
        )
    try:
        duration_s = _number(getattr(options, "duration_override", None), float)
        rate = _number(getattr(options, "rate_override", None), float)
        users = _number(getattr(options, "users_override", None), int)
    except ValueError as error:
        raise ScenarioError([Problem("overrides", None, "", str(error))]) from None
    scenario = load_scenario(path)
    common = CommonOptions.of(options)
    if common is not None:
        if duration_s is None and common.run_time_s and common.run_time_s < scenario.total_duration_s:
            # -t cuts the run short, never lengthens it: the load is cut, a recovery phase keeps its length
            recovery_s = scenario.total_duration_s - scenario.load_end_s
            duration_s = max(float(common.run_time_s) - recovery_s, MIN_DURATION_S)
        if users is None and common.users:
            users = common.users
    return scenario.with_overrides(
        duration_s=duration_s, orders_per_second=rate, concurrent_users=None if users is None else int(users)
    )


@dataclass(frozen=True)
class CommonOptions:
    """Locust's -t, -u and -r as the user gave them, before Locust fills in its headless defaults (1 user
    at 1/s): -t the run's length (a cut: a shorter run, stages scaled to fit, as --duration-override), -u the
    users (as --users-override), -r a cap on users started per second (docs/locust.md)."""

    run_time_s: int | None
    users: int | None
    spawn_rate: float | None

    @classmethod
    def of(cls, options: Any) -> CommonOptions | None:
        """What on_init (or the web UI's start form) left in ``options``; None if nothing."""
        values = getattr(options, COMMON_OPTION, None)
        return None if values is None else cls(*values)

    @staticmethod
    def keep(options: Any) -> None:
        """Keep -t, -u and -r as they are now in ``options`` (a plain list: the master sends its parsed
        options to workers with msgpack). A start-form field left as ``prefill_start_form`` filled it is
        no override."""
        values = [options.run_time, options.num_users, options.spawn_rate]
        shown = getattr(options, FORM_DEFAULTS, None) or [None] * len(values)
        kept = [None if value == was else value for value, was in zip(values, shown, strict=True)]
        setattr(options, COMMON_OPTION, kept)


#: Where -t, -u and -r are kept on Locust's parsed options.
COMMON_OPTION = "capacity_common_options"
#: What the web UI's start form was filled with (run time s, users, users/s; None: the user's own).
FORM_DEFAULTS = "capacity_form_defaults"


def prefill_start_form(options: Any, scenario: Scenario) -> None:
    """Show the scenario in the web UI's start form: its peak users, all started within a second, and its
    length, in the fields the user did not give on the command line. Left as shown, they change nothing."""
    users = scenario.load.concurrent_users
    seconds = math.ceil(scenario.total_duration_s)
    shown: list[int | None] = [None, None, None]
    if options.run_time is None:
        options.run_time, shown[0] = f"{seconds}s", seconds
    if options.num_users is None:
        options.num_users = shown[1] = users
    if options.spawn_rate is None:
        options.spawn_rate = shown[2] = users
    setattr(options, FORM_DEFAULTS, shown)


class QuietSpawnRate(logging.Filter):
    """Drops Locust's "spawn rate is very high" warning: the shape starts the scenario's users as its
    schedule says, on purpose (users started late would send their backlog late, docs/locust.md)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Your selected spawn rate is very high")


def late_threshold_ms(options: Any) -> float:
    value = _number(getattr(options, "late_threshold_ms", None), float)
    return 10.0 if value is None else float(value)


# ---------------------------------------------------------------------------------------------- process state


@dataclass
class RunState:
    """This process's view of the current run: its t = 0, the scenario, and what users record into."""

    run_id: str
    started_at: float  # unix seconds of t = 0 of the schedule
    start_ns: int  # the same instant on this process's monotonic clock
    scenario: Scenario
    recorder: LatencyRecorder
    stopped: bool = False

    @classmethod
    def begin(cls, run_id: str, started_at: float, scenario: Scenario, threshold_ms: float) -> RunState:
        start_ns = time.monotonic_ns() - round((time.time() - started_at) * 1e9)
        return cls(run_id, started_at, start_ns, scenario, LatencyRecorder(threshold_ms))

    def now_ns(self) -> int:
        return time.monotonic_ns() - self.start_ns

    def now_s(self) -> float:
        return self.now_ns() / 1e9


@dataclass
class Collector:
    """Master (or local runner) side: merged data of every process, and the results files."""

    run: RunState
    results_dir: str | None
    target: str
    recorder: LatencyRecorder = field(default_factory=LatencyRecorder)
    workers: set[str] = field(default_factory=set)
    final_workers: set[str] = field(default_factory=set)
    written_final: bool = False
    progress_greenlet: gevent.Greenlet | None = None
    finish_greenlet: gevent.Greenlet | None = None

    def add(self, client_id: str, payload: dict[str, Any]) -> None:
        self.recorder.add_delta(payload["delta"])
        self.workers.add(client_id)
        if payload.get("final"):
            self.final_workers.add(client_id)

    def elapsed_s(self) -> float:
        return self.run.now_s()

    def progress(self, users: int, workers: int, settle_s: float, total: Second | None) -> dict[str, Any]:
        """The live ``progress.json`` document of the run so far (``total``: the merged run, if at hand)."""
        return progress_document(
            self.run.scenario,
            self.recorder,
            elapsed_s=self.elapsed_s(),
            users=users,
            workers=workers,
            settle_s=settle_s,
            total=total,
        )

    def write_progress(self, doc: dict[str, Any]) -> None:
        if self.results_dir:
            write_json_atomic(f"{self.results_dir}/progress.json", doc)

    def write_final(self) -> None:
        if not self.results_dir:
            return
        doc = loadgen_document(
            self.run.scenario,
            self.recorder,
            target=self.target,
            started_at=self.run.started_at,
            workers=max(len(self.workers), 1),
            elapsed_s=self.elapsed_s(),
            engine="locust",
        )
        write_final(self.results_dir, doc, self.recorder)
        self.written_final = True
        totals = doc["totals"]
        log.info(
            "capacity: wrote %s/loadgen.json: %d scheduled, %d sent, %d ok, %d errors, %d late",
            self.results_dir,
            totals["scheduled"],
            totals["sent"],
            totals["ok"],
            totals["errors"],
            totals["late"],
        )


class _Process:
    """Module-level state of this Locust process (one per process, shared by its users)."""

    run: RunState | None = None
    collector: Collector | None = None
    live: LiveFigures | None = None  # the web UI's Capacity tab (none in headless runs)
    market: Market | None = None
    market_lock = Semaphore()
    tag = uuid.uuid4().hex[:8]  # makes client order ids unique across processes
    user_numbers = itertools.count(1)
    seed_base = random.SystemRandom().getrandbits(32)


# ---------------------------------------------------------------------------------------------- shape


class ScenarioShape(LoadTestShape):
    """Users follow the scenario's schedule (ramp and stages); None once it has ended (plus DRAIN_S).

    Each tick returns (users, spawn_rate) with a spawn rate that reaches the new user count within about
    a second, so the users, and with them the offered rate, track the schedule; ``-r`` caps it.
    """

    use_common_options = True  # -t, -u and -r are read (CommonOptions), so Locust does not ignore them

    def __init__(self, scenario: Scenario | None = None) -> None:
        super().__init__()
        self.scenario = scenario
        self._last: tuple[int, float] | None = None

    def reset_time(self) -> None:
        super().reset_time()
        self._last = None
        # Re-read the options at every start: the web UI may have changed --scenario or an override.
        options = self.runner.environment.parsed_options if self.runner is not None else None
        if options is not None and not isinstance(self.runner, WorkerRunner):
            if not getattr(options, "headless", False):  # the web UI's start form wrote -t, -u and -r here
                CommonOptions.keep(options)
            try:
                self.scenario = scenario_from_options(options)
            except ScenarioError as error:
                log.error("capacity: cannot start, invalid scenario:\n%s", error)
                self.scenario = None

    def tick(self) -> tuple[int, float] | None:
        return self.tick_at(self.get_run_time())

    def tick_at(self, t_s: float) -> tuple[int, float] | None:
        """The shape at ``t_s`` seconds into the run."""
        if self.scenario is None:
            return None
        end_s = self.scenario.total_duration_s
        if t_s >= end_s + DRAIN_S:
            return None
        users = self.scenario.users_at(min(t_s, end_s - 1e-6))
        if self._last is not None and self._last[0] == users:
            return self._last
        previous = 0 if self._last is None else self._last[0]
        rate = float(max(abs(users - previous), 1))
        common = self._common()
        if common is not None and common.spawn_rate:
            rate = min(rate, common.spawn_rate)
        self._last = (users, rate)
        return self._last

    def _common(self) -> CommonOptions | None:
        return CommonOptions.of(self.runner.environment.parsed_options) if self.runner is not None else None


# ---------------------------------------------------------------------------------------------- user


def _error_kind(status: int, error: BaseException | None) -> str:
    if status:
        return f"http_{status}"
    if isinstance(error, TimeoutError) or "timeout" in type(error).__name__.lower():
        return "timeout"
    return "connection"


class Trader(FastHttpUser):
    """A trader on an open-model schedule: sends its next request when due, never "waits then sends"."""

    host = DEFAULT_HOST
    network_timeout = 30.0
    connection_timeout = 10.0
    concurrency = 2  # one greenlet per user: a second connection only while the first reconnects

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.number = next(_Process.user_numbers)
        self.rng = random.Random(_Process.seed_base + self.number)
        self.state: RunState | None = None
        self.pacer: UserPacer | None = None
        self.flow: OrderFlow | None = None
        self.answered_ns: int | None = None  # when the last answer came: a due slot could go from then
        self.waiting = False  # a request is out and unanswered

    def on_start(self) -> None:
        run = _Process.run
        if run is None:
            log.error("capacity: user started outside a run; is --scenario set on the master?")
            raise StopUser()
        market = self._market()
        scenario = run.scenario
        missing = market.missing(scenario.load.symbols)
        if missing:
            log.error("capacity: symbols not listed by %s/api/symbols: %s", self.host, ", ".join(missing))
            raise StopUser()
        self.state = run
        self.flow = OrderFlow(
            scenario.mix, scenario.load.symbols, market, self.rng, f"{_Process.tag}-{self.number}"
        )
        self.pacer = UserPacer.for_scenario(scenario, run.now_s(), self.rng)

    def _market(self) -> Market:
        """Symbols, tick and lot sizes and reference prices, read once per process."""
        with _Process.market_lock:
            if _Process.market is None:
                with self.client.get("/api/symbols", name="/api/symbols", catch_response=True) as response:
                    if response.status_code != 200:
                        response.failure(f"GET /api/symbols answered {response.status_code}")
                        raise StopUser()
                    _Process.market = Market.from_symbols_response(json.loads(response.content))
            return _Process.market

    def wait_time(self) -> float:
        if self.pacer is None or self.state is None:
            return 1.0
        return self.pacer.wait_s(self.state.now_s())

    @task
    def send_when_due(self) -> None:
        assert self.pacer is not None and self.state is not None and self.flow is not None
        run = self.state
        due_s = self.pacer.next_s
        if due_s is None or due_s > run.now_s():
            return  # finished, or not due yet: Locust sleeps wait_time() and calls again
        intended_ns = round(self.pacer.take() * 1e9)
        request = self.flow.next_request()
        sent_ns = run.now_ns()
        run.recorder.sent(intended_ns, sent_ns, request.kind, self.answered_ns)
        self.waiting = True
        self._send(request, intended_ns, sent_ns)
        self.waiting = False
        self.answered_ns = run.now_ns()

    def _send(self, request: OrderRequest, intended_ns: int, sent_ns: int) -> None:
        run = self.state
        assert run is not None and self.flow is not None
        body = None if request.body is None else orjson.dumps(request.body)
        with self.client.request(
            request.method,
            request.path,
            name=request.name,
            data=body,  # type: ignore[arg-type]  # bytes are sent as they are; locust's hint omits them
            headers=None if body is None else JSON_HEADERS,
            catch_response=True,
        ) as response:
            done_ns = run.now_ns()
            status = response.status_code or 0
            # a cancel that finds its order already filled (409) or gone (404) was answered correctly
            ok = 200 <= status < 300 or (request.kind == "cancel" and status in (404, 409))
            error = getattr(response, "error", None)
            content = response.content if ok and request.kind != "cancel" else None
            if ok:
                response.success()
            elif status == 503:
                response.failure("shed: HTTP 503 (server overloaded)")
            else:
                response.failure(f"{_error_kind(status, error)}: {error or status}")
        if not ok:
            run.recorder.error(intended_ns, _error_kind(status, error), done_ns)
            return
        run.recorder.record(intended_ns, sent_ns, done_ns)
        if content:
            try:
                payload = orjson.loads(content)
            except orjson.JSONDecodeError:
                return
            self.flow.on_response(request, status, payload)

    def on_stop(self) -> None:
        # Slots that came due while this user was behind and were never sent are counted, not dropped.
        if self.pacer is not None and self.state is not None:
            until_s = min(self.state.now_s(), self.state.scenario.total_duration_s)
            now_ns = self.state.now_ns()
            for slot_s in self.pacer.owed(until_s):
                slot = round(slot_s * 1e9)
                self.state.recorder.owed(slot, generator_fault=not self.waiting)
                self.state.recorder.unanswered(slot, now_ns)


# ---------------------------------------------------------------------------------------------- events


def _is_worker(environment: Environment) -> bool:
    return isinstance(environment.runner, WorkerRunner)


def _is_master(environment: Environment) -> bool:
    return isinstance(environment.runner, MasterRunner)


@events.init.add_listener
def on_init(environment: Environment, runner: Runner | None = None, **_kwargs: Any) -> None:
    # Everything imported so far lives as long as the process: move it out of the garbage collector's
    # reach, so full collections during the run are short (long ones paused sends: docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    options = environment.parsed_options
    if options is not None and not hasattr(options, COMMON_OPTION):
        CommonOptions.keep(options)
        # The shape ends the run when the (cut) schedule and its drain are over: Locust's own stop at -t
        # would cut the drain and count answers still on their way as unanswered.
        options.run_time = None
    if environment.parsed_options is None or _is_worker(environment):
        return  # workers get the scenario from the master
    install_tab(environment, lambda: _Process.live.latest if _Process.live is not None else {})
    logging.getLogger("locust.runners").addFilter(QuietSpawnRate())
    try:
        scenario = scenario_from_options(environment.parsed_options)
    except ScenarioError as error:
        print("capacity: cannot start the load test:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        sys.exit(EXIT_INVALID)  # SystemExit passes through Locust's event hook: a clean exit 2
    web_form = not getattr(options, "headless", False) and not getattr(options, "autostart", False)
    if web_form:
        prefill_start_form(options, scenario)


@events.test_start.add_listener
def on_test_start(environment: Environment, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if _is_worker(environment):
        spec = getattr(options, RUN_OPTION, None)
        if not spec:
            log.error(
                "capacity: the master sent no run description; "
                "is it running capacity/generator/locustfile.py?"
            )
            return
        scenario = scenario_from_mapping(spec["scenario"], "master")
        _Process.run = RunState.begin(spec["run_id"], spec["started_at"], scenario, spec["late_threshold_ms"])
        return
    _stop_collector()
    shape = environment.shape_class
    shaped = shape.scenario if isinstance(shape, ScenarioShape) and shape.scenario else None
    scenario = shaped or scenario_from_options(options)
    threshold = late_threshold_ms(options)
    run = RunState.begin(uuid.uuid4().hex, time.time(), scenario, threshold)
    if options is not None:
        setattr(
            options,
            RUN_OPTION,
            {
                "run_id": run.run_id,
                "started_at": run.started_at,
                "scenario": scenario.to_dict(),
                "late_threshold_ms": threshold,
            },
        )
    _Process.run = run
    results_dir = getattr(options, "results_dir", None) or None
    collector = Collector(run, results_dir, environment.host or Trader.host)
    collector.recorder = LatencyRecorder(threshold)
    _Process.collector = collector
    if getattr(environment, "web_ui", None) is not None:  # the tab's readings cost nothing headless
        processes = getattr(options, "processes", None) or 1
        _Process.live = LiveFigures(
            scenario,
            generator_cores=float(max(processes, 1)),
            server=MetricsPoller(collector.target, timeout_s=0.5),
        )
    collector.progress_greenlet = gevent.spawn(_progress_loop, environment, collector)


def _absorb_local(collector: Collector) -> None:
    """Local runner: move this process's data into the collector through the same wire path as workers."""
    run = _Process.run
    if run is not None and run is collector.run:
        collector.add("local", {"delta": run.recorder.take_delta(), "final": run.stopped})


def _progress_loop(environment: Environment, collector: Collector) -> None:
    master = _is_master(environment)
    settle_s = WORKER_REPORT_INTERVAL + 1.0 if master else 1.0
    while not collector.run.stopped:
        gevent.sleep(1.0)
        if not master:
            _absorb_local(collector)
        runner = environment.runner
        workers = runner.worker_count if isinstance(runner, MasterRunner) else 1
        users = runner.user_count if runner is not None else 0
        live = _Process.live
        total = collector.recorder.combined() if live is not None else None  # merged once for both
        doc = collector.progress(users, workers, settle_s, total)
        if live is not None and total is not None:
            live.update(doc, total)
        try:
            collector.write_progress(doc)
        except OSError as error:
            log.error("capacity: cannot write progress.json: %s", error)


@events.report_to_master.add_listener
def on_report_to_master(client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
    run = _Process.run
    if run is None:
        return
    data[REPORT_KEY] = {"run_id": run.run_id, "final": run.stopped, "delta": run.recorder.take_delta()}


@events.worker_report.add_listener
def on_worker_report(client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
    payload = data.get(REPORT_KEY)
    collector = _Process.collector
    if not payload or collector is None or payload.get("run_id") != collector.run.run_id:
        return  # not ours, or a late report of an earlier run
    collector.add(client_id, payload)


@events.test_stop.add_listener
def on_test_stop(environment: Environment, **_kwargs: Any) -> None:
    run = _Process.run
    if run is not None:
        run.stopped = True  # users are stopped by now: their on_stop has counted owed slots
    collector = _Process.collector
    if collector is None or _is_worker(environment):
        return
    if not _is_master(environment):
        _absorb_local(collector)
        _finish(collector)
        return
    # Workers send their last data with their next report; wait for it (bounded), then write.
    if collector.finish_greenlet is None:
        collector.finish_greenlet = gevent.spawn(_finish_when_workers_final, collector)


def _finish_when_workers_final(collector: Collector) -> None:
    deadline = time.monotonic() + WORKER_REPORT_INTERVAL + 3.0
    while time.monotonic() < deadline and not collector.workers <= collector.final_workers:
        gevent.sleep(0.1)
    _finish(collector)


def _finish(collector: Collector) -> None:
    collector.run.stopped = True
    missing = collector.workers - collector.final_workers
    if missing and collector.workers != {"local"}:
        log.warning(
            "capacity: no final report from %d worker(s); their last data may be missing", len(missing)
        )
    try:
        collector.write_final()
    except OSError as error:
        log.error("capacity: cannot write results to %s: %s", collector.results_dir, error)


def _stop_collector() -> None:
    collector = _Process.collector
    if collector is None:
        return
    collector.run.stopped = True
    for greenlet in (collector.progress_greenlet, collector.finish_greenlet):
        if greenlet is not None and greenlet is not gevent.getcurrent():
            greenlet.kill(block=False)


@events.quitting.add_listener
def on_quitting(environment: Environment, **_kwargs: Any) -> None:
    """Last chance before the process exits: write whatever has arrived if results are not written yet.

    In a headless distributed run this is the normal path: the master quits right after the test stops and
    gives workers half a second for their final report (Locust's own rule for its statistics).
    """
    collector = _Process.collector
    if collector is None or _is_worker(environment) or collector.written_final:
        return
    _stop_collector()
    if not _is_master(environment):
        _absorb_local(collector)
    _finish(collector)
