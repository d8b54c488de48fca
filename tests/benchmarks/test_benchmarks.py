"""The cheap benchmarks' ``--quick --json`` path runs and writes valid JSON; nothing about speed.

The HTTP benchmarks' load generator (``benchmarks/_loadgen.py``) is checked against a stub server in a
thread whose delays, stalls and statuses are known: the figures must contain them (lower bounds only).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import support
import uvloop

sys.path.insert(0, str(support.REPO_ROOT / "benchmarks"))

from _loadgen import ProtocolError, closed_loop, encode_posts, open_loop, parse_head

BENCHMARKS = support.REPO_ROOT / "benchmarks"


@pytest.mark.parametrize(
    ("script", "extra"),
    [
        ("engine_throughput.py", ["--orders", "5000"]),
        ("engine_memory.py", ["--orders", "10000"]),
        ("engine_stalls.py", ["--orders", "20000", "--repeat", "1"]),
        ("http_efficiency.py", ["--seconds", "1", "--rates", "1000"]),
        ("journal_group_commit.py", ["--orders", "2000", "--seconds", "1"]),
    ],
)
def test_quick_json(script: str, extra: list[str], tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--json", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == script.removesuffix(".py")
    assert doc["quick"] is True
    assert doc["figures"], doc
    for figure in doc["figures"]:
        assert {"name", "value", "unit", "goal", "pass"} <= figure.keys()
        assert figure["value"] is None or figure["value"] >= 0
    assert {"loadavg_1m_mean", "other_cpu_pct"} <= doc["load"].keys()
    assert "MISS" in done.stdout or "PASS" in done.stdout


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="generator on CPU 0, the sink on CPU 1")
def test_native_engine_smoke(tmp_path: Path) -> None:
    # One ladder step at a low rate and one wrk / native round, 1 s each; the wrk2 cross-check (10 s a run)
    # is left out. Where wrk is not installed the benchmark must skip its ratio, saying so.
    out = tmp_path / "figures.json"
    extra = ["--seconds", "1", "--rates", "2000", "--p99-rates", "", "--rounds", "1"]
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "native_engine.py"), "--quick", "--json", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "native_engine" and doc["quick"] is True
    names = [figure["name"] for figure in doc["figures"]]
    assert names[0].startswith("native, 1 core")
    (step,) = doc["details"]["ladder"]
    assert step["offered"] == 2000 and step["sent"] > 0 and step["cpu_s"] > 0
    if shutil.which("wrk"):
        assert "requests per generator CPU-s: native / wrk" in names
        (round_,) = doc["details"]["cost"]["rounds"]
        assert round_["wrk"]["requests"] > 0 and round_["native_seed_mix"]["sent"] > 0
    else:
        assert "wrk is not installed" in done.stdout
    assert not any("wrk2" in name for name in names)
    assert "MISS" in done.stdout or "PASS" in done.stdout


def test_native_engine_rejects_bad_rates() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "native_engine.py"), "--rates", "fast"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "--rates" in done.stderr and "Traceback" not in done.stderr


def test_http_efficiency_rejects_bad_rates() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "http_efficiency.py"), "--rates", "fast"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "--rates" in done.stderr and "Traceback" not in done.stderr


def test_parse_head() -> None:
    ok = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n"
    assert parse_head(ok, len(ok) - 4) == (201, 17)
    lower = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 3\r\n\r\n"
    assert parse_head(lower, len(lower) - 4) == (503, 3)
    assert parse_head(b"HTTP/1.1 204 No Content\r\n\r\n", 23) == (204, 0)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    with pytest.raises(ProtocolError, match="Content-Length"):
        parse_head(chunked, len(chunked) - 4)
    with pytest.raises(ProtocolError, match="status line"):
        parse_head(b"SSH-2.0-OpenSSH\r\n\r\n", 15)


@contextmanager
def stub_server(
    delay_s: float = 0.0,
    statuses: tuple[int, ...] = (201,),
    stall_at_s: float = 0.0,
    stall_s: float = 0.0,
    served: Counter[int] | None = None,
    bodies: list[bytes] | None = None,
) -> Iterator[str]:
    """An HTTP/1.1 server in a thread: answers each request ``delay_s`` late with the next of ``statuses``;
    ``stall_s`` > 0 blocks its loop that long once, ``stall_at_s`` after the first request; ``served``
    counts the requests of each connection (by the order they opened); ``bodies`` gets each body."""
    loop = asyncio.new_event_loop()
    state = {"answered": 0, "first": 0.0, "stalled": False, "opened": 0}

    class Stub(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport, self.buf = transport, b""
            self.number = state["opened"] = state["opened"] + 1

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while (end := self.buf.find(b"\r\n\r\n")) >= 0:
                length = int(self.buf[:end].lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(self.buf) < end + 4 + length:
                    return
                if bodies is not None:
                    bodies.append(self.buf[end + 4 : end + 4 + length])
                self.buf = self.buf[end + 4 + length :]
                state["first"] = state["first"] or time.monotonic()
                if stall_s and not state["stalled"] and time.monotonic() - state["first"] >= stall_at_s:
                    state["stalled"] = True
                    time.sleep(stall_s)  # the whole server stops, as in a GC pause
                status = statuses[state["answered"] % len(statuses)]
                state["answered"] += 1
                if served is not None:
                    served[self.number] += 1
                answer = b"HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\n{}" % status
                loop.call_later(delay_s, self.transport.write, answer)

    server = loop.run_until_complete(loop.create_server(Stub, "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        server.close()
        loop.close()


def requests_for(url: str) -> list[bytes]:
    return encode_posts(url, "/api/orders", [b'{"n": 1}', b'{"n": 22}'])


def test_open_loop_latency_includes_a_stall_from_the_intended_send_time() -> None:
    # 1,000/s for 1.2 s; the server stops for 300 ms at 0.4 s: ~300 requests are due during the stall and
    # each waits until its end, so a quarter of all latencies are spread over 0-300 ms. Measured from the
    # actual send, only the 4 requests in flight at the stall would show it (under 1 %).
    with stub_server(stall_at_s=0.4, stall_s=0.3) as url:
        result = uvloop.run(open_loop(url, requests_for(url), rate=1000, seconds=1.2, connections=4))
    assert result.ok == result.sent == 1200
    assert result.errors == result.shed == 0
    assert result.percentile_ms(99) >= 250
    assert result.percentile_ms(90) >= 150
    assert result.max_backlog >= 200
    assert result.send_lag_us is not None and result.send_lag_us.get_max_value() >= 250_000  # sent after it


def test_known_delay_is_in_every_latency() -> None:
    with stub_server(delay_s=0.02) as url:
        opened = uvloop.run(open_loop(url, requests_for(url), rate=200, seconds=0.5, connections=16))
        closed = uvloop.run(closed_loop(url, requests_for(url), seconds=0.5, connections=4))
    assert opened.ok == 100
    assert opened.latency_us.get_min_value() >= 20_000
    assert closed.latency_us.get_min_value() >= 20_000
    assert 0 < closed.ok <= 4 * (closed.seconds / 0.02 + 1)  # 4 connections, one 20 ms request each at a time


def test_statuses_split_into_ok_shed_and_errors() -> None:
    with stub_server(statuses=(201, 503, 400)) as url:
        result = uvloop.run(open_loop(url, requests_for(url), rate=300, seconds=0.5, connections=4))
    assert (result.ok, result.shed, result.errors) == (50, 50, 50)
    assert result.statuses == {201: 50, 503: 50, 400: 50}
    assert result.latency_us.get_total_count() == 50  # only successes carry a latency


def test_demo_reruns_counts_the_other_runs_each_interval_covers(tmp_path: Path) -> None:
    """Re-fitting sweeps on disk (no load): every run's recommended maximum and interval, and coverage."""
    from capacity.testing.sample_sweep import write_sample_sweep

    sweeps = [write_sample_sweep(tmp_path / f"s{seed}", duration_s=10, seed=seed) for seed in (1, 2, 3)]
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "demo_reruns.py"), "--json", str(out), "--from", *map(str, sweeps)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    runs = doc["details"]["runs"]
    assert [r["sweep"] for r in runs] == ["s1", "s2", "s3"]
    assert all(r["value"] is not None and 0 <= r["covers"] <= 2 for r in runs)
    mean = next(f for f in doc["figures"] if f["name"].startswith("other runs covered"))
    assert mean["value"] == pytest.approx(sum(r["covers"] for r in runs) / 3)
    assert mean["unit"] == "of 2"


