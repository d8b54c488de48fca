"""Sweeps: tiers run one after another, each a ``capacity run``, into one sweep directory.

A sweep is either a sweep file (``scenarios/sweeps/*.yaml``: the seed's matrix, every tier run) or a
generated **ladder** of rates over one scenario (``Ladder``: geometric or linear steps) that stops early
once the server is clearly saturated — and stops, saying so, when the load generator rather than the
server limited a tier (``stop_decision``).

``repeats`` (``capacity sweep --repeat N``) runs the whole sweep N times, interleaved: every tier in order,
then every tier again, so slow drift of the machine (other load, thermal state, journal growth) falls on
every tier alike rather than on the last ones. A ladder decides where to stop in its first repeat only; the
later repeats run exactly the tiers the first one ran, so every repeat covers the same rates.

Layout (``docs/sweep-format.md``)::

    reports/sweeps/<UTC yyyymmddTHHMMSS>-<sweep name>/
        sweep.json                      # capacity-sweep/1, rewritten after every tier
        tiers/01-idle/run.json ...      # one capacity run directory per tier
        tiers/08-idle-repeat2/ ...      # with --repeat N: the tiers again, in the same order

``start_sweep`` creates the directory and runs the tiers; ``resume_sweep`` continues an interrupted or
failed sweep from its first unfinished tier with the same run settings. Both take the run function as a
parameter (default ``capacity.run.orchestrator.run_scenario``) so the sweep logic can be tested without
Locust.

Units: rates in requests per second, durations in seconds, shares as fractions 0-1.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from capacity.results.run_file import Run
from capacity.results.verdicts import KEPT_UP_TOLERANCE, SATURATION_ERROR_SHARE
from capacity.run.environment import collect_environment
from capacity.run.orchestrator import (
    RunNotWritten,
    RunOptions,
    RunResult,
    RunSetupError,
    check_target,
    plan_placement,
    run_dir_for,
    run_scenario,
)
from capacity.run.progress import ProgressUpdate
from capacity.scenario import Scenario, ScenarioError, Sweep, Tier, scenario_from_mapping
from capacity.sweep.sweep_file import (
    TIERS_DIR,
    UNFINISHED,
    SweepFormatError,
    SweepRecord,
    SweepResult,
    SweepStatus,
    TierEntry,
    entry_for_run,
    read_sweep,
    repeat_name,
    write_sweep,
)
from capacity.text import plain_number

DEFAULT_OUTPUT_DIR = Path("reports/sweeps")
GENERATOR_ADVICE = (
    "the load generator limited the ladder, not the server: run it again with more generator processes "
    "(--processes N, up to the generator's CPUs) or from a second machine"
)

Spacing = Literal["geometric", "linear"]
RunFunction = Callable[..., RunResult]  # run_scenario(scenario, options, progress=None)


class SweepSetupError(ValueError):
    """The sweep cannot start: bad ladder parameters, bad run settings, a directory that cannot resume."""


# ---------------------------------------------------------------------------------------------- ladders


@dataclass(frozen=True)
class Ladder:
    """Rates from ``start_rate`` to ``stop_rate`` (requests/s, both included) in ``steps`` tiers of
    ``tier_duration_s`` seconds each, spaced evenly (``linear``) or by a constant factor (``geometric``)."""

    start_rate: float
    stop_rate: float
    steps: int
    spacing: Spacing = "geometric"
    tier_duration_s: float = 30.0

    def rates(self) -> tuple[float, ...]:
        """The ladder's rates, see ``ladder_rates``."""
        return ladder_rates(self.start_rate, self.stop_rate, self.steps, self.spacing)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rates": list(self.rates())}


