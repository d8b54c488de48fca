"""LatencyRecorder: per-second HDR histograms, merging across processes, summaries and interval logs."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from capacity.measure.latency import (
    HIGHEST_US,
    LOWEST_US,
    LatencyRecorder,
    new_histogram,
    record_values,
    summarize,
    to_us_array,
    write_hlog,
)

NS = 1_000_000_000
MS = 1_000_000


def _samples(n: int, seed: int = 7) -> list[tuple[int, int, int]]:
    """(intended, sent, done) in ns over 5 seconds: mostly ~1 ms, a tail up to 200 ms, some sent late."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        intended = rng.randrange(0, 5 * NS)
        sent = intended + (rng.randrange(0, 30 * MS) if rng.random() < 0.05 else rng.randrange(0, MS))
        service = rng.lognormvariate(0, 1) * MS if rng.random() < 0.97 else rng.randrange(20, 200) * MS
        out.append((intended, sent, sent + int(service)))
    return out


def _record_all(recorder: LatencyRecorder, samples: list[tuple[int, int, int]]) -> None:
    for intended, sent, done in samples:
        recorder.sent(intended, sent, "limit")
        recorder.record(intended, sent, done)


def test_merge_across_workers_equals_single_histogram() -> None:
    samples = _samples(20_000)
    single = LatencyRecorder()
    _record_all(single, samples)

    master = LatencyRecorder()
    workers = [LatencyRecorder() for _ in range(3)]
    for i, sample in enumerate(samples):
        _record_all(workers[i % 3], [sample])
        if i % 5000 == 4999:  # workers report several times during the run
            for worker in workers:
                master.add_delta(worker.take_delta())
    for worker in workers:
        master.add_delta(worker.take_delta())

    assert sorted(master.seconds) == sorted(single.seconds)
    for t, second in single.seconds.items():
        assert master.seconds[t].summary() == second.summary()
    merged, whole = master.combined(), single.combined()
    assert merged.summary() == whole.summary()
    assert merged.corrected is not None and whole.corrected is not None
    assert merged.corrected.get_total_count() == len(samples)
    for percentile in (50, 90, 99, 99.9, 99.99, 100):
        assert merged.corrected.get_value_at_percentile(
            percentile
        ) == whole.corrected.get_value_at_percentile(percentile)
    assert master.requests_by_kind == single.requests_by_kind


def _to_us(duration_ns: int) -> int:
    """The definition to_us_array must match: Python's round of ns / 1000, clamped into the range."""
    return min(max(round(duration_ns / 1000), LOWEST_US), HIGHEST_US)


def test_to_us_array_rounds_and_clamps_like_python_round() -> None:
    rng = random.Random(11)
    durations = [0, -7, 499, 500, 501, 1500, 2500, 3499_500, 10**15, 59_999_999_500, 60_000_000_500]
    durations += [rng.randrange(-1000, 10**11) for _ in range(5000)]
    durations += [rng.randrange(0, 10**7) * 1000 + 500 for _ in range(1000)]  # exact halves
    assert to_us_array(durations).tolist() == [_to_us(d) for d in durations]


def test_record_values_equals_record_value_one_by_one() -> None:
    rng = random.Random(5)
    values = [1, 2, 3, 1023, 1024, 2047, 2048, 2049, 4095, 4096, 4097, HIGHEST_US - 1, HIGHEST_US]
    values += [v + d for k in range(11, 26) for v in (2**k,) for d in (-1, 0, 1)]
    values += [min(int(rng.lognormvariate(7, 2)) + 1, HIGHEST_US) for _ in range(20_000)]
    one_by_one, batch = new_histogram(), new_histogram()
    for value in values:
        one_by_one.record_value(value)
    half = len(values) // 2  # two batches: folding adds to what is already there
    record_values(batch, np.array(values[:half], dtype=np.int64))
    record_values(batch, np.array(values[half:], dtype=np.int64))
    record_values(batch, np.array([], dtype=np.int64))
    assert list(batch.counts) == list(one_by_one.counts)
    assert (batch.get_total_count(), batch.get_min_value(), batch.get_max_value()) == (
        one_by_one.get_total_count(),
        one_by_one.get_min_value(),
        one_by_one.get_max_value(),
    )
    assert batch.encode() == one_by_one.encode()
    for outside in (-1, 10**12):
        with pytest.raises(ValueError, match="outside the histogram's range"):
            record_values(batch, np.array([5, outside], dtype=np.int64))
    assert batch.get_total_count() == len(values)  # a refused batch records nothing


