"""Run results: the ``run.json`` format (``capacity-run/1``) as dataclasses, and its reader and writer.

Every later stage (``fit``, ``report``, ``gate``) reads runs through this module only: ``read_run`` checks
the format version, validates every field's type and gives one clear error (``RunFormatError``) for an
unknown, newer or corrupt file. The format is documented field by field in ``docs/run-format.md``.

This module is the format and nothing else: it imports no other ``capacity`` module but the JSON file
reader (``capacity.jsonfile``), so a reader never pulls in Locust, psutil or the orchestration.

Units, everywhere: time in seconds, rates in requests per second, latency in milliseconds, memory in bytes,
CPU in percent of one core (so a process using two cores fully reads 200), shares as fractions 0-1.
Unknown values are ``None`` (JSON ``null``), never NaN or 0.
"""

from __future__ import annotations

import functools
import json
import math
import os
import types
from collections.abc import Callable, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import numpy as np
import numpy.typing as npt

from capacity.jsonfile import read_json_file

FORMAT = "capacity-run/1"
FORMAT_NAME, _, _FORMAT_VERSION = FORMAT.partition("/")
FORMAT_VERSION = int(_FORMAT_VERSION)
RUN_FILE = "run.json"

RunStatus = Literal["completed", "interrupted", "failed"]


class RunFormatError(ValueError):
    """A file is not a readable ``capacity-run/1`` run: unknown or newer format, bad JSON, bad field."""


# ---------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Latency:
    """A latency distribution in milliseconds, from a merged HdrHistogram; ``None`` when ``count`` is 0."""

    count: int
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None


@dataclass(frozen=True)
class Second:
    """One second of the run, ``t`` seconds after t = 0 of the schedule.

    Load-generator figures are bucketed by intended send time; percentiles are of that second's requests
    (never average them across seconds: use the summary's merged figures). Process figures are
    time-weighted over the second from the 1 Hz psutil samples; exchange figures are its own
    ``/api/metrics`` view sampled at the end of the second (its rates cover its own metrics window).
    """

    t: int
    offered_rate: float  # requests/s the schedule asked for
    sent_rate: float  # requests/s actually sent
    achieved_rate: float  # successful responses/s
    errors_per_s: float  # failed requests/s (any kind, shed included)
    shed_per_s: float  # requests/s refused by overload protection (429/503)
    late_per_s: float  # requests/s sent behind schedule (generator fell behind)
    corrected_p50_ms: float | None
    corrected_p99_ms: float | None
    corrected_p999_ms: float | None
    raw_p50_ms: float | None
    raw_p99_ms: float | None
    raw_p999_ms: float | None
    server_cpu_percent: float | None = None  # percent of one core
    server_rss_bytes: int | None = None
    generator_cpu_percent: float | None = None  # percent of one core, Locust process tree
    other_cpu_percent: float | None = None  # the rest of the machine (not server, generator, capacity)
    exchange_orders_per_sec: float | None = None
    exchange_p99_ms: float | None = None
    exchange_resting_orders: int | None = None
    exchange_rss_bytes: int | None = None
    exchange_cpu_percent: float | None = None  # the exchange's own process CPU, percent of one core
    exchange_trades_per_sec: float | None = None  # trades (fills) per second, as the exchange reports
    # requests the generator owed its schedule at the end of the second: due by then, not yet sent (None:
    # a file from before it was recorded)
    backlog: int | None = None


@dataclass(frozen=True)
class Counts:
    """Request counts over the whole run."""

    scheduled: int = 0
    sent: int = 0
    ok: int = 0
    errors: int = 0
    shed: int = 0
    late: int = 0
    generator_late: int = 0  # late through the generator's own delay (docs/run-format.md)


@dataclass(frozen=True)
class Stall:
    """A time the server answered nothing while requests were outstanding (seconds since t = 0)."""

    start_s: float
    duration_s: float


LimitKind = Literal["none", "server", "generator", "unreachable", "disturbed"]

