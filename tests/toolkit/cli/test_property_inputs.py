"""Issue 22: random and extreme values in every field of a scenario and of a run.json, one rule each.

- A scenario field gets NaN, infinities, zero, negatives, huge numbers, strings, lists, None or booleans:
  loading either raises ScenarioError (the CLI's exit 2 with ``file:line: field: problem``) or builds a
  Scenario whose every number is finite and inside docs/limits.md's ranges. Nothing else: no traceback,
  no NaN that "passes".
- A run.json field gets the same: the reader either refuses it with RunFormatError (exit 2 in fit, report
  and gate) or returns a Run that the toolkit writes back to a file that reads back equal.
"""

from __future__ import annotations

import json
import math
from typing import Any

import support
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capacity.results.run_file import RunFormatError, read_run, write_run
from capacity.scenario import (
    MAX_DURATION_S,
    MAX_P99_MS,
    MAX_RATE,
    MAX_USERS,
    MIN_DURATION_S,
    ScenarioError,
    load_scenario_text,
)

BASE: dict[str, Any] = {
    "name": "prop",
    "load": {
        "orders_per_second": 100,
        "concurrent_users": 10,
        "symbols": ["BTCUSD"],
        "duration": "30s",
        "ramp_up": {"duration": "5s", "start_percent": 20, "end_percent": 100},
    },
    "mix": {"limit": 60, "market": 10, "cancel": 20, "book": 10, "price_offset_ticks": 10},
    "slo": {"p99_ms": 20, "error_rate": 0.01},
}
SCENARIO_FIELDS = [
    ("load", "orders_per_second"),
    ("load", "concurrent_users"),
    ("load", "duration"),
    ("load", "ramp_up", "duration"),
    ("load", "ramp_up", "start_percent"),
    ("load", "ramp_up", "end_percent"),
    ("mix", "limit"),
    ("mix", "market"),
    ("mix", "price_offset_ticks"),
    ("mix", "marketable_percent"),
    ("slo", "p99_ms"),
    ("slo", "error_rate"),
]
EXTREME = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0, 0.0, -1, -1e-300, 5e-324, 1e12, 10**18, 1e308]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.text(max_size=12),
    st.sampled_from(["30s", "0s", "1000h", "500ms", "1h", "-5s", "", "nan", "inf"]),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
)
FIXTURE_TIERS = support.FIXTURES / "sweep-small" / "tiers"
RUN_JSON = next(FIXTURE_TIERS.glob("*/run.json"))


def _set(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(document))
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copy


def _finite_numbers(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite_numbers(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite_numbers(v) for v in value)
    return True


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(SCENARIO_FIELDS), value=EXTREME)
def test_a_scenario_field_is_refused_or_within_its_limits(field: tuple[str, ...], value: Any) -> None:
    text = yaml.safe_dump(_set(BASE, field, value), sort_keys=False)  # NaN and inf as .nan and .inf
    try:
        scenario = load_scenario_text(text, "prop.yaml")
    except ScenarioError as error:
        assert error.problems and all(str(p).startswith("prop.yaml") for p in error.problems)
        return
    load = scenario.load
    assert 0 < load.orders_per_second <= MAX_RATE
    assert 1 <= load.concurrent_users <= MAX_USERS
    assert MIN_DURATION_S <= scenario.total_duration_s <= MAX_DURATION_S
    assert 0 < scenario.slo.p99_ms <= MAX_P99_MS and 0 <= scenario.slo.error_rate <= 1
    assert _finite_numbers(scenario.to_dict())


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every scalar in a JSON document."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value[:3]) for p in _leaves(v, (*path, i))]
    return [path]


RUN_DOCUMENT = json.loads(RUN_JSON.read_text())
RUN_FIELDS = _leaves(RUN_DOCUMENT)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(RUN_FIELDS), value=EXTREME)
def test_a_run_json_field_is_refused_or_reads_back_equal(
    tmp_path_factory: Any, field: tuple[Any, ...], value: Any
) -> None:
    directory = tmp_path_factory.mktemp("run")
    doctored = directory / "run.json"
    doctored.write_text(json.dumps(_set(RUN_DOCUMENT, field, value)))  # NaN written as the bare token
    try:
        run = read_run(doctored)
    except RunFormatError as error:
        assert str(error).startswith(str(doctored)), error
        return
    written = write_run(directory / "again.json", run)
    assert read_run(written) == run
