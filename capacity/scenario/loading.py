"""Building the model from a checked document: the rules a schema cannot express (the mix sums to 100, a
ramp goes up, a sweep tier's file exists), and the public ``load_*`` functions that run every pass."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from capacity.scenario.model import (
    MAX_DURATION_S,
    MIN_DURATION_S,
    Load,
    Mix,
    RampUp,
    Scenario,
    ScenarioError,
    Slo,
    Stage,
    Sweep,
    Tier,
    format_duration,
    parse_duration,
    plain_number,
    shown,
)
from capacity.scenario.schema_check import check_schema
from capacity.scenario.yaml_source import FieldPath, YamlDoc, parse_yaml, read_yaml

#: The seed document's scalability matrix, Idle -> Overload, each tier with its SLO (README: the seed).
SEED_MATRIX = Path(__file__).resolve().parents[2] / "scenarios" / "sweeps" / "full.yaml"


def _is_sweep(data: Any) -> bool:
    return isinstance(data, Mapping) and "tiers" in data


# ---------------------------------------------------------------------------------------------- building


def _seconds(doc: YamlDoc, path: FieldPath, value: Any, minimum: float = MIN_DURATION_S) -> float:
    """A schema-valid duration in seconds; outside [``minimum``, ``MAX_DURATION_S``] is a problem."""
    seconds = parse_duration(value)
    if seconds < minimum or seconds > MAX_DURATION_S:
        least = f"at least {format_duration(minimum)}" if minimum > 0 else "0s or more"
        doc.add(
            path,
            f"expected a duration of {least} and at most {format_duration(MAX_DURATION_S)}, "
            f"got {shown(value)}",
        )
    return seconds


def _build_ramp(doc: YamlDoc, raw: Mapping[str, Any] | None) -> RampUp | None:
    if raw is None or raw.get("enabled", True) is False:
        return None
    path: FieldPath = ("load", "ramp_up")
    start = float(raw.get("start_percent", RampUp.start_percent))
    end = float(raw.get("end_percent", RampUp.end_percent))
    if start > end:
        doc.add(
            (*path, "start_percent"),
            f"expected at most end_percent ({plain_number(end)}), got {plain_number(start)}",
        )
    return RampUp(_seconds(doc, (*path, "duration"), raw["duration"]), start, end)


def _build_stages(doc: YamlDoc, raw: Sequence[Mapping[str, Any]], default_users: int) -> tuple[Stage, ...]:
    return tuple(
        Stage(
            _seconds(doc, ("stages", i, "duration"), item["duration"]),
            float(item["orders_per_second"]),
            int(item.get("concurrent_users", default_users)),
        )
        for i, item in enumerate(raw)
    )


def _build_recovery(doc: YamlDoc, raw: Mapping[str, Any] | None, default_users: int) -> Stage | None:
    """The light-rate phase after the load, or None when the file has none."""
    if raw is None:
        return None
    return Stage(
        _seconds(doc, ("recovery", "duration"), raw["duration"]),
        float(raw["orders_per_second"]),
        int(raw.get("concurrent_users", default_users)),
    )


def _build_load(doc: YamlDoc, raw: Mapping[str, Any], stages: tuple[Stage, ...]) -> Load:
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


def _build_mix(doc: YamlDoc, raw: Mapping[str, Any] | None) -> Mix:
    if raw is None:
        return Mix()
    numbers: dict[str, Any] = {k: (int(v) if k == "price_offset_ticks" else float(v)) for k, v in raw.items()}
    mix = Mix(**numbers)
    parts = {"limit": mix.limit, "market": mix.market, "cancel": mix.cancel, "book": mix.book}
    total = sum(parts.values())
    if not math.isclose(total, 100.0, abs_tol=1e-6):
        terms = " + ".join(f"{k} {plain_number(v)}" for k, v in parts.items())
        doc.add(
            ("mix",), f"percentages must sum to 100, got {plain_number(round(total, 6))} ({terms})", key=True
        )
    if mix.cancel > 0 and mix.limit == 0:
        doc.add(("mix", "cancel"), "cancels need resting orders: expected limit > 0 when cancel > 0")
    return mix


def _build_scenario(doc: YamlDoc) -> Scenario:
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
        recovery=_build_recovery(doc, data.get("recovery"), users),
    )
    doc.raise_if_any()
    return scenario


def slo_for_rate(matrix: Sweep, rate: float) -> Slo:
    """The SLO of ``matrix``'s tier for ``rate``: the first tier, by peak rate, whose rate is at least
    ``rate``; past the last, the last one's."""
    tiers = sorted(matrix.tiers, key=lambda tier: tier.scenario.load.orders_per_second)
    chosen = next((t for t in tiers if t.scenario.load.orders_per_second >= rate), tiers[-1])
    return chosen.scenario.slo


def _peak_rate(data: Mapping[str, Any]) -> float | None:
    """The scenario's peak rate from unchecked data, or None where it is not a number yet (the schema
    check then says what is wrong)."""
    stages = data.get("stages")
    load = data.get("load")
    if isinstance(stages, list) and stages:
        rates = [stage.get("orders_per_second") for stage in stages if isinstance(stage, Mapping)]
    else:
        rates = [load.get("orders_per_second")] if isinstance(load, Mapping) else []
    numbers = [
        float(rate)
        for rate in rates
        if isinstance(rate, int | float) and not isinstance(rate, bool) and math.isfinite(rate)
    ]
    return max(numbers) if numbers else None


