"""The native load generator (``python -m capacity.generator.native_generator``) against a scripted exchange.

The stub exchange runs on its own event loop in a thread on 127.0.0.1: it answers the routes the generator
uses with the exchange API's shapes, records every request, hands out fresh order ids, and can hold its
answers for a while (a server stall). The generator runs as the real command, in a subprocess.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import support
from hdrh.log import HistogramLogReader

from capacity.generator.http_wire import ProtocolError, encode_request, split_response
from capacity.results.verdict_text import limit_sentence
from capacity.run.exchange_process import EmbeddedExchange
from capacity.run.orchestrator import RunOptions, native_command, run_scenario
from capacity.scenario import load_scenario

ROOT = support.REPO_ROOT
SYMBOLS = {
    "symbols": [
        {"symbol": "BTCUSD", "tick_size": "0.01", "lot_size": "0.0001", "reference_price": "60000"},
        {"symbol": "ETHUSD", "tick_size": "0.01", "lot_size": "0.001", "reference_price": "3000"},
    ]
}


# ---------------------------------------------------------------------------------------------- the wire


def test_requests_are_whole_http_messages() -> None:
    assert encode_request("GET", "/api/orderbook/BTCUSD?depth=10", "127.0.0.1:8080") == (
        b"GET /api/orderbook/BTCUSD?depth=10 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
    )
    post = encode_request("POST", "/api/orders", "h:1", b'{"a":1}')
    assert post.endswith(b'Content-Length: 7\r\n\r\n{"a":1}')
    assert b"Content-Type: application/json\r\n" in post


def test_responses_are_framed_by_content_length() -> None:
    whole = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"
    assert split_response(whole[:-1]) is None  # body incomplete
    assert split_response(whole[:20]) is None  # head incomplete
    assert split_response(whole + b"HTTP/1.1") == (201, b"{}", b"HTTP/1.1")
    # any spelling of the header, and an interim 100 answer before the real one
    odd = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length:  3\r\n\r\nabc"
    assert split_response(odd) == (200, b"abc", b"")
    assert split_response(b"HTTP/1.1 204 No Content\r\n\r\n") == (204, b"", b"")


@pytest.mark.parametrize(
    ("response", "problem"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", "chunked"),
        (b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", "without Content-Length"),
        (b"<html><body>hello</body></html>\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n", "malformed Content-Length"),
    ],
)
def test_what_cannot_be_framed_is_a_protocol_error(response: bytes, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        split_response(response)


# ---------------------------------------------------------------------------------------------- stub exchange


class StubExchange:
    """A scripted exchange on 127.0.0.1 in a thread: records requests, answers in the API's shapes."""

    def __init__(self, symbols_body: bytes | None = None, content_type: str = "application/json") -> None:
        self.symbols_body = symbols_body if symbols_body is not None else json.dumps(SYMBOLS).encode()
        self.content_type = content_type
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self.acked_ids: set[int] = set()
        self.answered_2xx = 0
        self.hold_until = 0.0  # monotonic time before which answers are held (a stall)
        self._ids = itertools.count(1000)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.url = ""

    def __enter__(self) -> StubExchange:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def stall(self, seconds: float) -> None:
        """Hold every answer (those in flight and new ones) for ``seconds`` from now."""
        self.hold_until = time.monotonic() + seconds

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            self._loop.create_server(lambda: _StubConnection(self), "127.0.0.1", 0, backlog=1024)
        )
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._ready.set()
        self._loop.run_forever()
        server.close()

    def answer(self, method: str, path: str) -> tuple[int, bytes, str]:
        self.requests.append((method, path))
        if path == "/api/symbols":
            return 200, self.symbols_body, self.content_type
        if method == "POST":
            order_id = next(self._ids)
            self.acked_ids.add(order_id)
            body = {"id": order_id, "status": "new", "filled_quantity": "0", "trades": []}
            return 201, json.dumps(body).encode(), "application/json"
        if method == "DELETE":
            return 200, b'{"status":"cancelled"}', "application/json"
        if path.startswith("/api/orderbook/"):
            book = {"symbol": "BTCUSD", "bids": [["59999.99", "1"]], "asks": [["60000.01", "1"]]}
            return 200, json.dumps(book).encode(), "application/json"
        return 200, b'{"status":"ok"}', "application/json"


