"""Per-second latency and outcome counts of an open-model load generator, in HdrHistograms.

Every request has an *intended* send time (its slot on the arrival schedule), an actual send time and a
completion time. Latency is kept two ways, as wrk2 does:

- ``corrected`` = completion - intended: what a client arriving on schedule would have seen. A generator
  that fell behind (a stall, a slow response holding up the next send) shows up here.
- ``raw`` = completion - actual send: the service time of the request alone. It hides stalls, because the
  requests that would have waited were simply sent later (coordinated omission).

Both go into HdrHistograms in microseconds (1 us .. 60 s, 3 significant digits), one pair per second of
*intended* send time, so processes can merge exactly: a histogram is encoded for the wire and added on the
other side, and every percentile is read from the merged distribution, never averaged.

Recording is on every request's path, and hdrhistogram's ``record_value`` is pure Python (a few us each):
a second keeps its completions as plain lists of nanoseconds and folds them into its histograms in one
vectorised pass (``record_values``, the same counts, total, min and max) whenever it is read, merged or
sent, which for a generator is once per report interval.

Times passed in are integer nanoseconds since t = 0 of the schedule. No Locust import: this module is pure.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

LOWEST_US = 1
HIGHEST_US = 60_000_000  # 60 s: anything slower is clamped here (and is a failed run anyway)
SIGNIFICANT_DIGITS = 3
PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
# Always present in errors_by_kind (other HTTP statuses appear as http_<status> when they occur).
ERROR_KINDS = ("http_503", "http_400", "connection", "timeout")
REQUEST_KINDS = ("limit", "market", "cancel", "book")
#: Answers that refuse a request (overload protection: load shedding, rate limiting) rather than fail it:
#: counted as ``shed``, their latency kept apart in ``refused``.
REFUSED_KINDS = frozenset({"http_503", "http_429"})

_NS_PER_S = 1_000_000_000


def new_histogram() -> HdrHistogram:
    """An empty latency histogram in microseconds with this module's range and precision."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def to_us_array(durations_ns: list[int]) -> np.ndarray:
    """Nanoseconds to whole microseconds (rounded half to even), clamped into the histogram's range."""
    us = np.rint(np.asarray(durations_ns, dtype=np.int64) / 1000)
    return np.clip(us, LOWEST_US, HIGHEST_US).astype(np.int64)


def record_values(histogram: HdrHistogram, values: np.ndarray) -> None:
    """``histogram.record_value(v)`` for every v (int64) in one pass; ValueError if one cannot be counted.

    The counts index is hdrh's ``_counts_index_for`` on arrays: the bucket is the bit length of
    ``value | sub_bucket_mask`` (frexp's exponent, exact for integers below 2**53) less the unit and
    sub-bucket magnitudes; the counters are hdrh's own ctypes array, updated in place.
    """
    if values.size == 0:
        return
    h = histogram
    low, high = int(values.min()), int(values.max())
    if low < 0 or h.get_counts_array_index(high) >= h.counts_len:  # the index grows with the value
        raise ValueError(
            f"values {low}..{high} are outside the histogram's range (0..{h.highest_trackable_value})"
        )
    bit_length = np.frexp((values | h.sub_bucket_mask).astype(np.float64))[1].astype(np.int64)
    bucket = bit_length - h.unit_magnitude - (h.sub_bucket_half_count_magnitude + 1)
    sub_bucket = values >> (bucket + h.unit_magnitude)
    index = ((bucket + 1) << h.sub_bucket_half_count_magnitude) + sub_bucket - h.sub_bucket_half_count
    counts = np.ctypeslib.as_array(h.counts)
    counts += np.bincount(index, minlength=h.counts_len).astype(np.uint64)
    h.total_count += int(values.size)
    h.min_value = min(h.min_value, low)
    h.max_value = max(h.max_value, high)