# -- the seed mix, the shipped-capacity and overload benchmarks (issues 15, 21) --

SYMBOLS_PAYLOAD = {
    "symbols": [
        {"symbol": "BTCUSD", "tick_size": "0.01", "lot_size": "0.0001", "reference_price": "60000"},
        {"symbol": "ETHUSD", "tick_size": "0.01", "lot_size": "0.001", "reference_price": "3000"},
        {"symbol": "ADAUSD", "tick_size": "0.0001", "lot_size": "1", "reference_price": "0.45"},
        {"symbol": "DOTUSD", "tick_size": "0.001", "lot_size": "0.01", "reference_price": "6.5"},
        {"symbol": "SOLUSD", "tick_size": "0.01", "lot_size": "0.01", "reference_price": "150"},
    ]
}


def seed_plan(url: str = "http://127.0.0.1:9") -> list[tuple[bytes, int]]:
    from _mix import plan

    from capacity.generator.order_flow import Market

    return plan(url, Market.from_symbols_response(SYMBOLS_PAYLOAD), size=20_000)


def test_seed_mix_plan_has_the_seed_proportions() -> None:
    from _mix import BOOK, CANCEL, LIMIT, MARKET

    planned = seed_plan()
    share = {k: 100 * sum(1 for _, kind in planned if kind == k) / len(planned) for k in range(4)}
    assert share[LIMIT] == pytest.approx(70, abs=1.5)
    assert share[MARKET] == pytest.approx(10, abs=1)
    assert share[CANCEL] == pytest.approx(15, abs=1)
    assert share[BOOK] == pytest.approx(5, abs=1)
    limits = [json.loads(r.split(b"\r\n\r\n", 1)[1]) for r, kind in planned if kind == LIMIT]
    assert all(body["type"] == "limit" and "client_order_id" not in body for body in limits)
    # a quarter of limit orders are priced through the reference price (marketable); the rest rest
    mids = {"BTCUSD": 60000, "ETHUSD": 3000, "ADAUSD": 0.45, "DOTUSD": 6.5, "SOLUSD": 150}
    through = [(b["side"] == "buy") == (float(b["price"]) > mids[b["symbol"]]) for b in limits]
    assert 100 * sum(through) / len(through) == pytest.approx(25, abs=2)
    books = [r for r, kind in planned if kind == BOOK]
    assert all(r.startswith(b"GET /api/orderbook/") for r in books)
    assert all(r == b"" for r, kind in planned if kind == CANCEL)  # the id is chosen when sent