def _fill_slo(doc: YamlDoc, matrix: Sweep) -> None:
    """Give a scenario without an ``slo``, or with one of its two limits, the rest from ``matrix``."""
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("slo") or {}, Mapping):
        return
    rate = _peak_rate(data)
    if rate is None:
        return
    tier = slo_for_rate(matrix, rate)
    data["slo"] = {"p99_ms": tier.p99_ms, "error_rate": tier.error_rate, **(data.get("slo") or {})}


def _scenario_from_doc(doc: YamlDoc, slo_matrix: Sweep | None = None) -> Scenario:
    if _is_sweep(doc.data):
        doc.add(("tiers",), "this is a sweep (it has tiers); expected a scenario", key=True)
        doc.raise_if_any()
    if slo_matrix is not None:
        _fill_slo(doc, slo_matrix)
    check_schema(doc, "scenario")
    return _build_scenario(doc)


def _tier_value(doc: YamlDoc, index: int, key: str) -> tuple[Any, FieldPath]:
    """A tier's override for ``key`` (falling back to the sweep's defaults) and where it was written."""
    tier = doc.data["tiers"][index]
    if key in tier:
        return tier[key], ("tiers", index, key)
    return doc.data.get("defaults", {}).get(key), ("defaults", key)


def _build_tier(doc: YamlDoc, index: int, base_dir: Path) -> Tier | None:
    """The tier's scenario with overrides applied, or None (with problems added) if it cannot be loaded."""
    raw = doc.data["tiers"][index]
    here: FieldPath = ("tiers", index, "scenario")
    path = os.path.normpath(base_dir / raw["scenario"])
    if not Path(path).is_file():
        doc.add(here, f"scenario file not found: {raw['scenario']} (looked for {path})")
        return None
    try:
        target = parse_yaml(read_yaml(path), path)
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
    if seconds is not None and not MIN_DURATION_S <= seconds <= MAX_DURATION_S:
        seconds = None  # reported by _seconds; keep the scenario's own
    scenario = scenario.with_overrides(
        duration_s=seconds,
        orders_per_second=raw.get("orders_per_second"),
        concurrent_users=_tier_value(doc, index, "concurrent_users")[0],
        target_symbols=_tier_value(doc, index, "symbols")[0],
    )
    return Tier(raw.get("name", scenario.name), scenario, path)


def _build_sweep(doc: YamlDoc, base_dir: Path) -> Sweep:
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
    cooldown = _seconds(doc, ("cooldown",), doc.data.get("cooldown", 0), minimum=0.0)
    doc.raise_if_any()
    return Sweep(doc.data["name"], doc.data.get("description", ""), tuple(tiers), cooldown)


def _sweep_from_doc(doc: YamlDoc, base_dir: Path) -> Sweep:
    check_schema(doc, "sweep")
    return _build_sweep(doc, base_dir)


# ---------------------------------------------------------------------------------------------- public API


def load_scenario_text(text: str, source_name: str = "<string>") -> Scenario:
    """Parse and validate scenario YAML; problems are reported against ``source_name``."""
    return _scenario_from_doc(parse_yaml(text, source_name))


def load_scenario(path: str | os.PathLike[str], slo_matrix: Sweep | None = None) -> Scenario:
    """Load and validate a scenario file. Raises ScenarioError (never anything else for bad input).
    With ``slo_matrix``, SLO limits the file leaves out come from its tier for the scenario's rate."""
    return _scenario_from_doc(parse_yaml(read_yaml(path), str(path)), slo_matrix)


def scenario_from_mapping(
    data: Mapping[str, Any], source_name: str = "<mapping>", slo_matrix: Sweep | None = None
) -> Scenario:
    """Validate an already-parsed mapping (e.g. a JSON request body or ``Scenario.to_dict()``); no lines.
    ``slo_matrix`` as for ``load_scenario``."""
    # a JSON round trip turns tuples into lists, which is what the schema's "array" means
    return _scenario_from_doc(YamlDoc(source_name, json.loads(json.dumps(data, default=str))), slo_matrix)


def load_sweep_text(
    text: str, source_name: str = "<string>", base_dir: str | os.PathLike[str] = "."
) -> Sweep:
    """Parse and validate sweep YAML; tier paths are resolved against ``base_dir``."""
    return _sweep_from_doc(parse_yaml(text, source_name), Path(base_dir))


def load_sweep(path: str | os.PathLike[str]) -> Sweep:
    """Load a sweep file and every scenario it refers to (paths relative to the sweep file)."""
    return load_sweep_text(read_yaml(path), str(path), Path(path).parent)


def load_document(path: str | os.PathLike[str]) -> Scenario | Sweep:
    """Load a scenario or a sweep, deciding by content: a top-level ``tiers`` key means sweep."""
    doc = parse_yaml(read_yaml(path), str(path))
    if _is_sweep(doc.data):
        return _sweep_from_doc(doc, Path(path).parent)
    return _scenario_from_doc(doc)