def summarize(histogram: HdrHistogram | None, sum_us: int = 0) -> dict[str, Any]:
    """``{"count", "p50", "p90", "p99", "p999", "max", "mean"}`` in milliseconds.

    Percentiles and max come from the histogram (exact to its 3 significant digits); the mean is the exact
    sum of recorded values over the count. With no samples every figure but ``count`` is None: a latency of
    0 ms would be a lie.
    """
    count = 0 if histogram is None else histogram.get_total_count()
    if histogram is None or count == 0:
        return {"count": 0, **dict.fromkeys(PERCENTILES), "max": None, "mean": None}
    values = histogram.get_percentile_to_value_dict(list(PERCENTILES.values()))
    out: dict[str, Any] = {"count": count}
    for name, percentile in PERCENTILES.items():
        out[name] = _ms(values[percentile])
    out["max"] = _ms(histogram.get_max_value())
    out["mean"] = _ms(sum_us / count)
    return out


def _ms(us: float) -> float:
    return round(us / 1000, 3)


# ---------------------------------------------------------------------------------------------- one second


_MAXIMA = frozenset({"lag_max_us", "generator_lag_max_us"})  # merged by max, the other counters add
_COUNTERS = (
    "scheduled",
    "sent",
    "ok",
    "errors",
    "shed",
    "late",
    "lag_max_us",
    "generator_late",
    "generator_lag_max_us",
    "corrected_sum_us",
    "raw_sum_us",
    "failed_sum_us",
    "refused_sum_us",
)


