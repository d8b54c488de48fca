"""Schemathesis against a real exchange process: the OpenAPI document and the server agree.

``schemathesis run`` reads /openapi.json and sends what it generates from it (coverage, fuzzing and stateful
phases, positive and negative data) with its checks: no 5xx, every status code, content type, header and
body as documented, every schema-valid request accepted (``positive_data_acceptance``) and every
schema-invalid one refused (``negative_data_rejection``). A symbol the schema lists but the server refuses,
an off-tick price it allows, a market order with a price, a load test of duration "0": each is a failure.

Bounded for CI: a fixed seed, a few examples per operation, one worker (about 1,500 requests, ~10 s).

- No real load test can start: the exchange runs with a stand-in ``capacity`` package first on its
  PYTHONPATH, whose ``run`` waits for its cancel (a valid POST /demo/load-test gets 202 and starts only that;
  the next ones get 409, as documented).
- No journal (JOURNAL_PATH=none): a valid chaos injection answers 409, so no generated latency (up to 10 s
  per commit) slows the run down; its body is still validated first.
- ``use_after_free`` is left out: a cancelled load test stays visible (200, state "cancelled") by design.
- 409 does not count as a refusal of invalid data here: only a 400 (or 404/405/413) proves the server
  checked the body; the running stand-in must not mask a body the server would have accepted.
- Load-test bodies that break the two cross-field rules the schema states in words only are not generated
  as positive examples (``schemathesis_hooks.py``).

``SCHEMATHESIS_SEED=<n>`` explores other examples; ``pytest -s`` prints schemathesis's summary.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support import REPO_ROOT

from capacity.run.exchange_process import EmbeddedExchange

pytest.importorskip("schemathesis")

SEED = os.environ.get("SCHEMATHESIS_SEED", "20261204")
MAX_EXAMPLES = 20  # per operation and phase
CHECKS = "all"
LEFT_OUT = "use_after_free"

CONFIG = """\
hooks = "schemathesis_hooks"
workers = 1

[checks.negative_data_rejection]
expected-statuses = ["400", "404", "405", "413"]

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "404", "409"]
"""

# ``capacity run`` as the exchange's load-test child sees it: waits until cancelled (SIGINT), at most 60 s.
FAKE_CAPACITY_MAIN = textwrap.dedent(
    """\
    import sys, time

    def main(args, prog_name=None):
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            sys.exit(130)
        sys.exit(1)
    """
)


def stand_in_capacity(root: Path) -> Path:
    package = root / "capacity"
    (package / "cli").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cli" / "__init__.py").write_text("")
    (package / "cli" / "main.py").write_text(FAKE_CAPACITY_MAIN)
    return root


def python_path(*entries: Path) -> str:
    inherited = os.environ.get("PYTHONPATH")
    return os.pathsep.join([*map(str, entries), *([inherited] if inherited else [])])


@pytest.mark.timeout(180)
def test_schemathesis_finds_no_disagreement_between_document_and_server(tmp_path: Path) -> None:
    fake = stand_in_capacity(tmp_path / "stand-in")
    env = {
        "JOURNAL_PATH": "none",
        "LOAD_TEST_OUTPUT_DIR": str(tmp_path / "runs"),
        "OVERLOAD_MAX_LAG": "30s",  # a shared CI machine must not turn an order into a 503
        "PYTHONPATH": python_path(fake, REPO_ROOT),
    }
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        sys.executable,
        "-c",
        "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())",
        "--config-file",
        str(config),
        "--no-color",
        "run",
        "--checks",
        CHECKS,
        "--exclude-checks",
        LEFT_OUT,
        "--seed",
        SEED,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--request-timeout",
        "10",
    ]
    with EmbeddedExchange(env=env) as exchange:
        started = time.monotonic()
        result = subprocess.run(
            [*command, exchange.url + "/openapi.json"],
            env={**os.environ, "PYTHONPATH": python_path(Path(__file__).parent, REPO_ROOT)},
            cwd=tmp_path,  # its report and cassettes, if any, stay in the test's directory
            capture_output=True,
            text=True,
            timeout=150,
        )
        elapsed = time.monotonic() - started
    summary = result.stdout[result.stdout.find("SUMMARY") :] if "SUMMARY" in result.stdout else result.stdout
    print(f"\n[schemathesis] {elapsed:.1f} s, exit {result.returncode}\n{summary[-2000:]}")
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-3000:]
    assert "Stateful" in result.stdout and "Coverage" in result.stdout