def ladder_rates(start: float, stop: float, steps: int, spacing: Spacing = "geometric") -> tuple[float, ...]:
    """``steps`` rates from ``start`` to ``stop`` inclusive, rounded to 3 significant figures (so a
    geometric ladder reads 500, 700, 980 ... rather than 699.87); duplicates after rounding are dropped.

    Geometric: each rate is the previous one times ``(stop / start) ** (1 / (steps - 1))`` — the
    resolution a capacity search wants, fine at low load and coarse far above it. Linear: equal steps of
    ``(stop - start) / (steps - 1)``. Raises SweepSetupError for rates <= 0, ``stop <= start`` or
    ``steps < 2``.
    """
    if not (math.isfinite(start) and math.isfinite(stop)) or start <= 0:
        raise SweepSetupError(f"--from must be a rate > 0, got {start:g}")
    if stop <= start:
        raise SweepSetupError(f"--to ({stop:g}) must be above --from ({start:g})")
    if steps < 2:
        raise SweepSetupError(f"--steps must be at least 2, got {steps}")
    if spacing not in ("geometric", "linear"):
        raise SweepSetupError(f"--spacing must be geometric or linear, got {spacing!r}")
    fractions = [i / (steps - 1) for i in range(steps)]
    if spacing == "geometric":
        raw = [start * (stop / start) ** f for f in fractions]
    else:
        raw = [start + (stop - start) * f for f in fractions]
    rates = [float(f"{r:.3g}") for r in raw[1:-1]]
    return tuple(dict.fromkeys([float(start), *rates, float(stop)]))


def users_for(base: Scenario, rate: float) -> int:
    """Users for ``rate`` requests/s that keep each user's pace as in ``base`` (users scale with rate)."""
    return max(1, round(base.load.concurrent_users * rate / base.load.orders_per_second))


def ladder_sweep(base: Scenario, ladder: Ladder, *, cooldown_s: float = 0.0, source: str = "") -> Sweep:
    """The ladder as a ``Sweep``: tier ``rate-<N>`` is ``base`` at N requests/s for the ladder's tier
    duration, with users scaled so each user keeps ``base``'s pace; mix, symbols and SLO stay ``base``'s."""
    tiers = tuple(
        Tier(
            f"rate-{plain_number(rate).replace('.', '_')}",
            base.with_overrides(
                duration_s=ladder.tier_duration_s,
                orders_per_second=rate,
                concurrent_users=users_for(base, rate),
            ),
            source,
        )
        for rate in ladder.rates()
    )
    description = (
        f"{ladder.spacing} ladder of {base.name} from {plain_number(ladder.start_rate)} to "
        f"{plain_number(ladder.stop_rate)}/s in {len(tiers)} tiers "
        f"of {plain_number(ladder.tier_duration_s)} s"
    )
    return Sweep(f"{base.name}-ladder", description, tiers, cooldown_s)


# ---------------------------------------------------------------------------------------------- stopping


@dataclass(frozen=True)
class StopRule:
    """When a ladder stops: ``consecutive`` tiers in a row that the server could not keep up with —
    achieved below ``achieved_ratio`` of offered, or errors or shed above ``error_rate`` of requests sent."""

    achieved_ratio: float = 1 - KEPT_UP_TOLERANCE
    error_rate: float = SATURATION_ERROR_SHARE
    consecutive: int = 2


@dataclass(frozen=True)
class Stop:
    """Why a sweep stopped early: the server saturated, or the generator limited it (``advice`` says
    what to do about that)."""

    kind: Literal["saturated", "generator_bound"]
    reason: str
    advice: str | None = None


def saturation(entry: TierEntry, rule: StopRule = StopRule()) -> str | None:
    """Why a finished tier shows the server saturated (plain English), or None if it kept up.

    A generator-bound tier never counts: its shortfall is the generator's.
    """
    if entry.status != "done" or entry.generator_bound:
        return None
    if entry.offered and entry.achieved is not None and entry.achieved < rule.achieved_ratio * entry.offered:
        return (
            f"achieved {entry.achieved:,.0f} of {entry.offered:,.0f}/s ({entry.achieved / entry.offered:.0%})"
        )
    for label, share in (("errors", entry.error_rate), ("shed", entry.shed_rate)):
        if share is not None and share > rule.error_rate:
            return f"{label} {share:.1%} of requests"
    return None


