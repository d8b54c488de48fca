"""End to end: Locust runs capacity/generator/locustfile.py against the reference exchange and writes its
results.

Each test starts the exchange on a loopback port and Locust as a subprocess, bounded in time and count.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import support
from hdrh.log import HistogramLogReader

from capacity.measure.latency import LatencyRecorder, new_histogram
from capacity.measure.latency import summarize as summarize_hist
from capacity.results.loadgen_file import loadgen_document
from capacity.run.exchange_process import EmbeddedExchange
from capacity.scenario import load_scenario

ROOT = support.REPO_ROOT
LOCUST = Path(sys.executable).parent / "locust"
LOCUSTFILE = ROOT / "capacity" / "generator" / "locustfile.py"

PROGRESS_KEYS = {
    "format",
    "elapsed_s",
    "scheduled_total",
    "sent_total",
    "ok_total",
    "errors_total",
    "late_total",
    "offered_rate",
    "achieved_rate",
    "p99_corrected_ms",
    "p99_raw_ms",
    "users",
    "workers",
}
LOADGEN_KEYS = {
    "format",
    "engine",
    "generator",
    "scenario",
    "target",
    "started_at",
    "interval_s",
    "workers",
    "seconds",
    "totals",
    "errors_by_kind",
    "requests_by_kind",
    "phases",
}
COUNTS = ("scheduled", "sent", "ok", "errors", "shed", "late", "generator_late")
SECOND_KEYS = {"t", "offered_rate", "completed", "dispatched", *COUNTS, "corrected", "raw", "refused"}
TOTAL_KEYS = {*COUNTS, "lag_max_ms", "generator_lag_max_ms", "corrected", "raw", "all_outcomes", "refused"}
LATENCY_KEYS = {"count", "p50", "p90", "p99", "p999", "max", "mean"}


def write_scenario(path: Path, rate: int, users: int, duration: str) -> Path:
    path.write_text(
        f"name: e2e\nload: {{orders_per_second: {rate}, concurrent_users: {users}, "
        f"symbols: [BTCUSD, ETHUSD, SOLUSD], duration: {duration}}}\n"
        "slo: {p99_ms: 50, error_rate: 0.01}\n"
    )
    return path


def locust_command(url: str, scenario: Path, results: Path, *extra: str) -> list[str]:
    return [
        str(LOCUST),
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--scenario",
        str(scenario),
        "--host",
        url,
        "--results-dir",
        str(results),
        "--loglevel",
        "WARNING",
        *extra,
    ]


def run_locust(url: str, scenario: Path, results: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        locust_command(url, scenario, results, *extra), capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def check_contract(results: Path, scenario_path: Path, url: str) -> dict[str, Any]:
    """loadgen.json and progress.json have exactly the keys docs/loadgen-results.md lists, and agree."""
    doc = json.loads((results / "loadgen.json").read_text())
    assert set(doc) == LOADGEN_KEYS
    assert doc["format"] == "capacity-loadgen/1" and doc["interval_s"] == 1
    assert doc["scenario"] == load_scenario(scenario_path).to_dict()
    assert doc["target"] == url
    assert abs(doc["started_at"] - time.time()) < 120
    assert [s["t"] for s in doc["seconds"]] == list(range(len(doc["seconds"])))
    for second in doc["seconds"]:
        assert set(second) == SECOND_KEYS
        assert set(second["corrected"]) == set(second["raw"]) == set(second["refused"]) == LATENCY_KEYS
    assert set(doc["totals"]) == TOTAL_KEYS
    for name in COUNTS:
        assert doc["totals"][name] == sum(s[name] for s in doc["seconds"]), name
    assert doc["totals"]["corrected"]["count"] == doc["totals"]["ok"]
    assert doc["totals"]["refused"]["count"] == doc["totals"]["shed"]
    assert sum(s["dispatched"] for s in doc["seconds"]) == doc["totals"]["sent"]
    assert doc["phases"] == {}  # no recovery phase: the totals are the load's
    assert set(doc["errors_by_kind"]) >= {"http_503", "http_400", "connection", "timeout"}
    assert set(doc["requests_by_kind"]) == {"limit", "market", "cancel", "book"}
    assert sum(doc["requests_by_kind"].values()) == doc["totals"]["sent"]
    progress = json.loads((results / "progress.json").read_text())
    assert set(progress) == PROGRESS_KEYS and progress["format"] == doc["format"]
    for name in ("corrected", "raw"):
        reader = HistogramLogReader(str(results / f"{name}.hlog"), new_histogram())
        total = 0
        while (interval := reader.get_next_interval_histogram()) is not None:
            total += interval.get_total_count()
        assert total == doc["totals"]["ok"]
    return doc


def test_document_shape_from_a_recorder(tmp_path: Path) -> None:
    """The builder alone: an idle run still reports every second of the schedule, with null latencies."""
    scenario = load_scenario(write_scenario(tmp_path / "x.yaml", 10, 1, "3s"))
    doc = loadgen_document(
        scenario,
        LatencyRecorder(),
        target="http://x",
        started_at=1.0,
        workers=1,
        elapsed_s=3.5,
        engine="native",
    )
    assert set(doc) == LOADGEN_KEYS and len(doc["seconds"]) == 3
    assert doc["seconds"][0]["offered_rate"] == 10.0 and doc["totals"]["corrected"] == summarize_hist(None)


@pytest.fixture
def exchange():
    with EmbeddedExchange(env={"JOURNAL_PATH": "none"}) as ex:
        yield ex


def test_headless_run_writes_the_contract(exchange: EmbeddedExchange, tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "s.yaml", rate=100, users=10, duration="4s")
    results = tmp_path / "results"
    run_locust(exchange.url, scenario, results)
    doc = check_contract(results, scenario, exchange.url)
    totals = doc["totals"]
    assert totals["ok"] == pytest.approx(totals["scheduled"], rel=0.2)
    assert totals["scheduled"] == pytest.approx(400, rel=0.2)
    assert totals["errors"] == 0 and totals["late"] <= totals["sent"] * 0.1  # a busy machine makes some
    assert totals["corrected"]["p99"] >= totals["raw"]["p99"]
    assert doc["workers"] == 1 and len(doc["seconds"]) == 4
    assert all(s["offered_rate"] == 100.0 for s in doc["seconds"])
    assert doc["requests_by_kind"]["limit"] > doc["requests_by_kind"]["book"] > 0


def test_a_server_stall_shows_in_corrected_not_raw_latency(tmp_path: Path) -> None:
    # The stall is a SIGSTOP of the server process: deterministic, and independent of /demo/chaos-test
    # (which slows journal commits, i.e. raw latency too). Lag-based shedding is pushed out of the way
    # (an exchange that does not know OVERLOAD_MAX_LAG ignores it); a 503 would still not fail the run.
    scenario = write_scenario(tmp_path / "s.yaml", rate=200, users=4, duration="5s")
    results = tmp_path / "results"
    with EmbeddedExchange(env={"JOURNAL_SYNC": "full", "OVERLOAD_MAX_LAG": "30s"}) as ex:
        process = subprocess.Popen(
            locust_command(ex.url, scenario, results, "--exit-code-on-error", "0"),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                progress = results / "progress.json"
                if progress.exists() and json.loads(progress.read_text())["elapsed_s"] >= 1.5:
                    break
                time.sleep(0.05)
            os.kill(ex.pid, signal.SIGSTOP)
            time.sleep(0.5)
            os.kill(ex.pid, signal.SIGCONT)
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            os.kill(ex.pid, signal.SIGCONT)
    assert process.returncode == 0, stderr[-3000:]
    doc = check_contract(results, scenario, ex.url)
    totals = doc["totals"]
    assert totals["sent"] == totals["scheduled"] == totals["ok"] + totals["errors"]  # late, never skipped
    assert totals["errors"] == totals["shed"] <= 0.1 * totals["sent"]
    assert totals["late"] >= 40  # ~25 slots per user fell inside the stall
    assert totals["lag_max_ms"] >= 300
    gap_ms = totals["corrected"]["p99"] - totals["raw"]["p99"]
    assert 300 <= gap_ms <= 800, totals  # roughly the 500 ms stall (catching up adds a little)
    assert totals["corrected"]["max"] >= 450


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_distributed_processes_merge_into_one_result(exchange: EmbeddedExchange, tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "s.yaml", rate=100, users=10, duration="4s")
    results = tmp_path / "results"
    port = str(free_port())
    run_locust(
        exchange.url,
        scenario,
        results,
        "--processes",
        "2",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        port,
        "--master-port",
        port,
    )
    doc = check_contract(results, scenario, exchange.url)
    totals = doc["totals"]
    assert doc["workers"] == 2
    assert totals["scheduled"] == pytest.approx(400, rel=0.2)
    assert totals["ok"] == pytest.approx(totals["scheduled"], rel=0.2)
    assert totals["errors"] == 0
    assert totals["corrected"]["p99"] >= totals["raw"]["p99"]


def test_locusts_common_options_cut_the_run_and_set_its_users(
    exchange: EmbeddedExchange, tmp_path: Path
) -> None:
    """Issue 17: `-t 3s` cuts a 20-second scenario to 3 seconds (Locust no longer says it ignores it) and
    `-u 4` runs 4 users; the run still ends with the shape, drain included, so nothing is left unanswered."""
    scenario = write_scenario(tmp_path / "s.yaml", rate=100, users=10, duration="20s")
    results = tmp_path / "results"
    started = time.monotonic()
    result = run_locust(exchange.url, scenario, results, "-t", "3s", "-u", "4")
    assert time.monotonic() - started < 15
    assert "will be ignored" not in result.stderr
    doc = json.loads((results / "loadgen.json").read_text())
    totals = doc["totals"]
    assert totals["scheduled"] == pytest.approx(300, rel=0.1)
    assert totals["ok"] == totals["sent"] == totals["scheduled"]
    assert len(doc["seconds"]) == 3
    assert doc["scenario"]["load"]["concurrent_users"] == 4 and doc["scenario"]["load"]["duration"] == 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.timeout(90)
def test_the_web_ui_has_a_capacity_tab_with_live_figures(tmp_path: Path) -> None:
    """Issue 17: Locust's web UI (not headless) shows a Capacity tab fed from /stats/requests, and the
    same figures at GET /capacity: corrected and raw percentiles, offered and achieved, the SLO so far,
    the server's CPU from /api/metrics and the generator's own."""
    scenario = write_scenario(tmp_path / "s.yaml", 100, 10, "8s")
    web = _free_port()
    with EmbeddedExchange(env={"JOURNAL_PATH": "none"}) as exchange:
        command = [
            str(LOCUST), "-f", str(LOCUSTFILE), "--scenario", str(scenario), "--host", exchange.url,
            "--web-host", "127.0.0.1", "--web-port", str(web), "--autostart", "--autoquit", "2",
            "--results-dir", str(tmp_path / "results"), "--loglevel", "WARNING",
        ]  # fmt: skip
        locust = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            base = f"http://127.0.0.1:{web}"
            figures: dict[str, Any] = {}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                time.sleep(0.5)
                try:
                    figures = _get_json(base + "/capacity")
                except OSError:
                    continue
                if figures.get("sent", 0) > 100 and figures.get("server_cpu_percent") is not None:
                    break
            stats = _get_json(base + "/stats/requests")
            with urllib.request.urlopen(base + "/", timeout=5) as response:
                index = response.read().decode()
        finally:
            locust.send_signal(signal.SIGINT)
            locust.communicate(timeout=30)
    assert figures["scenario"] == "e2e" and figures["sent"] > 100, figures
    assert figures["corrected_ms"]["p99"] is not None and figures["raw_ms"]["p99"] is not None
    assert figures["offered_rate"] > 0 and figures["slo"]["p99_ms"] == 50
    assert figures["server_cpu_percent"] is not None and figures["generator_cpu_percent"] is not None
    assert figures["generator_healthy"] is True, figures["generator_reasons"]
    (tab,) = [t for t in stats["extended_stats"] if t["key"] == "capacity"]
    rows = {row["figure"]: row["value"] for row in tab["data"]}
    assert rows["P50 / P99 / P99.9 corrected"].endswith(" ms") and "raw response times" in rows["note"]
    tabs = re.search(r'"extended_tabs":\s*(\[[^\]]*\])', index)
    assert tabs and json.loads(tabs.group(1)) == [{"key": "capacity", "title": "Capacity"}], index[:2000]
