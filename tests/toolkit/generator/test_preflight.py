"""Issue 22: a target that is not the exchange API is refused before any load, and a run that sent nothing
is a failed run, never "completed".

The targets are tiny loopback HTTP servers in a thread: one answers HTML 200 to everything, one answers
200 on /health and 500 elsewhere. Both used to give a "completed" Locust run with 0 sent and exit 0.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import invoke_capacity

from capacity.generator.preflight import TargetNotTheApi, check_round_trip, fetch_market
from capacity.run import orchestrator as run_module
from capacity.run.exchange_process import EmbeddedExchange
from capacity.scenario import load_scenario_text

SCENARIO = """\
name: t
load: {orders_per_second: 50, concurrent_users: 5, symbols: [BTCUSD], duration: 3s}
slo: {p99_ms: 20, error_rate: 0.01}
"""


BTCUSD = {"symbol": "BTCUSD", "tick_size": "0.01", "lot_size": "0.0001", "reference_price": "60000"}
SYMBOLS = json.dumps({"symbols": [BTCUSD]}).encode()
BOOK_ONLY = SCENARIO + "mix: {limit: 0, market: 0, cancel: 0, book: 100}\n"


class _ReadOnly(http.server.BaseHTTPRequestHandler):
    """Lists the exchange's symbols and serves books, refuses every order: a read-only replica."""

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/api/orderbook/"):
            self._send(200, b'{"symbol": "BTCUSD", "bids": [], "asks": []}')
        else:
            self._send(200, SYMBOLS if self.path == "/api/symbols" else b'{"status": "ok"}')

    def do_POST(self) -> None:
        self._send(403, b'{"error": "read_only", "message": "this replica takes no orders"}')

    do_DELETE = do_POST

    def log_message(self, *args: object) -> None:
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    html_everywhere = True

    def _answer(self) -> None:
        if self.html_everywhere or self.path == "/health":
            status, kind, body = 200, "text/html", b"<html><body>welcome</body></html>"
        else:
            status, kind, body = 500, "text/plain", b"internal error"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


def _serve(html_everywhere: bool) -> Iterator[str]:
    yield from _serve_with(type("Handler", (_Handler,), {"html_everywhere": html_everywhere}))


def _serve_with(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def html_target() -> Iterator[str]:
    yield from _serve(html_everywhere=True)


@pytest.fixture
def health_only_target() -> Iterator[str]:
    yield from _serve(html_everywhere=False)


@pytest.fixture
def read_only_target() -> Iterator[str]:
    yield from _serve_with(_ReadOnly)


def _run(tmp_path: Path, target: str, engine: str, scenario_text: str = SCENARIO) -> tuple[int, str, dict]:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(scenario_text)
    out = tmp_path / "runs"
    args = ("--target", target, "--engine", engine, "--output-dir", out, "-q")
    result = invoke_capacity("run", scenario, *args)
    (run_json,) = out.glob("*/run.json")
    return result.exit_code, result.stderr, json.loads(run_json.read_text())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("engine", ["native", "locust"])
def test_an_html_target_is_refused_before_any_load(tmp_path: Path, html_target: str, engine: str) -> None:
    code, stderr, run = _run(tmp_path, html_target, engine)
    why = f"GET {html_target}/api/symbols answered 200 (text/html) without the exchange's symbol list"
    assert code == 1 and why in stderr
    assert run["status"] == "failed" and why in run["problem"]
    assert run["summary"]["counts"]["sent"] == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("engine", ["native", "locust"])
def test_a_target_healthy_but_failing_its_api_is_refused(
    tmp_path: Path, health_only_target: str, engine: str
) -> None:
    code, stderr, run = _run(tmp_path, health_only_target, engine)
    assert code == 1
    assert f"GET {health_only_target}/api/symbols answered HTTP 500: internal error" in stderr
    assert run["status"] == "failed"


@pytest.mark.timeout(90)
def test_a_run_that_sent_nothing_is_failed_with_the_generators_words(
    tmp_path: Path, html_target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past a pre-flight that let it through, every Locust user dies at start-up on the HTML target: the
    run is failed, and the cause comes from the generator's log."""
    monkeypatch.setattr(run_module, "fetch_market", lambda url, symbols: None)
    monkeypatch.setattr(run_module, "check_round_trip", lambda url, scenario, market: None)
    code, stderr, run = _run(tmp_path, html_target, "locust")
    assert code == 1, stderr
    assert run["status"] == "failed"
    assert run["problem"].startswith("the load generator sent no request; 5 user(s) failed at start-up; ")
    assert "first error in locust.log: locust.user.users: Expecting value" in run["problem"], run["problem"]


@pytest.mark.timeout(60)
def test_a_target_that_refuses_orders_is_refused_before_any_load(
    tmp_path: Path, read_only_target: str
) -> None:
    code, stderr, run = _run(tmp_path, read_only_target, "native")
    why = f"POST {read_only_target}/api/orders answered HTTP 403: "
    assert code == 1 and why in stderr and "this replica takes no orders" in stderr, stderr
    assert run["status"] == "failed" and run["summary"]["counts"]["sent"] == 0


def test_a_read_only_mix_is_checked_with_a_book_read(read_only_target: str) -> None:
    scenario = load_scenario_text(BOOK_ONLY)
    market = fetch_market(read_only_target, scenario.load.symbols)
    check_round_trip(read_only_target, scenario, market)  # no order tried: the replica is fine for it
    with pytest.raises(TargetNotTheApi, match=r"POST .*/api/orders answered HTTP 403"):
        check_round_trip(read_only_target, load_scenario_text(SCENARIO), market)


@pytest.mark.timeout(60)
def test_the_round_trip_leaves_the_reference_exchange_as_it_found_it() -> None:
    scenario = load_scenario_text(SCENARIO)
    with EmbeddedExchange(env={"JOURNAL_PATH": "none"}) as exchange:
        check_round_trip(exchange.url, scenario, fetch_market(exchange.url, scenario.load.symbols))
        with urllib.request.urlopen(f"{exchange.url}/api/orderbook/BTCUSD") as response:
            book = json.loads(response.read())
        with urllib.request.urlopen(f"{exchange.url}/api/metrics") as response:
            metrics = json.loads(response.read())["data"]
    assert book["bids"] == [] and book["asks"] == []
    assert metrics["total_orders"] == 1 and metrics["resting_orders"] == 0, metrics