def stop_decision(done: Sequence[TierEntry], rule: StopRule = StopRule()) -> Stop | None:
    """Whether a ladder should stop after its finished tiers ``done`` (in order), and why.

    Stops at once when the last tier was generator-bound (higher rates would measure the generator), and
    after ``rule.consecutive`` saturated tiers in a row.
    """
    if not done:
        return None
    last = done[-1]
    if last.generator_bound:
        offered = f"{last.offered:,.0f}/s" if last.offered is not None else "its rate"
        return Stop(
            "generator_bound",
            f"the load generator limited tier {last.name} ({offered} offered), not the server: "
            "higher tiers would measure the generator",
            GENERATOR_ADVICE,
        )
    trailing: list[tuple[str, str]] = []
    for entry in reversed(done):
        why = saturation(entry, rule)
        if why is None:
            break
        trailing.insert(0, (entry.name, why))
    if len(trailing) < rule.consecutive:
        return None
    detail = "; ".join(f"{name}: {why}" for name, why in trailing)
    return Stop(
        "saturated", f"the server is saturated: {len(trailing)} tiers in a row fell behind ({detail})"
    )


# ---------------------------------------------------------------------------------------------- progress


EventKind = Literal["tier", "run", "tier_done", "cooldown", "finished"]


@dataclass(frozen=True)
class SweepUpdate:
    """What a sweep reports as it goes: ``event`` is ``tier`` (a tier starts), ``run`` (the tier's run
    progress, in ``run``), ``tier_done`` (``entry`` holds its outcome), ``cooldown`` or ``finished``.
    ``index`` is the tier's 1-based position in the sweep, ``total`` the number of tiers; ``repeat`` is
    the 1-based repeat running, of ``repeats`` (``--repeat N``)."""

    event: EventKind
    index: int
    total: int
    tier: str
    message: str
    run: ProgressUpdate | None = None
    entry: TierEntry | None = None
    repeat: int = 1
    repeats: int = 1


SweepProgress = Callable[[SweepUpdate], None]


# ---------------------------------------------------------------------------------------------- running


def start_sweep(
    sweep: Sweep,
    options: RunOptions,
    *,
    output_dir: Path = DEFAULT_OUTPUT_DIR,
    ladder: Ladder | None = None,
    stop_early: bool | None = None,
    repeats: int = 1,
    source: str | None = None,
    progress: SweepProgress | None = None,
    run: RunFunction = run_scenario,
    sleep: Callable[[float], None] = time.sleep,
) -> SweepResult:
    """Run every tier of ``sweep`` in order into a new ``output_dir/<time>-<name>/``, ``repeats`` times
    over, interleaved (all tiers, then all tiers again).

    ``options`` apply to every tier; each tier runs in its own ``run_dir``, ``tiers/NN-<tier>`` (NN the
    entry's index, ``-repeatR`` added after repeat 1). ``stop_early`` (default: for a ladder only)
    applies ``stop_decision`` after each tier of the first repeat and skips the rest, in every repeat; a
    sweep file's tiers all run. Never raises for a tier that breaks or a Ctrl-C: the record says what
    happened (``status`` ``failed`` / ``interrupted``) and ``resume_sweep`` continues. Raises
    SweepSetupError before anything is created when the run settings or ``repeats`` cannot work.
    """
    if repeats < 1:
        raise SweepSetupError(f"--repeat must be at least 1, got {repeats}")
    check_run_options(options)
    directory = run_dir_for(Path(output_dir), sweep.name)
    placement = plan_placement(options)
    record = SweepRecord(
        name=sweep.name,
        description=sweep.description,
        kind="ladder" if ladder else "file",
        status="running",
        source=source,
        definition=sweep.to_dict(),
        started_utc=_now(),
        environment=collect_environment(placement.server_cpus, placement.generator_cpus, placement.pinned),
        tiers=interleaved_entries(sweep, repeats),
        ladder=ladder.to_dict() if ladder else None,
        settings=settings_of(options),
        stop_early=ladder is not None if stop_early is None else stop_early,
        notes=placement.notes,
        repeats=repeats,
    )
    write_sweep(directory, record)
    return _SweepRunner(directory, record, sweep, options, {}, progress, run, sleep).run()


