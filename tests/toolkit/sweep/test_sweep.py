"""capacity.sweep.runner and capacity.sweep.sweep_file without Locust: ladders, early stops, resume and the
sweep.json format, with a fake ``run_scenario`` that answers like a server of known capacity."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import support

from capacity.cli.sweep import tier_line
from capacity.results.run_file import Run, read_run, write_run
from capacity.run.orchestrator import RunOptions, RunResult
from capacity.run.progress import ProgressUpdate
from capacity.scenario import Scenario, Sweep, Tier, load_scenario
from capacity.sweep.runner import (
    GENERATOR_ADVICE,
    Ladder,
    SweepSetupError,
    SweepUpdate,
    describe_status,
    ladder_rates,
    ladder_sweep,
    options_from_settings,
    resume_sweep,
    settings_of,
    start_sweep,
    stop_decision,
    sweep_from_record,
    users_for,
)
from capacity.sweep.sweep_file import (
    FORMAT,
    SweepFormatError,
    TierEntry,
    matrix_rows,
    read_sweep,
    read_sweep_record,
    sweep_to_dict,
    write_sweep,
)

ROOT = support.REPO_ROOT
FIXTURE = ROOT / "tests" / "fixtures" / "sweep-small"
BASE_RUN = read_run(FIXTURE / "tiers" / "01-light")
AVERAGE = load_scenario(ROOT / "scenarios" / "average.yaml")


# ---------------------------------------------------------------------------------------------- fakes


def measured(offered: float, achieved: float, *, generator_bound: bool = False, errors: float = 0.0) -> Run:
    """The fixture's run with its summary saying ``offered`` / ``achieved`` requests/s."""
    summary = replace(
        BASE_RUN.summary,
        offered_rate=offered,
        achieved_rate=achieved,
        achieved_ratio=achieved / offered,
        error_rate=errors,
        generator_bound=generator_bound,
        limits=("the generator fell behind",) if generator_bound else (),
    )
    return replace(BASE_RUN, summary=summary)


class FakeServer:
    """Stands in for ``run_scenario``: a server that serves up to ``capacity`` requests/s, a generator that
    offers up to ``generator`` requests/s. ``interrupt_at`` raises Ctrl-C when that tier (1-based call
    number) starts; ``outcome`` overrides the run's status for a call number."""

    def __init__(
        self,
        capacity: float = 1e9,
        generator: float = 1e9,
        interrupt_at: int | None = None,
        outcome: dict[int, str] | None = None,
    ) -> None:
        self.capacity, self.generator = capacity, generator
        self.interrupt_at = interrupt_at
        self.outcome = outcome or {}
        self.calls: list[Scenario] = []

    def __call__(self, scenario: Scenario, options: RunOptions, progress=None) -> RunResult:
        self.calls.append(scenario)
        if len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        rate = scenario.load.orders_per_second
        run = measured(rate, min(rate, self.capacity), generator_bound=rate > self.generator)
        status = self.outcome.get(len(self.calls), "completed")
        if status != "completed":
            run = replace(run, status=status, problem=f"{status} on purpose")
        if progress is not None:
            progress(ProgressUpdate("running", "fake run", scenario.name, scenario.total_duration_s))
        assert options.run_dir is not None  # a sweep names each tier's run directory
        path = options.run_dir
        path.mkdir(parents=True)
        write_run(path, run)
        return RunResult(path, run)


def no_sleep(seconds: float) -> None:
    pass


def small_sweep(n: int = 3, cooldown_s: float = 0.0) -> Sweep:
    light = load_scenario(ROOT / "scenarios" / "light.yaml")
    tiers = tuple(
        Tier(f"t{i}", light.with_overrides(duration_s=3, orders_per_second=10 * i), "light.yaml")
        for i in range(1, n + 1)
    )
    return Sweep("small", "three tiers", tiers, cooldown_s)


def ladder(start: float, stop: float, steps: int, **kw) -> tuple[Sweep, Ladder]:
    spec = Ladder(start, stop, steps, tier_duration_s=5, **kw)
    return ladder_sweep(AVERAGE, spec, source="scenarios/average.yaml"), spec


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "sweeps"


def statuses(path: Path) -> list[str]:
    return [e.status for e in read_sweep_record(path).tiers]


# ---------------------------------------------------------------------------------------------- ladders