ReasonCode = Literal[
    "no_answer",  # measured: requests sent, none answered successfully
    "other_cpu",  # measured: other processes' mean CPU (% of a core); limit: the threshold
    "generator_cpu",  # measured: saturated steady seconds; of: steady seconds; limit: share of its cores
    "generator_late",  # measured: share of scheduled requests late through the generator; limit
    "fell_behind",  # measured: achieved / offered; limit: the kept-up ratio
    "slo_p99",  # measured: P99 (ms) the SLO holds the tier to; limit: the SLO's
    "slo_errors",  # measured: error rate; limit: the SLO's
    "stall",  # measured: seconds the server answered nothing; at: seconds since the start
    "held_late",  # measured: share of sent requests the server's answers held late
    "never_sent",  # measured: requests never sent because their users waited for answers; of: scheduled
]


@dataclass(frozen=True)
class Reason:
    """One piece of evidence: what was measured against which limit (units depend on ``code``)."""

    code: ReasonCode
    measured: float
    limit: float | None = None
    of: float | None = None  # the whole the measurement is part of (steady seconds, scheduled requests)
    at: float | None = None  # when it happened, seconds since the start


@dataclass(frozen=True)
class TierLimit:
    """The one limit of a tier (decided by ``capacity.results.verdicts``), the evidence that decided it, and
    evidence that did not (``asides``)."""

    kind: LimitKind
    reasons: tuple[Reason, ...] = ()
    asides: tuple[Reason, ...] = ()

    @property
    def server_figures(self) -> bool:
        """True when the tier's figures describe the server (it is fitted and compared)."""
        return self.kind in ("none", "server")


OverloadKind = Literal["kept_up", "degraded", "overwhelmed", "collapsed"]


@dataclass(frozen=True)
class Recovery:
    """The light-rate phase after the load (a scenario's ``recovery``) and what the server did in it.

    ``time_to_recover_s`` is decided by ``capacity.results.verdicts.time_to_recover`` (the definition and
    its thresholds are there, docs/report.md says it in words); None: it did not recover within the phase.
    """

    start_s: float  # when the load dropped: the end of the load phase, seconds since t = 0
    duration_s: float  # length of the recovery phase
    offered_rate: float  # requests/s the recovery phase offered
    time_to_recover_s: float | None
    refused_share: float | None = None  # refusals (503, 429) / sent over the recovery phase
    admitted_p99_ms: float | None = None  # corrected P99 of its successes


@dataclass(frozen=True)
class Overload:
    """How the server behaved past its capacity, over the load phase: the figures of degraded mode and the
    one verdict ``capacity.results.verdicts.overload_verdict`` gives them (``kind``).

    ``kept_up``: it kept up within its SLO (no overload); ``degraded``: it refused a share of the requests
    and kept the P99 of the admitted ones within the SLO (graceful); ``overwhelmed``: it neither refused
    enough nor kept the admitted within the SLO; ``collapsed``: its goodput fell far below the best it
    delivered in the run.
    """

    kind: OverloadKind
    offered_rate: float  # requests/s, the steady window's mean
    goodput: float  # successful (2xx) answers/s, the steady window's mean
    peak_goodput: float | None  # the best goodput of the load phase (a few seconds' mean)
    refused_share: float  # refusals (503, 429) / sent
    admitted_p99_ms: float | None  # corrected P99 of the successful requests
    refused_p99_ms: float | None  # P99 of the refusals, from their intended send time
    p99_limit_ms: float  # the SLO's P99
    backlog_max: int | None  # most requests the generator was behind its schedule at the end of a second
    lag_max_ms: float | None  # the longest any request went out behind its intended time
    recovery: Recovery | None = None  # None: the scenario has no recovery phase


@dataclass(frozen=True)
class SloVerdict:
    """The run against the scenario's SLO: corrected p99 (ms) and error rate (0-1), each with its limit."""

    p99_limit_ms: float
    error_rate_limit: float
    p99_ms: float | None
    error_rate: float | None
    passed: bool
    reasons: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        """``PASS`` or ``FAIL``."""
        return "PASS" if self.passed else "FAIL"