def resume_sweep(
    path: str | os.PathLike[str],
    *,
    progress: SweepProgress | None = None,
    run: RunFunction = run_scenario,
    sleep: Callable[[float], None] = time.sleep,
) -> SweepResult:
    """Continue the sweep in ``path`` from its first unfinished tier (pending, failed or interrupted),
    with the tiers and run settings it was started with. Earlier attempts of a re-run tier are kept and
    listed in its ``attempts``. Raises SweepFormatError for a directory that is not a sweep and
    SweepSetupError for one with nothing left to run."""
    previous = read_sweep(path)
    if previous.single_run:
        raise SweepSetupError(f"{path}: a run directory, not a sweep: nothing to resume")
    record = previous.record
    if first_unfinished(record) is None:
        raise SweepSetupError(f"{path}: nothing to resume: {describe_status(record)}")
    sweep = sweep_from_record(record)
    options = options_from_settings(record.settings)
    check_run_options(options)
    record = replace(record, status="running", resumed_utc=(*record.resumed_utc, _now()))
    write_sweep(previous.path, record)
    runner = _SweepRunner(previous.path, record, sweep, options, previous.runs, progress, run, sleep)
    return runner.run()


def interleaved_entries(sweep: Sweep, repeats: int) -> tuple[TierEntry, ...]:
    """One pending entry per tier and repeat, in running order: repeat 1's tiers, then repeat 2's..."""
    runs = [(repeat, tier.name) for repeat in range(1, repeats + 1) for tier in sweep.tiers]
    return tuple(
        TierEntry(repeat_name(name, repeat), index, repeat=repeat)
        for index, (repeat, name) in enumerate(runs, 1)
    )


def first_unfinished(record: SweepRecord) -> TierEntry | None:
    """The first tier a resume would run, or None when the sweep completed or stopped on purpose."""
    if record.status in ("completed", "stopped"):
        return None
    return next((e for e in record.tiers if e.status in UNFINISHED), None)


def describe_status(record: SweepRecord) -> str:
    """One line: how the sweep ended (or that it is running) and how many tiers are done."""
    done = sum(1 for e in record.tiers if e.status == "done")
    text = f"{record.status}, {done} of {len(record.tiers)} tiers done"
    if record.repeats > 1:
        tiers = len(record.tiers) // record.repeats
        runs = f"{done} of {len(record.tiers)} tier runs done ({tiers} tiers, {record.repeats} repeats)"
        text = f"{record.status}, {runs}"
    return f"{text}: {record.stop_reason}" if record.stop_reason else text


def check_run_options(options: RunOptions) -> None:
    """Raise SweepSetupError now for run settings every tier would refuse (before a directory exists)."""
    try:
        if options.workers < 1:
            raise RunSetupError(f"--processes must be at least 1, got {options.workers}")
        if options.target:
            check_target(options.target)
        plan_placement(options)
    except RunSetupError as error:
        raise SweepSetupError(str(error)) from None


