"""Issue 22: output that cannot be written is a clear error and exit 2, before anything starts.

An --output-dir under /proc or /sys, or with a file in the way, used to give a traceback and exit 1 from
run, sweep and resume; a fit.json that cannot be written, a traceback from fit.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import support
from support import invoke_capacity

ROOT = support.REPO_ROOT
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
    from capacity.cli.demo import main

    assert main(["--output-dir", "/proc/capacity-test"]) == 2
    assert "--output-dir '/proc/capacity-test': cannot write there: " in capsys.readouterr().out


@pytest.mark.timeout(90)
def test_a_full_disk_when_run_json_is_written_keeps_what_finish_rebuilds_it_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No tmpfs to fill here (no root for mounts), so the disk fills exactly where run.json is written.
    ``capacity run --finish`` then builds the run.json the run would have written, from the files kept."""
    import errno

    from capacity.results.run_file import Run, read_run, run_to_dict
    from capacity.run import orchestrator as run_module

    lost: list[Run] = []

    def full_disk(path: object, run: Run) -> Path:
        lost.append(run)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(run_module, "write_run", full_disk)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO.replace("duration: 3s", "duration: 2s"))
    result = invoke_capacity("run", scenario, "--output-dir", tmp_path / "runs", "-q")
    assert result.exit_code == 1, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert f"could not write {run_dir / 'run.json'}: No space left on device" in result.stderr
    assert "loadgen.json" in result.stderr and (run_dir / "loadgen" / "loadgen.json").is_file()
    assert f"`capacity run --finish {run_dir}` builds run.json" in result.stderr
    assert not (run_dir / "run.json").exists()

    monkeypatch.undo()
    finished = invoke_capacity("run", "--finish", run_dir, "-q")
    assert finished.exit_code == 0, finished.output
    rebuilt, original = run_to_dict(read_run(run_dir)), run_to_dict(lost[0])
    assert rebuilt["notes"][-1].startswith("run.json built by `capacity run --finish` at ")
    for field in ("notes", "files"):  # the only differences: the note, and the record's files
        rebuilt.pop(field), original.pop(field)
    assert rebuilt == original  # the same series (server CPU and memory included), summary and settings
    assert original["wall_time_s"] != round(original["wall_time_s"])  # timed to the microsecond, as before
    assert any(s["server_cpu_percent"] for s in original["series"])
    assert not (run_dir / "run.pending.json").exists()
    again = invoke_capacity("run", "--finish", run_dir, "-q")
    assert again.exit_code == 2 and "already has run.json; nothing to finish" in again.stderr


@pytest.mark.timeout(90)
def test_finish_works_from_the_record_written_before_any_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk filled before the end state could be written: the status comes from the generator's files,
    and the run says what is unknown."""
    import errno

    from capacity.results.run_file import read_run
    from capacity.run import orchestrator as run_module

    calls: list[bool] = []
    real_write_pending = run_module.write_pending

    def full_disk_at_the_end(path: Path, pending: object) -> None:
        calls.append(True)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_pending(path, pending)

    def full_disk(path: object, run: object) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(run_module, "write_pending", full_disk_at_the_end)
    monkeypatch.setattr(run_module, "write_run", full_disk)
    scenario = tmp_path / "s.yaml"
    # What is tested is finishing, not the SLO: one slow fsync among 100 requests must not decide the exit
    lenient = SCENARIO.replace("duration: 3s", "duration: 2s").replace("p99_ms: 20", "p99_ms: 5000")
    scenario.write_text(lenient)
    assert invoke_capacity("run", scenario, "--output-dir", tmp_path / "runs", "-q").exit_code == 1
    (run_dir,) = (tmp_path / "runs").iterdir()
    monkeypatch.undo()
    assert invoke_capacity("run", "--finish", run_dir, "-q").exit_code == 0
    run = read_run(run_dir)
    assert run.status == "completed" and run.summary.counts.sent > 0
    assert "the run's end state was never written" in run.notes[-1]
    assert run.wall_time_s > 1
