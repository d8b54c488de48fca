"""capacity.fit.inputs on the recorded sweep: the run -> TierMeasurement adapter, fit.json, `capacity fit`."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import support
from click.testing import Result
from support import invoke_capacity

from capacity.fit import fit_sweep
from capacity.fit.estimate import DASH, TIMES, fmt
from capacity.fit.inputs import (
    NothingToFit,
    fit_directory,
    fit_result,
    parse_size,
    server_cores,
    tier_measurement,
)
from capacity.report import render_report
from capacity.report.repeats import repeats_view
from capacity.report.source import load_source
from capacity.results.run_file import write_run
from capacity.sweep.sweep_file import (
    TierEntry,
    entry_for_run,
    read_sweep,
    read_sweep_record,
    repeat_name,
    write_sweep,
)
from capacity.testing.sample_sweep import SEED_TIERS, write_sample_run, write_sample_sweep

FIXTURE = support.FIXTURES / "sweep-small"


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    target = tmp_path / "sweep"
    shutil.copytree(FIXTURE, target)
    return target


def test_tier_measurement_takes_the_steady_window_of_a_run() -> None:
    result = read_sweep(FIXTURE)
    for entry, run in result.tier_runs():
        tier = tier_measurement(run, entry.name)
        s = run.summary
        steady = [x for x in run.series if s.steady_start_s <= x.t < s.steady_end_s]
        assert tier.name == entry.name and tier.offered_rate == s.offered_rate
        assert tier.achieved_rate.tolist() == [x.achieved_rate for x in steady]
        assert tier.server_cpu_percent.tolist() == [x.server_cpu_percent for x in steady]
        assert tier.rss_bytes.tolist() == [x.server_rss_bytes for x in steady]
        assert tier.resting_orders.size == tier.p99_ms_per_second.size == len(steady)
        assert (tier.p50_ms, tier.p99_ms, tier.p999_ms) == (
            s.corrected.p50_ms,
            s.corrected.p99_ms,
            s.corrected.p999_ms,
        )
        assert tier.generator_bound is s.generator_bound
        assert tier.slo_p99_ms == run.scenario["slo"]["p99_ms"]
        assert tier.concurrency == run.scenario["load"]["concurrent_users"]


def test_unmeasured_values_become_nan() -> None:
    run = read_sweep(FIXTURE).runs["light"]
    blank = [s.__class__(**{**s.__dict__, "server_cpu_percent": None}) for s in run.series]
    tier = tier_measurement(run.__class__(**{**run.__dict__, "series": tuple(blank)}))
    assert tier.name == "light" and np.isnan(tier.server_cpu_percent).all()


def test_server_cores_are_the_pinned_cpus() -> None:
    cores, why = server_cores(read_sweep(FIXTURE)) or (0, "")
    env = read_sweep(FIXTURE).record.environment
    assert cores == (len(env.server_cpus) if env.server_cpus else env.logical_cpus)
    assert "pinned to CPU" in why or "not pinned" in why


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("32GB", 32 * 10**9),
        ("24GiB", 24 * 2**30),
        ("512m", 512 * 10**6),
        ("1.5TiB", int(1.5 * 2**40)),
        ("4096", 4096),
    ],
)
def test_memory_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "32XB", "-1GB", "0"])
def test_bad_memory_sizes(text: str) -> None:
    with pytest.raises(ValueError, match="not a memory size"):
        parse_size(text)


def test_fit_directory_writes_the_model_and_its_inputs(sweep_dir: Path) -> None:
    outcome = fit_directory(read_sweep(sweep_dir), project_cores=16, project_memory_bytes=32 * 2**30)
    data = json.loads((sweep_dir / "fit.json").read_text())
    assert data["format"] == "capacity-fit/1" and data["formulas"] == outcome.model.formulas()
    assert data["inputs"]["tiers"] == [
        {"name": "light", "run_dir": "tiers/01-light"},
        {"name": "minimum", "run_dir": "tiers/02-minimum"},
        {"name": "medium", "run_dir": "tiers/03-medium"},
    ]
    assert data["inputs"]["memory_bytes"] == read_sweep(sweep_dir).record.environment.memory_total_bytes
    assert data["projection"]["basis"] == "projection" and data["projection"]["cores"] == 16
    assert data["service_demand"]["cpu_seconds_per_request"]["value"] > 0
    assert math.isfinite(data["available_cores"])


def test_fit_result_writes_nothing_and_the_report_fits_as_capacity_fit_does(sweep_dir: Path) -> None:
    result = read_sweep(sweep_dir)
    pure = fit_result(result, cores=1.0, safety_buffer=0.0)
    assert pure.path is None and not (sweep_dir / "fit.json").exists()
    assert pure.inputs["cores_source"] == "given" and pure.inputs["safety_buffer"] == 0.0
    assert load_source(sweep_dir).model.to_dict() == fit_result(result).model.to_dict()
    assert not (sweep_dir / "fit.json").exists()  # reporting never writes the fit

    written = fit_directory(result, cores=1.0, safety_buffer=0.0)
    assert written.path == sweep_dir / "fit.json"
    assert written.model.to_dict() == pure.model.to_dict()
    assert written.inputs == {**pure.inputs, "created_utc": written.inputs["created_utc"]}
    source = load_source(sweep_dir)  # now with the options fit.json records, a zero buffer included
    assert source.model.to_dict() == pure.model.to_dict()
    assert source.options.safety_buffer == 0.0 and source.options.origin == "as in fit.json"


def test_a_sweep_with_no_completed_tier_cannot_be_fitted(sweep_dir: Path) -> None:
    data = json.loads((sweep_dir / "sweep.json").read_text())
    for entry in data["tiers"]:
        entry["status"] = "interrupted"
    (sweep_dir / "sweep.json").write_text(json.dumps(data))
    with pytest.raises(NothingToFit, match="no completed tier to fit"):
        fit_directory(read_sweep(sweep_dir))


# ---------------------------------------------------------------------------------------------- capacity fit


def fit(*args: str | Path) -> Result:
    return invoke_capacity("fit", *args)


def test_capacity_fit_prints_formulas_and_labels_projections(sweep_dir: Path) -> None:
    result = fit(
        sweep_dir, "--cores", "1", "--memory", "8GiB", "--project-cores", "16", "--project-memory", "32GB"
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())  # rich wraps long lines
    assert "Capacity model of sweep-small: 3 tier(s), server budget 1 core(s) (given), memory 8 GiB" in out
    assert "CPU cores = " in out and f"{TIMES} requests/s" in out
    assert "Recommended maximum:" in out
    assert "Projection (not measured" in out and "PROJECTION: Max throughput at 16 cores" in out
    assert f"fit written to {sweep_dir / 'fit.json'}" in out
    data = json.loads((sweep_dir / "fit.json").read_text())
    assert data["inputs"]["memory_bytes"] == 8 * 2**30 and data["available_cores"] == 1


def test_capacity_fit_takes_a_run_directory(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE / "tiers" / "01-light", run_dir)
    result = fit(run_dir)
    assert result.exit_code == 0, result.output
    assert "Capacity model of light: 1 tier(s)" in " ".join(result.stdout.split())
    assert (run_dir / "fit.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/nope"], "no such directory"),
        (["{tmp}"], "neither a sweep directory"),
        (["{fixture}", "--cores", "zero"], "--cores 'zero': expected a number > 0"),
        (["{fixture}", "--memory", "lots"], "--memory: not a memory size: 'lots'"),
        (
            ["{fixture}", "--safety-buffer", "1.5"],
            "--safety-buffer '1.5': expected a share from 0 to below 1",
        ),
    ],
)
def test_capacity_fit_bad_input_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = fit(*(a.format(tmp=tmp_path, fixture=FIXTURE) for a in args))
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.startswith("capacity fit: error: ")
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (FIXTURE / "fit.json").exists()


# ---------------------------------------------------------------------------------------------- repeats

#: Six of the sample server's tiers, from 200/s to past saturation (the generator-bound one left out).
REPEATED_TIERS = tuple(t for t in SEED_TIERS if t.name != "burst")[2:]
#: Repeat 2 runs on a machine whose server needs 30 % more CPU per second than in repeat 1 (drift).
DRIFT = (1.0, 1.3)


def write_repeated_sweep(directory: Path, cpu_factors: tuple[float, ...] = DRIFT) -> Path:
    """The sample sweep run with ``--repeat len(cpu_factors)``: repeat R's server CPU, second by second,
    times ``cpu_factors[R - 1]``; laid out as ``capacity sweep`` does (entries ``idle``, ``idle#2``...)."""
    write_sample_sweep(directory, REPEATED_TIERS, duration_s=12)
    record = read_sweep_record(directory)
    rng = np.random.default_rng(7)
    entries = list(record.tiers)
    for repeat, factor in enumerate(cpu_factors[1:], start=2):
        for tier in REPEATED_TIERS:
            index = len(entries) + 1
            rel = f"tiers/{index:02d}-{tier.name}-repeat{repeat}"
            run = write_sample_run(directory / rel, tier, duration_s=12, rng=rng)
            series = tuple(
                replace(
                    x,
                    server_cpu_percent=None
                    if x.server_cpu_percent is None
                    else x.server_cpu_percent * factor,
                )
                for x in run.series
            )
            run = replace(run, series=series)
            write_run(directory / rel, run)
            entries.append(
                entry_for_run(TierEntry(repeat_name(tier.name, repeat), index, repeat=repeat), run, rel)
            )
    write_sweep(directory, replace(record, tiers=tuple(entries), repeats=len(cpu_factors)))
    return directory


@pytest.fixture(scope="module")
def repeated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_repeated_sweep(tmp_path_factory.mktemp("repeated") / "sweep")


def test_a_repeated_sweep_is_fitted_pooled_and_once_per_repeat(repeated: Path, tmp_path: Path) -> None:
    outcome = fit_result(read_sweep(repeated))
    names = sorted(t.name for t in outcome.model.tiers)
    assert len(names) == 2 * len(REPEATED_TIERS) and "average" in names and "average#2" in names
    spread = outcome.repeats
    assert spread is not None and spread.count == 2
    assert [f.key for f in spread.figures] == ["recommended_max", "cpu", "throughput"]

    # repeat 1 fitted alone is exactly the sweep that never repeated
    alone = fit_result(read_sweep(write_sample_sweep(tmp_path / "once", REPEATED_TIERS, duration_s=12))).model
    cpu = spread.figures[1]
    assert cpu.per_repeat[0] == alone.breaking_points.cpu
    assert spread.figures[0].per_repeat[0] == alone.recommended_max

    # 30 % more CPU per second: repeat 2 saturates the core at a lower rate, by about 1/1.3
    first, second = (e.value for e in cpu.per_repeat)
    assert first is not None and second is not None
    assert second / first == pytest.approx(1 / 1.3, rel=0.08)
    assert (cpu.low, cpu.high, cpu.values) == (second, first, 2)
    assert cpu.pooled == outcome.model.breaking_points.cpu
    assert cpu.pooled.value is not None and second < cpu.pooled.value < first
    # the pooled fit's interval moves each tier as a whole (a wild bootstrap over tiers), so it sees that
    # drift: it is about as wide as the spread between the repeats (seconds resampled within tiers gave
    # one 24 times narrower)
    assert cpu.pooled.low is not None and cpu.pooled.high is not None
    assert cpu.pooled.high - cpu.pooled.low >= 0.95 * (cpu.high - cpu.low)
    assert cpu.spread_text() == f"{fmt(second)}{DASH}{fmt(first)} requests/s"
    assert cpu.each_text() == f"{fmt(first)}; {fmt(second)}"


def test_a_single_repeat_sweep_fits_as_before(sweep_dir: Path) -> None:
    result = read_sweep(sweep_dir)
    outcome = fit_result(result)
    assert outcome.repeats is None
    measurements = [tier_measurement(run, entry.name) for entry, run in result.tier_runs("done")]
    cores = outcome.inputs["available_cores"]
    direct = fit_sweep(measurements, available_cores=cores, memory_bytes=outcome.inputs["memory_bytes"])
    assert outcome.model.to_dict() == direct.to_dict()
    fit_directory(result)
    assert json.loads((sweep_dir / "fit.json").read_text())["repeats"] is None


def test_capacity_fit_writes_and_prints_the_spread_between_repeats(repeated: Path, tmp_path: Path) -> None:
    path = tmp_path / "sweep"
    shutil.copytree(repeated, path)
    result = fit(path)
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "Spread between 2 repeats (the model fitted on each repeat alone" in out
    assert "CPU saturation: pooled " in out and "; between repeats " in out
    data = json.loads((path / "fit.json").read_text())["repeats"]
    assert data["count"] == 2 and "not a confidence interval" in data["method"]
    cpu = data["figures"][1]
    assert cpu["key"] == "cpu" and cpu["within_ci"] is False and cpu["values"] == 2
    assert [e["value"] for e in cpu["per_repeat"]] == pytest.approx([cpu["high"], cpu["low"]])
    assert cpu["pooled"]["low"] is not None  # the within-run interval, beside the spread


def test_the_report_shows_the_spread_beside_the_within_run_interval(repeated: Path, tmp_path: Path) -> None:
    paths = render_report(repeated, tmp_path / "report")
    markdown = paths.markdown.read_text()
    section = markdown[markdown.index("### Spread between repeats (2 repeats)") :]
    assert (
        "| Figure | Pooled | Within-run interval | Spread between 2 repeats | Each repeat | Reading |"
        in section
    )
    assert "| CPU saturation |" in section and "95 % CI" in section
    assert "plan with the spread" in section
    assert (
        "block bootstrap over the seconds within each tier" in section
        and "not a confidence interval" in section
    )
    html = paths.html.read_text()
    assert 'href="#repeats"' in html and '<section id="repeats">' in html
    report = json.loads(paths.json.read_text())
    assert (
        report["repeats"]["count"] == 2
        and report["repeats"]["spread"]["figures"][0]["key"] == "recommended_max"
    )
    # the headline points at the spread, so nobody plans with the pooled figure alone
    spread = report["repeats"]["spread"]["figures"][0]
    assert (
        f"Its 2 repeats, each fitted alone, gave {fmt(spread['low'])}{DASH}{fmt(spread['high'])}"
        in (report["headline"])
    )
    assert [r["label"] for r in report["repeats"]["rows"]] == [
        "Recommended maximum",
        "CPU saturation",
        "Throughput saturation",
    ]


def test_a_report_without_repeats_has_no_spread_section(sweep_dir: Path, tmp_path: Path) -> None:
    paths = render_report(sweep_dir, tmp_path / "report")
    assert "Spread between repeats" not in paths.markdown.read_text()
    assert 'id="repeats"' not in paths.html.read_text()
    assert json.loads(paths.json.read_text())["repeats"] is None


def test_a_repeat_cut_short_is_pooled_but_not_compared(tmp_path: Path) -> None:
    path = write_repeated_sweep(tmp_path / "sweep", (1.0, 1.3, 1.1))
    data = json.loads((path / "sweep.json").read_text())
    data["status"] = "interrupted"
    data["tiers"][-1].update(status="interrupted")  # the last tier of repeat 3
    (path / "sweep.json").write_text(json.dumps(data))
    outcome = fit_result(read_sweep(path))
    spread = outcome.repeats
    assert spread is not None and (spread.count, spread.repeats, spread.left_out) == (2, (1, 2), (3,))
    assert all(len(f.per_repeat) == 2 for f in spread.figures)
    assert len(outcome.model.tiers) == 3 * len(REPEATED_TIERS) - 1  # its finished tiers are pooled
    view = repeats_view(spread)
    assert view is not None and "Repeat 3 did not complete every tier" in view.meaning[0]
    assert "The sweep runs every tier 3 times, interleaved" in view.meaning[0]
    printed = fit(path)
    assert printed.exit_code == 0, printed.output
    assert "not compared: repeat 3 (not every tier completed; its runs are pooled)" in " ".join(
        printed.stdout.split()
    )
