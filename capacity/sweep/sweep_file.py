"""Sweep results: the ``sweep.json`` format (``capacity-sweep/1``), its reader and writer, and the
scalability matrix of a finished sweep.

A sweep directory holds ``sweep.json`` and one ``capacity run`` directory per tier under ``tiers/``
(``docs/sweep-format.md``). ``read_sweep`` loads it with every tier's ``Run`` and gives one clear error
(``SweepFormatError``) for anything it cannot read. A single run directory reads as a one-tier sweep, so
every command that takes a sweep (``fit``, ``report``) also takes a run.

Like ``capacity.results.run_file`` this module is a format and nothing else: it imports only that module
(and its JSON file reader).
Units as in run.json: requests per second, milliseconds, bytes, CPU in cores where named ``cores``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from capacity.jsonfile import read_json_file
from capacity.results.run_file import (
    RUN_FILE,
    Environment,
    Run,
    RunFormatError,
    dataclass_from_json,
    read_run,
)
from capacity.results.verdicts import SATURATION_ERROR_SHARE, kept_up
from capacity.text import megabytes

FORMAT = "capacity-sweep/1"
FORMAT_NAME, _, _FORMAT_VERSION = FORMAT.partition("/")
FORMAT_VERSION = int(_FORMAT_VERSION)
SWEEP_FILE = "sweep.json"
TIERS_DIR = "tiers"

TierStatus = Literal["pending", "done", "failed", "interrupted", "skipped"]
SweepStatus = Literal["running", "completed", "stopped", "interrupted", "failed"]
SweepKind = Literal["file", "ladder", "run"]
#: Tier statuses that a ``--resume`` runs again: anything not finished and not deliberately skipped.
UNFINISHED: tuple[TierStatus, ...] = ("pending", "failed", "interrupted")


class SweepFormatError(ValueError):
    """A path is not a readable sweep (nor a run): missing, unknown or newer format, bad field, lost tier."""


# ---------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class TierEntry:
    """One tier of a sweep as the sweep saw it. ``index`` is 1-based and matches the ``NN`` of its run
    directory; ``run_dir`` is relative to the sweep directory (``None`` until the tier ran). ``offered`` and
    ``achieved`` are the run summary's steady-window rates (requests/s); ``error_rate`` and ``shed_rate``
    fractions 0-1. ``attempts`` lists earlier run directories of this tier (failed or interrupted, then
    run again by ``--resume``).

    A sweep run with ``--repeat N`` has one entry per tier and repeat, in the order they run (every tier
    of repeat 1, then every tier of repeat 2, ...). ``repeat`` is 1-based; ``name`` is unique in the sweep:
    the tier's own name in repeat 1, ``<tier>#<repeat>`` after it (``repeat_name``); ``tier`` gives the
    tier's own name back."""

    name: str
    index: int
    status: TierStatus = "pending"
    run_dir: str | None = None
    generator_bound: bool | None = None
    offered: float | None = None
    achieved: float | None = None
    error_rate: float | None = None
    shed_rate: float | None = None
    slo_passed: bool | None = None
    problem: str | None = None
    attempts: tuple[str, ...] = ()
    repeat: int = 1

    @property
    def tier(self) -> str:
        """The tier's own name (the sweep definition's), without the repeat suffix."""
        return self.name.removesuffix(repeat_suffix(self.repeat))


def repeat_suffix(repeat: int) -> str:
    """What ``repeat`` adds to a tier's name: nothing in repeat 1, ``#2`` in repeat 2 (tier names in sweep
    files never hold ``#``, so the name stays unique)."""
    return "" if repeat == 1 else f"#{repeat}"


def repeat_name(tier: str, repeat: int) -> str:
    """The entry name of ``tier``'s run in ``repeat``: ``average``, ``average#2``, ``average#3``..."""
    return tier + repeat_suffix(repeat)