@dataclass(frozen=True)
class Summary:
    """What the run measured, in one place.

    Rates (offered, achieved, CPU, exchange) are over the steady window ``[steady_start_s, steady_end_s)``:
    the ramp and the first and last second are left out. Counts, error rate and latency are over the whole
    run, or over its load phase when the scenario has a recovery phase (which ``overload.recovery``
    describes); latencies come from the merged histograms, never from averaged percentiles.
    ``generator_bound`` means the load generator, not the server, limited the run (``limits`` says why):
    such a run is never evidence of a server limit.
    """

    steady_start_s: int
    steady_end_s: int
    offered_rate: float
    achieved_rate: float
    achieved_ratio: float | None
    counts: Counts
    error_rate: float | None  # (sent - ok) / sent: errors and never-answered requests
    shed_rate: float | None  # shed / sent
    late_share: float | None  # late / sent
    corrected: Latency
    raw: Latency
    server_cpu_percent_mean: float | None
    server_cpu_percent_max: float | None
    server_cores_used_mean: float | None
    server_cores_used_max: float | None
    server_rss_max_bytes: int | None
    generator_cpu_percent_mean: float | None
    generator_cpu_percent_max: float | None
    generator_cores: float
    generator_saturated_seconds: int
    exchange_orders_per_sec_mean: float | None
    exchange_resting_orders_max: int | None
    slo: SloVerdict
    generator_bound: bool
    limits: tuple[str, ...] = ()
    advice: str | None = None
    notes: tuple[str, ...] = ()
    # Fields added within capacity-run/1 have defaults, so files written before them still read.
    other_cpu_percent_mean: float | None = None
    exchange_trades_per_sec_mean: float | None = None  # the exchange's trades/s over the steady window
    stalls: tuple[Stall, ...] = ()  # the server answered nothing while asked (native engine only)
    # every request asked for: successes (corrected) and what errors, timeouts, unanswered and unsent
    # requests waited (until the answer, or the end: a lower bound); the SLO verdict's P99 when present
    all_outcomes: Latency | None = None
    limit: TierLimit | None = None  # what limited the tier (capacity.results.verdicts); None in older files
    refused: Latency | None = None  # the refusals' (503, 429) latency from their intended time; None: older
    overload: Overload | None = None  # degraded-mode figures, for a run past its capacity (or with recovery)


@dataclass(frozen=True)
class Environment:
    """Where the numbers were measured (as pyperf's metadata): machine, OS, software, pinning."""

    timestamp_utc: str
    hostname: str
    cpu_model: str | None
    logical_cpus: int
    physical_cpus: int | None
    cpu_governor: str | None
    cpu_freq_mhz: float | None
    memory_total_bytes: int
    os: str
    kernel: str
    platform: str
    python_version: str
    python_implementation: str
    packages: dict[str, str | None]
    git_revision: str | None
    git_dirty: bool | None
    available_cpus: tuple[int, ...]
    server_cpus: tuple[int, ...] | None
    generator_cpus: tuple[int, ...] | None
    pinned: bool
    load_average_1m: float | None


@dataclass(frozen=True)
class Target:
    """The exchange under test: its URL, whether capacity started it, and how it was configured."""

    url: str
    embedded: bool
    server_pid: int | None = None
    settings: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Overrides:
    """Quick-try overrides applied to the scenario file (``None``: the file's own value)."""

    duration_s: float | None = None
    orders_per_second: float | None = None
    concurrent_users: int | None = None


@dataclass(frozen=True)
class LoadgenInfo:
    """How the load generator ran: its command, exit code and what it reported besides the series."""

    workers: int
    command: tuple[str, ...]
    exit_code: int | None
    started_at: float | None  # unix seconds of t = 0 of the schedule
    lag_max_ms: float | None = None
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    requests_by_kind: dict[str, int] = field(default_factory=dict)
    engine: str = "locust"  # native | locust (runs from before the native engine were Locust's)
    generator_lag_max_ms: float | None = None  # the generator's own largest send delay