@dataclass
class Second:
    """Everything recorded for requests whose intended send time fell in one second of the schedule.

    ``scheduled`` slots came due; ``sent`` of them were sent (``late`` more than the threshold after their
    intended time); ``ok`` and ``errors`` are completed requests (``shed`` = errors that were refusals,
    HTTP 503 or 429: ``REFUSED_KINDS``).
    ``sent - ok - errors`` were still in flight when the test stopped. Histograms hold ok responses only and
    are created on first use, so an idle second costs almost nothing.

    ``failed`` holds what the requests that did not succeed waited, from their intended time: an error's
    until its answer, and one unanswered or never sent until the test stopped (a lower bound). With
    ``corrected`` it makes the latency of *all outcomes*: what everything that was asked for waited.
    ``refused`` holds the refusals' part of it alone (their answers' latency from the intended time), so
    that admitted (``corrected``) and refused requests are measured apart.

    ``LatencyRecorder.record`` only appends the two durations to the pending lists; ``fold`` (called by
    every method that reads or moves the second, and by ``LatencyRecorder.seconds``) counts them into
    ``ok``, the sums and the histograms.
    """

    scheduled: int = 0
    sent: int = 0
    ok: int = 0
    errors: int = 0
    shed: int = 0
    late: int = 0
    lag_max_us: int = 0  # largest (actual - intended) send time, us
    # the generator's own share of lateness: sent (or never sent) more than the threshold after the slot
    # could first have gone out, max(intended, the user's previous answer); a slow server adds none
    generator_late: int = 0
    generator_lag_max_us: int = 0
    corrected_sum_us: int = 0  # exact sums, for means without walking the histogram
    raw_sum_us: int = 0
    failed_sum_us: int = 0
    refused_sum_us: int = 0
    corrected: HdrHistogram | None = field(default=None, repr=False)
    raw: HdrHistogram | None = field(default=None, repr=False)
    failed: HdrHistogram | None = field(default=None, repr=False)
    refused: HdrHistogram | None = field(default=None, repr=False)
    pending_failed_ns: list[int] = field(default_factory=list, repr=False)
    pending_refused_ns: list[int] = field(default_factory=list, repr=False)
    # ok responses not yet folded in: (completion - intended) and (completion - sent), ns
    pending_corrected_ns: list[int] = field(default_factory=list, repr=False)
    pending_raw_ns: list[int] = field(default_factory=list, repr=False)

    def fold(self) -> None:
        """Count the pending responses into ``ok``, the exact sums and the histograms (in us)."""
        if self.pending_failed_ns:
            if self.failed is None:
                self.failed = new_histogram()
            failed = to_us_array(self.pending_failed_ns)
            record_values(self.failed, failed)
            self.failed_sum_us += int(failed.sum())
            self.pending_failed_ns = []
        if self.pending_refused_ns:
            if self.refused is None:
                self.refused = new_histogram()
            refused = to_us_array(self.pending_refused_ns)
            record_values(self.refused, refused)
            self.refused_sum_us += int(refused.sum())
            self.pending_refused_ns = []
        if not self.pending_corrected_ns:
            return
        if self.corrected is None or self.raw is None:
            self.corrected, self.raw = new_histogram(), new_histogram()
        corrected, raw = to_us_array(self.pending_corrected_ns), to_us_array(self.pending_raw_ns)
        record_values(self.corrected, corrected)
        record_values(self.raw, raw)
        self.corrected_sum_us += int(corrected.sum())
        self.raw_sum_us += int(raw.sum())
        self.ok += len(self.pending_corrected_ns)
        self.pending_corrected_ns, self.pending_raw_ns = [], []

    def merge(self, other: Second) -> None:
        """Add ``other`` into this second (counts add, lag takes the max, histograms merge)."""
        self.fold()
        other.fold()
        for name in _COUNTERS:
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(self, name, max(mine, theirs) if name in _MAXIMA else mine + theirs)
        if other.corrected is not None and other.raw is not None:
            if self.corrected is None or self.raw is None:
                self.corrected, self.raw = new_histogram(), new_histogram()
            self.corrected.add(other.corrected)
            self.raw.add(other.raw)
        if other.failed is not None:
            if self.failed is None:
                self.failed = new_histogram()
            self.failed.add(other.failed)
        if other.refused is not None:
            if self.refused is None:
                self.refused = new_histogram()
            self.refused.add(other.refused)

    def to_wire(self) -> dict[str, Any]:
        """Plain data for Locust's master/worker messages: counters plus encoded histograms (or None)."""
        self.fold()
        wire: dict[str, Any] = {name: getattr(self, name) for name in _COUNTERS}
        wire["corrected"] = None if self.corrected is None else self.corrected.encode()
        wire["raw"] = None if self.raw is None else self.raw.encode()
        wire["failed"] = None if self.failed is None else self.failed.encode()
        wire["refused"] = None if self.refused is None else self.refused.encode()
        return wire

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> Second:
        second = cls()
        for name in _COUNTERS:
            setattr(second, name, int(wire.get(name, 0)))
        if wire.get("corrected") is not None and wire.get("raw") is not None:
            second.corrected = HdrHistogram.decode(wire["corrected"])
            second.raw = HdrHistogram.decode(wire["raw"])
        if wire.get("failed") is not None:
            second.failed = HdrHistogram.decode(wire["failed"])
        if wire.get("refused") is not None:
            second.refused = HdrHistogram.decode(wire["refused"])
        return second

    def all_outcomes(self) -> dict[str, Any]:
        """The latency summary of everything asked for: successes (corrected) and failures' waits."""
        self.fold()
        if self.failed is None:
            return summarize(self.corrected, self.corrected_sum_us)
        merged = new_histogram()
        merged.add(self.failed)
        if self.corrected is not None:
            merged.add(self.corrected)
        return summarize(merged, self.corrected_sum_us + self.failed_sum_us)

    def summary(self) -> dict[str, Any]:
        """Counters of this second as in loadgen.json (latency in ms), without ``t``/``offered_rate``."""
        self.fold()
        return {
            "scheduled": self.scheduled,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "shed": self.shed,
            "late": self.late,
            "generator_late": self.generator_late,
            "corrected": summarize(self.corrected, self.corrected_sum_us),
            "raw": summarize(self.raw, self.raw_sum_us),
            "refused": summarize(self.refused, self.refused_sum_us),
        }


# ---------------------------------------------------------------------------------------------- recorder


