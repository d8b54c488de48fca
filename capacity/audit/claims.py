"""A claims file (``claims/*.yaml``, schema ``capacity/schemas/claims.schema.json``): the numeric claims of a
capacity document, each with where it came from, what it asserts, the conditions it holds under, and the
document's own formula for it where it gives one.

Checked as scenarios are, and reported the same way (``file:line: field: problem``): YAML, then the JSON
Schema, then what a schema cannot say: unique ids, a unit that measures what the metric does, formulas
that are arithmetic over known ids.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from typing import Any, Literal, get_args

from capacity.audit.arithmetic import FormulaError, names_in, parse_formula
from capacity.audit.units import Dimension, Unit, unit_of
from capacity.fit.inputs import parse_size
from capacity.scenario import ScenarioError, parse_duration
from capacity.scenario.schema_check import check_schema
from capacity.scenario.yaml_source import YamlDoc, parse_yaml, read_yaml

Metric = Literal[
    "rate",
    "burst_rate",
    "p99_latency",
    "trades_rate",
    "concurrent_users",
    "cpu_utilization",
    "cpu_cores",
    "memory",
    "memory_per_1k_rate",
    "memory_per_10k_resting",
    "memory_baseline",
    "per_core_rate",
    "scaling_efficiency",
    "cpu_saturation_rate",
    "memory_exhaustion_rate",
    "latency_degradation_rate",
    "recommended_max",
    "daily_orders",
    "error_rate",
    "other",
]
Op = Literal["<=", ">=", "<", ">", "≈"]
Held = Literal["sustained", "peak", "burst"]

_RATES: tuple[Dimension, ...] = ("rate",)
#: The dimension each metric is measured in: a claim's unit must be one of them.
METRIC_DIMENSIONS: dict[str, tuple[Dimension, ...]] = {
    **dict.fromkeys(
        (
            "rate",
            "burst_rate",
            "per_core_rate",
            "cpu_saturation_rate",
            "memory_exhaustion_rate",
            "latency_degradation_rate",
            "recommended_max",
        ),
        _RATES,
    ),
    "p99_latency": ("time",),
    "trades_rate": ("trade_rate",),
    "concurrent_users": ("count",),
    "daily_orders": ("count",),
    **dict.fromkeys(("cpu_utilization", "scaling_efficiency", "error_rate"), ("fraction",)),
    "cpu_cores": ("cores",),
    **dict.fromkeys(
        ("memory", "memory_per_1k_rate", "memory_per_10k_resting", "memory_baseline"), ("bytes",)
    ),
    "other": get_args(Dimension),
}
DEFAULT_TOLERANCE = 0.1  # ≈ against a measurement: within 10 % unless the claim says otherwise
FORMULA_TOLERANCE = 0.02  # a document's arithmetic agrees with itself within 2 % (its own rounding)


class ClaimsError(ScenarioError):
    """A claims file that cannot be audited; ``problems`` lists every problem (file:line: field: what)."""


@dataclass(frozen=True)
class Conditions:
    """What a claim holds under. Rates in orders/s, memory in bytes, durations in seconds."""

    cores: float
    memory_bytes: int
    rate: float | None = None
    users: int | None = None
    p99_ms: float | None = None
    duration_s: float | None = None
    tier: str | None = None


@dataclass(frozen=True)
class Claim:
    """One claim. ``value`` is in ``unit``; ``line`` is where it starts in the claims file."""

    id: str
    section: str
    quote: str
    metric: Metric
    op: Op
    value: float
    unit: Unit
    at: Conditions
    tolerance: float = DEFAULT_TOLERANCE  # for ≈ against a measurement; formulas use FORMULA_TOLERANCE
    held: Held = "sustained"
    formula: str | None = None
    what: str | None = None
    table: tuple[str, str] | None = None  # (row, column) in the rewritten summary table
    line: int | None = None


@dataclass(frozen=True)
class ClaimsFile:
    """A whole claims file: the document, the machine it describes, its claims in file order."""

    path: str
    document: str
    source: str | None
    cores: float
    memory_bytes: int
    claims: tuple[Claim, ...]

    def claim(self, claim_id: str) -> Claim:
        return next(claim for claim in self.claims if claim.id == claim_id)


def load_claims(path: str | os.PathLike[str]) -> ClaimsFile:
    """Read and check a claims file. Raises ClaimsError with every problem found (never anything else)."""
    try:
        doc = parse_yaml(read_yaml(path), str(path))
        check_schema(doc, "claims")
        claims = _build(doc)
        doc.raise_if_any()
    except ClaimsError:
        raise
    except ScenarioError as error:
        raise ClaimsError(error.problems) from None
    return claims


def _build(doc: YamlDoc) -> ClaimsFile:
    data = doc.data
    hardware = data["hardware"]
    cores = float(hardware["cores"])
    memory = parse_size(hardware["memory"])
    claims: list[Claim] = []
    seen: set[str] = set()
    for index, raw in enumerate(data["claims"]):
        path = ("claims", index)
        if raw["id"] in seen:
            doc.add((*path, "id"), f"{raw['id']!r} is used by an earlier claim; ids name one claim each")
        seen.add(raw["id"])
        claims.append(_claim(doc, path, raw, cores, memory))
    ids = {claim.id for claim in claims}
    for index, claim in enumerate(claims):
        _check_formula(doc, ("claims", index, "formula"), claim, ids)
    return ClaimsFile(
        path=doc.source,
        document=data["document"],
        source=data.get("source"),
        cores=cores,
        memory_bytes=memory,
        claims=tuple(claims),
    )


def _claim(
    doc: YamlDoc, path: tuple[str | int, ...], raw: dict[str, Any], cores: float, memory: int
) -> Claim:
    unit = unit_of(raw["unit"])
    assert unit is not None  # the schema lists the units
    allowed = METRIC_DIMENSIONS[raw["metric"]]
    if unit.dimension not in allowed:
        doc.add(
            (*path, "unit"),
            f"{raw['unit']!r} measures {unit.dimension}; metric {raw['metric']} is a {' or '.join(allowed)}",
        )
    at = raw.get("at") or {}
    duration = at.get("duration")
    table = raw.get("table")
    return Claim(
        id=raw["id"],
        section=raw["source"]["section"],
        quote=raw["source"]["quote"],
        metric=raw["metric"],
        op=raw["op"],
        value=float(raw["value"]),
        unit=unit,
        at=Conditions(
            cores=float(at.get("cores", cores)),
            memory_bytes=parse_size(at["memory"]) if "memory" in at else memory,
            rate=_optional(at.get("rate")),
            users=at.get("users"),
            p99_ms=_optional(at.get("p99_ms")),
            duration_s=None if duration is None else _seconds(doc, (*path, "at", "duration"), duration),
            tier=at.get("tier"),
        ),
        tolerance=float(raw.get("tolerance", DEFAULT_TOLERANCE)),
        held=raw.get("held", "sustained"),
        formula=raw.get("formula"),
        what=raw.get("what"),
        table=(table["row"], table["column"]) if table else None,
        line=doc.line_of(path),
    )


def _optional(value: float | None) -> float | None:
    return None if value is None else float(value)


def _seconds(doc: YamlDoc, path: tuple[str | int, ...], value: float | str) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    try:
        return parse_duration(value)
    except ValueError:
        doc.add(path, f'expected a duration (e.g. 30, "30s", "2m"), got {value!r}')
        return None


def _check_formula(doc: YamlDoc, path: tuple[str | int, ...], claim: Claim, ids: set[str]) -> None:
    if claim.formula is None:
        return
    try:
        expression: ast.expr = parse_formula(claim.formula)
    except FormulaError as error:
        doc.add(path, str(error))
        return
    for name in names_in(expression):
        if name == claim.id:
            doc.add(path, f"the formula of {claim.id} uses {claim.id} itself")
        elif name not in ids:
            doc.add(path, f"{name!r} is neither a claim id in this file nor a constant")
