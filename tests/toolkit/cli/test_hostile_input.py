"""Issue 22: hostile or damaged files end in one clear line and exit 2, within a second, never a traceback.

YAML (scenarios, sweeps, gate thresholds) is bounded by ``capacity.input_limits``: a regular file of at
most 1 MB, nesting and alias expansion counted on the parser's events before anything is built. JSON
(run.json, sweep.json, baselines) by ``capacity.jsonfile``: size, depth, and no NaN or Infinity.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import support
from click.testing import Result
from support import invoke_capacity

from capacity.input_limits import MAX_DEPTH, MAX_YAML_BYTES, MAX_YAML_NODES, check_yaml_structure

FIXTURE = support.FIXTURES / "sweep-small"
GOOD = """\
name: good
load: {orders_per_second: 100, concurrent_users: 10, symbols: [BTCUSD], duration: 30s}
slo: {p99_ms: 20, error_rate: 0.01}
"""


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def refused(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# ---------------------------------------------------------------------------------------------- YAML


@pytest.mark.timeout(10)
def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs())
    refused(invoke_capacity("validate", path), f"{path}:", "expands to more than 100,000 values")


def test_ordinary_aliases_still_work() -> None:
    check_yaml_structure("base: &b {p99_ms: 20}\none: *b\ntwo: *b\n")


def test_expansion_is_counted_as_a_loader_would_build_it() -> None:
    with pytest.raises(ValueError, match="expands to more than"):
        check_yaml_structure(billion_laughs(levels=5))  # 9^6 values, though only 45 aliases
    check_yaml_structure(billion_laughs(levels=3))  # 9^4 = 6,561 values: fine
    assert 9**6 > MAX_YAML_NODES > 9**4


def test_deep_nesting_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(GOOD + "description: " + "[" * 500 + "]" * 500 + "\n")
    refused(invoke_capacity("validate", path), f"{path}:4: nested deeper than {MAX_DEPTH} levels")


@pytest.mark.timeout(10)
def test_a_device_a_fifo_and_a_directory_are_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    for path in (Path("/dev/zero"), fifo):
        refused(invoke_capacity("validate", path), f"{path}: not a regular file")
    refused(invoke_capacity("validate", tmp_path), f"{tmp_path}: is a directory")


def test_a_file_past_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(GOOD + "# " + "x" * MAX_YAML_BYTES + "\n")
    refused(invoke_capacity("validate", path), f"{path}: larger than the 1,000,000-byte limit")


def test_gate_thresholds_are_bounded_too(tmp_path: Path) -> None:
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text(billion_laughs())
    result = invoke_capacity(
        "gate", "-b", str(tmp_path / "b.json"), str(FIXTURE), "--thresholds", str(thresholds)
    )
    refused(result, f"{thresholds}:", "expands to more than")


# ---------------------------------------------------------------------------------------------- JSON


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "sweep")
    return tmp_path / "sweep"


def _tier_run(sweep: Path) -> Path:
    return sorted(sweep.glob("tiers/*/run.json"))[0]


def test_deeply_nested_run_json_is_refused_by_fit_report_and_gate(sweep: Path, tmp_path: Path) -> None:
    run_json = _tier_run(sweep)
    run_json.write_text("[" * 100_000 + "]" * 100_000)
    message = f"{run_json}: nested deeper than 64 levels"
    refused(invoke_capacity("fit", str(sweep)), message)
    refused(invoke_capacity("report", str(sweep), "-o", str(tmp_path / "report")), message)
    refused(invoke_capacity("baseline", "update", str(sweep), "-o", str(tmp_path / "b.json")), message)


def test_a_nan_in_a_baseline_is_refused_not_a_pass(sweep: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    made = invoke_capacity("baseline", "update", str(sweep), "-o", str(baseline), "--allow-unusable")
    assert made.exit_code == 0, made.output
    data = json.loads(baseline.read_text())
    data["tiers"][0]["metrics"]["cpu_per_order"]["value"] = float("nan")
    baseline.write_text(json.dumps(data, indent=1))  # Python writes NaN as a bare NaN token
    refused(
        invoke_capacity("gate", "-b", str(baseline), str(sweep)), f"{baseline}: not valid JSON (line", "NaN"
    )


def test_a_nan_achieved_rate_never_reaches_matplotlib(sweep: Path, tmp_path: Path) -> None:
    run_json = _tier_run(sweep)
    run_json.write_text(run_json.read_text().replace('"achieved_rate": 20.0', '"achieved_rate": NaN', 1))
    refused(invoke_capacity("report", str(sweep), "-o", str(tmp_path / "report")), f"{run_json}:", "NaN")


def test_a_half_written_tier_is_listed_not_skipped(sweep: Path) -> None:
    record = json.loads((sweep / "sweep.json").read_text())
    tier = record["tiers"][-1]
    tier["status"] = "interrupted"  # the sweep stopped while this tier's run.json was being written
    (sweep / "sweep.json").write_text(json.dumps(record))
    run_json = sweep / tier["run_dir"] / "run.json"
    run_json.write_text(run_json.read_text()[:500])
    result = invoke_capacity("fit", str(sweep))
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert f"not fitted: tier {tier['name']} (interrupted; no readable run: {run_json}: not valid JSON" in out


def test_two_tiers_of_one_name_in_sweep_json_are_refused(sweep: Path) -> None:
    record = json.loads((sweep / "sweep.json").read_text())
    record["tiers"][1]["name"] = record["tiers"][0]["name"]
    (sweep / "sweep.json").write_text(json.dumps(record))
    name = record["tiers"][0]["name"]
    refused(invoke_capacity("fit", str(sweep)), f'tier names must be unique, got "{name}" twice or more')