def test_seed_mix_cancels_learnt_resting_ids() -> None:
    from _mix import CANCEL, LIMIT, SeedMix, resting_order_id

    new = b'{"id":42,"client_order_id":null,"symbol":"BTCUSD","status":"new","trades":[]}'
    partial = b'{"id":43,"symbol":"BTCUSD","status":"partially_filled","trades":[{"price":"1"}]}'
    filled = b'{"id":44,"symbol":"BTCUSD","status":"filled","trades":[]}'
    assert (resting_order_id(new), resting_order_id(partial), resting_order_id(filled)) == (42, 43, None)
    assert resting_order_id(b'{"error":"x"}') is None
    mix = SeedMix("http://127.0.0.1:9", seed_plan())
    sent = [mix.next() for _ in range(200)]
    assert all(kind != CANCEL for _, kind in sent)  # nothing learnt yet: limits go instead
    assert not mix.answered(LIMIT, 201, new) and mix.resting == [42]
    while (request := mix.next())[1] != CANCEL:
        pass
    assert request[0] == b"DELETE /api/orders/42 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n"
    assert mix.resting == []
    assert mix.answered(CANCEL, 409, None)  # its order traded first: answered correctly
    assert not mix.answered(CANCEL, 500, None)
    shares = mix.report()["sent_pct"]
    assert set(shares) == {"limit", "market", "cancel", "book"}


