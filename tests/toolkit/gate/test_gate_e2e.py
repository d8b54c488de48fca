"""End to end: a configuration change of the embedded exchange makes a regression visible to `capacity gate`.

The baseline is a tier with the journal off (``--no-journal``); the run under test journals every order
with ``JOURNAL_SYNC=full``. On the 2-core reference machine that costs the server about 50-70 % more CPU
per request (0.20-0.22 ms -> 0.32-0.36 ms at 1,500 requests/s), so the gate must call CPU per order worse
and exit 1.

Why 32-second tiers at 1,500/s: the gate's test allows for autocorrelated seconds, and CPU per request
wanders within a run (lag-1 autocorrelation 0.7-0.9 measured here), so a handful of seconds hold almost no
independent evidence. 8-second tiers at 400/s gave p from 1e-6 to 0.47 for a +40-80 % change; about 30
steady seconds at 1,500/s (where the idle cost spread over the requests matters less) gave 0.012, 6e-5 and
6e-5. The test's alpha is 0.05 and a pair the gate does not call worse is measured again once, as .ci/run
confirms a regression with a second sweep. A run the generator could not keep on schedule (a busy machine)
is inconclusive, not evidence either way: the pair is measured again, then skipped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import support
from click.testing import CliRunner

from capacity.cli import main as cli
from capacity.gate import load_side
from capacity.results.run_file import Overrides
from capacity.run.orchestrator import LOCUSTFILE, RunOptions, run_scenario
from capacity.scenario import load_scenario

SCENARIO = support.REPO_ROOT / "scenarios" / "ci_smoke.yaml"
OVERRIDES = Overrides(duration_s=32.0, orders_per_second=1500.0, concurrent_users=150)
THRESHOLDS = "alpha: 0.05\nmin_steady_seconds: 20\nmetrics:\n  cpu_per_order: {fail_if_worse_by: 25%}\n"


def _run(tmp_path: Path, label: str, **options: object) -> Path:
    result = run_scenario(
        load_scenario(SCENARIO),
        RunOptions(output_dir=tmp_path / label, overrides=OVERRIDES, **options),  # type: ignore[arg-type]
    )
    assert result.run.status == "completed", result.run.problem
    return result.path


@pytest.mark.timeout(400)
@pytest.mark.skipif(not LOCUSTFILE.is_file(), reason="capacity/generator/locustfile.py is missing")
def test_journaling_every_order_is_a_visible_cpu_regression(tmp_path: Path) -> None:
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text(THRESHOLDS)
    runner = CliRunner()
    outputs, busy = [], 0
    for attempt in range(3):
        base = _run(tmp_path, f"base-{attempt}", journal=False)
        slow = _run(tmp_path, f"slow-{attempt}", journal_sync="full")
        if not all(t.usable for d in (base, slow) for t in load_side(d, 20).tiers):
            busy += 1
            continue
        baseline = tmp_path / f"baseline-{attempt}.json"
        update = runner.invoke(cli.main, ["baseline", "update", str(base), "-o", str(baseline)])
        assert update.exit_code == 0, update.output
        junit = tmp_path / f"junit-{attempt}.xml"
        args = ["gate", "-b", str(baseline), str(slow), "--thresholds", str(thresholds)]
        result = runner.invoke(cli.main, [*args, "--junit", str(junit)])
        outputs.append(result.output)
        if result.exit_code == 1:
            break
        if len(outputs) == 2:  # measured twice and not called worse either time: the gate missed it
            break
    else:
        if not outputs:
            pytest.skip("the machine was too busy: the generator fell behind in every attempt (inconclusive)")
    assert outputs, f"the machine was too busy in {busy} attempt(s)"
    assert result.exit_code == 1, "\n".join(outputs)
    failed = {c.attrib["name"] for c in ET.parse(junit).iter("testcase") if c.find("failure") is not None}
    assert "cpu_per_order" in failed, result.output
    # and the same configuration against itself is no regression
    same = runner.invoke(cli.main, ["gate", "-b", str(baseline), str(base), "--thresholds", str(thresholds)])
    assert same.exit_code == 0, same.output
