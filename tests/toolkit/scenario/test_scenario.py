"""capacity.scenario: shipped files, error messages with file:line:field, schedule arithmetic, overrides."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
import support
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from capacity.scenario import (
    SEED_MATRIX,
    Problem,
    RampUp,
    Scenario,
    ScenarioError,
    format_duration,
    load_document,
    load_scenario,
    load_scenario_text,
    load_schema,
    load_sweep,
    load_sweep_text,
    parse_duration,
    scenario_from_mapping,
    slo_for_rate,
)

ROOT = support.REPO_ROOT
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
SWEEPS = sorted((ROOT / "scenarios" / "sweeps").glob("*.yaml"))

VALID = """\
name: t
load:
  orders_per_second: 100
  concurrent_users: 10
  symbols: [BTCUSD]
  duration: 30s
mix: {limit: 70, market: 10, cancel: 15, book: 5}
slo: {p99_ms: 20, error_rate: 0.01}
"""


def problems_of(text: str, source: str = "t.yaml") -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(text, source)
    assert all(isinstance(p, Problem) for p in caught.value.problems)
    return [str(p) for p in caught.value.problems]


# ---------------------------------------------------------------------------------------------- shipped files


def test_there_is_one_file_per_seed_tier_and_demo() -> None:
    names = {path.stem for path in SCENARIOS}
    tiers = {"idle", "light", "minimum", "medium", "average", "heavy", "maximum", "burst", "overload"}
    assert tiers | {"everyday_hero", "flash_trading_event", "gauntlet"} <= names
    assert {"full", "quick", "ci_smoke"} <= {path.stem for path in SWEEPS}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenario_is_valid_and_round_trips(path: Path) -> None:
    assert path.read_text().startswith(
        "# yaml-language-server: $schema=../capacity/schemas/scenario.schema.json\n"
    )
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario_from_mapping(json.loads(json.dumps(scenario.to_dict()))) == scenario


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_shipped_sweep_is_valid(path: Path) -> None:
    assert path.read_text().startswith(
        "# yaml-language-server: $schema=../../capacity/schemas/sweep.schema.json\n"
    )
    sweep = load_sweep(path)
    assert sweep.tiers
    assert isinstance(load_document(path), type(sweep))
    json.dumps(sweep.to_dict())


@pytest.mark.parametrize(
    ("stem", "rate", "users", "p99_ms"),
    [
        ("idle", 10, 10, 5),
        ("light", 500, 100, 15),
        ("minimum", 1000, 250, 20),
        ("medium", 2500, 500, 35),
        ("average", 5000, 1000, 50),
        ("heavy", 8000, 1750, 100),
        ("maximum", 12000, 2500, 150),
        ("burst", 15000, 2500, 250),
        ("overload", 18000, 2500, 500),
    ],
)
def test_tier_files_carry_the_seed_numbers(stem: str, rate: float, users: int, p99_ms: float) -> None:
    scenario = load_scenario(ROOT / "scenarios" / f"{stem}.yaml")
    assert (scenario.load.orders_per_second, scenario.load.concurrent_users, scenario.slo.p99_ms) == (
        rate,
        users,
        p99_ms,
    )


def test_demo_configurations_match_the_seed() -> None:
    average = load_scenario(ROOT / "scenarios/average.yaml")
    assert average.load.ramp_up == RampUp(30, 20, 100)
    burst = load_scenario(ROOT / "scenarios/burst.yaml")
    assert burst.total_duration_s == 30
    flash = load_scenario(ROOT / "scenarios/flash_trading_event.yaml")
    assert (flash.total_duration_s, len(flash.load.symbols), flash.load.ramp_up) == (
        180,
        8,
        RampUp(30, 20, 100),
    )
    gauntlet = load_scenario(ROOT / "scenarios/gauntlet.yaml")
    assert [(s.duration_s, s.orders_per_second, s.concurrent_users) for s in gauntlet.stages] == [
        (60, 1000, 100),
        (120, 5000, 1000),
        (90, 12000, 2500),
    ]


def test_quick_sweep_fits_the_demo_budget() -> None:
    quick = load_sweep(ROOT / "scenarios/sweeps/quick.yaml")
    assert 5 <= len(quick.tiers) <= 7
    assert quick.total_duration_s <= 170  # leaves time for start-up within ~3 minutes
    assert all(15 <= t.scenario.load_end_s <= 25 for t in quick.tiers)
    # the overload tier keeps its recovery phase, at a light rate scaled with the tier's
    recovery = quick.tiers[-1].scenario.recovery
    assert recovery is not None and recovery.duration_s == 20
    assert recovery.orders_per_second == pytest.approx(500 * 6000 / 18000)
    # The top tier goes past this machine's limit on purpose: the demo must show a breaking point.
    rates = [t.scenario.load.orders_per_second for t in quick.tiers]
    assert rates == sorted(rates) and rates[-1] >= 4000
    smoke = load_sweep(ROOT / "scenarios/sweeps/ci_smoke.yaml")
    assert len(smoke.tiers) >= 2 and smoke.total_duration_s < 60  # CI runs it on every build
    full = load_sweep(ROOT / "scenarios/sweeps/full.yaml")
    assert [t.name for t in full.tiers][0::8] == ["idle", "overload"]


# ---------------------------------------------------------------------------------------------- schemas


def _walk_properties(schema: dict, where: str = "") -> list[str]:
    """Paths of properties that lack a description, anywhere in a schema."""
    missing = []
    for name, sub in schema.get("properties", {}).items():
        if "description" not in sub:
            missing.append(f"{where}.{name}")
        missing += _walk_properties(sub, f"{where}.{name}")
        if isinstance(sub.get("items"), dict):
            missing += _walk_properties(sub["items"], f"{where}.{name}[]")
    for name, sub in schema.get("$defs", {}).items():
        missing += _walk_properties(sub, f"$defs.{name}")
    return missing


@pytest.mark.parametrize("kind", ["scenario", "sweep"])
def test_schema_is_valid_2020_12_and_documents_every_property(kind: str) -> None:
    schema = load_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert _walk_properties(schema) == []


def test_both_schemas_agree_on_durations() -> None:
    assert load_schema("scenario")["$defs"]["duration"] == load_schema("sweep")["$defs"]["duration"]


# ---------------------------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(30, 30), (1.5, 1.5), ("30s", 30), ("2m", 120), ("1h", 3600), ("500ms", 0.5), ("1m30s", 90), ("45", 45)],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "3 min", "2x", "-5s", "s", True, -1])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(("seconds", "text"), [(150, "2m30s"), (30, "30s"), (3600, "1h"), (0.25, "250ms")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# ---------------------------------------------------------------------------------------------- messages


def test_wrong_type_names_file_line_field_and_expectation() -> None:
    text = VALID.replace("orders_per_second: 100", 'orders_per_second: "fast"')
    assert problems_of(text, "scenarios/average.yaml") == [
        'scenarios/average.yaml:3: load.orders_per_second: expected a number > 0 and <= 100000, got "fast"'
    ]


def test_unknown_key_names_the_typo_and_the_fix() -> None:
    text = VALID.replace("  duration: 30s", "  duration: 30s\n  concurent_users: 3")
    assert problems_of(text) == [
        't.yaml:7: load.concurent_users: unknown field "concurent_users" (did you mean "concurrent_users"?)'
    ]


def test_missing_required_field_points_at_its_parent() -> None:
    text = VALID.replace("  concurrent_users: 10\n", "")
    [message] = problems_of(text)
    assert message.startswith(
        "t.yaml:2: load.concurrent_users: missing required field; expected an integer >= 1"
    )
    [message] = problems_of(VALID.replace("slo: {p99_ms: 20, error_rate: 0.01}\n", ""))
    assert message.startswith("t.yaml:1: slo: missing required field")


def test_mix_must_sum_to_100() -> None:
    text = VALID.replace("cancel: 15", "cancel: 10")
    assert problems_of(text) == [
        "t.yaml:7: mix: percentages must sum to 100, got 95 (limit 70 + market 10 + cancel 10 + book 5)"
    ]


@pytest.mark.parametrize(
    ("duration", "message"),
    [
        ("3 min", 'expected a number > 0 and <= 86400 or a string like 30s, 2m, 1h, 1m30s, got "3 min"'),
        ("0s", 'expected a duration of at least 1s and at most 24h, got "0s"'),
        ("-4", "expected a number > 0 and <= 86400 or a string like 30s, 2m, 1h, 1m30s, got -4"),
    ],
)
def test_bad_duration(duration: str, message: str) -> None:
    text = VALID.replace("duration: 30s", f"duration: {duration}")
    assert problems_of(text) == [f"t.yaml:6: load.duration: {message}"]


def test_yaml_syntax_error_has_its_line() -> None:
    [message] = problems_of(VALID.replace("symbols: [BTCUSD]", "symbols: [BTCUSD\n  oops: 1"))
    assert message.startswith("t.yaml:6: YAML syntax error:")


def test_duplicate_key_is_reported() -> None:
    assert problems_of(VALID + "slo: {p99_ms: 5, error_rate: 0}\n") == [
        "t.yaml:9: slo: duplicate key (the last one would win)"
    ]


def test_empty_and_non_mapping_documents() -> None:
    assert problems_of("") == ["t.yaml: the file is empty; expected a mapping with name, load, slo"]
    [message] = problems_of("- 1\n- 2\n")
    assert message.startswith("t.yaml:1: expected a mapping")


def test_ramp_must_go_up_and_fit_in_the_run() -> None:
    text = VALID.replace(
        "duration: 30s", "duration: 30s\n  ramp_up: {duration: 40s, start_percent: 90, end_percent: 50}"
    )
    assert problems_of(text) == [
        "t.yaml:7: load.ramp_up.start_percent: expected at most end_percent (50), got 90",
        "t.yaml:7: load.ramp_up.duration: expected at most the run's duration (30s), got 40s",
    ]


def test_ramp_disabled_needs_no_duration_and_defaults_apply() -> None:
    off = load_scenario_text(VALID.replace("duration: 30s", "duration: 30s\n  ramp_up: {enabled: false}"))
    assert off.load.ramp_up is None
    on = load_scenario_text(
        VALID.replace("duration: 30s", "duration: 30s\n  ramp_up: {enabled: true, duration: 10}")
    )
    assert on.load.ramp_up == RampUp(10, 20, 100)
    [message] = problems_of(VALID.replace("duration: 30s", "duration: 30s\n  ramp_up: {enabled: true}"))
    assert message.startswith("t.yaml:7: load.ramp_up.duration: missing required field")


NOT_WITH_STAGES = "not allowed together with stages (the stages give rate and duration)"


def test_stages_exclude_load_rate_and_duration() -> None:
    text = VALID + "stages:\n  - {duration: 10s, orders_per_second: 5}\n"
    assert problems_of(text) == [
        f"t.yaml:3: load.orders_per_second: {NOT_WITH_STAGES}",
        f"t.yaml:6: load.duration: {NOT_WITH_STAGES}",
    ]


def test_every_problem_is_reported_at_once() -> None:
    text = VALID.replace("100", '"x"').replace("10\n", "0\n").replace("0.01", "2")
    assert len(problems_of(text)) == 3


def test_scenario_file_given_a_sweep_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"this is a sweep"):
        load_scenario_text("name: s\ntiers: []\n")


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario(tmp_path / "nope.yaml")


# ---------------------------------------------------------------------------------------------- sweeps


def test_sweep_tier_errors_point_into_the_sweep(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(VALID.replace("cancel: 15", "cancel: 14"))
    (tmp_path / "good.yaml").write_text(VALID)
    text = "name: s\ntiers:\n  - scenario: missing.yaml\n  - scenario: bad.yaml\n  - scenario: good.yaml\n"
    with pytest.raises(ScenarioError) as caught:
        load_sweep_text(text, "s.yaml", tmp_path)
    messages = [str(p) for p in caught.value.problems]
    assert messages[0].startswith("s.yaml:3: tiers[0].scenario: scenario file not found: missing.yaml")
    assert messages[1] == "s.yaml:4: tiers[1].scenario: bad.yaml is invalid (its problems follow)"
    assert messages[2].startswith(f"{tmp_path / 'bad.yaml'}:7: mix: percentages must sum to 100")


def test_sweep_overrides_and_defaults(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID)
    text = (
        "name: s\ncooldown: 5s\ndefaults: {duration: 8s, concurrent_users: 3}\ntiers:\n"
        "  - {scenario: a.yaml, orders_per_second: 20}\n"
        "  - {scenario: a.yaml, name: b, duration: 1m, symbols: [ETHUSD]}\n"
    )
    sweep = load_sweep_text(text, "s.yaml", tmp_path)
    first, second = (tier.scenario for tier in sweep.tiers)
    assert (first.total_duration_s, first.load.orders_per_second, first.load.concurrent_users) == (8, 20, 3)
    assert (second.total_duration_s, second.load.symbols, [t.name for t in sweep.tiers]) == (
        60,
        ("ETHUSD",),
        ["t", "b"],
    )
    assert sweep.total_duration_s == 8 + 5 + 60


def test_duplicate_tier_names_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID)
    with pytest.raises(ScenarioError, match=r"s.yaml:4: tiers\[1\]: tier name \"t\" is already used"):
        load_sweep_text("name: s\ntiers:\n  - scenario: a.yaml\n  - scenario: a.yaml\n", "s.yaml", tmp_path)


# ---------------------------------------------------------------------------------------------- arithmetic


def flash() -> Scenario:
    return load_scenario(ROOT / "scenarios/flash_trading_event.yaml")


def gauntlet() -> Scenario:
    return load_scenario(ROOT / "scenarios/gauntlet.yaml")


def test_ramp_from_2400_to_12000_over_30_seconds() -> None:
    scenario = flash()
    assert scenario.offered_rate_at(0) == pytest.approx(2400)
    assert scenario.offered_rate_at(15) == pytest.approx(7200)
    assert scenario.offered_rate_at(30) == pytest.approx(12000)
    assert scenario.offered_rate_at(179.9) == pytest.approx(12000)
    assert scenario.offered_rate_at(180) == 0 == scenario.offered_rate_at(-1)
    assert (scenario.users_at(0), scenario.users_at(15), scenario.users_at(100), scenario.users_at(180)) == (
        500,
        1500,
        2500,
        0,
    )


def test_stages_step() -> None:
    scenario = gauntlet()
    assert scenario.total_duration_s == 270
    rates = [scenario.offered_rate_at(t) for t in (0, 59.9, 60, 179.9, 180, 269.9, 270)]
    assert rates == [1000, 1000, 5000, 5000, 12000, 12000, 0]
    assert [scenario.users_at(t) for t in (0, 60, 180)] == [100, 1000, 2500]
    assert scenario.load.orders_per_second == 12000


def test_expected_orders_is_the_integral() -> None:
    assert gauntlet().expected_orders() == pytest.approx(60 * 1000 + 120 * 5000 + 90 * 12000)
    # ramp: mean of 2400 and 12000 over 30 s, then 150 s flat
    assert flash().expected_orders() == pytest.approx(7200 * 30 + 12000 * 150)
    assert flash().expected_orders(0, 15) == pytest.approx((2400 + 7200) / 2 * 15)


def test_expected_orders_matches_numeric_integration_and_windows_add_up() -> None:
    staged = gauntlet().with_overrides(duration_s=100)
    scenario = replace(staged, load=replace(staged.load, ramp_up=RampUp(25, 10, 90)))  # ramp across a step
    steps = 100_000
    width = scenario.total_duration_s / steps
    numeric = sum(scenario.offered_rate_at((i + 0.5) * width) * width for i in range(steps))
    assert scenario.expected_orders() == pytest.approx(numeric, rel=1e-4)
    windows = sum(scenario.expected_orders(t, t + 1) for t in range(math.ceil(scenario.total_duration_s)))
    assert windows == pytest.approx(scenario.expected_orders())


# ---------------------------------------------------------------------------------------------- overrides


def test_overrides_on_a_flat_scenario() -> None:
    base = flash()
    quick = base.with_overrides(
        duration_s=20, orders_per_second=300, concurrent_users=30, target_symbols=["X"]
    )
    assert (quick.total_duration_s, quick.load.orders_per_second, quick.load.concurrent_users) == (
        20,
        300,
        30,
    )
    assert quick.load.symbols == ("X",)
    # the ramp keeps its share of the run (30 of 180 s) when shortened, its length when lengthened
    assert quick.load.ramp_up.duration_s == pytest.approx(20 * 30 / 180)
    assert base.with_overrides(duration_s=600).load.ramp_up.duration_s == 30
    assert base.with_overrides() == base
    assert quick.offered_rate_at(0) == pytest.approx(60)


def test_overrides_scale_stages() -> None:
    scenario = gauntlet().with_overrides(duration_s=27, orders_per_second=1200, concurrent_users=250)
    assert [
        (s.duration_s, s.orders_per_second, s.concurrent_users) for s in scenario.stages
    ] == pytest.approx([(6, 100, 10), (12, 500, 100), (9, 1200, 250)])
    assert scenario.expected_orders() == pytest.approx(6 * 100 + 12 * 500 + 9 * 1200)


@pytest.mark.parametrize(
    "overrides",
    [{"duration_s": 0}, {"orders_per_second": -1}, {"concurrent_users": 0}, {"target_symbols": []}],
)
def test_bad_overrides_raise_scenario_error(overrides: dict) -> None:
    with pytest.raises(ScenarioError):
        flash().with_overrides(**overrides)


# ---------------------------------------------------------------------------------------------- robustness

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 20000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "30s", "0s", "fast", "1m30s", "BTCUSD"]),
)
_value = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    path=st.lists(
        st.sampled_from(["load", "mix", "slo", "ramp_up", "duration", "name", "symbols", 0]), max_size=3
    ),
    value=_value,
)
def test_any_mutation_gives_a_scenario_or_a_scenario_error(path: list, value: object) -> None:
    data = yaml.safe_load(VALID)
    data["load"]["ramp_up"] = {"duration": "5s"}
    target = data
    for part in path[:-1]:
        target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            return
    if path and isinstance(target, dict):
        target[path[-1]] = value
    try:
        load_scenario_text(yaml.safe_dump(data), "fuzz.yaml")
    except ScenarioError as exc:
        assert all(str(p).startswith("fuzz.yaml") for p in exc.problems)


# --- the seed matrix's SLO for a scenario that leaves it out (capacity run --seed-slo) ---------------------


@pytest.mark.parametrize(
    ("rate", "p99_ms", "error_rate"),
    [
        (1, 5, 0.01),
        (10, 5, 0.01),
        (11, 15, 0.01),
        (1000, 20, 0.01),
        (5000, 50, 0.01),
        (12000, 150, 0.01),
        (15001, 500, 0.05),
        (99999, 500, 0.05),
    ],
)
def test_the_seed_matrix_tier_for_a_rate(rate, p99_ms, error_rate):
    slo = slo_for_rate(load_sweep(SEED_MATRIX), rate)
    assert (slo.p99_ms, slo.error_rate) == (p99_ms, error_rate)


def test_the_matrix_fills_only_what_the_scenario_leaves_out(tmp_path):
    matrix = load_sweep(SEED_MATRIX)
    path = tmp_path / "t.yaml"
    path.write_text(VALID.split("slo:")[0].replace("orders_per_second: 100", "orders_per_second: 5000"))
    assert load_scenario(path, matrix).slo == slo_for_rate(matrix, 5000)  # the Average tier: 50 ms, 1 %
    path.write_text(path.read_text() + "slo: {p99_ms: 7}\n")
    assert (load_scenario(path, matrix).slo.p99_ms, load_scenario(path, matrix).slo.error_rate) == (7, 0.01)
    with pytest.raises(ScenarioError, match=r"slo\.error_rate: missing required field"):
        load_scenario(path)  # without the matrix, the SLO is the file's to give


def test_the_matrix_leaves_a_broken_rate_to_the_schema(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(VALID.split("slo:")[0].replace("orders_per_second: 100", "orders_per_second: fast"))
    with pytest.raises(ScenarioError, match=r"load\.orders_per_second"):
        load_scenario(path, load_sweep(SEED_MATRIX))


# ---------------------------------------------------------------------------------------------- recovery

RECOVERING = """\
name: r
load: {orders_per_second: 6000, concurrent_users: 300, symbols: [BTCUSD], duration: 20s,
       ramp_up: {duration: 4s}}
