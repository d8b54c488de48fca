"""`capacity run`: bad input exits 2 with one line; a short real run against the embedded exchange; the
environment metadata; interruption and a broken exchange are recorded, not raised."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
import support
from click.testing import CliRunner, Result
from support import invoke_capacity

from capacity.cli import main as cli
from capacity.cli.run import exit_code
from capacity.results.run_file import TierLimit, read_run
from capacity.run.environment import collect_environment, cpu_model
from capacity.run.orchestrator import LOCUSTFILE, RunOptions, RunSetupError, run_scenario
from capacity.scenario import load_scenario_text

ROOT = support.REPO_ROOT
CAPACITY = Path(sys.executable).parent / "capacity"
TINY = """\
name: tiny
load: {orders_per_second: 100, concurrent_users: 10, symbols: [BTCUSD, ETHUSD], duration: 4s}
slo: {p99_ms: 200, error_rate: 0.01}
"""
needs_locustfile = pytest.mark.skipif(
    not LOCUSTFILE.is_file(), reason="capacity/generator/locustfile.py not there yet"
)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def invoke(*args: str | Path) -> Result:
    return invoke_capacity("run", *args)


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# ---------------------------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    assert one_line_error(invoke(tmp_path / "nope.yaml")) == f"{tmp_path / 'nope.yaml'}: file not found"


def test_invalid_yaml_prints_file_line_field(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nload: [\n")
    assert one_line_error(invoke(broken)).startswith(f"{broken}:3: YAML syntax error")
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(TINY.replace("orders_per_second: 100", "orders_per_second: fast"))
    result = invoke(invalid)
    assert result.exit_code == 2
    assert f"{invalid}:2: load.orders_per_second: expected a number > 0" in result.stderr


@pytest.mark.parametrize("target", ["http://10.0.0.1:8080", "http://example.com", "http://0.0.0.0:8080"])
def test_non_loopback_targets_are_refused(tiny: Path, target: str, tmp_path: Path) -> None:
    line = one_line_error(invoke(tiny, "--target", target, "--output-dir", tmp_path / "runs"))
    assert line.startswith(f"capacity run: error: --target '{target}': refusing a non-loopback host")
    assert "never leave this machine" in line
    assert not (tmp_path / "runs").exists()  # nothing started, nothing written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "soon"], "--duration 'soon': not a duration"),
        (["--duration", "0s"], "--duration '0s': expected at least 1s and at most 24h"),
        (["--rate", "lots"], "--rate 'lots': expected a number > 0"),
        (["--rate", "-5"], "--rate '-5': expected a number > 0"),
        (["--users", "2.5"], "--users '2.5': expected an integer > 0"),
        (["--workers", "0"], "--processes '0': expected a number > 0"),
        (["--server-cpus", "x"], "--server-cpus: not a CPU list"),
        (["--server-cpus", "64"], "--server-cpus: CPU 64 is not available"),
        (["--journal-sync", "sometimes"], "--journal-sync 'sometimes': expected one of full, normal, off"),
        (["--target", "http://127.0.0.1:1", "--no-journal"], "apply to the embedded exchange only"),
        (["--server-pid", "1"], "--server-pid goes with --target"),
    ],
)
def test_bad_options(tiny: Path, args: list[str], message: str) -> None:
    line = one_line_error(invoke(tiny, *args))
    assert line.startswith("capacity run: error: ") and message in line


def test_help_lists_the_command() -> None:
    result = CliRunner().invoke(cli.main, ["run", "--help"])
    assert result.exit_code == 0
    for flag in ("--duration", "--rate", "--users", "--target", "--workers", "--no-pin", "--journal-sync"):
        assert flag in result.output
    short = CliRunner().invoke(cli.main, ["-h"])  # -h works on the group as on every subcommand
    assert short.exit_code == 0 and "run" in short.output and "sweep" in short.output


# ---------------------------------------------------------------------------------------------- environment


def test_environment_has_the_metadata() -> None:
    env = collect_environment(server_cpus=[1], generator_cpus=[0], pinned=True)
    assert env.cpu_model and env.logical_cpus >= 1 and env.memory_total_bytes > 0
    assert env.os and env.kernel and env.platform and env.hostname
    assert env.python_version.count(".") == 2
    assert env.packages["locust"] and env.packages["aiohttp"] and env.packages["capacity"]
    assert env.git_revision is None or len(env.git_revision) == 40
    assert env.git_dirty in (True, False, None)
    assert (env.server_cpus, env.generator_cpus, env.pinned) == ((1,), (0,), True)
    assert set(env.available_cpus) == os.sched_getaffinity(0)
    assert env.timestamp_utc.endswith("+00:00")


def test_cpu_model_reads_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Example CPU @ 3.0GHz\n")
    assert cpu_model(str(info)) == "Example CPU @ 3.0GHz"
    info.write_text("processor\t: 0\nHardware\t: BCM2835\n")
    assert cpu_model(str(info)) == "BCM2835"


# ---------------------------------------------------------------------------------------------- real runs


@needs_locustfile
@pytest.mark.timeout(60)
def test_a_short_real_run(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    done = subprocess.run(
        [str(CAPACITY), "run", str(tiny), "--output-dir", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = out.iterdir()
    assert done.stdout.startswith("completed PASS") and done.stdout.strip().endswith(str(run_dir))
    run = read_run(run_dir)
    assert run.status == "completed" and run.problem is None
    assert run.target.embedded and run.target.url.startswith("http://127.0.0.1:")
    assert 3 <= len(run.series) <= 6
    s = run.summary
    assert s.offered_rate == pytest.approx(100, rel=0.05)
    assert s.achieved_rate == pytest.approx(s.offered_rate, rel=0.25)
    assert s.counts.sent >= 300 and s.counts.errors == 0
    assert s.server_cpu_percent_mean is not None and s.server_cpu_percent_mean > 0
    assert s.server_rss_max_bytes is not None and s.server_rss_max_bytes > 0
    assert s.generator_cpu_percent_mean is not None and s.generator_cpu_percent_mean > 0
    assert s.corrected.p99_ms is not None and s.raw.p99_ms is not None
    assert s.corrected.p99_ms >= s.raw.p99_ms
    assert s.slo.passed and not s.generator_bound
    assert any(x.exchange_orders_per_sec for x in run.series)
    assert any(x.exchange_resting_orders is not None for x in run.series)
    assert all(x.other_cpu_percent is None or x.other_cpu_percent >= 0 for x in run.series)
    assert s.other_cpu_percent_mean is not None
    if len(os.sched_getaffinity(0)) >= 2:
        assert run.environment.pinned and run.environment.server_cpus != run.environment.generator_cpus
    for name in ("scenario", "loadgen", "corrected_hlog", "raw_hlog", "generator_log", "exchange_log"):
        assert (run_dir / run.files[name]).is_file(), name
    assert load_scenario_text((run_dir / "scenario.yaml").read_text()).to_dict() == run.scenario
    # The exit code follows the verdicts, as k6's thresholds do: 1 for a failed SLO, 3 when the figures are
    # not the server's.
    assert exit_code(run) == 0
    failed = replace(run, summary=replace(s, slo=replace(s.slo, passed=False)))
    assert exit_code(failed) == 1
    for kind in ("generator", "disturbed"):
        assert exit_code(replace(run, summary=replace(s, limit=TierLimit(kind)))) == 3
    assert exit_code(replace(run, status="failed")) == 1
    assert exit_code(replace(run, status="interrupted")) == 130


@needs_locustfile
@pytest.mark.timeout(60)
def test_cancel_keeps_what_was_measured(tmp_path: Path) -> None:
    scenario = load_scenario_text(TINY.replace("duration: 4s", "duration: 30s"))
    cancel = threading.Event()
    timer = threading.Timer(4.0, cancel.set)
    timer.start()
    try:
        result = run_scenario(scenario, RunOptions(output_dir=tmp_path), cancel=cancel)
    finally:
        timer.cancel()
    run = read_run(result.path)
    assert run == result.run
    assert run.status == "interrupted" and "interrupted" in (run.problem or "")
    assert 1 <= len(run.series) < 10
    assert run.summary.counts.ok > 0 and run.summary.counts.errors == 0
    assert run.loadgen.exit_code == 0  # Locust stopped cleanly and wrote its results


@needs_locustfile
@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGINT, True), (signal.SIGHUP, True), (signal.SIGTERM, False)],
    ids=["ctrl-c", "terminal-closed", "kill"],
)
def test_a_signal_stops_the_run_in_order_and_keeps_the_data(
    tiny: Path, tmp_path: Path, signum: signal.Signals, to_group: bool
) -> None:
    """A terminal's Ctrl-C, and its hang-up when it closes, signal its whole foreground process group; a kill
    signals capacity alone. Only capacity must get them: it stops the generator, then the exchange (which
    runs in its own session), so no request meets a closing server and no child is left running."""
    out = tmp_path / "runs"
    command = [str(CAPACITY), "run", str(tiny), "--duration", "40s", "--quiet", "--output-dir", str(out)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    capacity = subprocess.Popen(command, start_new_session=True, **pipes)  # a group, as a terminal's job
    try:
        deadline = time.monotonic() + 40
        exchange = None
        while time.monotonic() < deadline and not list(out.glob("*/loadgen/progress.json")):
            time.sleep(0.2)
        for child in psutil.Process(capacity.pid).children():
            if "reference_exchange" in " ".join(child.cmdline()):
                exchange = child
        assert exchange is not None and list(out.glob("*/loadgen/progress.json")), "the run never got going"
        assert os.getpgid(exchange.pid) != os.getpgid(capacity.pid)  # out of the terminal's reach
        children = psutil.Process(capacity.pid).children(recursive=True)
        time.sleep(2)
        (os.killpg if to_group else os.kill)(capacity.pid, signum)
        _, stderr = capacity.communicate(timeout=60)
    finally:
        if capacity.poll() is None:
            os.killpg(capacity.pid, signal.SIGKILL)
    assert capacity.returncode == 130, stderr.decode()
    assert not exchange.is_running()  # capacity stopped it
    assert [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE] == []
    (run_dir,) = out.iterdir()
    run = read_run(run_dir)
    assert run.status == "interrupted" and run.loadgen.exit_code == 0
    assert run.summary.counts.ok > 0 and run.summary.counts.errors == 0
    assert "shutting down" in (run_dir / "exchange.log").read_text()


@needs_locustfile
def test_a_run_dir_must_be_new_or_empty(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "run.json").write_text("{}")
    with pytest.raises(RunSetupError, match="not an empty directory"):
        run_scenario(load_scenario_text(TINY), RunOptions(run_dir=taken))
    assert list(taken.iterdir()) == [taken / "run.json"]


@needs_locustfile
@pytest.mark.timeout(60)
def test_an_exchange_that_cannot_start_is_a_failed_run(tmp_path: Path) -> None:
    scenario = load_scenario_text(TINY)
    run_dir = tmp_path / "exactly" / "here"
    options = RunOptions(run_dir=run_dir, exchange_env={"SERVER_PORT": "not-a-port"}, start_timeout_s=10)
    result = run_scenario(scenario, options)
    assert result.path == run_dir
    assert result.run.status == "failed"
    assert "SERVER_PORT" in (result.run.problem or "")
    assert read_run(result.path).status == "failed"
    assert result.run.series == ()