class LatencyRecorder:
    """Per-second outcomes and latency of requests, keyed by the second of their intended send time.

    A load-generating process records into one; it hands its data over with ``take_delta()`` (which starts
    it afresh) and the collecting side adds each delta with ``add_delta()``. Recording the same requests in
    one recorder or spread over many and merged gives the same counts and the same percentiles.
    """

    def __init__(self, late_threshold_ms: float = 10.0) -> None:
        self.late_threshold_ns = round(late_threshold_ms * 1_000_000)
        self._seconds: dict[int, Second] = {}
        self.errors_by_kind: Counter[str] = Counter()
        self.requests_by_kind: Counter[str] = Counter()
        # successful answers by the second they *arrived* (the seconds above are by intended send time):
        # the work done per wall-clock second, which is what a saturated server's throughput is
        self.completed: Counter[int] = Counter()
        # requests sent, by the second they *left*: with the slots due by then (``scheduled`` by intended
        # second), what the generator still owed its schedule at the end of each second (its backlog)
        self.dispatched: Counter[int] = Counter()

    @property
    def seconds(self) -> dict[int, Second]:
        """Every second recorded so far by index, its pending responses folded in."""
        for second in self._seconds.values():
            second.fold()
        return self._seconds

    # -- recording (times: ns since t = 0 of the schedule) --

    def _second(self, intended_ns: int) -> Second:
        index = max(intended_ns // _NS_PER_S, 0)
        second = self._seconds.get(index)
        if second is None:
            second = self._seconds[index] = Second()
        return second

    def owed(self, intended_ns: int, generator_fault: bool) -> None:
        """A slot that came due but was never sent (the test stopped while the user was behind).
        ``generator_fault``: its user was free to send it (no answer outstanding), so the generator, not
        the server, held it back; it then counts as generator-late."""
        second = self._second(intended_ns)
        second.scheduled += 1
        if generator_fault:
            second.generator_late += 1

    def sent(self, intended_ns: int, sent_ns: int, kind: str, ready_ns: int | None = None) -> None:
        """A request of ``kind`` (limit, market, cancel, book) for slot ``intended_ns``, sent at ``sent_ns``.

        Counts the slot as scheduled and sent, and as late if it left more than the threshold after it.
        ``ready_ns``: when its user got the previous answer (None: it had none outstanding). The delay past
        ``max(intended, ready)`` is the generator's own; beyond the threshold it counts as generator-late.
        """
        second = self._seconds.get(intended_ns // _NS_PER_S) or self._second(intended_ns)
        second.scheduled += 1
        second.sent += 1
        lag_ns = sent_ns - intended_ns
        if lag_ns > self.late_threshold_ns:
            second.late += 1
        if lag_ns > 0 and lag_ns // 1000 > second.lag_max_us:
            second.lag_max_us = lag_ns // 1000
        own_ns = lag_ns if ready_ns is None or ready_ns <= intended_ns else sent_ns - ready_ns
        if own_ns > self.late_threshold_ns:
            second.generator_late += 1
        if own_ns > 0 and own_ns // 1000 > second.generator_lag_max_us:
            second.generator_lag_max_us = own_ns // 1000
        self.requests_by_kind[kind] += 1
        self.dispatched[sent_ns // _NS_PER_S] += 1

    def record(self, intended_ns: int, sent_ns: int, done_ns: int) -> None:
        """A successful response: corrected latency from the intended time, raw from the actual send."""
        second = self._seconds.get(intended_ns // _NS_PER_S) or self._second(intended_ns)
        second.pending_corrected_ns.append(done_ns - intended_ns)
        second.pending_raw_ns.append(done_ns - sent_ns)
        self.completed[done_ns // _NS_PER_S] += 1

    def error(self, intended_ns: int, kind: str, done_ns: int | None = None) -> None:
        """A failed request; ``kind`` is ``http_<status>``, ``connection``, ``timeout`` or ``protocol``;
        ``done_ns``: when it failed (its wait from the intended time counts in all outcomes)."""
        second = self._second(intended_ns)
        second.errors += 1
        refused = kind in REFUSED_KINDS
        if refused:
            second.shed += 1
        self.errors_by_kind[kind] += 1
        if done_ns is not None:
            second.pending_failed_ns.append(done_ns - intended_ns)
            if refused:
                second.pending_refused_ns.append(done_ns - intended_ns)

    def unanswered(self, intended_ns: int, at_ns: int) -> None:
        """A request still unanswered (or a slot never sent) when the test stopped at ``at_ns``: its wait so
        far counts in all outcomes, as a lower bound. Counters are the caller's (``sent``, ``owed``)."""
        self._second(intended_ns).pending_failed_ns.append(max(at_ns - intended_ns, 0))

    # -- moving data between processes --

    def take_delta(self) -> dict[str, Any]:
        """Everything recorded since the last call, as wire data; the recorder starts empty again."""
        delta = {
            "seconds": [[index, second.to_wire()] for index, second in sorted(self.seconds.items())],
            "errors_by_kind": dict(self.errors_by_kind),
            "requests_by_kind": dict(self.requests_by_kind),
            "completed": [[index, count] for index, count in sorted(self.completed.items())],
            "dispatched": [[index, count] for index, count in sorted(self.dispatched.items())],
        }
        self._seconds = {}
        self.errors_by_kind = Counter()
        self.requests_by_kind = Counter()
        self.completed = Counter()
        self.dispatched = Counter()
        return delta

    def add_delta(self, delta: Mapping[str, Any]) -> None:
        """Merge wire data from ``take_delta()`` (of any process) into this recorder."""
        for index, wire in delta.get("seconds", ()):
            self._merge_second(int(index), Second.from_wire(wire))
        self.errors_by_kind.update(delta.get("errors_by_kind", {}))
        self.requests_by_kind.update(delta.get("requests_by_kind", {}))
        self.completed.update({int(index): int(count) for index, count in delta.get("completed", ())})
        self.dispatched.update({int(index): int(count) for index, count in delta.get("dispatched", ())})

    def merge(self, other: LatencyRecorder) -> None:
        """Merge another recorder in this process (no encoding)."""
        for index, second in other.seconds.items():
            self._merge_second(index, second)
        self.errors_by_kind.update(other.errors_by_kind)
        self.requests_by_kind.update(other.requests_by_kind)
        self.completed.update(other.completed)
        self.dispatched.update(other.dispatched)

    def _merge_second(self, index: int, second: Second) -> None:
        mine = self._seconds.get(index)
        if mine is None:
            self._seconds[index] = mine = Second()
        mine.merge(second)

    # -- reading --

    @property
    def last_second(self) -> int:
        """Index of the last second holding anything, -1 if none (by intended send time: answers arriving
        after the schedule's last second, while the generator drains, add no second of their own)."""
        return max(self.seconds, default=-1)

    def combined(self, indices: Iterable[int] | None = None) -> Second:
        """One Second holding the sum of the given seconds (default: all of them)."""
        total = Second()
        seconds = self.seconds
        chosen = seconds.keys() if indices is None else indices
        for index in chosen:
            second = seconds.get(index)
            if second is not None:
                total.merge(second)
        return total

    def errors_summary(self) -> dict[str, int]:
        """errors_by_kind with the standard kinds always present."""
        return {**dict.fromkeys(ERROR_KINDS, 0), **dict(sorted(self.errors_by_kind.items()))}

    def requests_summary(self) -> dict[str, int]:
        return {kind: self.requests_by_kind.get(kind, 0) for kind in REQUEST_KINDS}


# ---------------------------------------------------------------------------------------------- hlog


def write_hlog(path: str | Path, histograms: Iterable[HdrHistogram | None], started_at: float) -> None:
    """An HdrHistogram interval log: one 1-second interval per histogram (None = empty), values in us.

    Interval start times are relative to ``started_at`` (unix seconds, written as BaseTime and StartTime),
    so HdrHistogram's own tools (HistogramLogReader, HistogramLogProcessor) read it as is.
    """
    base_ms = started_at * 1000
    with open(path, "w", encoding="ascii") as out:
        writer = HistogramLogWriter(out)
        writer.base_time = base_ms
        writer.output_comment("capacity load generator: latency in microseconds, one interval per second")
        writer.output_log_format_version()
        # HistogramLogWriter.output_start_time is broken in hdrhistogram 0.10.8, so write the line here.
        iso = datetime.fromtimestamp(started_at, UTC).isoformat(" ")
        out.write(f"#[StartTime: {started_at:.3f} (seconds since epoch), {iso}]\n")
        writer.output_base_time(base_ms)
        writer.output_legend()
        for index, histogram in enumerate(histograms):
            interval = histogram if histogram is not None else new_histogram()
            # The writer falls back to the histogram's own stamps when a start of 0 s is passed.
            interval.set_start_time_stamp(base_ms + index * 1000)
            interval.set_end_time_stamp(base_ms + (index + 1) * 1000)
            writer.output_interval_histogram(
                interval,
                start_time_stamp_sec=float(index),
                end_time_stamp_sec=float(index + 1),
                max_value_unit_ratio=1000.0,  # the max column in ms, as the values are us
            )


def seconds_needed(duration_s: float) -> int:
    """Number of whole-second buckets that cover ``duration_s`` seconds."""
    return max(math.ceil(duration_s - 1e-9), 0)