recovery: {duration: 10s, orders_per_second: 300}
slo: {p99_ms: 100, error_rate: 0.05}
"""


def test_a_recovery_phase_follows_the_load_at_its_light_rate() -> None:
    s = load_scenario_text(RECOVERING)
    assert (s.load_end_s, s.total_duration_s) == (20, 30)
    assert [step.orders_per_second for step in s.steps] == [6000, 300]
    assert s.offered_rate_at(19.9) == 6000 and s.offered_rate_at(20) == 300 and s.offered_rate_at(30) == 0
    assert s.users_at(25) == 300  # the same users, each at a slower pace: a user behind catches up
    assert s.expected_orders() == pytest.approx(0.6 * 6000 * 4 + 6000 * 16 + 300 * 10)  # ramp 20 -> 100 %
    assert s.summary() == "6000/s, 20s, then 300/s for 10s to recover"
    assert scenario_from_mapping(s.to_dict()) == s
    assert load_scenario_text(RECOVERING.replace("}\nslo", ", concurrent_users: 30}\nslo")).users_at(25) == 30


def test_overrides_shape_the_load_and_keep_the_recovery_length() -> None:
    s = load_scenario_text(RECOVERING).with_overrides(
        duration_s=10, orders_per_second=3000, concurrent_users=100
    )
    assert s.recovery is not None
    assert (s.load_end_s, s.recovery.duration_s, s.total_duration_s) == (10, 10, 20)
    assert (s.recovery.orders_per_second, s.recovery.concurrent_users) == (150, 100)


@pytest.mark.parametrize(
    ("recovery", "message"),
    [
        ("{duration: 10s}", "recovery.orders_per_second: missing required field"),
        ("{duration: 0s, orders_per_second: 5}", "recovery.duration: expected a duration"),
        ("{duration: 5s, orders_per_second: 5, rate: 3}", 'recovery.rate: unknown field "rate"'),
    ],
)
def test_a_bad_recovery_phase_is_reported_with_its_line(recovery: str, message: str) -> None:
    text = RECOVERING.replace("{duration: 10s, orders_per_second: 300}", recovery)
    with pytest.raises(ScenarioError) as error:
        load_scenario_text(text, "r.yaml")
    assert any(str(p).startswith("r.yaml:4: ") and message in str(p) for p in error.value.problems), str(
        error.value
    )
