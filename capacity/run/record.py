"""A run's record: what it keeps on disk while it runs, and ``run.json`` built from it.

``run.json`` is written once, at the end. When that write fails (a full disk), what was measured must
not be lost, so a run also keeps, as it goes:

- ``samples.jsonl``: every server (psutil) and exchange (``/api/metrics``) sample, one JSON line as it is
  taken, about 400 bytes a second (``SampleLog``);
- ``run.pending.json``: the run's settings, written before any load (scenario with its overrides, target,
  environment, engine, CPUs), and written again with its end state (status, problem, notes, the
  generator's exit code) just before ``run.json``; removed once ``run.json`` is in place.

With the generator's own files (``loadgen/``: ``loadgen.json`` and the HdrHistogram logs), that is all
``assemble_run`` needs: the run builds ``run.json`` from it as it ends, and ``capacity run --finish DIR``
builds it the same way later, once there is space (``finish_run``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from capacity.jsonfile import read_json_file
from capacity.measure.sampler import ExchangeSample, ProcessSample
from capacity.results.run_file import (
    Counts,
    Environment,
    Latency,
    LoadgenInfo,
    Overrides,
    Run,
    RunFormatError,
    RunStatus,
    Second,
    Summary,
    Target,
    dataclass_from_json,
)
from capacity.run.loadgen_reader import (
    HLOG_FILES,
    LOADGEN_FILE,
    LoadgenFormatError,
    LoadgenResult,
    read_loadgen,
)
from capacity.run.series import build_series
from capacity.run.summary import PhaseFigures, summarize
from capacity.scenario import Scenario, ScenarioError, scenario_from_mapping

SAMPLES_FILE = "samples.jsonl"
PENDING_FILE = "run.pending.json"
GENERATOR_LOGS = {"native": "generator.log", "locust": "locust.log"}  # in loadgen/


@dataclass(frozen=True)
class PendingRun:
    """Everything about a run that is not in its measurement files; its times are kept to the microsecond
    (run.json shows whole seconds, its wall time is exact). ``ended`` is False in the copy
    written before any load: the run's end state (status, problem, exit code, end time) was not recorded
    then. ``generator_started``: a generator was started, so missing results are its failure."""

    status: RunStatus
    problem: str | None
    scenario: dict[str, Any]
    scenario_source: str | None
    overrides: Overrides
    target: Target
    environment: Environment
    started_utc: str
    engine: str
    workers: int
    command: tuple[str, ...]
    generator_started: bool
    exit_code: int | None
    server_cores: float | None
    generator_cores: float
    notes: tuple[str, ...]
    ended: bool
    finished_utc: str | None = None


class RecordError(Exception):
    """A run directory ``--finish`` cannot build ``run.json`` from (one line naming the file)."""


# ---------------------------------------------------------------------------------------------- writing


def write_pending(run_dir: Path, pending: PendingRun) -> None:
    """``run.pending.json``, atomically (an OSError, e.g. a full disk, is the caller's)."""
    target = run_dir / PENDING_FILE
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(asdict(pending), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(target)


class SampleLog:
    """Appends each sample to ``samples.jsonl`` as it is taken (called from the samplers' threads). The
    first write that fails (a full disk) ends the log and is kept in ``problem``; sampling goes on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problem: str | None = None
        self._lock = threading.Lock()
        self._file: IO[str] | None = path.open("a", encoding="utf-8")

    def __call__(self, sample: ProcessSample | ExchangeSample) -> None:
        kind = "process" if isinstance(sample, ProcessSample) else "exchange"
        line = json.dumps({"kind": kind, **asdict(sample)}, allow_nan=True) + "\n"
        with self._lock:
            if self._file is None:
                return
            try:
                self._file.write(line)
                self._file.flush()
            except OSError as error:
                self.problem = f"{self.path.name} stopped at a failed write: {error.strerror or error}"
                self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._file is not None:
            with suppress(OSError):  # flushed after every line: a failed close loses nothing
                self._file.close()
            self._file = None


# ---------------------------------------------------------------------------------------------- reading


def read_pending(run_dir: Path) -> PendingRun:
    data = read_json_file(
        run_dir / PENDING_FILE,
        "a run.pending.json",
        RecordError,
        missing="no such file: this run was not left unfinished",
    )
    try:
        return dataclass_from_json(PendingRun, data, str(run_dir / PENDING_FILE))
    except RunFormatError as error:
        raise RecordError(str(error)) from None


def read_samples(run_dir: Path) -> tuple[list[ProcessSample], list[ExchangeSample]]:
    """The samples in ``samples.jsonl``; a line cut short by a full disk (the last) is left out."""
    process: list[ProcessSample] = []
    exchange: list[ExchangeSample] = []
    path = run_dir / SAMPLES_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return process, exchange
    except (OSError, UnicodeDecodeError) as error:
        raise RecordError(f"{path}: cannot read: {error}") from None
    for number, line in enumerate(lines, start=1):
        try:
            data = json.loads(line)
            kind = data.pop("kind")
            if kind == "process":
                process.append(dataclass_from_json(ProcessSample, data, f"{path}:{number}"))
            else:
                exchange.append(dataclass_from_json(ExchangeSample, data, f"{path}:{number}"))
        except (ValueError, KeyError, AttributeError, RunFormatError) as error:
            if number == len(lines):
                break  # the write the disk refused
            raise RecordError(f"{path}:{number}: not a sample ({error})") from None
    return process, exchange


# ---------------------------------------------------------------------------------------------- assembly


def assemble_run(
    pending: PendingRun,
    run_dir: Path,
    process_samples: Sequence[ProcessSample],
    exchange_samples: Sequence[ExchangeSample],
    finished: datetime,
) -> Run:
    """The run's ``run.json`` content from its record and the generator's files in ``run_dir/loadgen``."""
    status, problem, notes = pending.status, pending.problem, list(pending.notes)
    loadgen_dir = run_dir / "loadgen"
    loadgen: LoadgenResult | None = None
    try:
        loadgen = read_loadgen(loadgen_dir)
    except LoadgenFormatError as error:
        if pending.generator_started:  # no generator, no results: that is said elsewhere
            status = "failed" if status == "completed" else status
            problem = problem or str(error)
            notes.append(str(error))
    if status == "completed" and loadgen is not None and loadgen.totals.sent == 0:
        # Every user died at start-up, or the schedule never ran: nothing was measured.
        status = "failed"
        log = loadgen_dir / GENERATOR_LOGS[pending.engine]
        problem = f"the load generator sent no request; {first_error(log) or tail(log)}"
    series = (
        build_series(
            loadgen.seconds, loadgen.started_at, process_samples, exchange_samples, loadgen.interval_s
        )
        if loadgen
        else ()
    )
    try:
        scenario = scenario_from_mapping(pending.scenario, str(run_dir / PENDING_FILE))
    except ScenarioError as error:
        raise RecordError("; ".join(str(p) for p in error.problems)) from None
    summary = summarize_loadgen(scenario, series, loadgen, pending, status)
    started = datetime.fromisoformat(pending.started_utc)
    return Run(
        status=status,
        problem=problem,
        scenario=pending.scenario,
        scenario_source=pending.scenario_source,
        overrides=pending.overrides,
        target=pending.target,
        environment=pending.environment,
        started_utc=started.isoformat(timespec="seconds"),
        finished_utc=finished.isoformat(timespec="seconds"),
        wall_time_s=(finished - started).total_seconds(),
        loadgen=LoadgenInfo(
            engine=pending.engine,
            workers=pending.workers,
            command=pending.command,
            exit_code=pending.exit_code,
            started_at=loadgen.started_at if loadgen else None,
            lag_max_ms=loadgen.lag_max_ms if loadgen else None,
            generator_lag_max_ms=loadgen.generator_lag_max_ms if loadgen else None,
            errors_by_kind=loadgen.errors_by_kind if loadgen else {},
            requests_by_kind=loadgen.requests_by_kind if loadgen else {},
        ),
        series=series,
        summary=summary,
        files=files_in(run_dir),
        notes=tuple(notes),
    )


def summarize_loadgen(
    scenario: Scenario,
    series: Sequence[Second],
    loadgen: LoadgenResult | None,
    pending: PendingRun,
    status: RunStatus,
) -> Summary:
    """The run's summary from the generator's results: its load phase's totals where the scenario has a
    recovery phase (the generator totals each phase apart), else the whole run's."""
    phases = loadgen.phases if loadgen else {}
    load, recovery = phases.get("load"), phases.get("recovery")
    all_outcomes: Latency | None
    refused: Latency | None
    if load is not None:
        totals, corrected, raw = load.totals, load.corrected, load.raw
        all_outcomes, refused = load.all_outcomes, load.refused
    elif loadgen is not None:
        totals, corrected, raw = loadgen.totals, loadgen.corrected, loadgen.raw
        all_outcomes, refused = loadgen.all_outcomes, loadgen.refused
    else:
        totals, corrected, raw, all_outcomes, refused = Counts(), Latency(0), Latency(0), None, None
    return summarize(
        scenario,
        series,
        totals,
        corrected,
        raw,
        pending.generator_cores,
        completed=status == "completed",
        failed=status == "failed",
        stalls=loadgen.stalls if loadgen else (),
        all_outcomes=all_outcomes,
        server_cores=pending.server_cores,
        refused=refused,
        lag_max_ms=loadgen.lag_max_ms if loadgen else None,
        recovery_phase=PhaseFigures(recovery.totals, recovery.corrected) if recovery else None,
    )


def finish_run(run_dir: Path) -> Run:
    """``run.json``'s content for a run whose end could not be written (``capacity run --finish``), from
    its ``run.pending.json``, ``samples.jsonl`` and ``loadgen/``. RecordError when there is nothing to
    finish."""
    if (run_dir / "run.json").exists():
        raise RecordError(f"{run_dir}: already has run.json; nothing to finish")
    pending = read_pending(run_dir)
    process, exchange = read_samples(run_dir)
    rebuilt = (
        f"run.json built by `capacity run --finish` at {datetime.now(UTC).isoformat(timespec='seconds')}"
    )
    if pending.ended and pending.finished_utc is not None:
        finished = datetime.fromisoformat(pending.finished_utc)
        notes = (*pending.notes, rebuilt)
    else:
        # Written before any load: the end state is lost. The last file written tells when the run ended.
        finished = _last_written(run_dir, pending.started_utc)
        notes = (
            *pending.notes,
            f"{rebuilt}; the run's end state was never written (status, problem and the generator's exit "
            "code are unknown): status is taken from the generator's files",
        )
    return assemble_run(replace(pending, notes=notes), run_dir, process, exchange, finished)


def files_in(run_dir: Path) -> dict[str, str]:
    """The run's files that exist, by role, relative to ``run_dir``."""
    candidates = {
        "scenario": "scenario.yaml",
        "loadgen": f"loadgen/{LOADGEN_FILE}",
        **{key: f"loadgen/{name}" for key, name in HLOG_FILES.items()},
        "locust_log": f"loadgen/{GENERATOR_LOGS['locust']}",
        "generator_log": f"loadgen/{GENERATOR_LOGS['native']}",
        "exchange_log": "exchange.log",
        "samples": SAMPLES_FILE,
    }
    return {key: rel for key, rel in candidates.items() if (run_dir / rel).is_file()}


def tail(path: Path, lines: int = 5) -> str:
    """The last ``lines`` lines of a log, joined with " | "."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no output)"
    return " | ".join(text[-lines:]) or "(no output)"


def first_error(log: Path) -> str | None:
    """The first ERROR line of a generator's log, and how many users failed, in one phrase (None: none)."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    errors = [line.split("/ERROR/", 1)[1] for line in lines if "/ERROR/" in line]
    if not errors:
        return None
    failed = sum(" failed with " in line for line in lines)  # gevent's line for each user that died
    users = f"{failed} user(s) failed at start-up; " if failed else ""
    return f"{users}first error in {log.name}: {errors[0].strip()}"


def _last_written(run_dir: Path, started_utc: str) -> datetime:
    times = [p.stat().st_mtime for p in run_dir.rglob("*") if p.is_file()]
    latest = max(times, default=datetime.fromisoformat(started_utc).timestamp())
    return datetime.fromtimestamp(latest, UTC)
