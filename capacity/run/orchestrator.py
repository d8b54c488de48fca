"""One scenario, measured: ``run_scenario(scenario, options) -> RunResult(path, run)``.

The orchestration, in order:

1. check the options (a ``--target`` must be loopback: load tests here never leave the machine; CPUs must
   exist) — ``RunSetupError`` before anything starts;
2. make the run directory ``<output_dir>/<UTC yyyymmddTHHMMSS>-<name>/`` (or exactly ``run_dir`` when the
   options name one, as a sweep does for its tiers) with the effective scenario;
3. start the embedded reference exchange in its own process and session (``EmbeddedExchange``: a
   terminal's Ctrl-C reaches only capacity), pinned to the server CPUs, unless a target URL is given,
   and wait for ``/health``;
4. sample the server (psutil) and the exchange's own ``/api/metrics`` every second;
5. run the load generator as a subprocess in its own session, pinned to the generator CPUs, writing into
   ``loadgen/`` (``docs/loadgen-results.md``): the native engine (``capacity.generator.native_generator``, the
   default) or Locust headless (``capacity/generator/locustfile.py``, ``--engine locust``);
6. stop the generator, then the exchange — on completion, on Ctrl-C (the run is kept and marked
   ``interrupted``), on ``cancel``, or when something breaks (``failed``);
7. join the generator's seconds with the samples, summarise, and write ``run.json``
   (``capacity.results.run_file``, ``docs/run-format.md``).

``run_scenario`` never raises for a run that breaks: the run directory and ``run.json`` say what happened.
"""

from __future__ import annotations

import ipaddress
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import psutil
import yaml

from capacity.generator.preflight import TargetNotTheApi, check_round_trip, fetch_market
from capacity.measure.sampler import MetricsPoller, ProcessSampler
from capacity.results.run_file import (
    Overrides,
    Run,
    RunFormatError,
    RunStatus,
    Target,
    write_run,
)
from capacity.run.environment import collect_environment
from capacity.run.exchange_process import (
    JOURNAL_SYNC_MODES,
    EmbeddedExchange,
    ExchangeStartError,
    exchange_settings,
)
from capacity.run.loadgen_reader import (
    read_progress,
)
from capacity.run.progress import ProgressCallback, ProgressUpdate
from capacity.run.record import (
    GENERATOR_LOGS,
    PENDING_FILE,
    SAMPLES_FILE,
    PendingRun,
    SampleLog,
    assemble_run,
    tail,
    write_pending,
)
from capacity.scenario import Scenario
from capacity.text import cpu_list, plain_number

LOCUSTFILE = Path(__file__).resolve().parents[1] / "generator" / "locustfile.py"
ENGINES = ("native", "locust")  # load generator engines; the first is the default (docs/engines.md)
DEFAULT_OUTPUT_DIR = Path("reports/runs")
# Both engines end the test when the schedule ends; a generator still running this long after the schedule
# and its start-up allowance is stopped and the run fails.
OVERRUN_S = 15


class RunNotWritten(Exception):
    """The run ended but its run.json could not be written (a full disk): one line saying what is kept."""


class RunSetupError(ValueError):
    """The options cannot work (non-loopback target, unknown CPU, missing locustfile...); nothing ran."""


@dataclass(frozen=True)
class RunOptions:
    """How to run a scenario. CPUs are logical CPU numbers; ``None`` picks a default (see
    ``plan_placement``)."""

    output_dir: Path = DEFAULT_OUTPUT_DIR
    run_dir: Path | None = None  # write exactly here (new or empty; created) instead of under output_dir
    overrides: Overrides = field(default_factory=Overrides)
    scenario_source: str | None = None  # the file the scenario came from, for the record
    target: str | None = None  # loopback URL of an exchange to test instead of the embedded one
    server_pid: int | None = None  # with target: its pid, so psutil can sample it
    engine: str = ENGINES[0]  # native | locust
    workers: int = 1  # generator processes (Locust: > 1 runs --processes N, a master and N workers)
    pin: bool = True
    server_cpus: tuple[int, ...] | None = None
    generator_cpus: tuple[int, ...] | None = None
    pin_self: bool = False  # also pin this process (sampler, display) to the generator CPUs during the run
    journal_sync: str | None = None  # embedded only: full | normal | off (None: the exchange's default)
    journal: bool = True  # embedded only: False runs without durability (JOURNAL_PATH=none)
    exchange_env: Mapping[str, str] = field(default_factory=dict)  # extra env for the embedded exchange
    start_timeout_s: float = 30.0  # exchange up and the generator started
    stop_timeout_s: float = 30.0  # generator and exchange to stop after being asked


