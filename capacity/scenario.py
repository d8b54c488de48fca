"""Scenarios: the validated YAML model of what load to offer, and its schedule arithmetic.

A file is checked in three passes, each reporting problems as ``file:line: field: message``:
YAML syntax (and duplicate keys), the JSON Schema shipped in ``capacity/schemas`` (the same file editors
use for completion), then the rules a schema cannot express (the mix sums to 100, a ramp goes up, a sweep
tier's file exists). Line numbers come from PyYAML's node tree, walked along the failing field's path.

Units: durations in seconds, rates in requests per second, latency in milliseconds, percentages 0-100,
error rates as fractions 0-1.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

import jsonschema
import yaml

FieldPath = tuple[str | int, ...]

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
        return f"{_num(round(seconds * 1000, 3))}ms"
    whole = round(seconds)
    if abs(seconds - whole) > 1e-9:
        return f"{_num(round(seconds, 3))}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{unit}" for v, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if v]
    return "".join(parts) or "0s"


def _num(value: float) -> float | int:
    """An int when the float is integral, so 5000.0 prints (and serialises) as 5000."""
    return int(value) if float(value).is_integer() else value


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
            "duration": _num(self.duration_s),
            "start_percent": _num(self.start_percent),
            "end_percent": _num(self.end_percent),
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
            "duration": _num(self.duration_s),
            "orders_per_second": _num(self.orders_per_second),
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
    duration_s: float  # seconds, ramp included
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
    """A validated scenario. ``stages`` is empty unless the file gives a staged schedule."""

    name: str
    description: str
    load: Load
    mix: Mix
    slo: Slo
    stages: tuple[Stage, ...] = ()

    # -- schedule arithmetic (t_s: seconds since the start of the run) --

    @property
    def steps(self) -> tuple[Stage, ...]:
        """The schedule as steps: the stages, or one step made of ``load``."""
        if self.stages:
            return self.stages
        return (Stage(self.load.duration_s, self.load.orders_per_second, self.load.concurrent_users),)

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
        factor = duration_s / self.total_duration_s
        ramp = self.load.ramp_up
        if ramp is not None:
            ramp = replace(ramp, duration_s=ramp.duration_s * min(factor, 1.0))
        stages = tuple(replace(s, duration_s=s.duration_s * factor) for s in self.stages)
        return replace(self, load=replace(self.load, duration_s=duration_s, ramp_up=ramp), stages=stages)

    def _scaled_rate(self, rate: float) -> Scenario:
        factor = rate / self.load.orders_per_second
        stages = tuple(replace(s, orders_per_second=s.orders_per_second * factor) for s in self.stages)
        return replace(self, load=replace(self.load, orders_per_second=rate), stages=stages)

    def _scaled_users(self, users: int) -> Scenario:
        factor = users / self.load.concurrent_users
        stages = tuple(
            replace(s, concurrent_users=max(1, round(s.concurrent_users * factor))) for s in self.stages
        )
        return replace(self, load=replace(self.load, concurrent_users=users), stages=stages)

    # -- output --

    def summary(self) -> str:
        """One line for listings: ``5000/s, 2m`` or ``3 stages, peak 12000/s, 4m30s``."""
        text = f"{_num(self.load.orders_per_second)}/s, {format_duration(self.total_duration_s)}"
        return f"{len(self.stages)} stages, peak {text}" if self.stages else text

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form in the YAML's own shape (durations as seconds); it loads back equal."""
        load: dict[str, Any] = {}
        if not self.stages:
            load["orders_per_second"] = _num(self.load.orders_per_second)
        load["concurrent_users"] = self.load.concurrent_users
        load["symbols"] = list(self.load.symbols)
        if not self.stages:
            load["duration"] = _num(self.load.duration_s)
        if self.load.ramp_up is not None:
            load["ramp_up"] = self.load.ramp_up.to_dict()
        out: dict[str, Any] = {"name": self.name, "description": self.description, "load": load}
        if self.stages:
            out["stages"] = [stage.to_dict() for stage in self.stages]
        out["mix"] = {k: _num(v) for k, v in asdict(self.mix).items()}
        out["slo"] = {k: _num(v) for k, v in asdict(self.slo).items()}
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
            "cooldown": _num(self.cooldown_s),
            "tiers": [{"name": t.name, "path": t.path, "scenario": t.scenario.to_dict()} for t in self.tiers],
        }