class _SweepRunner:
    """Runs the unfinished tiers of one sweep record, rewriting ``sweep.json`` after each."""

    def __init__(
        self,
        directory: Path,
        record: SweepRecord,
        sweep: Sweep,
        options: RunOptions,
        runs: dict[str, Run],
        progress: SweepProgress | None,
        run: RunFunction,
        sleep: Callable[[float], None],
    ) -> None:
        self.directory = directory
        self.record = record
        self.tiers = {tier.name: tier for tier in sweep.tiers}
        self.positions = {tier.name: i for i, tier in enumerate(sweep.tiers, 1)}
        self.cooldown_s = sweep.cooldown_s
        self.options = options
        self.runs = dict(runs)
        self.progress = progress
        self.run_function = run
        self.sleep = sleep
        self.current: tuple[TierEntry, str] | None = None  # the tier running, and its run directory

    def run(self) -> SweepResult:
        status: SweepStatus = "completed"
        first = first_unfinished(self.record)
        todo = [e.index for e in self.record.tiers if first and e.index >= first.index]
        ran = False
        try:
            for index in todo:
                entry = self._entry(index)
                if entry.status not in UNFINISHED:  # done, or skipped by a stop earlier in this loop
                    continue
                if ran and self.cooldown_s > 0:
                    self._cooldown(entry)
                ran = True
                entry = self._run_tier(entry)
                if entry.status != "done":
                    status = "interrupted" if entry.status == "interrupted" else "failed"
                    break
                stop = self._stop_decision(entry)
                if stop is not None:
                    self._stop_after(entry, stop)
        except KeyboardInterrupt:
            status = "interrupted"
            if self.current is not None:
                self._update(self._cut_off(*self.current))
        stopped = self.record.stop_reason is not None  # kept from the first repeat, also across a resume
        self.record = replace(
            self.record,
            status="stopped" if stopped and status == "completed" else status,
            finished_utc=_now(),
            advice=self.record.advice if stopped else self._generator_advice(),
        )
        write_sweep(self.directory, self.record)
        total = len(self.tiers)
        repeats = self.record.repeats
        self._say(
            SweepUpdate(
                "finished", total, total, "", describe_status(self.record), repeat=repeats, repeats=repeats
            )
        )
        return SweepResult(self.directory, self.record, self.runs)

    def _entry(self, index: int) -> TierEntry:
        return next(e for e in self.record.tiers if e.index == index)

    def _update_for(self, event: EventKind, about: TierEntry, message: str, **extra: Any) -> SweepUpdate:
        """A progress update about a tier: its position among the sweep's tiers and its repeat."""
        return SweepUpdate(
            event,
            self.positions[about.tier],
            len(self.tiers),
            about.tier,
            message,
            repeat=about.repeat,
            repeats=self.record.repeats,
            **extra,
        )

    def _run_tier(self, entry: TierEntry) -> TierEntry:
        tier = self.tiers[entry.tier]
        position, total = self.positions[entry.tier], len(self.tiers)
        self._say(self._update_for("tier", entry, f"tier {position} of {total}"))
        earlier = (*entry.attempts, entry.run_dir) if entry.run_dir else entry.attempts
        entry = replace(entry, attempts=earlier)
        place = self._free_place(entry)
        self.current = (entry, place)
        options = replace(self.options, run_dir=self.directory / place, scenario_source=tier.path or None)

        def forward(update: ProgressUpdate) -> None:
            if update.phase != "finished":  # "tier_done" follows instead, with the tier's outcome
                self._say(self._update_for("run", entry, update.message, run=update))

        try:
            result = self.run_function(tier.scenario, options, progress=forward)
        except (RunSetupError, ScenarioError) as error:
            _remove_if_empty(self.directory / place)
            done = replace(entry, status="failed", problem=str(error), run_dir=None)
        except RunNotWritten as error:  # a full disk: its files stay for `capacity run --finish`
            done = replace(entry, status="failed", problem=str(error), run_dir=place)
        else:
            done = entry_for_run(entry, result.run, place)
            self.runs[entry.name] = result.run
        self._update(done)
        self.current = None
        self._say(self._update_for("tier_done", entry, done.status, entry=done))
        return done

    def _free_place(self, entry: TierEntry) -> str:
        """``tiers/NN-name`` for the tier's run (``tiers/NN-name-repeatR`` after the first repeat), or
        ``-2``, ``-3``... added when an earlier attempt holds it."""
        base = f"{TIERS_DIR}/{entry.index:02d}-{entry.tier}"
        if entry.repeat > 1:
            base += f"-repeat{entry.repeat}"
        for attempt in range(1, 1000):
            place = base if attempt == 1 else f"{base}-{attempt}"
            if not (self.directory / place).exists():
                return place
        raise SweepSetupError(f"{self.directory / base}: a thousand attempts of one tier")  # pragma: no cover

    def _cut_off(self, entry: TierEntry, place: str) -> TierEntry:
        """``entry`` interrupted by Ctrl-C before its run returned: what the run wrote is kept as its run
        directory (``--resume`` keeps it among the attempts), an empty one is removed."""
        _remove_if_empty(self.directory / place)
        kept = place if (self.directory / place).exists() else None
        problem = "interrupted before its run was written"
        return replace(entry, status="interrupted", problem=problem, run_dir=kept)

    def _cooldown(self, before: TierEntry) -> None:
        position, total = self.positions[before.tier], len(self.tiers)
        message = f"cooling down {self.cooldown_s:g} s before tier {position} of {total}"
        self._say(self._update_for("cooldown", before, message))
        self.sleep(self.cooldown_s)

    def _stop_decision(self, last: TierEntry) -> Stop | None:
        """The stop rule, in the first repeat only: later repeats run what the first one ran."""
        if not self.record.stop_early or last.repeat != 1:
            return None
        return stop_decision([e for e in self.record.tiers if e.status == "done" and e.repeat == 1])

    def _stop_after(self, last: TierEntry, stop: Stop) -> None:
        """Record ``stop`` and skip the first repeat's tiers after ``last``, and those tiers in every
        later repeat."""
        skipped = {e.tier for e in self.record.tiers if e.repeat == 1 and e.index > last.index}
        tiers = tuple(
            replace(e, status="skipped") if e.tier in skipped and e.status == "pending" else e
            for e in self.record.tiers
        )
        self.record = replace(self.record, tiers=tiers, stop_reason=stop.reason, advice=stop.advice)
        write_sweep(self.directory, self.record)

    def _generator_advice(self) -> str | None:
        bound = [e.name for e in self.record.tiers if e.generator_bound and e.status == "done"]
        if not bound:
            return None
        return (
            f"generator-bound tiers ({', '.join(bound)}) measure the load generator, not the server: "
            "add generator processes (--processes N) or a second machine to measure them"
        )

    def _update(self, entry: TierEntry) -> None:
        self.record = self.record.with_tier(entry)
        write_sweep(self.directory, self.record)

    def _say(self, update: SweepUpdate) -> None:
        if self.progress is not None:
            self.progress(update)