@dataclass(frozen=True)
class Run:
    """One ``capacity run``: what was asked, where, what was measured per second, and the summary.

    ``status`` is ``completed``, ``interrupted`` (stopped early, e.g. Ctrl-C: what was measured is kept)
    or ``failed`` (the exchange or the generator broke; ``problem`` says how). ``files`` maps names to
    paths relative to the run directory.
    """

    status: RunStatus
    problem: str | None
    scenario: dict[str, Any]
    scenario_source: str | None
    overrides: Overrides
    target: Target
    environment: Environment
    started_utc: str
    finished_utc: str
    wall_time_s: float
    loadgen: LoadgenInfo
    series: tuple[Second, ...]
    summary: Summary
    files: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    format: str = FORMAT

    def steady_series(self) -> tuple[Second, ...]:
        """The seconds of the summary's steady window (ramp, first and last second left out)."""
        start, end = self.summary.steady_start_s, self.summary.steady_end_s
        return tuple(s for s in self.series if start <= s.t < end)


# ---------------------------------------------------------------------------------------------- writing


def run_to_dict(run: Run) -> dict[str, Any]:
    """The JSON-ready form of ``run`` (tuples become lists, non-finite floats ``None``)."""
    data = jsonable(asdict(run))
    del data["format"]
    return {"format": FORMAT, **data}  # the version first, so `head run.json` shows it


def write_run(path: str | os.PathLike[str], run: Run) -> Path:
    """Write ``run`` as JSON to ``path`` (a run directory gets ``run.json``), atomically. Returns the file.
    The text is first read back as ``read_run`` would: RunFormatError instead of a file nothing reads."""
    target = Path(path)
    if target.is_dir():
        target = target / RUN_FILE
    text = json.dumps(run_to_dict(run), indent=2, allow_nan=False) + "\n"
    run_from_dict(json.loads(text), str(target))  # never a file the toolkit cannot read back
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target