def _check_overrides(
    duration_s: float | None,
    orders_per_second: float | None,
    concurrent_users: int | None,
    target_symbols: Sequence[str] | None,
) -> None:
    problems = [
        Problem("overrides", None, name, f"expected a number > 0, got {_show(value)}")
        for name, value in (
            ("duration_s", duration_s),
            ("orders_per_second", orders_per_second),
            ("concurrent_users", concurrent_users),
        )
        if value is not None and not _is_positive_number(value)
    ]
    if target_symbols is not None and (isinstance(target_symbols, str) or not target_symbols):
        problems.append(Problem("overrides", None, "target_symbols", "expected a non-empty list of symbols"))
    if problems:
        raise ScenarioError(problems)


def _is_positive_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf


# ---------------------------------------------------------------------------------------------- documents


@dataclass
class _Doc:
    """A parsed YAML document: data, node tree (for line numbers) and the problems found so far."""

    source: str
    data: Any
    node: yaml.Node | None = None
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: FieldPath, key: bool = False) -> int | None:
        """1-based line of the value at ``path`` (or of its key), or of the deepest ancestor that exists."""
        if self.node is None:
            return None
        return _node_at(self.node, path, key).start_mark.line + 1

    def add(
        self, path: FieldPath, message: str, key: bool = False, line_path: FieldPath | None = None
    ) -> None:
        """Record a problem of the field at ``path``; its line is that of ``line_path`` if given."""
        line = self.line_of(path if line_path is None else line_path, key)
        self.problems.append(Problem(self.source, line, _field_name(path), message))

    def raise_if_any(self) -> None:
        if self.problems:
            # this file's problems in line order, then those of files it refers to
            ordered = sorted(self.problems, key=lambda p: (p.source != self.source, p.line or 0))
            raise ScenarioError(ordered)


def _field_name(path: FieldPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """(key node, value node) of ``part`` in a mapping or sequence node; None if absent."""
    if isinstance(node, yaml.MappingNode):
        # reversed: with duplicate keys the last one wins, as in the loaded data
        for key, value in reversed(node.value):
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return key, value
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part], node.value[part]
    return None


def _node_at(root: yaml.Node, path: FieldPath, key: bool) -> yaml.Node:
    node, key_node = root, root
    for part in path:
        child = _child(node, part)
        if child is None:
            return node
        key_node, node = child
    return key_node if key else node


def _structure_problems(
    node: yaml.Node, path: FieldPath = (), ancestors: frozenset[int] = frozenset()
) -> Iterator[tuple[FieldPath, yaml.Node, str]]:
    """Duplicate keys and self-referencing aliases (which would make the data infinitely deep)."""
    if id(node) in ancestors:
        yield path, node, RECURSIVE_ALIAS
        return
    inside = ancestors | {id(node)}
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
            if name in seen:
                yield (*path, name), key, "duplicate key (the last one would win)"
            seen.add(name)
            yield from _structure_problems(value, (*path, name), inside)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _structure_problems(item, (*path, index), inside)


RECURSIVE_ALIAS = "an alias that refers to its own ancestor (recursive data) is not supported"