def test_geometric_ladder_has_a_constant_ratio_and_exact_ends() -> None:
    rates = ladder_rates(500, 20000, 12)
    assert len(rates) == 12 and rates[0] == 500 and rates[-1] == 20000
    ratios = [b / a for a, b in itertools.pairwise(rates)]
    assert all(r == pytest.approx(40 ** (1 / 11), rel=0.01) for r in ratios)
    assert all(float(f"{r:.3g}") == r for r in rates)  # 3 significant figures: 500, 698, 975...


def test_linear_ladder_has_equal_steps() -> None:
    assert ladder_rates(100, 1000, 10, "linear") == tuple(float(r) for r in range(100, 1001, 100))


def test_rounding_never_repeats_a_rate() -> None:
    rates = ladder_rates(1000, 1002, 5, "linear")
    assert rates == tuple(sorted(set(rates))) and rates[0] == 1000 and rates[-1] == 1002


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 100, 5), "--from must be a rate > 0"),
        ((500, 500, 5), "must be above --from"),
        ((500, 100, 5), "must be above --from"),
        ((500, 1000, 1), "--steps must be at least 2"),
    ],
)
def test_bad_ladders_are_refused(args: tuple[float, float, int], message: str) -> None:
    with pytest.raises(SweepSetupError, match=message):
        ladder_rates(*args)


def test_ladder_tiers_keep_the_scenario_but_scale_rate_users_and_duration() -> None:
    sweep, spec = ladder(500, 2000, 3)
    assert [t.name for t in sweep.tiers] == ["rate-500", "rate-1000", "rate-2000"]
    for tier, rate in zip(sweep.tiers, spec.rates(), strict=True):
        assert tier.scenario.load.orders_per_second == rate
        assert tier.scenario.total_duration_s == 5
        assert tier.scenario.load.concurrent_users == users_for(AVERAGE, rate)
        assert (tier.scenario.mix, tier.scenario.slo) == (AVERAGE.mix, AVERAGE.slo)
    # each user keeps average.yaml's pace: 1000 users at 5000/s is 5 requests/s per user
    assert users_for(AVERAGE, 500) == 100 and users_for(AVERAGE, 1) == 1


# ---------------------------------------------------------------------------------------------- stopping


def entry(name: str, offered: float, achieved: float, **kw) -> TierEntry:
    return TierEntry(name, 1, "done", f"tiers/{name}", offered=offered, achieved=achieved, **kw)


def test_two_saturated_tiers_in_a_row_stop_a_ladder() -> None:
    done = [entry("a", 100, 100), entry("b", 200, 170), entry("c", 400, 180)]
    stop = stop_decision(done)
    assert stop is not None and stop.kind == "saturated"
    assert "2 tiers in a row" in stop.reason and "b: achieved 170 of 200/s (85%)" in stop.reason
    assert stop.advice is None


def test_one_saturated_tier_is_not_enough_and_errors_count() -> None:
    assert stop_decision([entry("a", 100, 100), entry("b", 200, 170)]) is None
    assert stop_decision([entry("b", 200, 170), entry("c", 300, 300)]) is None  # it recovered
    errors = [entry("a", 100, 100, error_rate=0.06), entry("b", 200, 200, shed_rate=0.2)]
    stop = stop_decision(errors)
    assert stop is not None and "errors 6.0% of requests" in stop.reason and "shed 20.0%" in stop.reason


def test_a_generator_bound_tier_stops_at_once_and_is_never_a_server_limit() -> None:
    stop = stop_decision([entry("a", 100, 100), entry("b", 2000, 900, generator_bound=True)])
    assert stop is not None and stop.kind == "generator_bound"
    assert "the load generator limited tier b (2,000/s offered), not the server" in stop.reason
    assert stop.advice == GENERATOR_ADVICE and "--processes" in stop.advice
    # a generator-bound shortfall does not count towards "saturated twice in a row"
    assert stop_decision([entry("a", 200, 150), entry("b", 400, 150)]) is not None
    bound = replace(entry("a", 200, 150), generator_bound=True)
    assert stop_decision([bound, entry("b", 300, 300)]) is None


# ---------------------------------------------------------------------------------------------- running