@dataclass(frozen=True)
class SweepRecord:
    """What ``sweep.json`` holds.

    ``definition`` is the sweep as run (``Sweep.to_dict()``: every tier's effective scenario), ``ladder``
    the generated ladder's parameters (``None`` for a sweep file), ``settings`` the ``capacity run``
    options every tier used, so ``--resume`` runs the rest the same way. ``status``: ``running`` (or the
    process died), ``completed`` (every tier ran), ``stopped`` (stopped early on purpose: ``stop_reason``),
    ``interrupted`` (Ctrl-C) or ``failed`` (a tier broke). ``repeats`` is how many times every tier runs
    (``--repeat N``, interleaved; 1 in sweeps from before it existed).
    """

    name: str
    description: str
    kind: SweepKind
    status: SweepStatus
    source: str | None
    definition: dict[str, Any]
    started_utc: str
    environment: Environment
    tiers: tuple[TierEntry, ...]
    finished_utc: str | None = None
    ladder: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    stop_early: bool = False
    stop_reason: str | None = None
    advice: str | None = None
    resumed_utc: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    repeats: int = 1
    format: str = FORMAT

    def tier(self, name: str) -> TierEntry:
        """The entry named ``name`` (KeyError if there is none)."""
        for entry in self.tiers:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def with_tier(self, entry: TierEntry) -> SweepRecord:
        """A copy with the entry of the same index replaced by ``entry``."""
        return replace(self, tiers=tuple(entry if t.index == entry.index else t for t in self.tiers))


@dataclass(frozen=True)
class SweepResult:
    """A sweep directory, read: where it is, its record, and the ``Run`` of every tier that has one.

    ``runs`` maps tier names to runs, in tier order; tiers that never ran (pending, skipped) have none.
    ``lost`` maps a tier that ran but left no readable run (interrupted while writing, a full disk) to
    why, so that readers list it instead of skipping it. ``single_run`` is true when ``path`` is a run
    directory read as a one-tier sweep.
    """

    path: Path
    record: SweepRecord
    runs: dict[str, Run]
    single_run: bool = False
    lost: dict[str, str] = field(default_factory=dict)

    def tier_runs(self, *statuses: TierStatus) -> list[tuple[TierEntry, Run]]:
        """``(entry, run)`` pairs in tier order, only those with ``statuses`` if any are given."""
        return [
            (entry, self.runs[entry.name])
            for entry in self.record.tiers
            if entry.name in self.runs and (not statuses or entry.status in statuses)
        ]

    def run_dir(self, entry: TierEntry) -> Path | None:
        """Absolute run directory of a tier, or None if it has not run."""
        return None if entry.run_dir is None else self.path / entry.run_dir


# ---------------------------------------------------------------------------------------------- writing


def sweep_to_dict(record: SweepRecord) -> dict[str, Any]:
    """The JSON-ready form of ``record``, ``format`` first."""
    data = json.loads(json.dumps(asdict(record), allow_nan=False))
    del data["format"]
    return {"format": FORMAT, **data}


def write_sweep(directory: str | os.PathLike[str], record: SweepRecord) -> Path:
    """Write ``record`` to ``directory/sweep.json`` atomically (a crash never leaves half a file)."""
    target = Path(directory) / SWEEP_FILE
    text = json.dumps(sweep_to_dict(record), indent=2, allow_nan=False) + "\n"
    sweep_from_dict(json.loads(text), str(target))  # never a file the toolkit cannot read back
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target


# ---------------------------------------------------------------------------------------------- reading


def read_sweep_record(directory: str | os.PathLike[str]) -> SweepRecord:
    """The validated ``sweep.json`` of ``directory`` (runs not loaded). Raises SweepFormatError."""
    source = Path(directory) / SWEEP_FILE
    return sweep_from_dict(read_json_file(source, f"a {FORMAT} file", SweepFormatError), str(source))