# ---------------------------------------------------------------------------------------------- records


#: RunOptions fields a sweep keeps in ``settings`` so a resume runs the rest the same way.
_SETTINGS = tuple(
    f.name
    for f in fields(RunOptions)
    if f.name not in ("output_dir", "run_dir", "overrides", "scenario_source")
)


def settings_of(options: RunOptions) -> dict[str, Any]:
    """The JSON-ready run settings of ``options`` (all but output and run dir, overrides and source)."""
    return {name: _jsonable(getattr(options, name)) for name in _SETTINGS}


def options_from_settings(settings: dict[str, Any]) -> RunOptions:
    """``RunOptions`` back from ``settings_of``; unknown keys (from a newer capacity) are ignored."""
    values: dict[str, Any] = {"engine": "locust"}  # a sweep from before the native engine ran Locust
    for name in _SETTINGS:
        if name in settings:
            value = settings[name]
            values[name] = tuple(value) if isinstance(value, list) else value
    return RunOptions(**values)


def sweep_from_record(record: SweepRecord) -> Sweep:
    """The ``Sweep`` a record was started with, rebuilt from its definition (every tier's scenario)."""
    definition = record.definition
    try:
        tiers = tuple(
            Tier(t["name"], scenario_from_mapping(t["scenario"], f"sweep.json tier {t['name']}"), t["path"])
            for t in definition["tiers"]
        )
        return Sweep(record.name, record.description, tiers, float(definition.get("cooldown", 0)))
    except (KeyError, TypeError, ScenarioError) as error:
        raise SweepFormatError(f"sweep.json: the sweep definition cannot be rebuilt: {error}") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _remove_if_empty(path: Path) -> None:
    with suppress(OSError):  # missing, or not empty: what a run wrote is never deleted
        path.rmdir()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