@dataclass(frozen=True)
class RunResult:
    """Where the run was written and what it holds."""

    path: Path
    run: Run


@dataclass(frozen=True)
class Placement:
    """CPUs for server and generator (``None``: not pinned), whether pinning applies, and why not."""

    server_cpus: tuple[int, ...] | None
    generator_cpus: tuple[int, ...] | None
    pinned: bool
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------- checks


def check_target(url: str, flag: str = "--target") -> str:
    """``url`` without a trailing slash if it is an http(s) URL on this machine (127.0.0.0/8, ::1,
    localhost); RunSetupError otherwise. Load tests here must never leave the machine."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise RunSetupError(f"{flag} {url!r}: expected an http:// URL such as http://127.0.0.1:8080")
    try:
        parsed.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise RunSetupError(f"{flag} {url!r}: bad port") from None
    if parsed.query or parsed.fragment:
        raise RunSetupError(f"{flag} {url!r}: expected a base URL without query or fragment")
    if not _is_loopback(parsed.hostname):
        raise RunSetupError(
            f"{flag} {url!r}: refusing a non-loopback host ({parsed.hostname}); load tests from capacity "
            "never leave this machine (use 127.0.0.1, localhost or [::1])"
        )
    return url.strip().rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # any other name could resolve anywhere
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def parse_cpus(text: str) -> tuple[int, ...]:
    """CPU numbers from ``"1"``, ``"0,2"`` or ``"0-3"`` (sorted, unique); ValueError for anything else."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"not a CPU list: {text!r} (expected e.g. 1, 0,2 or 0-3)")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ValueError(f"not a CPU list: {text!r} ({part} goes down)")
        cpus.update(range(first, last + 1))
    return tuple(sorted(cpus))


