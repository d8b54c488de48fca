"""`capacity sweep`: bad input exits 2 with a one-line (or file:line) message and creates nothing; a tiny
real sweep (two 3-second tiers against the embedded exchange) writes a valid sweep directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import support
from click.testing import Result
from support import invoke_capacity

from capacity.results.run_file import FORMAT as RUN_FORMAT
from capacity.run.orchestrator import LOCUSTFILE
from capacity.sweep.sweep_file import FORMAT, read_sweep

ROOT = support.REPO_ROOT
FIXTURE = ROOT / "tests" / "fixtures" / "sweep-small"
SCENARIOS = ROOT / "scenarios"
TINY = f"""\
name: tiny
cooldown: 1s
defaults: {{duration: 3s, concurrent_users: 4}}
tiers:
  - {{scenario: {SCENARIOS / "light.yaml"}, orders_per_second: 20}}
  - {{scenario: {SCENARIOS / "minimum.yaml"}, name: minimum-20, orders_per_second: 20}}
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def sweep(*args: str | Path) -> Result:
    return invoke_capacity("sweep", *args)


def error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "capacity sweep: error: give a SWEEP file"),
        (["{tmp}/nope.yaml"], "{tmp}/nope.yaml: file not found"),
        (["{scenarios}/average.yaml"], "is a scenario: give --from N --to N for a ladder over it"),
        (["{tiny}", "--from", "100", "--to", "200"], "is a sweep file: --from/--to/--steps"),
        (["{scenarios}/average.yaml", "--from", "100"], "a ladder needs both --from and --to"),
        (
            ["{scenarios}/average.yaml", "--from", "500", "--to", "100"],
            "--to (100) must be above --from (500)",
        ),
        (
            ["{scenarios}/average.yaml", "--from", "5", "--to", "9", "--steps", "1"],
            "--steps must be at least 2",
        ),
        (["{scenarios}/average.yaml", "--from", "x", "--to", "9"], "--from 'x': expected a number > 0"),
        (
            ["{scenarios}/average.yaml", "--from", "1", "--to", "9", "--tier-duration", "soon"],
            "not a duration",
        ),
        (["{tiny}", "--cooldown", "-3"], "--cooldown '-3': not a duration"),
        (["{tiny}", "--repeat", "0"], "--repeat '0': expected a number > 0"),
        (["{tiny}", "--repeat", "two"], "--repeat 'two': expected an integer > 0"),
        (
            ["--resume", "{fixture}", "--repeat", "2"],
            "runs the rest with the sweep's own settings; drop --repeat",
        ),
        (["{tiny}", "--workers", "0"], "--processes '0': expected a number > 0"),
        (["{tiny}", "--target", "http://10.0.0.1:8080"], "refusing a non-loopback host"),
        (["{tiny}", "--server-cpus", "99"], "--server-cpus: CPU 99 is not available"),
        (["--resume", "{tmp}/nope"], "{tmp}/nope: no such directory"),
        (["--resume", "{fixture}", "{tiny}"], "give no SWEEP file with it"),
        (
            ["--resume", "{fixture}", "--workers", "2"],
            "runs the rest with the sweep's own settings; drop --processes",
        ),
        (["--resume", "{fixture}"], "nothing to resume: completed, 3 of 3 tiers done"),
    ],
)
def test_bad_input_exits_2_and_creates_nothing(
    tmp_path: Path, tiny: Path, args: list[str], message: str
) -> None:
    values = {"tmp": tmp_path, "tiny": tiny, "scenarios": SCENARIOS, "fixture": FIXTURE}
    out = tmp_path / "sweeps"
    output = [] if "--resume" in args else ["--output-dir", out]  # --resume takes no options
    line = error_line(sweep(*(a.format(**values) for a in args), *output))
    assert message.format(**values) in line
    assert not out.exists()


def test_an_invalid_sweep_file_is_reported_by_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        TINY.replace("cooldown: 1s", "cooldown: soon").replace("orders_per_second: 20}", "rate: 2}", 1)
    )
    result = sweep(bad, "--output-dir", tmp_path / "sweeps")
    assert result.exit_code == 2 and result.stdout == ""
    assert f"{bad}:2: cooldown: expected" in result.stderr
    assert f'{bad}:5: tiers[0].rate: unknown field "rate"' in result.stderr
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.skipif(not LOCUSTFILE.is_file(), reason="capacity/generator/locustfile.py not there yet")
@pytest.mark.timeout(60)
def test_a_tiny_real_sweep_writes_a_valid_sweep_directory(tmp_path: Path, tiny: Path) -> None:
    result = sweep(tiny, "--output-dir", tmp_path / "sweeps", "--quiet")
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "sweeps").iterdir()
    assert path.name.endswith("-tiny")
    read = read_sweep(path)
    record = read.record
    assert record.format == FORMAT and record.status == "completed" and record.kind == "file"
    assert record.source == str(tiny) and record.definition["cooldown"] == 1
    assert [(e.name, e.status, e.run_dir) for e in record.tiers] == [
        ("light", "done", "tiers/01-light"),
        ("minimum-20", "done", "tiers/02-minimum-20"),
    ]
    for entry, run in read.tier_runs():
        assert run.format == RUN_FORMAT and run.status == "completed"
        assert entry.offered == run.summary.offered_rate == pytest.approx(20, rel=0.1)
        assert entry.achieved == pytest.approx(20, rel=0.25)
        assert run.scenario["load"]["duration"] == 3
        assert (path / entry.run_dir / "loadgen" / "corrected.hlog").is_file()
        # Each tier ran where it stays: its recorded Locust command names its own directory.
        assert str(path / entry.run_dir / "scenario.yaml") in run.loadgen.command
    assert sorted(p.name for p in (path / "tiers").iterdir()) == ["01-light", "02-minimum-20"]
    assert record.environment.available_cpus and record.started_utc <= (record.finished_utc or "")
    out = " ".join(result.stdout.split())
    assert "Scalability matrix: tiny" in out and "sweep completed, 2 of 2 tiers done" in out
    assert f"sweep directory: {path}" in out
    assert "done 01/02 light 20/s offered" in " ".join(result.stderr.split())


@pytest.mark.skipif(not LOCUSTFILE.is_file(), reason="capacity/generator/locustfile.py not there yet")
@pytest.mark.timeout(60)
def test_resume_runs_the_first_unfinished_tier_for_real(tmp_path: Path) -> None:
    path = tmp_path / "sweep"
    shutil.copytree(FIXTURE, path)
    data = json.loads((path / "sweep.json").read_text())
    data["status"] = "interrupted"
    data["tiers"][2].update(status="interrupted", problem="stopped early (interrupted)")
    (path / "sweep.json").write_text(json.dumps(data))

    result = sweep("--resume", path, "--quiet")
    assert result.exit_code == 0, result.output
    record = read_sweep(path).record
    assert record.status == "completed" and len(record.resumed_utc) == 1
    medium = record.tiers[2]
    assert (medium.status, medium.run_dir, medium.attempts) == (
        "done",
        "tiers/03-medium-2",
        ("tiers/03-medium",),
    )
    assert [e.run_dir for e in record.tiers[:2]] == ["tiers/01-light", "tiers/02-minimum"]  # not run again