def test_a_ladder_stops_once_the_server_saturates(out: Path) -> None:
    sweep, spec = ladder(200, 6400, 6)  # 200, 400, 800, 1600, 3200, 6400
    server = FakeServer(capacity=1000)
    result = start_sweep(sweep, RunOptions(), output_dir=out, ladder=spec, run=server, sleep=no_sleep)
    assert [s.load.orders_per_second for s in server.calls] == [200, 400, 800, 1600, 3200]
    record = result.record
    assert record.status == "stopped" and record.kind == "ladder"
    assert "the server is saturated" in (record.stop_reason or "")
    assert statuses(result.path) == ["done"] * 5 + ["skipped"]
    assert record.ladder is not None and record.ladder["rates"] == list(spec.rates())
    for e in record.tiers[:5]:
        assert (result.path / f"tiers/{e.index:02d}-{e.name}/run.json").is_file()
    assert sorted(p.name for p in (result.path / "tiers").iterdir()) == [
        f"{e.index:02d}-{e.name}" for e in record.tiers[:5]
    ]
    assert list(result.runs) == [e.name for e in record.tiers[:5]]


def test_a_generator_bound_tier_stops_the_ladder_with_advice(out: Path) -> None:
    sweep, spec = ladder(200, 6400, 6)
    result = start_sweep(
        sweep, RunOptions(), output_dir=out, ladder=spec, run=FakeServer(generator=700), sleep=no_sleep
    )
    record = result.record
    assert record.status == "stopped"
    assert "the load generator limited tier rate-800" in (record.stop_reason or "")
    assert record.advice == GENERATOR_ADVICE
    assert statuses(result.path) == ["done", "done", "done", "skipped", "skipped", "skipped"]
    assert matrix_rows(result)[2].notes == ("generator-bound",)


def test_a_sweep_file_runs_every_tier_even_past_saturation(out: Path) -> None:
    updates: list[SweepUpdate] = []
    slept: list[float] = []
    result = start_sweep(
        small_sweep(3, cooldown_s=4),
        RunOptions(),
        output_dir=out,
        run=FakeServer(capacity=5),
        progress=updates.append,
        sleep=slept.append,
    )
    assert result.record.status == "completed" and not result.record.stop_early
    assert statuses(result.path) == ["done", "done", "done"]
    assert slept == [4, 4]  # between tiers, not before the first or after the last
    events = [u.event for u in updates]
    assert events.count("tier") == 3 and events.count("tier_done") == 3 and events[-1] == "finished"
    assert {u.run.message for u in updates if u.run is not None} == {"fake run"}
    assert [(u.index, u.total) for u in updates if u.event == "tier"] == [(1, 3), (2, 3), (3, 3)]


def test_ctrl_c_keeps_finished_tiers_and_resume_continues_from_the_first_unfinished(out: Path) -> None:
    first = FakeServer(interrupt_at=2)
    result = start_sweep(small_sweep(3), RunOptions(), output_dir=out, run=first, sleep=no_sleep)
    assert result.record.status == "interrupted"
    assert statuses(result.path) == ["done", "interrupted", "pending"]
    assert list(result.runs) == ["t1"]

    second = FakeServer()
    resumed = resume_sweep(result.path, run=second, sleep=no_sleep)
    assert [s.name for s in second.calls] == ["light", "light"]
    assert [s.load.orders_per_second for s in second.calls] == [20, 30]  # tiers t2 and t3 only
    assert resumed.record.status == "completed" and len(resumed.record.resumed_utc) == 1
    assert statuses(result.path) == ["done", "done", "done"]
    assert list(read_sweep(result.path).runs) == ["t1", "t2", "t3"]


def test_ctrl_c_before_a_run_returns_keeps_what_it_wrote_as_an_attempt(out: Path) -> None:
    def writes_then_interrupted(scenario: Scenario, options: RunOptions, progress=None) -> RunResult:
        assert options.run_dir is not None
        (options.run_dir / "loadgen").mkdir(parents=True)
        raise KeyboardInterrupt

    result = start_sweep(small_sweep(2), RunOptions(), output_dir=out, run=writes_then_interrupted)
    t1 = result.record.tiers[0]
    assert (t1.status, t1.run_dir) == ("interrupted", "tiers/01-t1")
    resumed = resume_sweep(result.path, run=FakeServer(), sleep=no_sleep)
    t1 = resumed.record.tiers[0]
    assert (t1.status, t1.run_dir, t1.attempts) == ("done", "tiers/01-t1-2", ("tiers/01-t1",))
    assert (result.path / "tiers/01-t1/loadgen").is_dir()

    empty = start_sweep(small_sweep(1), RunOptions(), output_dir=out, run=FakeServer(interrupt_at=1))
    assert (empty.record.tiers[0].status, empty.record.tiers[0].run_dir) == ("interrupted", None)
    assert not (empty.path / "tiers").exists() or not any((empty.path / "tiers").iterdir())


