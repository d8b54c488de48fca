"""Issue 22: output that cannot be written is a clear error and exit 2, before anything starts.

An --output-dir under /proc or /sys, or with a file in the way, used to give a traceback and exit 1 from
run, sweep and resume; a fit.json that cannot be written, a traceback from fit.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import invoke_capacity

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "sweep-small"
SCENARIO = """\
name: t
load: {orders_per_second: 50, concurrent_users: 5, symbols: [BTCUSD], duration: 3s}
slo: {p99_ms: 20, error_rate: 0.01}
"""


@pytest.fixture
def in_the_way(tmp_path: Path) -> Path:
    file = tmp_path / "a-file"
    file.write_text("not a directory")
    return file


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_an_output_dir_that_cannot_be_written_is_bad_input(
    tmp_path: Path, in_the_way: Path, command: str
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    source = scenario if command == "run" else ROOT / "scenarios" / "sweeps" / "ci_smoke.yaml"
    cases = {
        "/proc/capacity-test": "cannot write there: ",
        "/sys/capacity-test": "cannot write there: ",
        str(in_the_way): f"{in_the_way} is a file in the way, expected a directory",
        str(in_the_way / "below"): f"{in_the_way} is a file in the way, expected a directory",
    }
    for directory, why in cases.items():
        result = invoke_capacity(command, source, "--output-dir", directory, "-q")
        assert result.exit_code == 2, result.output
        assert f"capacity {command}: error: --output-dir '{directory}': {why}" in result.stderr


def test_fit_that_cannot_write_fit_json_says_so(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    shutil.copytree(FIXTURE, sweep)
    (sweep / "fit.json").unlink(missing_ok=True)
    (sweep / "fit.json").mkdir()  # something that is not a file stands where fit.json goes
    result = invoke_capacity("fit", sweep)
    assert result.exit_code == 2, result.output
    assert f"capacity fit: error: cannot write fit.json in {sweep}: " in result.stderr


def test_make_demo_checks_its_output_dir_too(capsys: pytest.CaptureFixture[str]) -> None:
    from capacity.demo import main

    assert main(["--output-dir", "/proc/capacity-test"]) == 2
    assert "--output-dir '/proc/capacity-test': cannot write there: " in capsys.readouterr().out


@pytest.mark.timeout(90)
def test_a_full_disk_when_run_json_is_written_stops_cleanly_and_keeps_the_generators_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No tmpfs to fill here (no root for mounts), so the disk fills exactly where run.json is written."""
    import errno

    from capacity import run as run_module

    def full_disk(path: object, run: object) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(run_module, "write_run", full_disk)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO.replace("duration: 3s", "duration: 2s"))
    result = invoke_capacity("run", scenario, "--output-dir", tmp_path / "runs", "-q")
    assert result.exit_code == 1, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert f"could not write {run_dir / 'run.json'}: No space left on device" in result.stderr
    assert "loadgen.json" in result.stderr and (run_dir / "loadgen" / "loadgen.json").is_file()
    assert not (run_dir / "run.json").exists()
