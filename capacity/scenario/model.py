"""The scenario and sweep model: what load to offer, its schedule arithmetic, and the problems checks report.

Units: durations in seconds, rates in requests per second, latency in milliseconds, percentages 0-100,
error rates as fractions 0-1.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from itertools import pairwise
from typing import Any

# ---------------------------------------------------------------------------------------------- limits
# What a scenario, sweep tier or command-line override may ask for (docs/limits.md; the JSON Schemas in
# capacity/schemas carry the same numbers, tests/toolkit/results/test_input_limits.py checks that they agree).
# Every number must also be finite: YAML's .nan and .inf are refused everywhere.

#: Offered rate, requests/s: several times what one machine's generator can send, low enough that a typo
#: such as 1e12 is refused instead of filling memory with a schedule nobody can keep.
MAX_RATE = 100_000.0
#: Simulated users (connections): beyond this the generator runs out of file descriptors first.
MAX_USERS = 100_000
#: Shortest load, stage or tier: a second is the unit every per-second figure is measured in.
MIN_DURATION_S = 1.0
#: Longest load, stage, tier, ramp or cooldown: a day.
MAX_DURATION_S = 86_400.0
#: Largest P99 objective, ms: ten minutes; anything longer is no latency objective.
MAX_P99_MS = 600_000.0


def range_problem(value: float, low: float, high: float, unit: str = "") -> str | None:
    """Why ``value`` is not a finite number in [``low``, ``high``], or None when it is."""
    suffix = f" {unit}" if unit else ""
    if not math.isfinite(value):
        return f"expected a finite number, got {shown(value)}"
    if value < low:
        return f"expected at least {plain_number(low)}{suffix}, got {shown(value)}"
    if value > high:
        return f"expected at most {plain_number(high)}{suffix}, got {shown(value)}"
    return None


# ---------------------------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: where (source and 1-based line, if known), which field, and what."""

    source: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ScenarioError(Exception):
    """A scenario or sweep is invalid; ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(map(str, self.problems)))


# ---------------------------------------------------------------------------------------------- durations

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: float | int | str) -> float:
    """Seconds from a number of seconds or a string like ``500ms``, ``30s``, ``2m``, ``1h``, ``1m30s``.

    Raises ValueError for anything else (including booleans and negative numbers).
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"not a duration: {value!r}")
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", text):
        return float(text)
    if not text or _DURATION_PART.sub("", text):
        raise ValueError(f"not a duration: {value!r} (expected e.g. 30s, 2m, 1h, 500ms)")
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """Short human form of a duration in seconds: ``2m30s``, ``45s``, ``1h``, ``250ms``."""
    if 0 < seconds < 1:
        return f"{plain_number(round(seconds * 1000, 3))}ms"
    whole = round(seconds)
    if abs(seconds - whole) > 1e-9:
        return f"{plain_number(round(seconds, 3))}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{unit}" for v, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if v]
    return "".join(parts) or "0s"


def plain_number(value: float) -> float | int:
    """An int when the float is integral, so 5000.0 prints (and serialises) as 5000."""
    return int(value) if float(value).is_integer() else value