def test_open_loop_spreads_requests_over_every_connection() -> None:
    """As many clients each sending its own orders: the connection idle longest sends next, so a light
    load on many connections keeps all of them in use (the most recently answered one, sending again and
    again, would leave the rest idle until the server's idle timeout closed them)."""
    served: Counter[int] = Counter()
    with stub_server(served=served) as url:
        result = uvloop.run(open_loop(url, requests_for(url), 200, 0.5, 10))
    assert result.sent == 100 and result.errors == 0
    assert sorted(served) == list(range(1, 11)) and set(served.values()) == {10}


@pytest.mark.parametrize("retry_refused", [True, False])
def test_a_closed_loop_retrying_refusals_sends_a_refused_request_again(retry_refused: bool) -> None:
    """A client that ignores Retry-After: each request answered 503 goes again, as it was, on its
    connection; otherwise the next request follows."""
    bodies: list[bytes] = []
    with stub_server(statuses=(503, 201), bodies=bodies) as url:
        result = uvloop.run(closed_loop(url, requests_for(url), 0.3, 1, retry_refused=retry_refused))
    assert result.shed > 10 and result.ok > 10 and len(bodies) >= 20
    pairs = [bodies[i : i + 2] for i in range(0, len(bodies) - 1, 2)]  # (refused, next) in each pair
    assert all((first == second) is retry_refused for first, second in pairs)


def test_open_loop_phases_and_a_mix_source() -> None:
    from _loadgen import Requests, open_loop_phases

    class Accepting(Requests):
        def answered(self, kind: int, status: int, body: bytes | None) -> bool:
            return status == 409

    with stub_server(statuses=(201, 409)) as url:
        result = uvloop.run(
            open_loop_phases(url, Accepting(requests_for(url)), [(200, 0.5), (100, 0.5)], 8, timeline=True)
        )
    assert result.sent == 150 and result.ok == 75 and result.accepted == 75
    assert result.completed == 150 and result.errors == 0
    assert result.timeline is not None
    answers = result.timeline.answers(0, 10)
    assert answers["ok"] == 75 and answers["other"] == 75 and answers["failed"] == 0
    assert result.timeline.merged(0, 10).get_total_count() == 150


@pytest.mark.parametrize(
    "script", ["shipped_capacity.py", "overload.py", "wrk_crosscheck.py", "overload_budget.py"]
)
def test_new_benchmarks_help(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--help"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout and "--json" in done.stdout


@pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="the server on one CPU, the generator on another"
)
@pytest.mark.parametrize(
    ("script", "extra"),
    [
        (
            "shipped_capacity.py",
            [
                "--seconds",
                "1",
                "--rates",
                "400",
                "--search",
                "0",
                "--idle-seconds",
                "1",
                "--connections",
                "20",
            ],
        ),
        (
            "overload.py",
            [
                "--saturation-seconds",
                "1",
                "--overload-seconds",
                "2",
                "--recovery-seconds",
                "2",
                "--many-connections",
                "300",
                "--storm-connections",
                "300",
            ],
        ),
    ],
)
def test_new_benchmarks_quick_json(script: str, extra: list[str], tmp_path: Path) -> None:
    # overload.py with its many-connections and hostile parts too (600 stalled connections, 15 s in
    # --quick): the whole path runs
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--json", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == script.removesuffix(".py") and doc["quick"] is True
    names = [figure["name"] for figure in doc["figures"]]
    if script == "shipped_capacity.py":
        assert any(name.startswith("P99 at 400/s") for name in names)
        assert any(name.startswith("idle server CPU") for name in names)
        (step,) = doc["details"]["steps"]
        assert step["offered"] == 400 and step["sent"] > 0
    else:
        assert any(name.startswith("S: goodput") for name in names)
        assert len(doc["details"]["saturation"]["goodput_runs"]) == 3  # S is the median of three
        assert doc["details"]["saturation_after"]["goodput"] > 0  # and measured again once it is over
        assert any(name.startswith("S again, after the overload") for name in names)
        assert any(name.startswith("hostile:") for name in names)
        assert doc["details"]["hostile"]["connections"] == 600
        many = doc["details"]["many_connections"]
        assert many["connections"] == 300 and many["server_fds_connected"] >= 300
        assert any(name.startswith("2 x S for 2 s on 300 conns") for name in names)
        storm = doc["details"]["storm"]
        assert storm["connections"] == 300 and storm["ok"] > 0 and storm["mode"] == "closed"
        assert any(name.startswith("storm: 300 conns retrying at once") for name in names)
        over = doc["details"][
            "overload"
        ]  # read a third into the 2 x S phase (5 s in a full run) and at its end
        assert over["orders_kept_growth"] > 0 and over["rss_per_order_kept_b"] is not None
        assert over["server_cpu_pct"] > 0 and over["server_core_pct"] > 0
    assert "MISS" in done.stdout or "PASS" in done.stdout