def test_an_interrupted_run_is_kept_as_an_attempt_when_resumed(out: Path) -> None:
    result = start_sweep(
        small_sweep(2),
        RunOptions(),
        output_dir=out,
        run=FakeServer(outcome={1: "interrupted"}),
        sleep=no_sleep,
    )
    assert statuses(result.path) == ["interrupted", "pending"]
    assert result.record.tiers[0].run_dir == "tiers/01-t1"
    resumed = resume_sweep(result.path, run=FakeServer(), sleep=no_sleep)
    t1 = resumed.record.tiers[0]
    assert (t1.status, t1.run_dir, t1.attempts) == ("done", "tiers/01-t1-2", ("tiers/01-t1",))
    assert (result.path / "tiers/01-t1/run.json").is_file()  # the earlier attempt is never deleted


def test_a_cut_short_tier_is_never_called_generator_bound(out: Path) -> None:
    server = FakeServer(generator=5, outcome={2: "interrupted"})  # both tiers offer more than 5/s
    result = start_sweep(small_sweep(2), RunOptions(), output_dir=out, run=server, sleep=no_sleep)
    assert [e.generator_bound for e in result.record.tiers] == [True, True]  # the runs' own verdicts
    assert [r.notes for r in matrix_rows(result)] == [("generator-bound",), ("interrupted",)]
    assert result.record.advice is not None and result.record.advice.startswith("generator-bound tiers (t1) ")


def test_a_tier_whose_run_json_could_not_be_written_is_failed_and_listed(out: Path) -> None:
    """A full disk at a tier's run.json: the tier is failed with the run's words (how to finish it), its
    directory is kept and named, and reading the sweep lists it as lost, never skips it."""
    from capacity.run.orchestrator import RunNotWritten
    from capacity.sweep.sweep_file import read_sweep

    server = FakeServer()

    def full_disk_at_the_second(scenario: Scenario, options: RunOptions, progress=None) -> RunResult:
        if len(server.calls) == 1:
            assert options.run_dir is not None
            options.run_dir.mkdir(parents=True)
            raise RunNotWritten(f"could not write {options.run_dir / 'run.json'}: No space left on device")
        return server(scenario, options, progress)

    result = start_sweep(
        small_sweep(3), RunOptions(), output_dir=out, run=full_disk_at_the_second, sleep=no_sleep
    )
    assert result.record.status == "failed"
    assert statuses(result.path) == ["done", "failed", "pending"]
    tier = result.record.tiers[1]
    assert tier.run_dir is not None and tier.problem is not None and "No space left on device" in tier.problem
    assert (result.path / tier.run_dir).is_dir()
    assert list(read_sweep(result.path).lost) == [tier.name]


def test_a_failed_tier_stops_the_sweep_and_resume_retries_it(out: Path) -> None:
    result = start_sweep(
        small_sweep(3), RunOptions(), output_dir=out, run=FakeServer(outcome={2: "failed"}), sleep=no_sleep
    )
    assert result.record.status == "failed"
    assert statuses(result.path) == ["done", "failed", "pending"]
    assert result.record.tiers[1].problem == "failed on purpose"
    assert matrix_rows(result)[1].notes[0] == "failed: failed on purpose"
    retry = FakeServer()
    resume_sweep(result.path, run=retry, sleep=no_sleep)
    assert len(retry.calls) == 2 and statuses(result.path) == ["done", "done", "done"]


def test_nothing_to_resume(out: Path) -> None:
    done = start_sweep(small_sweep(1), RunOptions(), output_dir=out, run=FakeServer(), sleep=no_sleep)
    with pytest.raises(SweepSetupError, match="nothing to resume: completed, 1 of 1 tiers done"):
        resume_sweep(done.path, run=FakeServer())
    with pytest.raises(SweepSetupError, match="a run directory, not a sweep"):
        resume_sweep(FIXTURE / "tiers" / "01-light", run=FakeServer())