def shown(value: Any) -> str:
    """A value as the user would write it (JSON-like), shortened."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class RampUp:
    """Linear ramp at the start of a run: rate and users go from start_percent to end_percent of the target
    over ``duration_s`` seconds (counted inside the run), then stay at end_percent."""

    duration_s: float
    start_percent: float = 20.0
    end_percent: float = 100.0

    def factor_at(self, t_s: float) -> float:
        """Fraction (0-1) of the target in force at ``t_s`` seconds after the start."""
        if t_s >= self.duration_s:
            return self.end_percent / 100
        progress = max(t_s, 0.0) / self.duration_s
        return (self.start_percent + (self.end_percent - self.start_percent) * progress) / 100

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "duration": plain_number(self.duration_s),
            "start_percent": plain_number(self.start_percent),
            "end_percent": plain_number(self.end_percent),
        }


@dataclass(frozen=True)
class Stage:
    """One step of a staged schedule: ``orders_per_second`` (requests/s) offered by ``concurrent_users``
    users for ``duration_s`` seconds."""

    duration_s: float
    orders_per_second: float
    concurrent_users: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "duration": plain_number(self.duration_s),
            "orders_per_second": plain_number(self.orders_per_second),
            "concurrent_users": self.concurrent_users,
        }


@dataclass(frozen=True)
class Load:
    """Offered load (open model: arrivals follow the schedule, not the responses).

    With stages, ``orders_per_second`` and ``concurrent_users`` are the stages' peaks and ``duration_s``
    their total.
    """

    orders_per_second: float  # requests/s, all kinds of the mix together
    concurrent_users: int  # Locust users the rate is spread over
    symbols: tuple[str, ...]
    duration_s: float  # seconds, ramp included; the recovery phase, if any, comes after it
    ramp_up: RampUp | None = None


@dataclass(frozen=True)
class Mix:
    """Request mix in percent (sums to 100) and how limit orders are priced.

    A limit order's price is ``1..price_offset_ticks`` ticks (uniform) from the mid price. Passive orders
    (``100 - marketable_percent`` of limits) go on their own side of mid and rest, building book depth;
    marketable ones go through mid and trade on arrival. Together with market orders this sets the share of
    requests that trade; cancels target the user's own resting orders.
    """

    limit: float = 70.0
    market: float = 10.0
    cancel: float = 15.0
    book: float = 5.0
    price_offset_ticks: int = 10
    marketable_percent: float = 25.0

    @property
    def aggressive_percent(self) -> float:
        """Percent of all requests expected to trade on arrival (market + marketable limit orders)."""
        return self.market + self.limit * self.marketable_percent / 100


@dataclass(frozen=True)
class Slo:
    """Service-level objective: 99th-percentile latency bound (ms) and tolerated error fraction (0-1)."""

    p99_ms: float
    error_rate: float


@dataclass(frozen=True)
class Scenario:
    """A validated scenario. ``stages`` is empty unless the file gives a staged schedule.

    ``recovery`` is an optional light-rate phase after the load (the load's stages, or its one step): the
    run goes on at that rate so that it can measure how long the server takes to recover once the load
    drops (``capacity.results.verdicts.time_to_recover``). The tier's own figures (steady window, counts,
    latency, SLO verdict) are those of the load phase, ``[0, load_end_s)``.
    """

    name: str
    description: str
    load: Load
    mix: Mix
    slo: Slo
    stages: tuple[Stage, ...] = ()
    recovery: Stage | None = None

    # -- schedule arithmetic (t_s: seconds since the start of the run) --

    @property
    def load_steps(self) -> tuple[Stage, ...]:
        """The load phase as steps: the stages, or one step made of ``load`` (the recovery left out)."""
        if self.stages:
            return self.stages
        return (Stage(self.load.duration_s, self.load.orders_per_second, self.load.concurrent_users),)

    @property
    def steps(self) -> tuple[Stage, ...]:
        """The whole schedule as steps, as the generators follow it: the load phase, then the recovery."""
        return self.load_steps + ((self.recovery,) if self.recovery is not None else ())

    @property
    def load_end_s(self) -> float:
        """When the load phase ends, seconds since the start: the recovery phase's start, if there is one,
        else the end of the run."""
        return sum(step.duration_s for step in self.load_steps)

    @property
    def total_duration_s(self) -> float:
        """Length of the run in seconds."""
        return sum(step.duration_s for step in self.steps)

    def step_at(self, t_s: float) -> Stage | None:
        """The step in force at ``t_s`` (intervals are half-open), or None before 0 and from the end on."""
        if t_s < 0:
            return None
        end = 0.0
        for step in self.steps:
            end += step.duration_s
            if t_s < end:
                return step
        return None

    def _factor_at(self, t_s: float) -> float:
        return 1.0 if self.load.ramp_up is None else self.load.ramp_up.factor_at(t_s)

    def offered_rate_at(self, t_s: float) -> float:
        """Requests per second scheduled at ``t_s``: the step's rate times the ramp factor; 0 outside."""
        step = self.step_at(t_s)
        return 0.0 if step is None else step.orders_per_second * self._factor_at(t_s)

    def users_at(self, t_s: float) -> int:
        """Users at ``t_s``. Users ramp with the rate, so each user's own pace stays constant; 0 outside."""
        step = self.step_at(t_s)
        return 0 if step is None else max(1, round(step.concurrent_users * self._factor_at(t_s)))

    def _breakpoints(self) -> list[float]:
        """Times where the rate changes slope or steps; between them it is linear."""
        points = [0.0]
        for step in self.steps:
            points.append(points[-1] + step.duration_s)
        if self.load.ramp_up is not None:
            points.append(self.load.ramp_up.duration_s)
        return sorted(set(points))

    def expected_orders(self, start_s: float = 0.0, end_s: float | None = None) -> float:
        """Requests the schedule offers between ``start_s`` and ``end_s`` (default: the whole run).

        The rate is linear between breakpoints, so the midpoint rule on each piece is exact.
        """
        start = max(start_s, 0.0)
        end = self.total_duration_s if end_s is None else min(end_s, self.total_duration_s)
        if end <= start:
            return 0.0
        cuts = sorted({start, end, *(p for p in self._breakpoints() if start < p < end)})
        return sum((b - a) * self.offered_rate_at((a + b) / 2) for a, b in pairwise(cuts))

    # -- derived scenarios --

    def with_overrides(
        self,
        duration_s: float | None = None,
        orders_per_second: float | None = None,
        concurrent_users: int | None = None,
        target_symbols: Sequence[str] | None = None,
    ) -> Scenario:
        """A copy with quick-try overrides; None keeps the scenario's value.

        Stages are scaled to fit: durations proportionally to the new total, rates and users so that the peak
        equals the new value. A ramp keeps its length but never takes a larger share of the run than before.
        The duration is the load phase's: a recovery phase keeps its length, and its rate and users scale
        with the load's as a stage's do.
        Raises ScenarioError for non-positive values or an empty symbol list.
        """
        _check_overrides(duration_s, orders_per_second, concurrent_users, target_symbols)
        result = self
        if duration_s is not None:
            result = result._scaled_duration(float(duration_s))
        if orders_per_second is not None:
            result = result._scaled_rate(float(orders_per_second))
        if concurrent_users is not None:
            result = result._scaled_users(int(concurrent_users))
        if target_symbols is not None:
            result = replace(result, load=replace(result.load, symbols=tuple(target_symbols)))
        return result

    def _scaled_duration(self, duration_s: float) -> Scenario:
        factor = duration_s / self.load_end_s
        ramp = self.load.ramp_up
        if ramp is not None:
            ramp = replace(ramp, duration_s=ramp.duration_s * min(factor, 1.0))
        stages = tuple(replace(s, duration_s=s.duration_s * factor) for s in self.stages)
        # the recovery phase keeps its length: it is the time the run gives the server to recover
        return replace(self, load=replace(self.load, duration_s=duration_s, ramp_up=ramp), stages=stages)

    def _scaled_rate(self, rate: float) -> Scenario:
        factor = rate / self.load.orders_per_second
        stages = tuple(replace(s, orders_per_second=s.orders_per_second * factor) for s in self.stages)
        recovery = self.recovery
        if recovery is not None:
            recovery = replace(recovery, orders_per_second=recovery.orders_per_second * factor)
        return replace(
            self, load=replace(self.load, orders_per_second=rate), stages=stages, recovery=recovery
        )

    def _scaled_users(self, users: int) -> Scenario:
        factor = users / self.load.concurrent_users
        stages = tuple(
            replace(s, concurrent_users=max(1, round(s.concurrent_users * factor))) for s in self.stages
        )
        recovery = self.recovery
        if recovery is not None:
            recovery = replace(recovery, concurrent_users=max(1, round(recovery.concurrent_users * factor)))
        return replace(
            self, load=replace(self.load, concurrent_users=users), stages=stages, recovery=recovery
        )

    # -- output --

    def summary(self) -> str:
        """One line for listings: ``5000/s, 2m``, ``3 stages, peak 12000/s, 4m30s``, or with a recovery
        phase ``18000/s, 1m30s, then 500/s for 30s to recover``."""
        text = f"{plain_number(self.load.orders_per_second)}/s, {format_duration(self.load_end_s)}"
        if self.stages:
            text = f"{len(self.stages)} stages, peak {text}"
        if self.recovery is not None:
            rate = plain_number(round(self.recovery.orders_per_second, 3))
            text += f", then {rate}/s for {format_duration(self.recovery.duration_s)} to recover"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form in the YAML's own shape (durations as seconds); it loads back equal."""
        load: dict[str, Any] = {}
        if not self.stages:
            load["orders_per_second"] = plain_number(self.load.orders_per_second)
        load["concurrent_users"] = self.load.concurrent_users
        load["symbols"] = list(self.load.symbols)
        if not self.stages:
            load["duration"] = plain_number(self.load.duration_s)
        if self.load.ramp_up is not None:
            load["ramp_up"] = self.load.ramp_up.to_dict()
        out: dict[str, Any] = {"name": self.name, "description": self.description, "load": load}
        if self.stages:
            out["stages"] = [stage.to_dict() for stage in self.stages]
        if self.recovery is not None:
            out["recovery"] = self.recovery.to_dict()
        out["mix"] = {k: plain_number(v) for k, v in asdict(self.mix).items()}
        out["slo"] = {k: plain_number(v) for k, v in asdict(self.slo).items()}
        return out