class _StubConnection(asyncio.Protocol):
    def __init__(self, stub: StubExchange) -> None:
        self.stub = stub
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head = self.buf[:end].decode()
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length :]
            method, path, _ = head.split("\r\n")[0].split(" ")
            status, body, content_type = self.stub.answer(method, path)
            if 200 <= status < 300 and path != "/api/symbols":
                self.stub.answered_2xx += 1
            response = (
                f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            delay = self.stub.hold_until - time.monotonic()
            if delay > 0:
                asyncio.get_running_loop().call_later(delay, self.transport.write, response)
            else:
                self.transport.write(response)


@pytest.fixture
def stub() -> Iterator[StubExchange]:
    with StubExchange() as exchange:
        yield exchange


def scenario(path: Path, rate: float, users: int, duration: str, mix: str | None = None) -> Path:
    path.write_text(
        "name: native\ndescription: native engine test\n"
        f"load: {{orders_per_second: {rate}, concurrent_users: {users}, symbols: [BTCUSD, ETHUSD], "
        f"duration: {duration}}}\n"
        f"mix: {mix or '{limit: 70, market: 10, cancel: 15, book: 5}'}\n"
        "slo: {p99_ms: 50, error_rate: 0.01}\n"
    )
    return path


def generator(scenario_file: Path, url: str, results: Path, *extra: str) -> list[str]:
    """``capacity run``'s own command line for the native generator, plus ``extra`` flags."""
    return [*native_command(scenario_file, url, results), *extra]


def run_generator(
    scenario_file: Path, url: str, results: Path, *extra: str, timeout: float = 60
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    done = subprocess.run(
        generator(scenario_file, url, results, *extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done, json.loads((results / "loadgen.json").read_text())


# ---------------------------------------------------------------------------------------------- behaviour


def assert_every_slot_sent_but_a_few_generator_late(totals: dict[str, Any]) -> None:
    """Against an instant stub every slot is sent, except that a shared machine may delay a few past the
    schedule's end: those are left unsent and must be counted as the generator's lateness."""
    unsent = totals["scheduled"] - totals["sent"]
    assert 0 <= unsent <= totals["generator_late"] <= 6, totals


@pytest.mark.timeout(60)
def test_sends_follow_the_schedule(stub: StubExchange, tmp_path: Path) -> None:
    # 200/s over 20 users: each user's slots are 0.1 s apart from a random phase, 30 in 3 s
    _, doc = run_generator(scenario(tmp_path / "s.yaml", 200, 20, "3s"), stub.url, tmp_path / "out")
    totals = doc["totals"]
    assert doc["engine"] == "native" and doc["workers"] == 1
    assert totals["scheduled"] == 600 and totals["errors"] == 0
    assert_every_slot_sent_but_a_few_generator_late(totals)
    assert totals["ok"] == totals["sent"] == stub.answered_2xx
    # per second of intended send time, every second of the schedule got its 200
    assert [s["scheduled"] for s in doc["seconds"]] == [200, 200, 200]


@pytest.mark.timeout(60)
def test_a_server_stall_shows_in_corrected_latency_not_raw_and_is_not_the_generators(
    stub: StubExchange, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        generator(scenario(tmp_path / "s.yaml", 400, 10, "5s"), stub.url, tmp_path / "out"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    progress = tmp_path / "out" / "progress.json"
    deadline = time.monotonic() + 20
    while not progress.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    stub.stall(0.3)
    output, _ = process.communicate(timeout=40)
    assert process.returncode == 0, output.decode()
    totals = json.loads((tmp_path / "out" / "loadgen.json").read_text())["totals"]
    assert totals["scheduled"] == 2000 and totals["ok"] == totals["sent"] >= 1980  # caught up by the end
    # every user had one request held (raw ~300 ms: 10 of 2000) and ~11 slots queued behind it, sent once
    # the answer came: their wait counts from their intended time
    assert totals["corrected"]["max"] >= 280
    assert totals["corrected"]["p99"] >= 100
    assert totals["raw"]["p99"] < 100 <= totals["raw"]["max"]
    # the requests that went out late did so because the server held their users, not the generator
    assert totals["late"] >= 50
    assert totals["generator_late"] <= 0.2 * totals["late"]


@pytest.mark.timeout(60)
def test_the_mix_and_cancels_of_the_users_own_orders(stub: StubExchange, tmp_path: Path) -> None:
    mix = "{limit: 40, market: 10, cancel: 40, book: 10}"
    _, doc = run_generator(scenario(tmp_path / "s.yaml", 500, 25, "4s", mix), stub.url, tmp_path / "out")
    kinds = doc["requests_by_kind"]
    sent = sum(kinds.values())
    assert sent == doc["totals"]["sent"] and doc["totals"]["scheduled"] == 2000
    assert_every_slot_sent_but_a_few_generator_late(doc["totals"])
    # a cancel with no resting order of its user's to cancel goes out as a limit order instead
    assert 0.30 <= kinds["cancel"] / sent <= 0.42 and 0.38 <= kinds["limit"] / sent <= 0.52
    assert 0.06 <= kinds["market"] / sent <= 0.14 and 0.06 <= kinds["book"] / sent <= 0.14
    methods = Counter(method for method, _ in stub.requests)
    assert methods["DELETE"] == kinds["cancel"] and methods["POST"] == kinds["limit"] + kinds["market"]
    cancelled = [int(path.rsplit("/", 1)[1]) for method, path in stub.requests if method == "DELETE"]
    assert set(cancelled) <= stub.acked_ids  # only ids the exchange acknowledged as resting
    assert len(cancelled) == len(set(cancelled))  # each cancelled once


@pytest.mark.timeout(60)
def test_two_processes_merge_their_histograms_exactly(stub: StubExchange, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _, doc = run_generator(scenario(tmp_path / "s.yaml", 300, 20, "3s"), stub.url, out, "--processes", "2")
    totals = doc["totals"]
    assert doc["workers"] == 2
    # what the stub saw, by method and route, is printed if the counts disagree
    seen = Counter((method, path.split("?")[0].rstrip("0123456789")) for method, path in stub.requests)
    # users 0..19 split over the two processes: every user ran (each had its 45 slots)
    assert totals["scheduled"] == 900, (totals, seen)
    assert_every_slot_sent_but_a_few_generator_late(totals)
    assert totals["ok"] == totals["sent"] == stub.answered_2xx, (totals, seen)
    for name in ("scheduled", "sent", "ok", "errors", "late", "generator_late"):
        assert totals[name] == sum(second[name] for second in doc["seconds"]), name
    assert totals["corrected"]["count"] == totals["raw"]["count"] == totals["ok"]
    for name in ("corrected", "raw"):
        reader = HistogramLogReader(str(out / f"{name}.hlog"), None)
        counted = 0
        while (interval := reader.get_next_interval_histogram()) is not None:
            counted += interval.get_total_count()
        assert counted == totals["ok"], name


@pytest.mark.timeout(60)
def test_a_target_that_is_not_the_exchange_api_stops_before_any_load(tmp_path: Path) -> None:
    with StubExchange(b"<html><body>It works!</body></html>", "text/html") as html:
        done = subprocess.run(
            generator(scenario(tmp_path / "s.yaml", 100, 5, "2s"), html.url, tmp_path / "out"),
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
        assert done.returncode == 3
        assert "not the exchange API" in done.stderr and "text/html" in done.stderr
        assert html.requests == [("GET", "/api/symbols")]  # no load was sent
    assert not (tmp_path / "out" / "loadgen.json").exists()


@pytest.mark.timeout(60)
def test_nothing_listening_and_bad_input_are_named(tmp_path: Path) -> None:
    with StubExchange() as gone:
        url = gone.url
    done = subprocess.run(
        generator(scenario(tmp_path / "s.yaml", 100, 5, "2s"), url, tmp_path / "out"),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert done.returncode == 3 and "/api/symbols failed" in done.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nload: {orders_per_second: .nan}\n")
    done = subprocess.run(
        generator(bad, url, tmp_path / "out"), capture_output=True, text=True, timeout=30, cwd=ROOT
    )
    assert done.returncode == 2 and "bad.yaml" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.timeout(60)
def test_ctrl_c_stops_the_load_and_keeps_the_data(stub: StubExchange, tmp_path: Path) -> None:
    out = tmp_path / "out"
    process = subprocess.Popen(
        generator(scenario(tmp_path / "s.yaml", 200, 20, "30s"), stub.url, out, "--processes", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 20
    while not (out / "progress.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output.decode()
    assert time.monotonic() - started < 10
    doc = json.loads((out / "loadgen.json").read_text())
    totals = doc["totals"]
    assert 0 < totals["ok"] <= totals["sent"] < 200 * 30 / 2
    assert totals["ok"] == stub.answered_2xx or totals["ok"] == stub.answered_2xx - (
        totals["sent"] - totals["ok"]
    )
    assert (out / "corrected.hlog").exists()


# ---------------------------------------------------------------------------------------------- a real stall


@pytest.mark.timeout(90)
def test_a_sigstop_stall_of_the_exchange_is_the_servers_with_its_duration(tmp_path: Path) -> None:
    """Issue 14: a server stall is classified server-side, with how long it lasted; never the generator's."""
    file = scenario(tmp_path / "s.yaml", 400, 40, "6s")
    out = tmp_path / "runs"
    with EmbeddedExchange(env={"JOURNAL_PATH": "none", "OVERLOAD_MAX_LAG": "30s"}) as exchange:
        stopper = threading.Thread(target=_stall, args=(out, exchange.pid, 1.5), daemon=True)
        stopper.start()
        result = run_scenario(
            load_scenario(file),
            RunOptions(output_dir=out, target=exchange.url, server_pid=exchange.pid, pin=False),
        )
        stopper.join(30)
    summary = result.run.summary
    assert result.run.status == "completed", result.run.problem
    assert result.run.loadgen.engine == "native"
    assert not summary.generator_bound, summary.limits
    assert summary.counts.late > 100 and summary.counts.generator_late <= 0.1 * summary.counts.late
    (stall,) = [s for s in summary.stalls if s.duration_s >= 1.0]
    assert 1.3 <= stall.duration_s <= 3.0 and 1.0 <= stall.start_s <= 4.0
    # The tier's one limit is the server's, and says how long it stalled.
    assert summary.limit is not None and summary.limit.kind == "server", summary.limit
    assert any(r.code == "stall" and r.measured == stall.duration_s for r in summary.limit.reasons)
    print(limit_sentence(summary.limit))  # the verdict as printed, for the closing note (pytest -s)
    assert summary.corrected.max_ms is not None and summary.corrected.max_ms >= 1300


def _stall(out: Path, pid: int, seconds: float) -> None:
    """Once the run has been going for 1.5 s, freeze the exchange for ``seconds`` (SIGSTOP, SIGCONT)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        progress = list(out.glob("*/loadgen/progress.json"))
        if progress and json.loads(progress[0].read_text()).get("elapsed_s", 0) >= 1.5:
            break
        time.sleep(0.05)
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.timeout(60)
def test_nothing_is_sent_after_the_schedule_ends(stub: StubExchange, tmp_path: Path) -> None:
    """A generator behind its schedule (a server stall at the end) does not send overdue slots once the
    schedule is over: they are counted as never sent, the server's when their users waited for it."""
    process = subprocess.Popen(
        generator(scenario(tmp_path / "s.yaml", 400, 10, "3s"), stub.url, tmp_path / "out"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 20
    while not (tmp_path / "out" / "progress.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.2)
    stub.stall(2.0)  # from about 2.2 s: past the 3 s end, and answers come after the drain
    output, _ = process.communicate(timeout=40)
    assert process.returncode == 0, output.decode()
    totals = json.loads((tmp_path / "out" / "loadgen.json").read_text())["totals"]
    assert totals["scheduled"] == 1200
    assert totals["sent"] < 1150  # the slots due during the stall were never sent...
    assert totals["generator_late"] <= 0.1 * (totals["scheduled"] - totals["sent"])  # ...for the server
    assert len(stub.requests) - 1 == totals["sent"]  # and nothing went out after the end
