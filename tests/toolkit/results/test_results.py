"""capacity.results.run_file: the run.json format round-trips, and unknown or corrupt files give clear
errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from capacity.results.run_file import (
    FORMAT,
    Counts,
    Latency,
    LoadgenInfo,
    Overrides,
    Run,
    RunFormatError,
    Second,
    SloVerdict,
    Summary,
    Target,
    dataclass_from_json,
    read_run,
    run_to_dict,
    write_run,
)
from capacity.testing.sample_sweep import sample_environment


def second(t: int, **values: float | int | None) -> Second:
    base: dict = {
        "offered_rate": 100.0,
        "sent_rate": 100.0,
        "achieved_rate": 100.0,
        "errors_per_s": 0.0,
        "shed_per_s": 0.0,
        "late_per_s": 0.0,
        "corrected_p50_ms": 1.5,
        "corrected_p99_ms": 4.25,
        "corrected_p999_ms": 6.0,
        "raw_p50_ms": 1.0,
        "raw_p99_ms": 3.0,
        "raw_p999_ms": 5.0,
        "server_cpu_percent": 12.5,
        "server_rss_bytes": 50_000_000,
        "generator_cpu_percent": 20.0,
        "exchange_orders_per_sec": 80.0,
        "exchange_p99_ms": 2.0,
        "exchange_resting_orders": 40,
        "exchange_rss_bytes": 50_000_000,
    }
    base.update(values)
    return Second(t=t, **base)


def sample_run() -> Run:
    latency = Latency(400, 1.5, 3.0, 4.25, 6.0, 8.0, 1.8)
    summary = Summary(
        steady_start_s=1,
        steady_end_s=3,
        offered_rate=100.0,
        achieved_rate=99.5,
        achieved_ratio=0.995,
        counts=Counts(400, 400, 399, 1, 1, 0),
        error_rate=0.0025,
        shed_rate=0.0025,
        late_share=0.0,
        corrected=latency,
        raw=replace(latency, p99_ms=3.0),
        server_cpu_percent_mean=12.5,
        server_cpu_percent_max=14.0,
        server_cores_used_mean=0.125,
        server_cores_used_max=0.14,
        server_rss_max_bytes=50_000_000,
        generator_cpu_percent_mean=20.0,
        generator_cpu_percent_max=25.0,
        generator_cores=1.0,
        generator_saturated_seconds=0,
        other_cpu_percent_mean=3.0,
        exchange_orders_per_sec_mean=80.0,
        exchange_resting_orders_max=40,
        slo=SloVerdict(50.0, 0.01, 4.25, 0.0025, True),
        generator_bound=False,
    )
    # physical_cpus, governor unknown and a package missing: the optional fields' None round-trips too
    environment = replace(
        sample_environment(),
        physical_cpus=None,
        cpu_governor=None,
        packages={"locust": "2.47.0", "missing": None},
    )
    return Run(
        status="completed",
        problem=None,
        scenario={"name": "t", "load": {"orders_per_second": 100}},
        scenario_source="t.yaml",
        overrides=Overrides(duration_s=4.0),
        target=Target("http://127.0.0.1:1234", True, 42, {"JOURNAL_SYNC": "normal"}),
        environment=environment,
        started_utc="2026-11-25T12:00:00+00:00",
        finished_utc="2026-11-25T12:00:06+00:00",
        wall_time_s=6.0,
        loadgen=LoadgenInfo(
            1, ("python", "-m", "locust"), 0, 1795600000.5, 3.2, {"http_503": 1}, {"limit": 280}
        ),
        series=tuple(second(t) for t in range(4)),
        summary=summary,
        files={"scenario": "scenario.yaml"},
        notes=("a note",),
    )


def test_round_trip_through_a_directory(tmp_path: Path) -> None:
    run = sample_run()
    written = write_run(tmp_path, run)
    assert written == tmp_path / "run.json"
    assert read_run(tmp_path) == run
    assert read_run(written) == run
    assert written.read_text().startswith('{\n  "format": "capacity-run/1"')


def test_steady_series_is_the_summary_window() -> None:
    assert [s.t for s in sample_run().steady_series()] == [1, 2]


def test_non_finite_numbers_are_written_as_null(tmp_path: Path) -> None:
    run = sample_run()
    run = replace(run, series=(second(0, server_cpu_percent=float("nan")),))
    write_run(tmp_path, run)
    assert json.loads((tmp_path / "run.json").read_text())["series"][0]["server_cpu_percent"] is None
    assert read_run(tmp_path).series[0].server_cpu_percent is None


def test_a_run_that_would_not_read_back_is_never_written(tmp_path: Path) -> None:
    """A NaN where a number is required would be written as null, which no reader takes: refused before
    the file is in place, naming the field."""
    run = replace(sample_run(), wall_time_s=float("nan"))
    with pytest.raises(RunFormatError, match='field "wall_time_s": expected a number, got null'):
        write_run(tmp_path, run)
    assert not (tmp_path / "run.json").exists() and not (tmp_path / "run.json.tmp").exists()


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("capacity-run/2", "newer than this capacity reads"),
        ("capacity-run/0", "unsupported format version"),
        ("capacity-run/x", "unknown format version"),
        ("capacity-loadgen/1", 'unknown format "capacity-loadgen/1"'),
        (7, '"format" must be a string'),
    ],
)
def test_unknown_format_versions_are_refused(tmp_path: Path, fmt: object, message: str) -> None:
    data = run_to_dict(sample_run())
    data["format"] = fmt
    with pytest.raises(RunFormatError, match=message) as caught:
        read_run(_write(tmp_path, data))
    assert str(tmp_path) in str(caught.value)


def test_files_that_are_not_runs(tmp_path: Path) -> None:
    with pytest.raises(RunFormatError, match="no such file"):
        read_run(tmp_path / "nothing.json")
    (tmp_path / "run.json").write_text('{"format": "capacity-run/1", ')
    with pytest.raises(RunFormatError, match=r"not valid JSON \(line 1"):
        read_run(tmp_path)
    with pytest.raises(RunFormatError, match='no "format" field'):
        read_run(_write(tmp_path, {"status": "completed"}))
    with pytest.raises(RunFormatError, match="expected a JSON object"):
        read_run(_write(tmp_path, [1, 2]))


def test_a_corrupt_field_is_named(tmp_path: Path) -> None:
    data = run_to_dict(sample_run())
    data["series"][2]["achieved_rate"] = "fast"
    expected = r'field "series\[2\]\.achieved_rate": expected a number, got "fast"'
    with pytest.raises(RunFormatError, match=expected):
        read_run(_write(tmp_path, data))
    data = run_to_dict(sample_run())
    del data["summary"]["corrected"]["p99_ms"]
    read_run(_write(tmp_path, data))  # optional fields may be missing
    del data["summary"]["slo"]
    with pytest.raises(RunFormatError, match=r'missing field "summary\.slo"'):
        read_run(_write(tmp_path, data))
    data = run_to_dict(sample_run())
    data["status"] = "exploded"
    with pytest.raises(RunFormatError, match='field "status": expected "completed" or "interrupted"'):
        read_run(_write(tmp_path, data))


def test_unknown_extra_fields_are_ignored(tmp_path: Path) -> None:
    data = run_to_dict(sample_run())
    data["added_later"] = {"x": 1}
    data["summary"]["another"] = 3
    assert read_run(_write(tmp_path, data)) == sample_run()


def test_annotations_are_evaluated_once_per_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a long run must not evaluate the dataclasses' annotations once per second (it was most of
    the time it took to load a sweep)."""
    import capacity.results.run_file as results

    calls: list[type] = []
    real = results.get_type_hints

    def counting(cls: type) -> dict:
        calls.append(cls)
        return real(cls)

    monkeypatch.setattr(results, "get_type_hints", counting)
    results._type_hints.cache_clear()
    run = replace(sample_run(), series=tuple(second(t) for t in range(300)))
    write_run(tmp_path, run)
    assert read_run(tmp_path) == run
    assert read_run(tmp_path) == run
    assert len(calls) == len(set(calls)) < 15
    results._type_hints.cache_clear()