def test_bad_run_settings_are_refused_before_anything_is_created(out: Path) -> None:
    with pytest.raises(SweepSetupError, match="non-loopback"):
        start_sweep(small_sweep(1), RunOptions(target="http://10.1.2.3:80"), output_dir=out, run=FakeServer())
    with pytest.raises(SweepSetupError, match="--processes must be at least 1"):
        start_sweep(small_sweep(1), RunOptions(workers=0), output_dir=out, run=FakeServer())
    assert not out.exists()


def test_the_record_rebuilds_the_sweep_and_its_run_settings(out: Path) -> None:
    options = RunOptions(workers=2, generator_cpus=(0,), journal_sync="normal")
    sweep = small_sweep(2, cooldown_s=3)
    result = start_sweep(sweep, options, output_dir=out, run=FakeServer(), sleep=no_sleep)
    record = read_sweep_record(result.path)
    assert sweep_from_record(record) == sweep
    assert record.settings["workers"] == 2 and record.settings["generator_cpus"] == [0]
    assert record.settings["journal_sync"] == "normal" and "output_dir" not in record.settings


# ---------------------------------------------------------------------------------------------- format


def test_sweep_json_round_trips(tmp_path: Path) -> None:
    record = read_sweep_record(FIXTURE)
    assert record.format == FORMAT and record.status == "completed"
    write_sweep(tmp_path, record)
    text = (tmp_path / "sweep.json").read_text()
    assert text.startswith('{\n  "format": "capacity-sweep/1"')
    assert read_sweep_record(tmp_path) == record
    assert json.loads(text) == sweep_to_dict(record)


def test_the_fixture_reads_with_its_runs_and_matrix() -> None:
    result = read_sweep(FIXTURE)
    assert [e.name for e in result.record.tiers] == ["light", "minimum", "medium"]
    assert [e.run_dir for e in result.record.tiers] == [
        "tiers/01-light",
        "tiers/02-minimum",
        "tiers/03-medium",
    ]
    rows = matrix_rows(result)
    assert [r.offered for r in rows] == [20, 50, 100]
    assert [r.trades_per_s for r in rows] == [None] * 3  # recorded before run.json had trades: still reads
    for row, run in zip(rows, result.runs.values(), strict=True):
        assert row.p99_corrected_ms == run.summary.corrected.p99_ms and row.slo_passed is True
        assert row.rss_mb is not None and 10 < row.rss_mb < 500 and row.server_cores is not None
    # the sweep.json path itself, and a run directory as a one-tier sweep
    assert read_sweep(FIXTURE / "sweep.json").record == result.record
    single = read_sweep(FIXTURE / "tiers" / "02-minimum")
    assert single.single_run and single.record.kind == "run"
    assert [(e.name, e.status, e.run_dir) for e in single.record.tiers] == [("minimum", "done", ".")]


def copy_fixture(tmp_path: Path) -> Path:
    target = tmp_path / "sweep"
    shutil.copytree(FIXTURE, target)
    return target


def rewrite(path: Path, change: Callable[[dict], object]) -> None:
    data = json.loads((path / "sweep.json").read_text())
    change(data)
    (path / "sweep.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="capacity-run/1"), 'unknown format "capacity-run/1"'),
        (lambda d: d.update(format="capacity-sweep/2"), "newer than this capacity reads"),
        (lambda d: d.pop("format"), 'no "format" field'),
        (lambda d: d["tiers"][0].update(status="great"), 'field "tiers[0].status": expected "pending" or'),
        (lambda d: d["tiers"][1].update(offered="fast"), 'field "tiers[1].offered": expected a number'),
        (lambda d: d.pop("environment"), 'missing field "environment"'),
        (lambda d: d["tiers"][0].update(run_dir="../elsewhere"), "must be a relative path inside the sweep"),
        (
            lambda d: d["tiers"][2].update(run_dir="tiers/99-gone"),
            'tier "medium" is done but its run is lost',
        ),
    ],
)
def test_bad_sweep_files_name_the_file_and_the_field(tmp_path: Path, change, message: str) -> None:
    path = copy_fixture(tmp_path)
    rewrite(path, change)
    with pytest.raises(SweepFormatError, match=re.escape(message)) as error:
        read_sweep(path)
    assert str(path) in str(error.value)


