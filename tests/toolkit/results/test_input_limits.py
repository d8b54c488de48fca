"""Issue 22: every number a user writes is finite and inside a documented range (docs/limits.md).

NaN and infinity used to pass `capacity validate` (JSON Schema's bounds compare false with NaN), a
``.inf`` rate made Locust loop after the schedule ended, 1e12 filled memory, and ``p99_ms: .nan`` made
the SLO pass. Each case now ends in ``file:line: field: problem`` and exit 2 before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import invoke_capacity

from capacity.scenario import (
    MAX_DURATION_S,
    MAX_P99_MS,
    MAX_RATE,
    MAX_USERS,
    ScenarioError,
    load_scenario_text,
    load_schema,
)

GOOD = """\
name: good
load: {orders_per_second: 100, concurrent_users: 10, symbols: [BTCUSD], duration: 30s}
slo: {p99_ms: 20, error_rate: 0.01}
"""


def _bounds(schema: Any, key: str, found: list[Any]) -> list[Any]:
    """Every ``maximum`` the schema gives a property named ``key`` (or a duration's number)."""
    if isinstance(schema, dict):
        for name, sub in schema.items():
            if name == key and isinstance(sub, dict):
                found.append(sub.get("maximum"))
            _bounds(sub, key, found)
    elif isinstance(schema, list):
        for sub in schema:
            _bounds(sub, key, found)
    return found


@pytest.mark.parametrize("kind", ["scenario", "sweep"])
def test_the_schemas_carry_the_same_limits_as_the_code(kind: str) -> None:
    schema = load_schema(kind)
    rates = _bounds(schema, "orders_per_second", [])
    users = _bounds(schema, "concurrent_users", [])
    assert rates and set(rates) == {MAX_RATE}
    assert users and set(users) == {MAX_USERS}
    duration = schema["$defs"]["duration"]["anyOf"][0]
    assert duration["maximum"] == MAX_DURATION_S
    if kind == "scenario":
        assert _bounds(schema, "p99_ms", []) == [MAX_P99_MS]


RATE, USERS, DURATION = "orders_per_second: 100", "concurrent_users: 10", "duration: 30s"
FINITE = "expected a finite number, got"
DAY = "expected a duration of at least 1s and at most 24h"
LOAD_RATE, LOAD_USERS = "load.orders_per_second:", "load.concurrent_users:"


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        (RATE, "orders_per_second: .inf", 2, f"load.orders_per_second: {FINITE} .inf"),
        (RATE, "orders_per_second: .nan", 2, f"load.orders_per_second: {FINITE} .nan"),
        (RATE, "orders_per_second: 1000000000000", 2, f"{LOAD_RATE} expected a number > 0 and <= 100000"),
        (USERS, "concurrent_users: 100000000", 2, f"{LOAD_USERS} expected an integer >= 1 and <= 100000"),
        ("p99_ms: 20", "p99_ms: .nan", 3, f"slo.p99_ms: {FINITE} .nan"),
        ("error_rate: 0.01", "error_rate: -.inf", 3, f"slo.error_rate: {FINITE} -.inf"),
        (DURATION, "duration: .inf", 2, f"load.duration: {FINITE} .inf"),
        (DURATION, "duration: 1000h", 2, f"load.duration: {DAY}"),
        (DURATION, "duration: 500ms", 2, f"load.duration: {DAY}"),
    ],
)
def test_validate_refuses_numbers_that_are_not_numbers_or_out_of_range(
    tmp_path: Path, old: str, new: str, line: int, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace(old, new))
    result = invoke_capacity("validate", path)
    assert result.exit_code == 2, result.output
    assert f"{path}:{line}: {message}" in result.stderr
    assert "Traceback" not in result.output


def test_a_sweep_tier_duration_out_of_range_names_the_tier(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "name: s\ntiers:\n  - {scenario: good.yaml, duration: 2000h}\n"
        "  - {scenario: good.yaml, name: two, orders_per_second: .nan}\n"
    )
    result = invoke_capacity("validate", sweep)
    assert result.exit_code == 2, result.output
    assert f"{sweep}:4: tiers[1].orders_per_second: expected a finite number, got .nan" in result.stderr


def test_a_tier_duration_past_a_day_is_refused_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("name: s\ntiers:\n  - {scenario: good.yaml, duration: 2000h}\n")
    result = invoke_capacity("validate", sweep)
    assert result.exit_code == 2, result.output
    assert f"{sweep}:3: tiers[0].duration: {DAY}" in result.stderr


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--rate", "1e12", "--rate '1e12': expected at most 100,000"),
        ("--rate", "nan", "--rate 'nan': expected a number > 0"),
        ("--users", "100000000", "--users '100000000': expected at most 100,000"),
        ("--duration", "1000h", "--duration '1000h': expected at least 1s and at most 24h"),
        ("--duration", "0.2s", "--duration '0.2s': expected at least 1s and at most 24h"),
    ],
)
def test_run_refuses_out_of_range_overrides_before_anything_starts(
    tmp_path: Path, flag: str, value: str, message: str
) -> None:
    scenario = tmp_path / "good.yaml"
    scenario.write_text(GOOD)
    result = invoke_capacity("run", str(scenario), flag, value, "--output-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing ran, nothing was written


def test_overrides_from_code_are_held_to_the_same_limits() -> None:
    scenario = load_scenario_text(GOOD)
    for kwargs in ({"orders_per_second": 1e12}, {"duration_s": 1e9}, {"concurrent_users": 10**9}):
        with pytest.raises(ScenarioError, match="expected at most"):
            scenario.with_overrides(**kwargs)  # type: ignore[arg-type]
    assert scenario.with_overrides(orders_per_second=MAX_RATE).load.orders_per_second == MAX_RATE