@pytest.mark.parametrize(
    ("script", "arguments", "named"),
    [
        *[
            ("overload.py", [flag, "0"], f"{flag} must be at least 1")
            for flag in ("--storm-connections", "--many-connections")
        ],
        *[
            ("admission_shares.py", ["--shares", shares], "--shares")
            for shares in ("0.9", "0.9,0.9", "0.9,1", "a,b", "0.9,0.8,0.7")
        ],
        ("admission_shares.py", ["--connections", "0"], "--connections"),
        ("admission_shares.py", ["--connections", "100000000"], "open files"),
        ("overload_budget.py", ["--rounds", "0"], "--rounds"),
        ("overload_budget.py", ["--seconds", "0"], "--seconds"),
        ("overload_budget.py", ["--seconds", "nan"], "--seconds"),
        ("overload_budget.py", ["--connections", "0"], "--connections"),
        ("overload_budget.py", ["--connections", "100000000"], "open files"),
    ],
)
def test_a_load_benchmark_refuses_bad_arguments_before_any_load(
    script: str, arguments: list[str], named: str
) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *arguments], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and named in done.stderr and "Traceback" not in done.stderr


def test_shipped_capacity_search_bisects_between_held_and_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    import shipped_capacity

    tried: list[float] = []

    def measured(rate: float, args: argparse.Namespace, server_cpu: int, label: str) -> dict:
        tried.append(rate)
        return {"held": rate <= 9_300, "offered": rate}

    monkeypatch.setattr(shipped_capacity, "measured", measured)
    args = argparse.Namespace(search=3)
    steps = {r: measured(r, args, 1, "") for r in (1_000.0, 5_000.0, 8_000.0, 12_000.0)}
    tried.clear()
    best, failed = shipped_capacity.search(steps, args, 1)
    assert tried == [10_000.0, 9_000.0, 9_500.0] and best == 9_000.0 and failed == steps[9_500.0]
    steps = {r: measured(r, args, 1, "") for r in (1_000.0, 5_000.0)}  # all held: grow, then bisect
    tried.clear()
    best, _ = shipped_capacity.search(steps, args, 1)
    assert tried == [7_500.0, 11_200.0, 9_400.0] and best == 7_500.0


def test_wrk2_floor_script_sends_the_plain_order(tmp_path: Path) -> None:
    """The floor runs' wrk2 script: one static request (no Lua per request), the very order ours sends."""
    import wrk_crosscheck

    path = tmp_path / "plain.lua"
    wrk_crosscheck.write_plain_order(path)
    lines = path.read_text().splitlines()
    assert 'wrk.method = "POST"' in lines and 'wrk.path = "/api/orders"' in lines
    assert not any(line.startswith("function") for line in lines)
    body = next(line for line in lines if line.startswith("wrk.body = ")).removeprefix("wrk.body = ")
    assert json.loads(body) == wrk_crosscheck.PLAIN_ORDER.decode()  # Lua's escapes here are JSON's


def test_a_wrk2_path_asked_for_is_not_replaced_by_another(tmp_path: Path) -> None:
    import wrk_crosscheck

    missing = str(tmp_path / "wrk2")
    assert wrk_crosscheck.find_wrk2(missing) is None
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "overload.py"), "--part", "overload", "--wrk2", missing],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "wrk2 not found" in done.stderr  # before any load
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "overload.py"), "--part", "hostile", "--wrk2", sys.executable],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "--wrk2 cross-checks the overload part" in done.stderr