def test_dataclass_from_json_reads_other_formats_with_their_own_error() -> None:
    class OtherFormatError(ValueError):
        pass

    data = {"count": 3, "p99_ms": 4, "extra": "ignored"}
    assert dataclass_from_json(Latency, data, "x.json") == Latency(3, p99_ms=4.0)
    with pytest.raises(OtherFormatError, match=r'^x\.json: field "count": expected an integer, got "3"$'):
        dataclass_from_json(Latency, {"count": "3"}, "x.json", error=OtherFormatError)
    with pytest.raises(RunFormatError, match='missing field "count"'):
        dataclass_from_json(Latency, {}, "x.json")


def test_format_constant() -> None:
    assert FORMAT == "capacity-run/1"
    assert SloVerdict(1, 0.1, 2, 0, False).verdict == "FAIL"


# --- capacity run --summary-json: the summary contract ------------------------------------------------------


def test_the_summary_contract_matches_its_published_schema(tmp_path: Path) -> None:
    import jsonschema

    from capacity.results.summary_contract import FORMAT, write_summary
    from capacity.scenario import load_schema
    from capacity.testing.sample_sweep import SEED_TIERS, write_sample_run

    run = write_sample_run(tmp_path / "run", SEED_TIERS[3])
    write_summary(tmp_path / "summary.json", run, tmp_path / "run")
    summary = json.loads((tmp_path / "summary.json").read_text())
    jsonschema.validate(summary, load_schema("run-summary"))
    assert summary["format"] == FORMAT == "capacity-run-summary/1"
    assert summary["slo"]["verdict"] == run.summary.slo.verdict
    assert summary["corrected"]["p99_ms"] == run.summary.corrected.p99_ms
    assert summary["run_json"] == str(tmp_path / "run" / "run.json")
    broken = {**summary, "status": "done"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, load_schema("run-summary"))