@pytest.mark.parametrize("report_every", [1, 997, 10**9])
def test_recorder_histograms_equal_recording_each_response_at_once(report_every: int) -> None:
    """However often the pending responses are folded, a second holds what record_value would have."""
    samples = _samples(5000, seed=9)
    recorder, collected = LatencyRecorder(), LatencyRecorder()
    expected: dict[int, tuple] = {}
    for i, (intended, sent, done) in enumerate(samples):
        recorder.sent(intended, sent, "limit")
        recorder.record(intended, sent, done)
        if i % report_every == 0:
            collected.add_delta(recorder.take_delta())
        ok, corrected, raw, sums = expected.setdefault(
            intended // NS, (0, new_histogram(), new_histogram(), (0, 0))
        )
        corrected.record_value(_to_us(done - intended))
        raw.record_value(_to_us(done - sent))
        sums = (sums[0] + _to_us(done - intended), sums[1] + _to_us(done - sent))
        expected[intended // NS] = (ok + 1, corrected, raw, sums)
    collected.add_delta(recorder.take_delta())
    assert sorted(collected.seconds) == sorted(expected)
    for t, (ok, corrected, raw, sums) in expected.items():
        second = collected.seconds[t]
        assert second.ok == ok and (second.corrected_sum_us, second.raw_sum_us) == sums
        assert second.summary()["corrected"] == summarize(corrected, sums[0])
        assert second.summary()["raw"] == summarize(raw, sums[1])
        assert second.corrected is not None and list(second.corrected.counts) == list(corrected.counts)


def test_encode_decode_add_is_exact() -> None:
    rng = random.Random(3)
    values = [rng.randrange(1, 5_000_000) for _ in range(10_000)]
    whole = new_histogram()
    parts = [new_histogram() for _ in range(4)]
    for i, value in enumerate(values):
        whole.record_value(value)
        parts[i % 4].record_value(value)
    merged = new_histogram()
    for part in parts:
        merged.decode_and_add(part.encode())
    assert merged.get_total_count() == whole.get_total_count() == len(values)
    assert merged.get_max_value() == whole.get_max_value()
    for percentile in (1, 50, 90, 99, 99.9, 100):
        assert merged.get_value_at_percentile(percentile) == whole.get_value_at_percentile(percentile)
    assert HdrHistogram.decode(whole.encode()).get_value_at_percentile(99) == whole.get_value_at_percentile(
        99
    )


def test_corrected_is_from_intended_raw_from_sent_and_late_is_counted() -> None:
    recorder = LatencyRecorder(late_threshold_ms=10)
    recorder.sent(0, 2 * MS, "limit")  # 2 ms behind: not late
    recorder.record(0, 2 * MS, 3 * MS)
    recorder.sent(NS // 2, NS // 2 + 50 * MS, "market")  # 50 ms behind: late
    recorder.record(NS // 2, NS // 2 + 50 * MS, NS // 2 + 51 * MS)
    second = recorder.seconds[0]
    assert (second.scheduled, second.sent, second.ok, second.late) == (2, 2, 2, 1)
    assert second.lag_max_us == 50_000
    assert second.corrected is not None and second.raw is not None
    assert second.corrected.get_max_value() >= 51_000 > second.raw.get_max_value()
    assert summarize(second.raw)["max"] == 1.0


def test_errors_owed_and_buckets_by_intended_second() -> None:
    recorder = LatencyRecorder()
    recorder.sent(int(1.2 * NS), int(2.5 * NS), "cancel")  # sent in second 2, counted in second 1
    recorder.error(int(1.2 * NS), "http_503")
    recorder.owed(int(3.7 * NS), generator_fault=True)
    assert recorder.seconds[1].sent == 1 and recorder.seconds[1].shed == 1 and recorder.seconds[1].errors == 1
    assert recorder.seconds[3].scheduled == 1 and recorder.seconds[3].sent == 0
    assert recorder.errors_summary() == {"http_503": 1, "http_400": 0, "connection": 0, "timeout": 0}
    assert recorder.requests_summary() == {"limit": 0, "market": 0, "cancel": 1, "book": 0}


def test_summary_of_nothing_has_no_latency_and_huge_values_are_clamped() -> None:
    assert summarize(new_histogram()) == {
        "count": 0,
        "p50": None,
        "p90": None,
        "p99": None,
        "p999": None,
        "max": None,
        "mean": None,
    }
    assert to_us_array([10**15, 0, -5]).tolist() == [HIGHEST_US, 1, 1]


def test_hlog_is_readable_by_hdrhistogram(tmp_path: Path) -> None:
    recorder = LatencyRecorder()
    _record_all(recorder, _samples(3000))
    histograms = [recorder.seconds[t].corrected if t in recorder.seconds else None for t in range(6)]
    path = tmp_path / "corrected.hlog"
    write_hlog(path, histograms, started_at=1_795_600_000.5)
    reader = HistogramLogReader(str(path), new_histogram())
    counts = []
    while (interval := reader.get_next_interval_histogram()) is not None:
        counts.append(interval.get_total_count())
    assert counts == [h.get_total_count() if h is not None else 0 for h in histograms]
    assert sum(counts) == 3000
    assert reader.get_start_time_sec() == 1_795_600_000.5


def test_work_done_is_counted_by_the_second_answers_arrive() -> None:
    """A saturated server answers late: its throughput is what it answered each wall-clock second, not what
    was scheduled then (issue 14). Scheduled in second 0, answered across seconds 0-2."""
    recorder = LatencyRecorder()
    for i in range(30):
        intended = i * (NS // 30)
        recorder.sent(intended, intended, "limit")
        recorder.record(intended, intended, i * (NS // 10))  # answered at 0.0, 0.1 ... 2.9 s
    assert recorder.seconds[0].ok == 30 and set(recorder.seconds) == {0}
    assert dict(recorder.completed) == {0: 10, 1: 10, 2: 10}
    merged = LatencyRecorder()
    merged.add_delta(recorder.take_delta())
    assert dict(merged.completed) == {0: 10, 1: 10, 2: 10} and merged.last_second == 0


def test_all_outcomes_count_what_failures_waited() -> None:
    """Errors, and requests unanswered or never sent at the end, count with their wait from the intended
    time; successes with their corrected latency (issue 14)."""
    recorder = LatencyRecorder()
    for i in range(98):
        recorder.sent(i * MS, i * MS, "limit")
        recorder.record(i * MS, i * MS, i * MS + 2 * MS)  # 2 ms each
    recorder.sent(200 * MS, 200 * MS, "limit")
    recorder.error(200 * MS, "timeout", 200 * MS + 3 * NS)  # failed after 3 s
    recorder.owed(300 * MS, generator_fault=False)
    recorder.unanswered(300 * MS, 300 * MS + 5 * NS)  # still waiting 5 s later
    wire = LatencyRecorder()
    wire.add_delta(recorder.take_delta())
    total = wire.combined()
    assert summarize(total.corrected)["max"] == 2.0  # successes alone hide the failures
    every = total.all_outcomes()
    assert every["count"] == 100 and every["max"] >= 4_990
    assert every["p99"] >= 2_990  # 2 of 100 waited seconds: the p99 says so
    assert every["mean"] == pytest.approx((98 * 2 + 3_000 + 5_000) / 100, rel=1e-3)