def sweep_from_dict(data: Any, source: str = "<sweep>") -> SweepRecord:
    """Validate an already-parsed ``sweep.json``; unknown extra fields are ignored."""
    if not isinstance(data, dict):
        raise SweepFormatError(f"{source}: not a capacity sweep (expected a JSON object)")
    _check_format(data.get("format"), source)
    record = dataclass_from_json(SweepRecord, data, source, error=SweepFormatError)
    if record.repeats < 1:
        raise SweepFormatError(f'{source}: field "repeats": expected 1 or more, got {record.repeats}')
    names = [entry.name for entry in record.tiers]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:  # runs are keyed by tier name: a second tier of a name would hide the first
        raise SweepFormatError(f'{source}: tier names must be unique, got "{repeated[0]}" twice or more')
    for entry in record.tiers:
        if not 1 <= entry.repeat <= record.repeats:
            raise SweepFormatError(
                f'{source}: tier "{entry.name}": repeat {entry.repeat} is not one of the '
                f"sweep's {record.repeats} repeat(s)"
            )
        for rel in (entry.run_dir, *entry.attempts):
            if rel is not None and not _is_inside(rel):
                raise SweepFormatError(
                    f'{source}: tier "{entry.name}": run_dir {rel!r} must be a relative path inside the sweep'
                )
    return record


def read_sweep(path: str | os.PathLike[str]) -> SweepResult:
    """Read a sweep directory (or its ``sweep.json``) with every tier's run; a run directory (or its
    ``run.json``) reads as a one-tier sweep.

    Raises SweepFormatError naming the path for: no such directory, a directory that is neither a sweep
    nor a run, an unreadable or newer ``sweep.json``, and a finished (``done``) tier whose run is missing
    or unreadable. A failed or interrupted tier without a readable run is kept without one.
    """
    directory = Path(path)
    if directory.name in (SWEEP_FILE, RUN_FILE) and directory.is_file():
        directory = directory.parent
    if not directory.exists():
        raise SweepFormatError(f"{directory}: no such directory")
    if not directory.is_dir():
        raise SweepFormatError(f"{directory}: not a directory (expected a sweep or run directory)")
    if (directory / SWEEP_FILE).is_file():
        record = read_sweep_record(directory)
        runs, lost = _load_runs(directory, record)
        return SweepResult(directory, record, runs, lost=lost)
    if (directory / RUN_FILE).is_file():
        return _single_run(directory)
    raise SweepFormatError(
        f"{directory}: neither a sweep directory ({SWEEP_FILE}) nor a run directory ({RUN_FILE})"
    )


def _load_runs(directory: Path, record: SweepRecord) -> tuple[dict[str, Run], dict[str, str]]:
    """The runs of the tiers that have one, and why each tier that ran has none readable."""
    runs: dict[str, Run] = {}
    lost: dict[str, str] = {}
    for entry in record.tiers:
        if entry.run_dir is None:
            continue
        try:
            runs[entry.name] = read_run(directory / entry.run_dir)
        except RunFormatError as error:
            if entry.status == "done":
                message = f'{directory}: tier "{entry.name}" is done but its run is lost: {error}'
                raise SweepFormatError(message) from None
            lost[entry.name] = str(error)
    return runs, lost


def _single_run(directory: Path) -> SweepResult:
    try:
        run = read_run(directory)
    except RunFormatError as error:
        raise SweepFormatError(str(error)) from None
    name = str(run.scenario.get("name", directory.name))
    entry = entry_for_run(TierEntry(name, 1), run, ".")
    record = SweepRecord(
        name=name,
        description=str(run.scenario.get("description", "")),
        kind="run",
        status=run.status,
        source=run.scenario_source,
        definition={
            "name": name,
            "tiers": [{"name": name, "path": run.scenario_source, "scenario": run.scenario}],
        },
        started_utc=run.started_utc,
        finished_utc=run.finished_utc,
        environment=run.environment,
        tiers=(entry,),
    )
    return SweepResult(directory, record, {name: run}, single_run=True)


def entry_for_run(entry: TierEntry, run: Run, run_dir: str) -> TierEntry:
    """``entry`` updated from a finished run: status, rates, verdicts, and where the run is."""
    s = run.summary
    status: TierStatus = "done" if run.status == "completed" else run.status
    return replace(
        entry,
        status=status,
        run_dir=run_dir,
        generator_bound=s.generator_bound,
        offered=s.offered_rate,
        achieved=s.achieved_rate,
        error_rate=s.error_rate,
        shed_rate=s.shed_rate,
        slo_passed=s.slo.passed,
        problem=run.problem,
    )