def default_cpus(available: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """``(server, generator)`` CPUs: the generator gets the lower half (rounded up), the server the rest;
    on a 2-CPU machine the server gets CPU 1 and the generator CPU 0. None with fewer than 2 CPUs."""
    cpus = sorted(available)
    if len(cpus) < 2:
        return None
    half = math.ceil(len(cpus) / 2)
    return tuple(cpus[half:]), tuple(cpus[:half])


def plan_placement(options: RunOptions, available: Sequence[int] | None = None) -> Placement:
    """Where server and generator run. RunSetupError for a CPU this process may not use, or for server
    CPUs with an external target (capacity does not re-pin a process it did not start)."""
    cpus = sorted(available if available is not None else os.sched_getaffinity(0))
    if options.target and options.server_cpus:
        raise RunSetupError("--server-cpus applies to the embedded exchange only (pin your server yourself)")
    if not options.pin:
        return Placement(None, None, False, ("not pinned (--no-pin): server and generator share all CPUs",))
    for flag, chosen in (
        ("--server-cpus", options.server_cpus),
        ("--generator-cpus", options.generator_cpus),
    ):
        unknown = sorted(set(chosen or ()) - set(cpus))
        if unknown:
            raise RunSetupError(
                f"{flag}: CPU {','.join(map(str, unknown))} is not available "
                f"(this process may use {','.join(map(str, cpus))})"
            )
    defaults = default_cpus(cpus)
    if defaults is None and not (options.server_cpus or options.generator_cpus):
        note = f"only CPU {cpus[0]} is available: server and generator share it" if cpus else "no CPUs?"
        return Placement(None, None, False, (note,))
    server = options.server_cpus or (defaults[0] if defaults else None)
    generator = options.generator_cpus or (defaults[1] if defaults else None)
    notes = []
    if options.target:
        server = None
        notes.append("external target: its CPU placement is its own (pin it with taskset to keep it apart)")
    shared = sorted(set(server or ()) & set(generator or ()))
    if shared:
        notes.append(f"server and generator share CPU {','.join(map(str, shared))}: they compete for it")
    return Placement(server, generator, True, tuple(notes))


# ---------------------------------------------------------------------------------------------- the run


def run_scenario(
    scenario: Scenario,
    options: RunOptions,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> RunResult:
    """Run ``scenario`` (with ``options.overrides`` applied) and write its run directory.

    ``progress`` gets a ``ProgressUpdate`` about once a second; setting ``cancel`` stops the run early
    (as Ctrl-C does) and keeps what was measured. Raises RunSetupError (nothing started) or
    ``capacity.scenario.ScenarioError`` (bad overrides); every other outcome is in the returned run.
    """
    return _Orchestrator(scenario, options, progress, cancel).run()


def run_dir_for(output_dir: Path, name: str, now: datetime | None = None) -> Path:
    """Create and return ``output_dir/<UTC yyyymmddTHHMMSS>-<name>`` (``-2``, ``-3``... if taken)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    output_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        path = output_dir / (f"{stamp}-{name}" if attempt == 1 else f"{stamp}-{name}-{attempt}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RunSetupError(f"cannot create a run directory in {output_dir}")


def native_command(
    scenario_file: Path,
    host: str,
    results_dir: Path,
    processes: int = 1,
    overrides: Overrides | None = None,
    cpus: Sequence[int] | None = None,
) -> list[str]:
    """The command line of the native generator (``capacity.generator.native_generator``)."""
    command = [
        sys.executable,
        "-m",
        "capacity.generator.native_generator",
        "--scenario",
        str(scenario_file),
        "--host",
        host,
        "--results-dir",
        str(results_dir),
        "--processes",
        str(processes),
    ]
    if cpus:
        command += ["--cpus", ",".join(map(str, cpus))]
    return command + _override_flags(overrides)


def _override_flags(overrides: Overrides | None) -> list[str]:
    flags: list[str] = []
    overrides = overrides or Overrides()
    for flag, value in (
        ("--duration-override", overrides.duration_s),
        ("--rate-override", overrides.orders_per_second),
        ("--users-override", overrides.concurrent_users),
    ):
        if value is not None:
            flags += [flag, plain_number(value)]
    return flags


def locust_command(
    scenario_file: Path,
    host: str,
    results_dir: Path,
    workers: int = 1,
    overrides: Overrides | None = None,
    master_port: int | None = None,
    locustfile: Path = LOCUSTFILE,
) -> list[str]:
    """The Locust command line for a headless run of ``capacity/generator/locustfile.py``."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "--only-summary",
        "--exit-code-on-error",
        "0",  # failed requests are measurements, not a failure of the generator
        "--scenario",
        str(scenario_file),
        "--host",
        host,
        "--results-dir",
        str(results_dir),
    ]
    if workers > 1:
        command += ["--processes", str(workers), "--master-bind-host", "127.0.0.1"]
        if master_port is not None:
            command += ["--master-bind-port", str(master_port), "--master-port", str(master_port)]
    return command + _override_flags(overrides)


class _Interrupted(Exception):
    """Ctrl-C or ``cancel`` during the run."""


class _Orchestrator:
    """The state of one run; ``run`` is the whole life cycle, ``_finish`` always writes ``run.json``."""

    def __init__(
        self,
        scenario: Scenario,
        options: RunOptions,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> None:
        self.options = options
        self.progress = progress
        self.cancel = cancel or threading.Event()
        self.hurry = threading.Event()  # Ctrl-C while stopping: stop hard instead of waiting
        if options.engine not in ENGINES:
            raise RunSetupError(f"--engine {options.engine!r}: expected one of {', '.join(ENGINES)}")
        if options.workers < 1:
            raise RunSetupError(f"--processes must be at least 1, got {options.workers}")
        if options.journal_sync is not None and options.journal_sync not in JOURNAL_SYNC_MODES:
            raise RunSetupError(f"--journal-sync must be one of {', '.join(JOURNAL_SYNC_MODES)}")
        self.target_url = check_target(options.target) if options.target else None
        if self.target_url and (options.journal_sync or not options.journal or options.exchange_env):
            raise RunSetupError("--journal-sync/--no-journal apply to the embedded exchange only")
        if options.server_pid is not None:
            if not self.target_url:
                raise RunSetupError("--server-pid goes with --target (the embedded exchange's pid is known)")
            if not psutil.pid_exists(options.server_pid):
                raise RunSetupError(f"--server-pid {options.server_pid}: no such process")
        if options.engine == "locust" and not LOCUSTFILE.is_file():
            raise RunSetupError(f"the load generator is missing: {LOCUSTFILE} does not exist")
        wanted = options.run_dir
        if wanted is not None and wanted.exists() and (not wanted.is_dir() or any(wanted.iterdir())):
            raise RunSetupError(f"{wanted}: not an empty directory; a run needs a new one")
        self.placement = plan_placement(options)
        o = options.overrides
        self.scenario = scenario.with_overrides(o.duration_s, o.orders_per_second, o.concurrent_users)
        self.duration_s = self.scenario.total_duration_s
        self.notes: list[str] = list(self.placement.notes)
        self.status: RunStatus = "completed"
        self.problem: str | None = None
        self.exchange: EmbeddedExchange | None = None
        self.locust: subprocess.Popen[bytes] | None = None
        self.locust_exit: int | None = None
        self.command: list[str] = []
        self.sampler: ProcessSampler | None = None
        self.poller: MetricsPoller | None = None
        self.sample_log: SampleLog | None = None
        self.server_pid: int | None = options.server_pid
        self.exchange_settings: dict[str, str] = {}
        self.started = datetime.now(UTC)
        self.path = Path()
        self.url = self.target_url or ""

    # -- life cycle --

    def run(self) -> RunResult:
        if self.options.run_dir is None:
            self.path = run_dir_for(self.options.output_dir, self.scenario.name, self.started)
        else:
            self.path = self.options.run_dir
            self.path.mkdir(parents=True, exist_ok=True)
        self.loadgen_dir = self.path / "loadgen"
        self.loadgen_dir.mkdir()
        self.scenario_file = self.path / "scenario.yaml"
        self.scenario_file.write_text(
            yaml.safe_dump(self.scenario.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        self.environment = collect_environment(
            self.placement.server_cpus, self.placement.generator_cpus, self.placement.pinned
        )
        own_cpus = os.sched_getaffinity(0)
        if self.options.pin_self and self.placement.generator_cpus:
            # Before any thread or child starts, so they inherit it; the exchange is re-pinned at start.
            os.sched_setaffinity(0, self.placement.generator_cpus)
        try:
            with _interrupts_as(self.cancel):
                self._start_exchange()
                self._check_target()
                self._record_start()
                self._start_sampling()
                self._start_generator()
                self._watch()
        except _Interrupted:
            self.status = "interrupted"
            self.problem = "stopped early (interrupted); what was measured until then is kept"
        except _RunBroke as broke:
            self.status = "failed"
            self.problem = str(broke)
        finally:
            with _sigint_hurries(self.hurry):
                self._shutdown()
                os.sched_setaffinity(0, own_cpus)
                if self.hurry.is_set():
                    self.notes.append(
                        "Ctrl-C while stopping: what was still running was killed, not waited for"
                    )
                result = self._finish()
        return result

    def _say(self, phase: str, message: str) -> None:
        if self.progress is not None:
            self.progress(ProgressUpdate(phase, message, self.scenario.name, self.duration_s))

    def _start_exchange(self) -> None:
        if self.target_url:
            self.url = self.target_url
            self._say("starting", f"target {self.url} (not started by capacity)")
            _wait_healthy(self.url, self.options.start_timeout_s, self.cancel)
            if self.options.server_pid is None:
                self.notes.append(
                    "external target without --server-pid: psutil does not sample the server; its CPU and "
                    "RSS are only what its /api/metrics reports (exchange_cpu_percent, exchange_rss_bytes)"
                )
            else:
                try:
                    server = psutil.Process(self.options.server_pid)
                    self.environment = replace(self.environment, server_cpus=tuple(server.cpu_affinity()))
                except psutil.Error:
                    pass
            return
        env = exchange_settings(self.options.journal_sync, self.options.journal, self.options.exchange_env)
        self.exchange_settings = dict(env)
        cpus = self.placement.server_cpus
        self._say(
            "starting", "starting the reference exchange" + (f" on CPU {cpu_list(cpus)}" if cpus else "")
        )
        self.exchange = EmbeddedExchange(env=env, cpus=cpus, start_timeout_s=self.options.start_timeout_s)
        try:
            self.exchange.start()
        except ExchangeStartError as error:
            raise _RunBroke(str(error)) from None
        self.url = self.exchange.url
        self.server_pid = self.exchange.pid
        self._say("starting", f"reference exchange ready at {self.url} (pid {self.server_pid})")

    def _check_target(self) -> None:
        """Refuse a target that does not speak the exchange API before any load (generator.preflight)."""
        self._say("starting", f"checking that {self.url} is the exchange API")
        try:
            market = fetch_market(self.url, self.scenario.load.symbols)
            check_round_trip(self.url, self.scenario, market)
        except TargetNotTheApi as error:
            raise _RunBroke(str(error)) from None

    def _start_sampling(self) -> None:
        try:
            self.sampler = ProcessSampler(self.server_pid, sink=self.sample_log).start()
        except psutil.Error as error:
            self.notes.append(f"server process not sampled: {error}")
            self.sampler = ProcessSampler(None, sink=self.sample_log).start()
        self.poller = MetricsPoller(self.url, sink=self.sample_log).start()

    def _start_generator(self) -> None:
        cpus = self.placement.generator_cpus
        if self.options.engine == "native":
            self.command = native_command(
                self.scenario_file,
                self.url,
                self.loadgen_dir,
                self.options.workers,
                self.options.overrides,
                cpus,
            )
        else:
            master_port = _free_port() if self.options.workers > 1 else None
            self.command = locust_command(
                self.scenario_file,
                self.url,
                self.loadgen_dir,
                self.options.workers,
                self.options.overrides,
                master_port,
            )
        name = self._generator_name()
        self._say("starting", f"starting {name}" + (f" on CPU {cpu_list(cpus)}" if cpus else ""))
        self.locust_log = (self.loadgen_dir / GENERATOR_LOGS[self.options.engine]).open("wb")
        self.locust = subprocess.Popen(
            self.command,
            stdout=self.locust_log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us; we stop the generator first, then the exchange
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if cpus:
            try:
                os.sched_setaffinity(self.locust.pid, cpus)
            except OSError as error:
                self.notes.append(f"could not pin the generator to CPU {cpu_list(cpus)}: {error}")
        assert self.sampler is not None
        with suppress(psutil.Error):  # exited at once: _watch reports it
            self.sampler.watch_generator(self.locust.pid)

    def _generator_name(self) -> str:
        return "the native load generator" if self.options.engine == "native" else "Locust"

    def _watch(self) -> None:
        assert self.locust is not None
        limit_s = self.duration_s + self.options.start_timeout_s + OVERRUN_S
        deadline = time.monotonic() + limit_s
        while True:
            self.locust_exit = self.locust.poll()
            if self.locust_exit is not None:
                if self.locust_exit != 0:
                    raise _RunBroke(
                        f"{self._generator_name()} exited with code {self.locust_exit}: {self._locust_tail()}"
                    )
                return
            if self.exchange is not None and self.exchange.process is not None:
                code = self.exchange.process.poll()
                if code is not None:
                    raise _RunBroke(
                        f"the exchange exited with code {code} during the run: {self._exchange_tail()}"
                    )
            if time.monotonic() > deadline:
                raise _RunBroke(
                    f"{self._generator_name()} was still running {limit_s:.0f} s after it was started, for a "
                    f"{self.duration_s:.0f} s schedule; stopped it"
                )
            self._report()
            if self.cancel.wait(1.0):
                raise _Interrupted

    def _report(self) -> None:
        if self.progress is None:
            return
        live = read_progress(self.loadgen_dir)
        process = self.sampler.latest() if self.sampler else None
        exchange = self.poller.latest() if self.poller else None
        self.progress(
            ProgressUpdate(
                phase="running",
                message=f"running against {self.url}",
                scenario=self.scenario.name,
                duration_s=self.duration_s,
                elapsed_s=live.elapsed_s if live else None,
                offered_rate=live.offered_rate if live else None,
                achieved_rate=live.achieved_rate if live else None,
                p99_corrected_ms=live.p99_corrected_ms if live else None,
                sent_total=live.sent_total if live else None,
                errors_total=live.errors_total if live else None,
                late_total=live.late_total if live else None,
                users=live.users if live else None,
                server_cpu_percent=process.server_cpu_percent if process else None,
                server_rss_bytes=process.server_rss_bytes if process else None,
                generator_cpu_percent=process.generator_cpu_percent if process else None,
                exchange_orders_per_sec=exchange.orders_per_sec if exchange else None,
            )
        )

    # -- stopping --

    def _shutdown(self) -> None:
        """Stop the generator (it writes its results on stop), then sampling, then the exchange. A Ctrl-C
        here (see ``_sigint_hurries``) kills what is still running instead of waiting for it."""
        if self.locust is not None and self.locust.poll() is None:
            self._say("stopping", f"stopping {self._generator_name()}")
            self.locust_exit = _stop_process_group(self.locust, self.options.stop_timeout_s, self.hurry)
        elif self.locust is not None:
            self.locust_exit = self.locust.returncode
        if self.locust is not None:
            self.locust_log.close()
        self.process_samples = self.sampler.stop() if self.sampler else []
        self.exchange_samples = self.poller.stop() if self.poller else []
        if self.poller is not None and not self.exchange_samples and self.poller.failures:
            self.notes.append(f"the exchange's /api/metrics never answered: {self.poller.last_error}")
        if self.exchange is not None:
            self._say("stopping", "stopping the exchange")
            self.exchange.stop(1.0 if self.hurry.is_set() else self.options.stop_timeout_s)
            (self.path / "exchange.log").write_text(self.exchange.output(), encoding="utf-8")

    def _pending(self, ended: bool) -> PendingRun:
        """What ``run.json`` needs beyond the measurement files (``capacity.run.record``)."""
        finished = datetime.now(UTC).isoformat() if ended else None
        return PendingRun(
            status=self.status,
            problem=self.problem,
            scenario=self.scenario.to_dict(),
            scenario_source=self.options.scenario_source,
            overrides=self.options.overrides,
            target=Target(
                url=self.url,
                embedded=self.target_url is None,
                server_pid=self.server_pid,
                settings=self.exchange_settings,
            ),
            environment=self.environment,
            started_utc=self.started.isoformat(),
            engine=self.options.engine,
            workers=self.options.workers,
            command=tuple(self.command),
            generator_started=self.locust is not None,
            exit_code=self.locust_exit,
            server_cores=self._server_cores(),
            generator_cores=self._generator_cores(),
            notes=tuple(self.notes),
            ended=ended,
            finished_utc=finished,
        )

    def _record_start(self) -> None:
        """Before any load: the run's settings and a sample log on disk, for ``capacity run --finish``."""
        try:
            write_pending(self.path, self._pending(ended=False))
            self.sample_log = SampleLog(self.path / SAMPLES_FILE)
        except OSError as error:
            self.notes.append(
                f"the run's record could not be written ({error.strerror or error}): if run.json cannot be "
                "written either, `capacity run --finish` cannot rebuild it"
            )

    def _finish(self) -> RunResult:
        if self.sample_log is not None:
            self.sample_log.close()
            if self.sample_log.problem:
                self.notes.append(self.sample_log.problem)
        pending = self._pending(ended=True)
        with suppress(OSError):  # a full disk: the copy from the start stays, run.json is tried anyway
            write_pending(self.path, pending)
        assert pending.finished_utc is not None
        run = assemble_run(
            pending,
            self.path,
            self.process_samples,
            self.exchange_samples,
            datetime.fromisoformat(pending.finished_utc),
        )
        try:
            write_run(self.path, run)
        except (OSError, RunFormatError) as error:  # a full disk: the children are stopped, keep the files
            kept = ", ".join(sorted(p.name for p in self.loadgen_dir.iterdir())) or "nothing"
            reason = getattr(error, "strerror", None) or error
            raise RunNotWritten(
                f"could not write {self.path / 'run.json'}: {reason}; the generator's "
                f"files are kept in {self.loadgen_dir} ({kept}) and the server's samples in "
                f"{self.path / SAMPLES_FILE}: `capacity run --finish {self.path}` builds run.json from "
                "them once there is space"
            ) from None
        with suppress(OSError):
            (self.path / PENDING_FILE).unlink()
        self._say("finished", f"{run.status}: {self.path}")
        return RunResult(self.path, run)

    def _server_cores(self) -> float | None:
        """Cores the server could use: the CPUs it ran on (None when nobody knows, e.g. a remote target)."""
        cpus = self.environment.server_cpus or self.placement.server_cpus
        return float(len(cpus)) if cpus else None

    def _generator_cores(self) -> float:
        cpus = self.placement.generator_cpus or tuple(self.environment.available_cpus)
        return float(min(len(cpus), self.options.workers))

    def _locust_tail(self) -> str:
        if not self.locust_log.closed:  # closed once the generator has been stopped
            self.locust_log.flush()
        return tail(self.loadgen_dir / GENERATOR_LOGS[self.options.engine])

    def _exchange_tail(self) -> str:
        assert self.exchange is not None
        lines = self.exchange.output().strip().splitlines()
        return " | ".join(lines[-5:]) or "(no output)"


class _RunBroke(Exception):
    """The exchange or the generator failed; the run is written as ``failed``."""


# ---------------------------------------------------------------------------------------------- helpers


@contextmanager
def _interrupts_as(cancel: threading.Event) -> Iterator[None]:
    """Turn Ctrl-C (KeyboardInterrupt) inside the block into ``_Interrupted``; a set ``cancel`` too."""
    try:
        yield
    except KeyboardInterrupt:
        cancel.set()
        raise _Interrupted from None


def _stop_process_group(
    process: subprocess.Popen[bytes], timeout_s: float, hurry: threading.Event
) -> int | None:
    """Stop the generator with SIGINT (the native one then stops its processes and writes its results);
    for Locust that is the way it stops gracefully in a headless shape run: SIGINT to its master (Locust
    installs its SIGTERM handler only after a shape test has ended, so SIGTERM would kill it before it
    writes its results; on SIGINT it stops the users, stops its workers and fires ``quitting``, where the
    locustfile writes ``loadgen.json``). Then wait, and SIGKILL the whole session if it hangs or if
    ``hurry`` is set (a second Ctrl-C)."""
    with suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not hurry.is_set():
        with suppress(subprocess.TimeoutExpired):
            return process.wait(0.1)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        return process.wait(5)
    except subprocess.TimeoutExpired:
        return None


@contextmanager
def _sigint_hurries(hurry: threading.Event) -> Iterator[None]:
    """While stopping and writing results, Ctrl-C sets ``hurry`` (kill instead of wait) rather than
    raising, so a second Ctrl-C never leaves a child running or the run directory without run.json.
    Signal handlers can only be set from the main thread; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: hurry.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _wait_healthy(url: str, timeout_s: float, cancel: threading.Event) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}"
        except (urllib.error.URLError, OSError) as error:
            last = str(getattr(error, "reason", error))
        if cancel.wait(0.2):
            raise _Interrupted
    raise _RunBroke(f"{url}/health did not answer 200 within {timeout_s:.0f} s ({last})")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