@dataclass(frozen=True)
class Tier:
    """One tier of a sweep: its name, the scenario with the sweep's overrides applied, and its file."""

    name: str
    scenario: Scenario
    path: str


@dataclass(frozen=True)
class Sweep:
    """Tiers run in order with ``cooldown_s`` seconds of idle between them."""

    name: str
    description: str
    tiers: tuple[Tier, ...]
    cooldown_s: float = 0.0

    @property
    def total_duration_s(self) -> float:
        """Seconds of load plus cooldowns (start-up of servers and generators not included)."""
        load = sum(tier.scenario.total_duration_s for tier in self.tiers)
        return load + self.cooldown_s * max(len(self.tiers) - 1, 0)

    def summary(self) -> str:
        """One line for listings: ``6 tiers, 2m35s``."""
        return f"{len(self.tiers)} tiers, {format_duration(self.total_duration_s)}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form with every tier's resolved scenario."""
        return {
            "name": self.name,
            "description": self.description,
            "cooldown": plain_number(self.cooldown_s),
            "tiers": [{"name": t.name, "path": t.path, "scenario": t.scenario.to_dict()} for t in self.tiers],
        }


def _check_overrides(
    duration_s: float | None,
    orders_per_second: float | None,
    concurrent_users: int | None,
    target_symbols: Sequence[str] | None,
) -> None:
    problems = [
        Problem("overrides", None, name, f"expected a number > 0, got {shown(value)}")
        for name, value in (
            ("duration_s", duration_s),
            ("orders_per_second", orders_per_second),
            ("concurrent_users", concurrent_users),
        )
        if value is not None and not _is_positive_number(value)
    ]
    if not problems:
        limits = (
            ("duration_s", duration_s, MIN_DURATION_S, MAX_DURATION_S, "s"),
            ("orders_per_second", orders_per_second, 0.0, MAX_RATE, "requests/s"),
            ("concurrent_users", concurrent_users, 1, MAX_USERS, "users"),
        )
        problems = [
            Problem("overrides", None, name, why)
            for name, value, low, high, unit in limits
            if value is not None and (why := range_problem(value, low, high, unit)) is not None
        ]
    if target_symbols is not None and (isinstance(target_symbols, str) or not target_symbols):
        problems.append(Problem("overrides", None, "target_symbols", "expected a non-empty list of symbols"))
    if problems:
        raise ScenarioError(problems)


def _is_positive_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf
