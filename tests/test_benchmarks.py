"""The cheap benchmarks' ``--quick --json`` path runs and writes valid JSON; nothing about speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize(
    ("script", "extra"),
    [("engine_throughput.py", ["--orders", "5000"]), ("engine_memory.py", ["--orders", "10000"])],
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