def test_admission_shares_bins_each_second_by_the_share_in_force(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "admission_shares.py"),
            "--quick",
            "--json",
            str(out),
            "--shares",
            "0.7,0.95",
            "--seconds",
            "6",
            "--period",
            "2",
            "--saturation-seconds",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    shares = doc["details"]["alternated"]["shares"]
    # seconds 0, 2 and 4 hold a switch; 1 and 5 ran at 0.7, 3 at 0.95
    assert {share: counts["seconds"] for share, counts in shares.items()} == {"0.7": 2, "0.95": 1}
    assert all(counts["ok"] > 0 for counts in shares.values())
    names = [figure["name"] for figure in doc["figures"]]
    assert "answers: share 0.95 less share 0.7" in names


@pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="the server on one CPU, the generator on another"
)
def test_overload_budget_prices_the_goals_at_the_costs_it_measured(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "overload_budget.py"),
            "--quick",
            "--json",
            str(out),
            "--seconds",
            "1",
            "--connections",
            "100",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    (measured,) = doc["details"]["rounds"]
    figures = {figure["name"].strip(): figure for figure in doc["figures"]}
    need = figures["core the 2 x S goals need"]
    assert need["goal"] == "<= 1"
    # 0.85 S orders and 0.45 S refusals a second, each at what it cost on 100 connections
    expected = measured["s"] * (0.85 * measured["order_us"] + 0.45 * measured["refusal_us"]) / 1e6
    assert need["value"] == pytest.approx(expected)
    assert measured["orders_refused"] == 0  # the admission controller kept out of the orders' run
    assert 0 < measured["refusal_us"] < measured["order_us"]
    assert measured["s_segments_per_answer"] >= 1 and measured["order_segments_per_answer"] >= 1
    assert "server CPU per refusal on 100 conns" in figures


def test_server_cpu_counts_a_pinned_process_and_its_core() -> None:
    """``ServerCpu``: a process pinned to one CPU and kept busy shows in its own share and, at least as much
    (within the tick accounting's slack), in its core's busy share."""
    import psutil
    from _common import ServerCpu

    cpu = sorted(os.sched_getaffinity(0))[-1]
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        meter = ServerCpu(psutil.Process(), cpu)
        meter.mark()
        until = time.perf_counter() + 0.5
        while time.perf_counter() < until:
            pass
        process_pct, core_pct = meter.percent()  # one mark: the span ends now
    finally:
        os.sched_setaffinity(0, before)
    assert process_pct > 25  # busy all along; a shared machine may take some of the core
    assert core_pct > process_pct - 10


def test_give_up_drops_exactly_the_expired_and_the_ended_phase() -> None:
    """``_give_up`` finds in one step the requests the one-by-one rule would drop: every due one of an
    ended phase, and those of the running phase intended ``give_up_s`` or more ago; each recorded later
    with its wait at the moment it was dropped."""
    from _loadgen import _Run

    run = _Run(requests_for("http://127.0.0.1:9"), 1, 1.0, [(997, 0.37), (311, 0.5)], 100, give_up_s=0.05)
    schedule = run.schedule
    assert schedule is not None
    for now in range(0, 900_000_000, 1_300_017):
        run.due = schedule.due(now)
        expected = run.dispatched
        while expected < run.due and (
            expected < schedule.phase_first(now) or now - run.intended_ns(expected) >= run.give_up_ns
        ):
            expected += 1
        run._give_up(now)
        assert run.dispatched == expected
        run.dispatched = min(run.due, run.dispatched + 1)  # one sent a step: fewer than fall due
    assert run.dropped > 50
    run._record_given_up()
    assert run.hist.get_total_count() == run.dropped
    assert run.hist.get_max_value() < 70_000  # no wait recorded beyond give_up_s and a step


def test_a_phase_backlog_is_dropped_at_its_end_and_every_due_request_accounted() -> None:
    """A server slower than the first phase's rate leaves a backlog in the generator, which the next phase
    drops. Every due request is sent or dropped, and each carries a latency."""
    from _loadgen import open_loop_phases

    with stub_server(delay_s=0.1) as url:
        result = uvloop.run(
            open_loop_phases(url, requests_for(url), [(400, 0.5), (20, 0.5)], 2, give_up_s=0.3, timeline=True)
        )
    assert result.sent + result.dropped + result.unfinished == 210
    assert result.dropped >= 100 and result.statuses == {201: result.sent}
    assert result.timeline is not None
    assert result.timeline.merged(0, 10).get_total_count() == result.ok + result.dropped + result.unfinished