def jsonable(value: Any) -> Any:
    """``value`` with tuples as lists and non-finite floats as ``None``: what JSON can hold."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------- reading


def read_run(path: str | os.PathLike[str]) -> Run:
    """Read and validate a run from ``run.json`` or from the run directory holding it.

    Raises RunFormatError (with the path in the message) for a missing or unreadable file, bad JSON, an
    unknown or newer format, or a field of the wrong type.
    """
    source = Path(path)
    if source.is_dir():
        source = source / RUN_FILE
    return run_from_dict(read_json_file(source, f"a {FORMAT} file", RunFormatError), str(source))


def run_from_dict(data: Any, source: str = "<run>") -> Run:
    """Validate an already-parsed run; see ``read_run``. Unknown extra fields are ignored."""
    if not isinstance(data, dict):
        raise RunFormatError(f"{source}: not a capacity run (expected a JSON object)")
    check_format(data.get("format"), source)
    return dataclass_from_json(Run, data, source)


def check_format(value: Any, source: str = "<run>") -> None:
    """Raise RunFormatError unless ``value`` names a format version this module reads."""
    if value is None:
        raise RunFormatError(f'{source}: not a capacity run (no "format" field; expected "{FORMAT}")')
    if not isinstance(value, str):
        raise RunFormatError(f'{source}: "format" must be a string like "{FORMAT}", got {value!r}')
    name, _, version = value.partition("/")
    if name != FORMAT_NAME:
        raise RunFormatError(f'{source}: unknown format "{value}"; expected "{FORMAT}"')
    if not version.isdigit():
        raise RunFormatError(f'{source}: unknown format version "{value}"; expected "{FORMAT}"')
    if int(version) > FORMAT_VERSION:
        raise RunFormatError(
            f'{source}: format "{value}" is newer than this capacity reads ("{FORMAT}"); upgrade capacity'
        )
    if int(version) != FORMAT_VERSION:
        raise RunFormatError(f'{source}: unsupported format version "{value}"; expected "{FORMAT}"')


T = TypeVar("T")
#: A read-only float64 array (``as_float_array``); read from a JSON list of numbers.
FloatArray = npt.NDArray[np.float64]


def dataclass_from_json(
    cls: type[T], data: Any, source: str, *, error: Callable[[str], Exception] = RunFormatError
) -> T:
    """The dataclass ``cls`` built from parsed JSON ``data``, every field checked against its annotation.

    The typed reader behind ``read_run``, for any format written the same way (``sweep.json``...):
    lists become tuples, nested objects dataclasses, integers floats where a float is declared; fields
    with a default may be missing and unknown keys are ignored. A missing field or a value of the wrong
    type raises ``error`` (default RunFormatError) with one line naming ``source`` and the field's path,
    e.g. ``run.json: field "series[2].achieved_rate": expected a number, got "fast"``. Annotations may
    be ``bool``, ``int``, ``float``, ``str``, ``Any``, ``Literal``, ``X | None``, ``tuple[X, ...]``,
    ``dict[str, X]``, ``numpy.typing.NDArray[numpy.float64]`` (a list of numbers) and dataclasses of
    those.
    """
    try:
        return _build(cls, data, source, "")
    except RunFormatError as problem:
        if error is RunFormatError:
            raise
        raise error(str(problem)) from None


def _build(tp: Any, value: Any, source: str, where: str) -> Any:
    """``value`` checked against the annotation ``tp`` and converted (lists to tuples, dataclasses)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if is_dataclass(tp) and isinstance(tp, type):
        return _build_dataclass(tp, value, source, where)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None:
            if type(None) in options:
                return None
            raise _type_error(source, where, "a value", value)
        errors: list[RunFormatError] = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _build(option, value, source, where)
            except RunFormatError as error:
                errors.append(error)
        raise errors[0]
    if origin is Literal:
        if value not in get_args(tp):
            expected = " or ".join(json.dumps(v) for v in get_args(tp))
            raise _type_error(source, where, expected, value)
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise _type_error(source, where, "a list", value)
        item = get_args(tp)[0]
        return tuple(_build(item, v, source, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is np.ndarray:
        return _float_array(value, source, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(source, where, "an object", value)
        item = get_args(tp)[1]
        return {k: _build(item, v, source, f"{where}.{k}" if where else k) for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(source, where, "a number", value)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(source, where, "an integer", value)
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise _type_error(source, where, "a string" if tp is str else "true or false", value)
        return value
    raise TypeError(f"results: no reader for annotation {tp!r}")  # a bug in this module, not in the file


def as_float_array(values: Sequence[float] | FloatArray) -> FloatArray:
    """``values`` as a read-only float64 array: 8 bytes a number where a tuple of floats takes 32 (a
    gate baseline may hold 100,000 samples a metric: docs/limits.md). A read-only one is kept as is."""
    if isinstance(values, np.ndarray) and values.dtype == np.float64 and not values.flags.writeable:
        return values
    array = np.array(values, dtype=np.float64)  # a copy: a caller's array stays its own
    array.flags.writeable = False
    return array


def _float_array(value: Any, source: str, where: str) -> FloatArray:
    """A JSON list of numbers as ``as_float_array``: checked whole first, item by item only to name the
    culprit."""
    if not isinstance(value, list):
        raise _type_error(source, where, "a list", value)
    if not {type(v) for v in value} <= {int, float}:
        for i, v in enumerate(value):
            _build(float, v, source, f"{where}[{i}]")
    return as_float_array(value)


def _build_dataclass(cls: type[T], value: Any, source: str, where: str) -> T:
    if not isinstance(value, dict):
        raise _type_error(source, where, "an object", value)
    hints = _type_hints(cls)  # type: ignore[arg-type]  # a dataclass type is hashable; T hides that
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        path = f"{where}.{f.name}" if where else f.name
        if f.name not in value:
            if f.default is MISSING and f.default_factory is MISSING:
                raise RunFormatError(f'{source}: missing field "{path}"')
            continue
        kwargs[f.name] = _build(hints[f.name], value[f.name], source, path)
    return cls(**kwargs)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """``get_type_hints(cls)``, once per class: evaluating the string annotations is most of the cost of
    reading a run otherwise (a run has one ``Second`` per second)."""
    return get_type_hints(cls)


def _type_error(source: str, where: str, expected: str, value: Any) -> RunFormatError:
    shown = json.dumps(value) if not isinstance(value, dict | list) else type(value).__name__
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return RunFormatError(f'{source}: field "{where or "(top)"}": expected {expected}, got {shown}')
