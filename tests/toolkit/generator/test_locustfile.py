"""capacity/generator/locustfile.py without load: the LoadTestShape's arithmetic and the option errors.

Importing Locust monkey-patches the whole process with gevent, so everything that imports the locustfile
runs in a subprocess, never in the pytest process itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import support

ROOT = support.REPO_ROOT
LOCUST = Path(sys.executable).parent / "locust"
LOCUSTFILE = ROOT / "capacity" / "generator" / "locustfile.py"

RAMPED = """\
name: ramped
load: {orders_per_second: 1000, concurrent_users: 100, symbols: [BTCUSD], duration: 60s,
       ramp_up: {duration: 30s, start_percent: 20, end_percent: 100}}
slo: {p99_ms: 50, error_rate: 0.01}
"""
STAGED = """\
name: staged
load: {concurrent_users: 10, symbols: [BTCUSD]}
stages:
  - {duration: 5s, orders_per_second: 50, concurrent_users: 5}
  - {duration: 5s, orders_per_second: 400, concurrent_users: 10}
slo: {p99_ms: 50, error_rate: 0.01}
"""

RECOVERING = """\
name: recovering
load: {orders_per_second: 400, concurrent_users: 10, symbols: [BTCUSD], duration: 5s}
recovery: {duration: 5s, orders_per_second: 50, concurrent_users: 5}
slo: {p99_ms: 50, error_rate: 0.01}
"""

# Drives ScenarioShape.tick() with a stubbed clock and prints what it returned, as JSON.
SHAPE_SCRIPT = """
import json, sys
from capacity.generator.locustfile import DRAIN_S, ScenarioShape
from capacity.scenario import load_scenario_text

cases = json.loads(sys.argv[1])
out = {"drain_s": DRAIN_S}
for name, case in cases.items():
    shape = ScenarioShape(load_scenario_text(case["yaml"]))
    ticks = []
    for t in case["times"]:
        shape.get_run_time = lambda t=t: t
        ticks.append([t, shape.tick(), shape.scenario.offered_rate_at(t)])
    out[name] = ticks
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def shape_ticks() -> dict:
    cases = {
        "ramped": {"yaml": RAMPED, "times": [0, 15, 30, 59.9, 60.5, 61, 70]},
        "staged": {"yaml": STAGED, "times": [0, 1, 4.9, 5, 9.9, 10.5, 11, 20]},
        "recovering": {"yaml": RECOVERING, "times": [0, 4.9, 5, 9.9, 11, 20]},
    }
    result = subprocess.run(
        [sys.executable, "-c", SHAPE_SCRIPT, json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_ramp_20_to_100_percent_over_30s(shape_ticks: dict) -> None:
    ticks = {t: (tick, rate) for t, tick, rate in shape_ticks["ramped"]}
    assert ticks[0] == ([20, 20.0], 200.0)  # 20 %: 20 users offering 200/s, all spawned within a second
    assert ticks[15][0][0] == 60 and ticks[15][1] == pytest.approx(600.0)
    assert ticks[30][0][0] == 100 and ticks[30][1] == pytest.approx(1000.0)
    assert ticks[59.9][0][0] == 100
    assert ticks[60.5][0][0] == 100  # draining: no new sends, in-flight responses still counted
    assert ticks[61][0] is None and ticks[70][0] is None  # the end (after the drain): stop


def test_stages_then_none_after_the_end(shape_ticks: dict) -> None:
    drain = shape_ticks["drain_s"]
    ticks = {t: tick for t, tick, _rate in shape_ticks["staged"]}
    assert ticks[0] == [5, 5.0]
    assert ticks[1] == ticks[4.9] == [5, 5.0]  # unchanged: the same tuple, so Locust does not re-dispatch
    assert ticks[5] == [10, 5.0] and ticks[9.9] == [10, 5.0]  # 5 more users, within a second
    assert ticks[10.5] == ([10, 5.0] if drain > 0.5 else None)
    assert ticks[11] is None and ticks[20] is None


def test_the_shape_follows_the_load_then_its_recovery_phase(shape_ticks: dict) -> None:
    ticks = {t: (tick, rate) for t, tick, rate in shape_ticks["recovering"]}
    assert ticks[0] == ([10, 10.0], 400.0) and ticks[4.9] == ([10, 10.0], 400.0)
    assert ticks[5] == ([5, 5.0], 50.0) and ticks[9.9] == ([5, 5.0], 50.0)  # the light rate, then the end
    assert ticks[11][0] is None and ticks[20][0] is None


def run_locust(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LOCUST), "-f", str(LOCUSTFILE), "--headless", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_missing_scenario_exits_2_with_a_message() -> None:
    result = run_locust()
    assert result.returncode == 2, result.stderr
    assert "--scenario: required" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_scenario_prints_problems_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nload: {orders_per_second: fast, concurrent_users: 10, symbols: [BTCUSD], duraton: 5s}\n"
        "slo: {p99_ms: 50, error_rate: 0.01}\n"
    )
    result = run_locust("--scenario", str(bad))
    assert result.returncode == 2
    assert f"{bad}:2: load.orders_per_second" in result.stderr
    assert 'unknown field "duraton"' in result.stderr
    assert "Traceback" not in result.stderr
    missing = run_locust("--scenario", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr and "Traceback" not in missing.stderr


# The start form's defaults and Locust's spawn-rate warning, with Locust's own option objects.
FORM_SCRIPT = """
import argparse, json, logging, sys
from capacity.generator.locustfile import CommonOptions, QuietSpawnRate, prefill_start_form
from locust.util.timespan import parse_timespan
from capacity.scenario import load_scenario_text

scenario = load_scenario_text(sys.argv[1])
out = {}
for name, given in (("nothing given", {}), ("-u 7 given", {"num_users": 7})):
    options = argparse.Namespace(run_time=None, num_users=None, spawn_rate=None, **{})
    vars(options).update(given)
    prefill_start_form(options, scenario)
    shown = [options.run_time, options.num_users, options.spawn_rate]
    options.run_time = parse_timespan(options.run_time)  # what Locust's /swarm makes of the field
    CommonOptions.keep(options)  # submitted as shown: no override
    as_shown = CommonOptions.of(options)
    options.run_time, options.num_users = 30, 40  # the user typed 30 s and 40 users
    CommonOptions.keep(options)
    out[name] = {"shown": shown, "as_shown": list(vars(as_shown).values()),
                 "typed": list(vars(CommonOptions.of(options)).values())}
record = logging.LogRecord("locust.runners", logging.WARNING, "", 0,
                           "Your selected spawn rate is very high (>100), and ...", None, None)
other = logging.LogRecord("locust.runners", logging.WARNING, "", 0, "something else", None, None)
out["filter"] = [QuietSpawnRate().filter(record), QuietSpawnRate().filter(other)]
print(json.dumps(out))
"""


def test_the_start_form_shows_the_scenario_and_left_alone_overrides_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "-c", FORM_SCRIPT, RAMPED], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["nothing given"]["shown"] == ["60s", 100, 100]  # the scenario's length and peak users
    assert out["nothing given"]["as_shown"] == [None, None, None]  # left as shown: the scenario as it is
    assert out["nothing given"]["typed"] == [30, 40, None]  # typed: -t and -u as documented
    assert out["-u 7 given"]["shown"] == ["60s", 7, 100]  # the command line's -u stays the user's
    assert out["-u 7 given"]["as_shown"] == [None, 7, None]
    assert out["filter"] == [False, True]  # only Locust's spawn-rate warning is dropped