def test_bad_directories(tmp_path: Path) -> None:
    with pytest.raises(SweepFormatError, match="no such directory"):
        read_sweep(tmp_path / "nope")
    with pytest.raises(SweepFormatError, match="neither a sweep directory"):
        read_sweep(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(SweepFormatError, match="not a directory"):
        read_sweep(tmp_path / "file.txt")
    (tmp_path / "sweep.json").write_text("{not json")
    with pytest.raises(SweepFormatError, match=r"sweep.json: not valid JSON \(line 1"):
        read_sweep(tmp_path)
    (tmp_path / "sweep.json").write_text("[1, 2]")
    with pytest.raises(SweepFormatError, match="not a capacity sweep"):
        read_sweep(tmp_path)


def test_a_lost_failed_run_is_tolerated(tmp_path: Path) -> None:
    path = copy_fixture(tmp_path)
    rewrite(path, lambda d: d["tiers"][2].update(status="failed", run_dir="tiers/03-never-written"))
    result = read_sweep(path)
    assert list(result.runs) == ["light", "minimum"]
    assert matrix_rows(result)[2].offered is None


def test_a_resumed_sweep_keeps_its_engine() -> None:
    native = RunOptions(engine="native", workers=2)
    assert options_from_settings(settings_of(native)).engine == "native"
    assert options_from_settings(settings_of(RunOptions(engine="locust"))).engine == "locust"
    # a sweep recorded before the native engine existed ran Locust, and resumes with it
    old = {k: v for k, v in settings_of(native).items() if k != "engine"}
    assert options_from_settings(old).engine == "locust"


# ---------------------------------------------------------------------------------------------- repeats


def test_repeats_interleave_the_tiers_and_carry_the_repeat_in_records_and_directories(out: Path) -> None:
    server = FakeServer()
    result = start_sweep(small_sweep(3), RunOptions(), output_dir=out, repeats=3, run=server, sleep=no_sleep)
    # t1 t2 t3, t1 t2 t3, t1 t2 t3: not t1 three times, then t2...
    assert [s.load.orders_per_second for s in server.calls] == [10, 20, 30] * 3
    record = read_sweep_record(result.path)
    assert record.repeats == 3 and record.status == "completed"
    assert [(e.index, e.name, e.tier, e.repeat) for e in record.tiers[2:5]] == [
        (3, "t3", "t3", 1),
        (4, "t1#2", "t1", 2),
        (5, "t2#2", "t2", 2),
    ]
    assert [e.run_dir for e in record.tiers[2:5]] == [
        "tiers/03-t3",
        "tiers/04-t1-repeat2",
        "tiers/05-t2-repeat2",
    ]
    assert list(read_sweep(result.path).runs) == [e.name for e in record.tiers]
    assert "completed, 9 of 9 tier runs done (3 tiers, 3 repeats)" in describe_status(record)


def test_a_single_repeat_sweep_is_written_as_before(out: Path) -> None:
    result = start_sweep(small_sweep(2), RunOptions(), output_dir=out, run=FakeServer(), sleep=no_sleep)
    data = json.loads((result.path / "sweep.json").read_text())
    assert data["format"] == "capacity-sweep/1" and data["repeats"] == 1
    assert [(t["name"], t["repeat"], t["run_dir"]) for t in data["tiers"]] == [
        ("t1", 1, "tiers/01-t1"),
        ("t2", 1, "tiers/02-t2"),
    ]


def test_a_sweep_from_before_repeats_reads_as_one_repeat() -> None:
    data = json.loads((FIXTURE / "sweep.json").read_text())
    assert "repeats" not in data and "repeat" not in data["tiers"][0]  # written before --repeat existed
    record = read_sweep(FIXTURE).record
    assert record.repeats == 1
    assert [(e.name, e.tier, e.repeat) for e in record.tiers] == [
        ("light", "light", 1),
        ("minimum", "minimum", 1),
        ("medium", "medium", 1),
    ]


def test_a_repeat_outside_the_sweeps_repeats_is_refused(tmp_path: Path) -> None:
    path = copy_fixture(tmp_path)
    rewrite(path, lambda d: d["tiers"][1].update(repeat=2))
    with pytest.raises(SweepFormatError, match="repeat 2 is not one of the sweep's 1 repeat"):
        read_sweep(path)


def test_progress_says_which_repeat_is_running(out: Path) -> None:
    updates: list[SweepUpdate] = []
    start_sweep(
        small_sweep(2), RunOptions(), output_dir=out, repeats=2, run=FakeServer(), progress=updates.append
    )
    started = [(u.repeat, u.repeats, u.index, u.total, u.tier) for u in updates if u.event == "tier"]
    assert started == [(1, 2, 1, 2, "t1"), (1, 2, 2, 2, "t2"), (2, 2, 1, 2, "t1"), (2, 2, 2, 2, "t2")]
    done = [u for u in updates if u.event == "tier_done"]
    assert (
        " ".join(tier_line(done[3]).plain.split())
        == "done repeat 2/2, 02/02 t2 20/s offered, 20/s achieved, SLO PASS"
    )
    assert " ".join(tier_line(done[0]).plain.split()).startswith("done repeat 1/2, 01/02 t1 ")


def test_resume_continues_a_repeated_sweep_mid_repeat(out: Path) -> None:
    first = FakeServer(interrupt_at=5)  # t1 t2 t3, t1#2, then Ctrl-C during t2#2
    result = start_sweep(small_sweep(3), RunOptions(), output_dir=out, repeats=2, run=first, sleep=no_sleep)
    assert result.record.status == "interrupted"
    assert statuses(result.path) == ["done"] * 4 + ["interrupted", "pending"]
    second = FakeServer()
    resumed = resume_sweep(result.path, run=second, sleep=no_sleep)
    assert [s.load.orders_per_second for s in second.calls] == [20, 30]  # t2 and t3 of repeat 2
    assert resumed.record.status == "completed" and resumed.record.repeats == 2
    assert [(e.name, e.run_dir) for e in resumed.record.tiers[4:]] == [
        ("t2#2", "tiers/05-t2-repeat2"),
        ("t3#2", "tiers/06-t3-repeat2"),
    ]


def test_a_stopped_ladder_repeats_only_the_tiers_its_first_pass_ran(out: Path) -> None:
    sweep, spec = ladder(200, 6400, 6)  # 200, 400, 800, 1600, 3200, 6400: stops after 3200
    server = FakeServer(capacity=1000, interrupt_at=7)  # Ctrl-C in the second repeat's second tier
    result = start_sweep(
        sweep, RunOptions(), output_dir=out, ladder=spec, repeats=2, run=server, sleep=no_sleep
    )
    assert [s.load.orders_per_second for s in server.calls] == [200, 400, 800, 1600, 3200, 200, 400]
    assert result.record.status == "interrupted" and "saturated" in (result.record.stop_reason or "")
    again = FakeServer(capacity=1000)
    resumed = resume_sweep(result.path, run=again, sleep=no_sleep)
    # the second repeat runs the same five rates, saturated or not, and never the skipped 6400/s
    assert [s.load.orders_per_second for s in again.calls] == [400, 800, 1600, 3200]
    record = resumed.record
    assert record.status == "stopped" and "the server is saturated" in (record.stop_reason or "")
    assert statuses(result.path) == ["done"] * 5 + ["skipped"] + ["done"] * 5 + ["skipped"]
    assert [e.name for e in record.tiers if e.status == "skipped"] == ["rate-6400", "rate-6400#2"]


def test_repeats_below_one_are_refused(out: Path) -> None:
    with pytest.raises(SweepSetupError, match="--repeat must be at least 1, got 0"):
        start_sweep(small_sweep(1), RunOptions(), output_dir=out, repeats=0, run=FakeServer())
    assert not out.exists()


def test_the_live_panel_ends_its_line_when_the_output_is_not_a_terminal() -> None:
    """Issue 17: piped `make demo` output ran the panel's last line into the next ("· stopping the
    exchangeCapacity model of quick")."""
    import io

    from rich.console import Console

    from capacity.run.progress import LiveProgress

    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=100)
    with LiveProgress(console) as live:
        live(ProgressUpdate("stopping", "stopping the exchange", "quick", 10.0))
    console.print("Capacity model of quick")
    assert out.getvalue() == "· stopping the exchange\nCapacity model of quick\n"
