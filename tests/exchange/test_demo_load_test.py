"""POST /demo/load-test: the seed's body starts a capacity run against the exchange itself.

Validation and the life cycle (202, progress, 409, cancel, list, shutdown, 403, 503) are checked in process
with a stand-in for ``capacity run`` (a tiny script that writes progress.json and run.json as capacity
does), so they take well under a second each; two tests start a real exchange process and real capacity
runs against it (a 4-second run to completion, and a cancelled one).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import fastjsonschema
import psutil
import pytest
from aiohttp import web
from support import with_remote

from capacity.run.exchange_process import EmbeddedExchange
from reference_exchange import load_test, load_test_request, published_schemas, schemas
from reference_exchange.admin import LOAD_TESTS
from reference_exchange.config import Settings
from reference_exchange.errors import ApiError
from reference_exchange.instruments import DEFAULT_INSTRUMENTS
from reference_exchange.openapi import build_openapi
from reference_exchange.server import create_app

SYMBOLS = tuple(instrument.symbol for instrument in DEFAULT_INSTRUMENTS)
SHOW = fastjsonschema.compile(schemas.LOAD_TEST)
LIST = fastjsonschema.compile(schemas.LOAD_TESTS)
REMOTE = "203.0.113.7"  # TEST-NET-3: never loopback

# Every /demo/load-test body in the seed, verbatim: configurations A, B, the gauntlet's three, acts 1-3.
CONFIG_A = """{
    "intensity": "medium",
    "duration": 300,
    "orders_per_second": 5000,
    "concurrent_users": 1000,
    "symbols": ["BTCUSD", "ETHUSD", "ADAUSD", "DOTUSD", "SOLUSD"]
  }"""
CONFIG_B = """{
    "intensity": "extreme",
    "duration": 180,
    "orders_per_second": 12000,
    "concurrent_users": 2500,
    "symbols": ["BTCUSD", "ETHUSD", "ADAUSD", "DOTUSD", "SOLUSD", "LINKUSD", "AVAXUSD", "MATICUSD"],
    "ramp_up": {
      "enabled": true,
      "duration": 30,
      "start_percent": 20,
      "end_percent": 100
    }
  }"""
GAUNTLET = [
    '{"intensity":"light","duration":60,"orders_per_second":1000,"concurrent_users":100}',
    '{"intensity":"medium","duration":120,"orders_per_second":5000,"concurrent_users":1000}',
    '{"intensity":"extreme","duration":90,"orders_per_second":12000,"concurrent_users":2500}',
]
ACTS = [  # sent by the seed with curl -d and no -H: Content-Type application/x-www-form-urlencoded
    """{
  "orders_per_second": 1000,
  "concurrent_users": 100,
  "duration": 120
}""",
    """{
  "orders_per_second": 5000,
  "concurrent_users": 1000,
  "duration": 180
}""",
    """{
  "orders_per_second": 12000,
  "concurrent_users": 2500,
  "duration": 180,
  "ramp_up": {"enabled": true, "duration": 30}
}""",
]
SEED_BODIES = [CONFIG_A, CONFIG_B, *GAUNTLET, *ACTS]
SMALL = {"duration": 4, "orders_per_second": 50, "concurrent_users": 10, "symbols": ["BTCUSD", "ETHUSD"]}

# A stand-in for `capacity run SCENARIO --target URL --server-pid PID --output-dir DIR --quiet`: creates the
# run directory, writes progress.json every 0.1 s for the scenario's duration (times FAKE_SPEED), then
# run.json and the --summary-json file; on SIGINT writes them marked interrupted and exits 130, as capacity
# does. Mode "stubborn"
# ignores SIGINT.
FAKE_CAPACITY = textwrap.dedent(
    """\
    import json, os, signal, sys, time
    mode, argv = sys.argv[1], sys.argv[2:]
    scenario = json.load(open(argv[argv.index("run") + 1]))
    out = argv[argv.index("--output-dir") + 1]
    run_dir = os.path.join(out, "20260101T000000-" + scenario["name"])
    os.makedirs(os.path.join(run_dir, "loadgen"))
    duration = scenario["load"]["duration"] * float(os.environ.get("FAKE_SPEED", "1"))
    rate = scenario["load"]["orders_per_second"]

    def write(name, data):
        with open(name + ".tmp", "w") as f:
            json.dump(data, f)
        os.replace(name + ".tmp", name)

    def finish(status, code):
        slo = scenario.get("slo", {})
        version = 9 if mode == "future" else 1
        summary = {"format": f"capacity-run-summary/{version}", "status": status, "problem": None,
                   "offered_rate": rate, "achieved_rate": rate, "achieved_ratio": 1.0, "error_rate": 0.0,
                   "counts": {"sent": 10, "ok": 10}, "corrected": {"p50_ms": 1.0, "p99_ms": 2.0},
                   "raw": {"p99_ms": 1.5}, "limit": "none", "generator_bound": False,
                   "slo": {"verdict": "PASS", "p99_limit_ms": slo.get("p99_ms", 50),
                           "error_rate_limit": slo.get("error_rate", 0.01), "p99_ms": 2.0,
                           "error_rate": 0.0, "reasons": []},
                   "placement": {"server_cpus": [0, 1], "generator_cpus": [0], "pinned": True},
                   "seed_slo": "--seed-slo" in argv, "run_directory": run_dir,
                   "run_json": os.path.join(run_dir, "run.json")}
        write(os.path.join(run_dir, "run.json"), {"format": "capacity-run/1", "status": status})
        write(argv[argv.index("--summary-json") + 1], summary)
        print(status, run_dir, flush=True)
        sys.exit(code)

    if mode == "stubborn":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGINT, lambda *_: finish("interrupted", 130))
    start = time.monotonic()
    while time.monotonic() - start < duration:
        elapsed = time.monotonic() - start
        write(os.path.join(run_dir, "loadgen", "progress.json"),
              {"format": "capacity-loadgen/1", "elapsed_s": elapsed, "sent_total": int(elapsed * rate),
               "ok_total": int(elapsed * rate), "errors_total": 0, "late_total": 0, "offered_rate": rate,
               "achieved_rate": rate, "p99_corrected_ms": 2.0, "p99_raw_ms": 1.5, "users": 10, "workers": 1})
        time.sleep(0.1)
    finish("completed", 0)
    """
)


# --- the request ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", SEED_BODIES)
def test_every_seed_body_is_a_valid_plan(text):
    body = json.loads(text)
    plan = load_test_request.parse_request(body, SYMBOLS)
    assert plan.orders_per_second == body["orders_per_second"]
    assert plan.concurrent_users == body["concurrent_users"]
    assert plan.duration_s == body["duration"]
    assert plan.intensity == body.get("intensity")
    assert plan.symbols == tuple(body.get("symbols", SYMBOLS))
    if "ramp_up" in body:  # the seed's defaults: 20 -> 100 %
        assert (plan.ramp_duration_s, plan.ramp_start_percent, plan.ramp_end_percent) == (30, 20, 100)
    else:
        assert plan.ramp_duration_s is None
    scenarios = pytest.importorskip("capacity.scenario")
    matrix = scenarios.load_sweep(scenarios.SEED_MATRIX)
    # what the exchange writes, capacity accepts (with the SLO of the seed matrix's tier: --seed-slo)
    scenario = scenarios.scenario_from_mapping(plan.scenario("x"), slo_matrix=matrix)
    assert scenario.total_duration_s == plan.duration_s
    assert scenario.slo == scenarios.slo_for_rate(matrix, plan.orders_per_second)


def test_defaults_and_objectives():
    plan = load_test_request.parse_request(
        {"duration": "2m", "orders_per_second": 5000, "concurrent_users": 10}, SYMBOLS
    )
    assert plan.duration_s == 120 and plan.symbols == SYMBOLS and plan.ramp_duration_s is None
    assert (plan.p99_ms, plan.error_rate) == (None, None)  # capacity's to choose (--seed-slo)
    assert "slo" not in plan.scenario("x")
    short = load_test_request.parse_request({**SMALL, "ramp_up": {}}, SYMBOLS)
    assert short.ramp_duration_s == 2  # 30 s, at most half the run
    off = load_test_request.parse_request({**SMALL, "ramp_up": {"enabled": False, "duration": 3}}, SYMBOLS)
    assert off.ramp_duration_s is None
    custom = load_test_request.parse_request({**SMALL, "slo": {"p99_ms": 7}}, SYMBOLS)
    assert (custom.p99_ms, custom.error_rate) == (7, None)
    assert custom.scenario("x")["slo"] == {"p99_ms": 7}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"orders_per_second": 50, "concurrent_users": 10}, "body.duration"),
        ({"duration": 4, "concurrent_users": 10}, "body.orders_per_second"),
        ({"duration": 4, "orders_per_second": 50}, "body.concurrent_users"),
        ({**SMALL, "orders_per_second": 0}, "body.orders_per_second"),
        ({**SMALL, "orders_per_second": -5}, "body.orders_per_second"),
        ({**SMALL, "orders_per_second": 100_001}, "body.orders_per_second"),
        ({**SMALL, "orders_per_second": "fast"}, "body.orders_per_second"),
        ({**SMALL, "orders_per_second": True}, "body.orders_per_second"),
        ({**SMALL, "duration": 3601}, "body.duration"),
        ({**SMALL, "duration": "2h"}, "body.duration"),
        ({**SMALL, "duration": 0}, "body.duration"),
        ({**SMALL, "duration": "soon"}, "body.duration"),
        ({**SMALL, "concurrent_users": 10_001}, "body.concurrent_users"),
        ({**SMALL, "concurrent_users": 0}, "body.concurrent_users"),
        ({**SMALL, "concurrent_users": 1.5}, "body.concurrent_users"),
        ({**SMALL, "symbols": ["BTCUSD", "DOGEUSD"]}, "body.symbols"),
        ({**SMALL, "symbols": []}, "body.symbols"),
        ({**SMALL, "symbols": ["BTCUSD", "BTCUSD"]}, "body.symbols"),
        ({**SMALL, "intensity": "ludicrous"}, "body.intensity"),
        ({**SMALL, "ramp_up": {"duration": 5}}, "body.ramp_up.duration"),  # longer than the 4 s run
        ({**SMALL, "ramp_up": {"duration": 0}}, "body.ramp_up.duration"),
        ({**SMALL, "ramp_up": {"duration": 2, "start_percent": 90, "end_percent": 50}}, "start_percent"),
        ({**SMALL, "ramp_up": {"duration": 2, "end_percent": 0}}, "body.ramp_up.end_percent"),
        ({**SMALL, "ramp_up": {"duration": 2, "speed": 1}}, "speed"),
        ({**SMALL, "target": "http://10.0.0.1:8080"}, "body.target"),
        ({**SMALL, "slo": {"p99_ms": 0}}, "body.slo.p99_ms"),
        ({**SMALL, "workers": 2}, "workers"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(body, field):
    with pytest.raises(ApiError) as raised:
        load_test_request.parse_request(body, SYMBOLS)
    assert raised.value.status == 400 and raised.value.code == "invalid_request"
    assert field in raised.value.message, raised.value.message


# --- the routes, with a stand-in for capacity run -----------------------------------------------------------


@pytest.fixture
def fake_capacity(tmp_path: Path) -> Path:
    path = tmp_path / "fake_capacity.py"
    path.write_text(FAKE_CAPACITY)
    return path


def make_app(
    tmp_path: Path, fake: Path, mode: str = "normal", admin_token: str | None = None
) -> web.Application:
    app = create_app(dataclasses.replace(Settings(), journal_path=None, admin_token=admin_token))
    tests = app[LOAD_TESTS]
    tests.output_dir = tmp_path / "runs"
    tests.command_prefix = [sys.executable, str(fake), mode]
    return app


@pytest.fixture
async def client(aiohttp_client, tmp_path, fake_capacity):
    return await aiohttp_client(make_app(tmp_path, fake_capacity))


async def wait_for_state(client, run_id: str, states: set[str], timeout_s: float = 10) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        response = await client.get(f"/demo/load-test/{run_id}")
        assert response.status == 200
        shown = SHOW(await response.json())
        if shown["state"] in states or time.monotonic() > deadline:
            return shown
        await asyncio.sleep(0.05)


async def error_of(response, status: int) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return (await response.json())["error"]


async def test_seed_bodies_are_accepted_over_http_with_or_without_content_type(client):
    for index, text in enumerate(SEED_BODIES):
        headers = {"Content-Type": "application/json"}
        if text in ACTS:  # what curl -d sends when no -H is given
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if index == 0:
            headers = {}
        response = await client.post("/demo/load-test", data=text.encode(), headers=headers)
        assert response.status == 202, await response.text()
        started = SHOW(await response.json())
        assert response.headers["Location"] == started["status_url"] == f"/demo/load-test/{started['run_id']}"
        assert started["state"] in ("queued", "running")
        assert started["target"].startswith("http://127.0.0.1:")
        assert started["request"]["orders_per_second"] == json.loads(text)["orders_per_second"]
        cancelled = await client.delete(started["status_url"])
        assert SHOW(await cancelled.json())["state"] == "cancelled"


async def test_life_cycle_progress_result_and_listing(client, monkeypatch):
    monkeypatch.setenv("FAKE_SPEED", "0.25")  # the 4 s schedule takes 1 s
    response = await client.post("/demo/load-test", json={**SMALL, "intensity": "light"})
    assert response.status == 202
    run_id = (await response.json())["run_id"]
    running = await wait_for_state(client, run_id, {"running"})
    assert running["state"] == "running" and running["progress"]["offered_rate"] == 50
    assert 0 <= running["elapsed_s"] <= 4 and running["remaining_s"] == pytest.approx(
        4 - running["elapsed_s"]
    )
    assert running["result"] is None
    done = await wait_for_state(client, run_id, {"completed", "failed"})
    assert done["state"] == "completed", done
    assert done["exit_code"] == 0 and done["problem"] is None and done["remaining_s"] == 0
    result = done["result"]
    assert result["achieved_rate"] == result["offered_rate"] == 50
    assert result["slo"]["verdict"] == "PASS" and result["generator_bound"] is False
    assert result["placement"] == {"server_cpus": [0, 1], "generator_cpus": [0], "pinned": True}
    assert Path(result["run_json"]).is_file() and done["run_directory"] == result["run_directory"]
    assert result["seed_slo"] is True  # capacity chose the SLO the request left out
    workdir = Path(done["working_directory"])
    assert json.loads((workdir / "scenario.yaml").read_text())["name"] == "demo-light"
    assert (workdir / "request.json").is_file() and (workdir / "capacity.log").is_file()

    listing = LIST(await (await client.get("/demo/load-test")).json())
    assert listing["running"] is None and [t["run_id"] for t in listing["load_tests"]] == [run_id]
    refused = await client.delete(f"/demo/load-test/{run_id}")
    assert (await error_of(refused, 409))["code"] == "load_test_finished"


async def test_one_at_a_time_409_names_the_running_one_then_delete_cancels(client):
    first = await (await client.post("/demo/load-test", json={**SMALL, "duration": 30})).json()
    await wait_for_state(client, first["run_id"], {"running"})
    second = await client.post("/demo/load-test", json=SMALL)
    error = await error_of(second, 409)
    assert error["code"] == "load_test_running" and first["run_id"] in error["message"]
    listing = LIST(await (await client.get("/demo/load-test")).json())
    assert listing["running"] == first["run_id"] and len(listing["load_tests"]) == 1

    response = await client.delete(first["status_url"])
    assert response.status == 200
    cancelled = SHOW(await response.json())
    assert cancelled["state"] == "cancelled" and "DELETE" in cancelled["problem"]
    assert cancelled["exit_code"] == 130 and cancelled["result"]["status"] == "interrupted"
    assert (await client.post("/demo/load-test", json=SMALL)).status == 202  # free again


async def test_a_post_waits_for_a_run_that_is_only_finishing(client, monkeypatch):
    # The schedule says 1 s, the stand-in takes 3 s (as capacity's start-up and wind-down add time): a POST
    # after the schedule waits for it instead of refusing, as the seed's gauntlet needs.
    monkeypatch.setenv("FAKE_SPEED", "3")
    first = await (await client.post("/demo/load-test", json={**SMALL, "duration": 1})).json()
    await asyncio.sleep(1.2)
    second = await client.post("/demo/load-test", json=SMALL)
    assert second.status == 202, await second.text()
    assert SHOW(await (await client.get(first["status_url"])).json())["state"] == "completed"
    await client.delete((await second.json())["status_url"])


async def test_a_summary_in_an_unknown_format_fails_the_load_test(aiohttp_client, tmp_path, fake_capacity):
    client = await aiohttp_client(make_app(tmp_path, fake_capacity, mode="future"))
    response = await client.post("/demo/load-test", json={**SMALL, "duration": 1})
    done = await wait_for_state(client, (await response.json())["run_id"], {"completed", "failed"})
    assert done["state"] == "failed" and done["result"] is None
    assert "capacity-run-summary/1" in done["problem"] and "same revision" in done["problem"]


async def test_unknown_id_is_404(client):
    for method in ("GET", "DELETE"):
        response = await client.request(method, "/demo/load-test/20260101T000000-abcdef")
        assert (await error_of(response, 404))["code"] == "not_found"


async def test_capacity_not_installed_is_503(client, monkeypatch):
    monkeypatch.setattr(load_test, "toolkit_problem", lambda: "the capacity toolkit is not installed here")
    response = await client.post("/demo/load-test", json=SMALL)
    error = await error_of(response, 503)
    assert error["code"] == "toolkit_not_installed" and "not installed" in error["message"]
    assert await error_of(await client.post("/demo/load-test", json={"duration": 1}), 400)  # body first


def test_toolkit_is_found_without_importing_it():
    assert load_test.toolkit_problem() is None  # this environment has capacity and locust


async def test_a_stubborn_child_is_killed_after_the_grace_period(aiohttp_client, tmp_path, fake_capacity):
    client = await aiohttp_client(make_app(tmp_path, fake_capacity, mode="stubborn"))
    started = await (await client.post("/demo/load-test", json={**SMALL, "duration": 30})).json()
    await wait_for_state(client, started["run_id"], {"running"})
    tests = client.app[LOAD_TESTS]
    test = tests.get(started["run_id"])
    begun = time.monotonic()
    await tests.cancel(test, "the test", grace_s=0.5)
    assert time.monotonic() - begun < 5
    assert test.state == "cancelled" and test.exit_code == -9 and test.result is None
    assert not psutil.pid_exists(test.process.pid) or psutil.Process(test.process.pid).status() == "zombie"


async def test_server_shutdown_cancels_the_running_load_test(aiohttp_client, tmp_path, fake_capacity):
    client = await aiohttp_client(make_app(tmp_path, fake_capacity))
    started = await (await client.post("/demo/load-test", json={**SMALL, "duration": 30})).json()
    await wait_for_state(client, started["run_id"], {"running"})
    test = client.app[LOAD_TESTS].get(started["run_id"])
    await client.close()  # the app's on_shutdown
    assert test.state == "cancelled" and "shutting down" in test.problem
    assert test.process.returncode == 130


async def test_non_admin_clients_get_403(aiohttp_client, tmp_path, fake_capacity):
    app = with_remote(make_app(tmp_path, fake_capacity, admin_token="s3cret"), REMOTE)
    client = await aiohttp_client(app)
    for method, path in [
        ("POST", "/demo/load-test"),
        ("GET", "/demo/load-test"),
        ("GET", "/demo/load-test/20260101T000000-abcdef"),
        ("DELETE", "/demo/load-test/20260101T000000-abcdef"),
    ]:
        response = await client.request(method, path, json=SMALL if method == "POST" else None)
        assert (await error_of(response, 403))["code"] == "forbidden"
    assert not client.app[LOAD_TESTS].tests  # nothing started
    response = await client.post("/demo/load-test", json=SMALL, headers={"Authorization": "Bearer s3cret"})
    assert response.status == 202
    await client.delete((await response.json())["status_url"], headers={"X-Admin-Token": "s3cret"})


def test_openapi_documents_the_load_test_routes():
    document = build_openapi()
    paths = document["paths"]
    assert set(paths["/demo/load-test"]) == {"post", "get"}
    assert set(paths["/demo/load-test/{run_id}"]) == {"get", "delete"}
    post = paths["/demo/load-test"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/LoadTestRequest")
    assert {"202", "400", "403", "409", "503"} <= set(post["responses"])
    components = document["components"]["schemas"]
    assert components["LoadTestRequest"] is published_schemas.LOAD_TEST_REQUEST
    assert components["LoadTest"] is schemas.LOAD_TEST and components["LoadTests"] is schemas.LOAD_TESTS


# --- real runs: an exchange process, and capacity run against it --------------------------------------


def call(url: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # no Content-Type, as the seed's acts
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def exchange(tmp_path):
    env = {"JOURNAL_PATH": "none", "LOAD_TEST_OUTPUT_DIR": str(tmp_path / "runs")}
    with EmbeddedExchange(env=env) as running:
        yield running


def poll(url: str, states: set[str], timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        status, shown = call(url)
        assert status == 200, shown
        if shown["state"] in states or time.monotonic() > deadline:
            return SHOW(shown)
        time.sleep(0.25)


def leftovers(pid: int) -> list[psutil.Process]:
    return [child for child in psutil.Process(pid).children(recursive=True) if child.status() != "zombie"]


@pytest.mark.timeout(60)
def test_real_short_run_completes_with_a_result(exchange):
    status, started = call(exchange.url + "/demo/load-test", "POST", {**SMALL, "intensity": "light"})
    assert status == 202, started
    assert started["target"] == exchange.url
    done = poll(exchange.url + started["status_url"], {"completed", "failed", "cancelled"}, 45)
    assert done["state"] == "completed", done
    result = done["result"]
    assert result["status"] == "completed" and result["offered_rate"] == pytest.approx(50)
    assert result["achieved_rate"] == pytest.approx(result["offered_rate"], rel=0.1)
    assert result["error_rate"] == 0 and result["counts"]["ok"] > 150
    assert result["corrected"]["p99_ms"] >= result["raw"]["p99_ms"] > 0
    assert result["server_cpu_percent_mean"] is not None  # psutil sampled the exchange (--server-pid)
    assert result["placement"]["generator_cpus"]  # capacity pinned the generator
    run_dir = Path(done["run_directory"])
    assert run_dir.is_dir() and (run_dir / "run.json").is_file()
    assert json.loads((run_dir / "run.json").read_text())["target"]["server_pid"] == exchange.pid
    assert leftovers(exchange.pid) == []


@pytest.mark.timeout(60)
def test_real_run_409_then_cancel(exchange):
    status, started = call(exchange.url + "/demo/load-test", "POST", {**SMALL, "duration": 30})
    assert status == 202, started
    url = exchange.url + started["status_url"]
    running = poll(url, {"running", "completed", "failed", "cancelled"}, 30)
    assert running["state"] == "running", running
    status, refused = call(exchange.url + "/demo/load-test", "POST", SMALL)
    assert status == 409 and started["run_id"] in refused["error"]["message"]
    status, cancelled = call(url, "DELETE")
    assert status == 200, cancelled
    assert cancelled["state"] == "cancelled" and cancelled["result"]["status"] == "interrupted"
    assert Path(cancelled["run_directory"], "run.json").is_file()
    assert cancelled["elapsed_s"] < 30
    assert leftovers(exchange.pid) == []  # capacity and Locust are gone
