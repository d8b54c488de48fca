"""Issue 22: a target that is not the exchange API is refused before any load, and a run that sent nothing
is a failed run, never "completed".

The targets are tiny loopback HTTP servers in a thread: one answers HTML 200 to everything, one answers
200 on /health and 500 elsewhere. Both used to give a "completed" Locust run with 0 sent and exit 0.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import invoke_capacity

from capacity import run as run_module

SCENARIO = """\
name: t
load: {orders_per_second: 50, concurrent_users: 5, symbols: [BTCUSD], duration: 3s}
slo: {p99_ms: 20, error_rate: 0.01}
"""


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
    handler = type("Handler", (_Handler,), {"html_everywhere": html_everywhere})
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


def _run(tmp_path: Path, target: str, engine: str) -> tuple[int, str, dict]:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
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
    assert f"GET {health_only_target}/api/symbols answered HTTP 500: not the exchange API" in stderr
    assert run["status"] == "failed"


@pytest.mark.timeout(90)
def test_a_run_that_sent_nothing_is_failed_with_the_generators_words(
    tmp_path: Path, html_target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past a pre-flight that let it through, every Locust user dies at start-up on the HTML target: the
    run is failed, and the cause comes from the generator's log."""
    monkeypatch.setattr(run_module, "fetch_market", lambda url, symbols: None)
    code, stderr, run = _run(tmp_path, html_target, "locust")
    assert code == 1, stderr
    assert run["status"] == "failed"
    assert run["problem"].startswith("the load generator sent no request; 5 user(s) failed at start-up; ")
    assert "first error in locust.log: locust.user.users: Expecting value" in run["problem"], run["problem"]