def _check_format(value: Any, source: str) -> None:
    if value is None:
        raise SweepFormatError(f'{source}: not a capacity sweep (no "format" field; expected "{FORMAT}")')
    name, _, version = str(value).partition("/")
    if name != FORMAT_NAME or not version.isdigit():
        raise SweepFormatError(f'{source}: unknown format "{value}"; expected "{FORMAT}"')
    if int(version) > FORMAT_VERSION:
        raise SweepFormatError(
            f'{source}: format "{value}" is newer than this capacity reads ("{FORMAT}"); upgrade capacity'
        )
    if int(version) != FORMAT_VERSION:
        raise SweepFormatError(f'{source}: unsupported format version "{value}"; expected "{FORMAT}"')


def _is_inside(rel: str) -> bool:
    path = PurePosixPath(rel)
    return not path.is_absolute() and ".." not in path.parts


# ---------------------------------------------------------------------------------------------- matrix


@dataclass(frozen=True)
class MatrixRow:
    """One row of the scalability matrix (the seed's table, measured).

    Rates in requests/s over the steady window; ``trades_per_s`` the exchange's own trades/s over that
    window (None when it does not report them); ``server_cores`` the server's mean CPU in cores;
    ``rss_mb`` its largest RSS in MB (10^6 bytes); latency the whole run's corrected and raw p99 (ms);
    ``slo_passed`` None when the tier did not run. ``notes`` are short flags such as ``generator-bound``.
    """

    level: str
    status: TierStatus
    offered: float | None
    achieved: float | None
    trades_per_s: float | None
    server_cores: float | None
    rss_mb: float | None
    p99_corrected_ms: float | None
    p99_raw_ms: float | None
    slo_passed: bool | None
    notes: tuple[str, ...]


def matrix_rows(result: SweepResult) -> list[MatrixRow]:
    """The scalability matrix: one row per tier, in sweep order, ran or not."""
    return [_matrix_row(entry, result.runs.get(entry.name)) for entry in result.record.tiers]


def _matrix_row(entry: TierEntry, run: Run | None) -> MatrixRow:
    if run is None:
        return MatrixRow(
            entry.name, entry.status, None, None, None, None, None, None, None, None, _notes(entry, None)
        )
    s = run.summary
    return MatrixRow(
        level=entry.name,
        status=entry.status,
        offered=s.offered_rate,
        achieved=s.achieved_rate,
        trades_per_s=s.exchange_trades_per_sec_mean,
        server_cores=s.server_cores_used_mean,
        rss_mb=megabytes(s.server_rss_max_bytes),
        p99_corrected_ms=s.corrected.p99_ms,
        p99_raw_ms=s.raw.p99_ms,
        slo_passed=s.slo.passed,
        notes=_notes(entry, run),
    )


def _notes(entry: TierEntry, run: Run | None) -> tuple[str, ...]:
    notes: list[str] = []
    if entry.status == "failed" and entry.problem:
        notes.append(f"failed: {entry.problem}")
    elif entry.status != "done":
        notes.append(entry.status)
    if run is None or entry.status != "done":  # a cut-short run's verdicts describe a partial run
        return tuple(notes)
    s = run.summary
    if s.generator_bound:
        notes.append("generator-bound")
    elif s.achieved_ratio is not None and not kept_up(s.offered_rate, s.achieved_rate):
        notes.append(f"achieved {s.achieved_ratio:.0%} of offered")
    if s.error_rate is not None and s.error_rate > SATURATION_ERROR_SHARE:
        notes.append(f"errors {s.error_rate:.1%}")
    if s.shed_rate is not None and s.shed_rate > SATURATION_ERROR_SHARE:
        notes.append(f"shed {s.shed_rate:.1%}")
    return tuple(notes)
