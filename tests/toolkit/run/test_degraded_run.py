"""Degraded mode (issue 21) as a run records it: refusals (503 and 429) counted and timed apart from the
admitted, the generator's backlog behind its schedule, each phase's totals, the summary of the load phase
and its overload verdict; and one short real run against the embedded exchange made to shed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import support
from support import second

from capacity.measure.latency import LatencyRecorder
from capacity.results.loadgen_file import loadgen_document
from capacity.results.run_file import (
    Counts,
    Latency,
    Recovery,
    read_run,
    run_from_dict,
    run_to_dict,
    write_run,
)
from capacity.run.loadgen_reader import _second
from capacity.run.orchestrator import RunOptions, run_scenario
from capacity.run.series import build_series
from capacity.run.summary import PhaseFigures, summarize
from capacity.scenario import load_scenario_text

MS = 1_000_000  # ns


# ---------------------------------------------------------------------------------------------- recorded

RECOVERING = """\
name: r
load: {orders_per_second: 100, concurrent_users: 10, symbols: [BTCUSD], duration: 3s}
recovery: {duration: 2s, orders_per_second: 10}
slo: {p99_ms: 50, error_rate: 0.05}
"""


def test_refusals_are_kept_apart_and_the_backlog_is_counted() -> None:
    scenario = load_scenario_text(RECOVERING)
    recorder = LatencyRecorder()
    # second 0: three sent on time, one admitted, a 503 and a 429 refused fast
    for i, (kind, done_ms) in enumerate((("ok", 20), ("http_503", 2), ("http_429", 3))):
        intended = i * 100 * MS
        recorder.sent(intended, intended, "limit")
        if kind == "ok":
            recorder.record(intended, intended, intended + done_ms * MS)
        else:
            recorder.error(intended, kind, intended + done_ms * MS)
    # second 1: two slots due but held back, sent at 2.5 s (still owed at the end of second 1)
    for intended in (1_200 * MS, 1_400 * MS):
        recorder.sent(intended, 2_500 * MS, "limit")
        recorder.record(intended, 2_500 * MS, 2_510 * MS)
    # second 3 (the recovery): one on time
    recorder.sent(3_100 * MS, 3_100 * MS, "book")
    recorder.record(3_100 * MS, 3_100 * MS, 3_105 * MS)
    doc = loadgen_document(
        scenario,
        recorder,
        target="http://127.0.0.1:1",
        started_at=0.0,
        workers=1,
        elapsed_s=5,
        engine="native",
    )
    totals = doc["totals"]
    assert (totals["shed"], totals["errors"], totals["refused"]["count"]) == (2, 2, 2)
    assert totals["refused"]["max"] == pytest.approx(3.0, rel=0.01)  # the refusals' own latency
    assert totals["corrected"]["count"] == 4  # the admitted: their latency without the refusals'
    assert [s["dispatched"] for s in doc["seconds"]] == [3, 0, 2, 1, 0]
    load, recovery = doc["phases"]["load"], doc["phases"]["recovery"]
    assert (load["start_s"], load["end_s"], load["sent"], load["shed"]) == (0, 3, 5, 2)
    assert (recovery["start_s"], recovery["end_s"], recovery["sent"], recovery["ok"]) == (3, 5, 1, 1)

    series = build_series([_second(s) for s in doc["seconds"]], 0.0)
    assert [s.backlog for s in series] == [0, 2, 0, 0, 0]


def test_the_summary_is_the_load_phase_and_old_files_still_read() -> None:
    scenario = load_scenario_text(RECOVERING.replace("duration: 3s", "duration: 10s"))
    series = [second(t, 30.0, refused=40, sent=100) for t in range(10)]
    series += [second(t, 5.0, sent=10) for t in range(10, 12)]
    load = Counts(scheduled=1000, sent=1000, ok=600, errors=400, shed=400)
    summary = summarize(
        scenario,
        series,
        load,
        Latency(600, p99_ms=30.0),
        Latency(600, p99_ms=20.0),
        1.0,
        refused=Latency(400, p99_ms=2.0),
        lag_max_ms=12.0,
        recovery_phase=PhaseFigures(Counts(sent=20, ok=20), Latency(20, p99_ms=5.0)),
    )
    assert (summary.steady_start_s, summary.steady_end_s) == (1, 9)  # the recovery is not steady load
    assert summary.offered_rate == 100
    o = summary.overload
    assert o is not None and o.kind == "degraded" and o.refused_share == 0.4
    assert (o.admitted_p99_ms, o.refused_p99_ms, o.lag_max_ms) == (30.0, 2.0, 12.0)
    # a recovery phase shorter than the streak needs all its seconds good: these are, from the first
    assert o.recovery == Recovery(
        start_s=10,
        duration_s=2,
        offered_rate=10,
        time_to_recover_s=0.0,
        refused_share=0.0,
        admitted_p99_ms=5.0,
    )


def test_run_json_keeps_the_overload_and_files_written_before_it_still_read(tmp_path: Path) -> None:
    recorded = read_run(support.FIXTURES / "sweep-small" / "tiers" / "01-light")  # capacity-run/1, older
    assert recorded.summary.overload is None and recorded.summary.refused is None
    assert all(s.backlog is None for s in recorded.series)
    overload = summarize(
        load_scenario_text(RECOVERING),
        [second(t, 30.0, refused=40, sent=100) for t in range(5)],
        Counts(sent=500, ok=300, errors=200, shed=200),
        Latency(300, p99_ms=30.0),
        Latency(300, p99_ms=20.0),
        1.0,
        refused=Latency(200, p99_ms=2.0),
    )
    run = replace(recorded, summary=overload, series=tuple(replace(s, backlog=3) for s in recorded.series))
    write_run(tmp_path, run)
    again = read_run(tmp_path)
    assert again == run and again.summary.overload is not None and again.summary.overload.kind == "degraded"
    assert run_from_dict(run_to_dict(run)) == run


# ---------------------------------------------------------------------------------------------- a real run

SHEDDING = """\
name: shedding
load: {orders_per_second: 3000, concurrent_users: 150, symbols: [BTCUSD, ETHUSD], duration: 8s}
recovery: {duration: 6s, orders_per_second: 150}
slo: {p99_ms: 500, error_rate: 0.05}
"""


@pytest.mark.timeout(60)
def test_a_short_real_run_against_an_exchange_made_to_shed(tmp_path: Path) -> None:
    """The embedded exchange with room for only a few pending orders refuses part of 3,000/s with 503;
    then 6 s at 150/s. About 20 s in all."""
    scenario = load_scenario_text(SHEDDING)
    options = RunOptions(run_dir=tmp_path / "run", exchange_env={"MAX_PENDING_ORDERS": "5"})
    result = run_scenario(scenario, options)
    run = read_run(result.path)
    assert run.status == "completed", run.problem
    s = run.summary
    # the tier's figures are its load phase's: 8 s at 3000/s, the recovery left out
    assert s.counts.scheduled == pytest.approx(3000 * 8, rel=0.02)
    assert s.steady_end_s <= 8 and s.offered_rate == pytest.approx(3000, rel=0.02)
    assert len(run.series) >= 14 and run.series[10].offered_rate == pytest.approx(150, rel=0.02)
    assert all(x.backlog is not None and x.backlog >= 0 for x in run.series)
    # the exchange refused part of the load: counted, and timed apart from the admitted
    assert s.counts.shed > 0 and run.loadgen.errors_by_kind["http_503"] >= s.counts.shed  # the whole run's
    assert s.refused is not None and s.refused.count == s.counts.shed
    assert s.corrected.count == s.counts.ok
    o = s.overload
    if s.limit is not None and s.limit.kind == "generator":  # a machine too busy to offer the load
        assert o is None
        return
    assert o is not None and o.kind in ("degraded", "overwhelmed", "collapsed")
    assert o.refused_share == pytest.approx(s.counts.shed / s.counts.sent)
    assert o.admitted_p99_ms == s.corrected.p99_ms and o.refused_p99_ms == s.refused.p99_ms
    assert o.backlog_max is not None and o.lag_max_ms is not None
    assert o.recovery is not None and (o.recovery.start_s, o.recovery.offered_rate) == (8, 150)
    # at 150/s the exchange has next to nothing left to refuse (a refusal or two while its loop catches up):
    # it recovers within the phase
    assert o.recovery.refused_share is not None and o.recovery.refused_share < 0.05
    assert o.recovery.time_to_recover_s is not None and o.recovery.time_to_recover_s <= 3