def _read(path: str | os.PathLike[str]) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError([Problem(str(path), None, "", "file not found")]) from None
    except IsADirectoryError:
        raise ScenarioError([Problem(str(path), None, "", "is a directory, expected a YAML file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ScenarioError([Problem(str(path), None, "", f"cannot read file: {reason}")]) from None


def _parse(text: str, source: str) -> _Doc:
    """YAML text to data plus node tree; syntax errors and structural problems become problems."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        problems = [
            Problem(source, at.start_mark.line + 1, _field_name(path), message)
            for path, at, message in (_structure_problems(node) if node is not None else ())
        ]
        if any(p.message == RECURSIVE_ALIAS for p in problems):
            raise ScenarioError(problems)  # nothing downstream can walk infinitely deep data
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = f"{exc.context}, {exc.problem}" if exc.context else str(exc.problem)
        line = mark.line + 1 if mark else None
        raise ScenarioError([Problem(source, line, "", f"YAML syntax error: {detail}")]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem(source, None, "", f"YAML error: {exc}")]) from None
    return _Doc(source, data, node, problems)


def _is_sweep(data: Any) -> bool:
    return isinstance(data, Mapping) and "tiers" in data


# ---------------------------------------------------------------------------------------------- schema


@cache
def load_schema(kind: str) -> dict[str, Any]:
    """The shipped JSON Schema for ``kind`` ("scenario" or "sweep")."""
    text = resources.files("capacity").joinpath("schemas", f"{kind}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(kind))


def _check_schema(doc: _Doc, kind: str) -> None:
    """Add a problem for every schema violation and raise if there was any (with earlier problems too)."""
    root = load_schema(kind)
    if doc.data is None:
        doc.add((), f"the file is empty; expected {_expectation(root)}")
        doc.raise_if_any()
    reported: set[str] = set()
    for error in _validator(kind).iter_errors(doc.data):
        for path, message, line_path in _explain(error, root):
            if _field_name(path) not in reported:  # one message per field is enough
                reported.add(_field_name(path))
                doc.add(path, message, key=True, line_path=line_path)
    if reported:  # building needs schema-valid data; duplicate keys alone do not stop it
        doc.raise_if_any()


def _explain(
    error: jsonschema.ValidationError, root: dict[str, Any]
) -> list[tuple[FieldPath, str, FieldPath]]:
    """(field path, message, path whose key line to report) for one jsonschema error, in plain words."""
    path: FieldPath = tuple(error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, Mapping):
        # a missing field has no line of its own: point at its parent's key
        return [
            (
                (*path, name),
                f"missing required field; expected {_expectation(_schema_at(root, (*path, name)))}",
                path,
            )
            for name in error.validator_value
            if name not in instance
        ]
    if error.validator == "additionalProperties" and isinstance(instance, Mapping):
        allowed = list(error.schema.get("properties", {}))
        return [
            ((*path, k), _unknown_field(str(k), allowed), (*path, k)) for k in instance if k not in allowed
        ]
    if error.validator == "uniqueItems":
        return [(path, f"expected no duplicates, got {_show(instance)}", path)]
    if error.validator is None:  # a `false` schema
        return [(path, "not allowed here", path)]
    if error.validator in _EXPLAINED:
        return [(path, f"expected {_expectation(error.schema)}, got {_show(instance)}", path)]
    return [(path, error.message, path)]


_EXPLAINED = {
    "type",
    "anyOf",
    "oneOf",
    "enum",
    "const",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "minLength",
}


def _unknown_field(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f'unknown field "{key}" (did you mean "{close[0]}"?)'
    return f'unknown field "{key}"; allowed here: {", ".join(allowed)}'


def _resolve(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:  # only local refs ("#/$defs/...") are used in the shipped schemas
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def _schema_at(root: dict[str, Any], path: FieldPath) -> dict[str, Any]:
    """The (resolved) schema describing the value at ``path``; {} where the schema says nothing."""
    schema = root
    for part in path:
        schema = _resolve(root, schema)
        schema = (
            schema.get("items", {}) if isinstance(part, int) else schema.get("properties", {}).get(part, {})
        )
    return _resolve(root, schema)


_TYPE_WORDS = {
    "number": "a number",
    "integer": "an integer",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
}


def _expectation(schema: dict[str, Any]) -> str:
    """What a schema accepts, in words: 'a number > 0', 'a string like 30s, 2m', 'a mapping with a, b'."""
    if "anyOf" in schema:
        return " or ".join(_expectation(option) for option in schema["anyOf"])
    if "const" in schema:
        return _show(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(map(_show, schema["enum"]))
    kind = schema.get("type")
    text = _TYPE_WORDS.get(kind, "a value")
    if kind in ("number", "integer"):
        text += _bounds(schema)
    elif kind == "string" and "examples" in schema:
        text += " like " + ", ".join(schema["examples"])
    elif kind == "string" and "pattern" in schema:
        text += f" matching {schema['pattern']}"
    elif kind == "array" and schema.get("minItems"):
        text = f"a list of at least {schema['minItems']} item(s)"
    elif kind == "object" and schema.get("required"):
        text += " with " + ", ".join(schema["required"])
    return text


_LOWER_BOUNDS = (("exclusiveMinimum", ">"), ("minimum", ">="))
_UPPER_BOUNDS = (("exclusiveMaximum", "<"), ("maximum", "<="))


def _bounds(schema: dict[str, Any]) -> str:
    """' > 0', ' >= 0 and <= 100' or '' for a numeric schema."""
    found = [
        next((f"{op} {_num(schema[key])}" for key, op in bounds if key in schema), "")
        for bounds in (_LOWER_BOUNDS, _UPPER_BOUNDS)
    ]
    text = " and ".join(b for b in found if b)
    return f" {text}" if text else ""


def _show(value: Any) -> str:
    """A value as the user would write it (JSON-like), shortened."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------------------------- building


def _seconds(doc: _Doc, path: FieldPath, value: Any, allow_zero: bool = False) -> float:
    """A schema-valid duration in seconds; zero is a problem unless allowed."""
    seconds = parse_duration(value)
    if seconds == 0 and not allow_zero:
        doc.add(path, f"expected a duration > 0, got {_show(value)}")
    return seconds


def _build_ramp(doc: _Doc, raw: Mapping[str, Any] | None) -> RampUp | None:
    if raw is None or raw.get("enabled", True) is False:
        return None
    path: FieldPath = ("load", "ramp_up")
    start = float(raw.get("start_percent", RampUp.start_percent))
    end = float(raw.get("end_percent", RampUp.end_percent))
    if start > end:
        doc.add((*path, "start_percent"), f"expected at most end_percent ({_num(end)}), got {_num(start)}")
    return RampUp(_seconds(doc, (*path, "duration"), raw["duration"]), start, end)


def _build_stages(doc: _Doc, raw: Sequence[Mapping[str, Any]], default_users: int) -> tuple[Stage, ...]:
    return tuple(
        Stage(
            _seconds(doc, ("stages", i, "duration"), item["duration"]),
            float(item["orders_per_second"]),
            int(item.get("concurrent_users", default_users)),
        )
        for i, item in enumerate(raw)
    )


def _build_load(doc: _Doc, raw: Mapping[str, Any], stages: tuple[Stage, ...]) -> Load:
    ramp = _build_ramp(doc, raw.get("ramp_up"))
    symbols = tuple(raw["symbols"])
    if stages:
        for key in ("orders_per_second", "duration"):
            if key in raw:
                message = "not allowed together with stages (the stages give rate and duration)"
                doc.add(("load", key), message, key=True)
        peak_users = max(s.concurrent_users for s in stages)
        load = Load(
            max(s.orders_per_second for s in stages), peak_users, symbols, sum(s.duration_s for s in stages)
        )
    else:
        duration = _seconds(doc, ("load", "duration"), raw["duration"])
        load = Load(float(raw["orders_per_second"]), int(raw["concurrent_users"]), symbols, duration)
    if ramp is not None and load.duration_s > 0 and ramp.duration_s > load.duration_s:
        doc.add(
            ("load", "ramp_up", "duration"),
            f"expected at most the run's duration ({format_duration(load.duration_s)}), "
            f"got {format_duration(ramp.duration_s)}",
        )
    return replace(load, ramp_up=ramp)


def _build_mix(doc: _Doc, raw: Mapping[str, Any] | None) -> Mix:
    if raw is None:
        return Mix()
    mix = Mix(**{k: (int(v) if k == "price_offset_ticks" else float(v)) for k, v in raw.items()})
    parts = {"limit": mix.limit, "market": mix.market, "cancel": mix.cancel, "book": mix.book}
    total = sum(parts.values())
    if not math.isclose(total, 100.0, abs_tol=1e-6):
        terms = " + ".join(f"{k} {_num(v)}" for k, v in parts.items())
        doc.add(("mix",), f"percentages must sum to 100, got {_num(round(total, 6))} ({terms})", key=True)
    if mix.cancel > 0 and mix.limit == 0:
        doc.add(("mix", "cancel"), "cancels need resting orders: expected limit > 0 when cancel > 0")
    return mix


def _build_scenario(doc: _Doc) -> Scenario:
    data = doc.data
    users = int(data["load"]["concurrent_users"])
    stages = _build_stages(doc, data.get("stages") or (), users)
    scenario = Scenario(
        name=data["name"],
        description=data.get("description", ""),
        load=_build_load(doc, data["load"], stages),
        mix=_build_mix(doc, data.get("mix")),
        slo=Slo(float(data["slo"]["p99_ms"]), float(data["slo"]["error_rate"])),
        stages=stages,
    )
    doc.raise_if_any()
    return scenario


def _scenario_from_doc(doc: _Doc) -> Scenario:
    if _is_sweep(doc.data):
        doc.add(("tiers",), "this is a sweep (it has tiers); expected a scenario", key=True)
        doc.raise_if_any()
    _check_schema(doc, "scenario")
    return _build_scenario(doc)


def _tier_value(doc: _Doc, index: int, key: str) -> tuple[Any, FieldPath]:
    """A tier's override for ``key`` (falling back to the sweep's defaults) and where it was written."""
    tier = doc.data["tiers"][index]
    if key in tier:
        return tier[key], ("tiers", index, key)
    return doc.data.get("defaults", {}).get(key), ("defaults", key)


def _build_tier(doc: _Doc, index: int, base_dir: Path) -> Tier | None:
    """The tier's scenario with overrides applied, or None (with problems added) if it cannot be loaded."""
    raw = doc.data["tiers"][index]
    here: FieldPath = ("tiers", index, "scenario")
    path = os.path.normpath(base_dir / raw["scenario"])
    if not Path(path).is_file():
        doc.add(here, f"scenario file not found: {raw['scenario']} (looked for {path})")
        return None
    try:
        target = _parse(_read(path), path)
        if _is_sweep(target.data):
            doc.add(here, f"{raw['scenario']} is a sweep; a tier must point at a scenario")
            return None
        scenario = _scenario_from_doc(target)
    except ScenarioError as exc:
        doc.add(here, f"{raw['scenario']} is invalid (its problems follow)")
        doc.problems.extend(exc.problems)
        return None
    duration, duration_path = _tier_value(doc, index, "duration")
    seconds = None if duration is None else _seconds(doc, duration_path, duration)
    scenario = scenario.with_overrides(
        duration_s=seconds or None,  # a zero ("0s") was reported by _seconds; keep the scenario's own
        orders_per_second=raw.get("orders_per_second"),
        concurrent_users=_tier_value(doc, index, "concurrent_users")[0],
        target_symbols=_tier_value(doc, index, "symbols")[0],
    )
    return Tier(raw.get("name", scenario.name), scenario, path)


def _build_sweep(doc: _Doc, base_dir: Path) -> Sweep:
    tiers: list[Tier] = []
    for index in range(len(doc.data["tiers"])):
        tier = _build_tier(doc, index, base_dir)
        if tier is None:
            continue
        if any(t.name == tier.name for t in tiers):
            doc.add(
                ("tiers", index), f'tier name "{tier.name}" is already used; give this tier its own "name"'
            )
        tiers.append(tier)
    cooldown = _seconds(doc, ("cooldown",), doc.data.get("cooldown", 0), allow_zero=True)
    doc.raise_if_any()
    return Sweep(doc.data["name"], doc.data.get("description", ""), tuple(tiers), cooldown)


def _sweep_from_doc(doc: _Doc, base_dir: Path) -> Sweep:
    _check_schema(doc, "sweep")
    return _build_sweep(doc, base_dir)


# ---------------------------------------------------------------------------------------------- public API


def load_scenario_text(text: str, source_name: str = "<string>") -> Scenario:
    """Parse and validate scenario YAML; problems are reported against ``source_name``."""
    return _scenario_from_doc(_parse(text, source_name))


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Load and validate a scenario file. Raises ScenarioError (never anything else for bad input)."""
    return load_scenario_text(_read(path), str(path))


def scenario_from_mapping(data: Mapping[str, Any], source_name: str = "<mapping>") -> Scenario:
    """Validate an already-parsed mapping (e.g. a JSON request body or ``Scenario.to_dict()``); no lines."""
    # a JSON round trip turns tuples into lists, which is what the schema's "array" means
    return _scenario_from_doc(_Doc(source_name, json.loads(json.dumps(data, default=str))))


def load_sweep_text(
    text: str, source_name: str = "<string>", base_dir: str | os.PathLike[str] = "."
) -> Sweep:
    """Parse and validate sweep YAML; tier paths are resolved against ``base_dir``."""
    return _sweep_from_doc(_parse(text, source_name), Path(base_dir))


def load_sweep(path: str | os.PathLike[str]) -> Sweep:
    """Load a sweep file and every scenario it refers to (paths relative to the sweep file)."""
    return load_sweep_text(_read(path), str(path), Path(path).parent)


def load_document(path: str | os.PathLike[str]) -> Scenario | Sweep:
    """Load a scenario or a sweep, deciding by content: a top-level ``tiers`` key means sweep."""
    doc = _parse(_read(path), str(path))
    if _is_sweep(doc.data):
        return _sweep_from_doc(doc, Path(path).parent)
    return _scenario_from_doc(doc)
