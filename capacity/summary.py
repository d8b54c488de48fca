"""The summary of a run: steady-window rates, whole-run latency, SLO verdict, and whether the generator,
not the server, was the limit.

Rules (documented in ``docs/run-format.md``):

- **Steady window**: seconds ``t`` with ``max(1, ceil(ramp)) <= t < last - 1`` — the ramp and the first
  and last second are left out, as are any seconds the generator reports beyond the schedule. A run too
  short to have one uses all its seconds (the window in the summary says so).
- **Latency** comes from the generator's merged whole-run histograms, never from averaged percentiles.
- **Error rate** = (sent - ok) / sent: failed requests *and* requests never answered by the end of the
  run (the generator waits a second for in-flight responses) count against the server. In an
  interrupted run, requests in flight at the interruption are left out: errors / (ok + errors).
- **SLO**: p99 <= ``slo.p99_ms`` and error rate <= ``slo.error_rate``. The p99 is that of all outcomes
  where the generator measured it (successes from their intended send time, and errors, timeouts and
  requests unanswered or unsent at the end with what they waited), else the corrected p99 of successes:
  a server that fails requests fast, or never answers them, cannot pass on the latency of the rest.
- **Generator-bound**, from the generator's own evidence only, when either: its CPU was >= 90 % of the
  cores it could use for a sustained part of the steady window (at least a quarter of its seconds, and
  at least 2 when there are 2); or more than 1 % of the scheduled requests went out late (or never)
  through its own delay. The cores it could use are the CPUs it was pinned to, capped by its process
  count (one Python process cannot use more than one core). When it fell behind without being saturated
  while other processes were busy on the machine, the advice says so: it was starved of CPU.

  Each user has one request in flight, so a slot that comes due while its user waits for an answer goes
  out when the answer comes: late, but through the server's latency (already in the corrected figures),
  not the generator's. The generator records its own delay apart (past the later of the slot and the
  previous answer: ``generator_late``); lateness of the other kind, and slots never sent because their
  users still waited at the end, are a note, never a generator limit.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from capacity.results import Counts, Latency, Second, SloVerdict, Stall, Summary
from capacity.scenario import Scenario

EDGE_S = 1  # seconds dropped at both ends of the steady window
SATURATION = 0.90  # generator CPU share of its cores that counts as saturated
SUSTAINED_SHARE = 0.25  # share of steady seconds that makes saturation "sustained"
LATE_LIMIT = 0.01  # late share of sent requests above which the generator fell behind
UNSENT_LIMIT = 0.01  # unsent share of scheduled requests above which the generator fell behind
BUSY_MACHINE_PERCENT = 10.0  # other processes' mean CPU (percent of one core) worth a warning
ADVICE = (
    "the load generator, not the server, limited this run: add generator processes (--processes N) or a "
    "second machine"
)
ADVICE_BUSY = (
    "the load generator, not the server, limited this run: other processes on this machine took the CPU it "
    "needed - rerun on a quiet machine (or add generator processes with --processes N, or a second machine)"
)


def steady_window(scenario: Scenario, seconds: Sequence[int]) -> tuple[int, int]:
    """``(start, end)`` of the steady window in seconds (``start <= t < end``) for the run's seconds."""
    if not seconds:
        return 0, 0
    ramp = scenario.load.ramp_up.duration_s if scenario.load.ramp_up else 0.0
    last = min(max(seconds) + 1, math.ceil(scenario.total_duration_s - 1e-9))
    start = max(EDGE_S, math.ceil(ramp - 1e-9))
    end = last - EDGE_S
    if end - start < 1:
        return min(seconds), max(seconds) + 1
    return start, end


def summarize(
    scenario: Scenario,
    series: Sequence[Second],
    totals: Counts,
    corrected: Latency,
    raw: Latency,
    generator_cores: float,
    completed: bool = True,
    stalls: Sequence[Stall] = (),
    all_outcomes: Latency | None = None,
) -> Summary:
    """The ``Summary`` of a run. ``generator_cores``: how many cores the generator could use; ``stalls``:
    times the server answered nothing while asked, as the generator saw them."""
    start, end = steady_window(scenario, [s.t for s in series])
    steady = [s for s in series if start <= s.t < end]
    offered = _mean([s.offered_rate for s in steady]) or 0.0
    achieved = _mean([s.achieved_rate for s in steady]) or 0.0
    sent = totals.sent
    server_cpu = [s.server_cpu_percent for s in steady if s.server_cpu_percent is not None]
    generator_cpu = [s.generator_cpu_percent for s in steady if s.generator_cpu_percent is not None]
    saturated = sum(1 for v in generator_cpu if v >= SATURATION * generator_cores * 100)
    limits, notes = generator_limits(
        generator_cpu, saturated, len(steady), generator_cores, totals, completed
    )
    other = _mean([s.other_cpu_percent for s in steady if s.other_cpu_percent is not None])
    busy = other is not None and other > BUSY_MACHINE_PERCENT
    cpu_bound = bool(limits) and limits[0].startswith(_CPU_LIMIT_START)
    advice = None
    if limits:
        advice = ADVICE_BUSY if busy and not cpu_bound else ADVICE
    if busy:
        notes.append(
            f"other processes on this machine used {other:.0f} % of a core on average during the steady "
            "window: they competed with the server and the generator, so these figures may be disturbed"
        )
    rss = [s.server_rss_bytes for s in series if s.server_rss_bytes is not None]
    exchange_rate = [s.exchange_orders_per_sec for s in steady if s.exchange_orders_per_sec is not None]
    trades = [s.exchange_trades_per_sec for s in steady if s.exchange_trades_per_sec is not None]
    resting = [s.exchange_resting_orders for s in series if s.exchange_resting_orders is not None]
    if completed:
        error_rate = (sent - totals.ok) / sent if sent else None
    else:  # requests in flight when the run was cut short are neither failures nor successes
        answered = totals.ok + totals.errors
        error_rate = totals.errors / answered if answered else None
    return Summary(
        steady_start_s=start,
        steady_end_s=end,
        offered_rate=offered,
        achieved_rate=achieved,
        achieved_ratio=achieved / offered if offered > 0 else None,
        counts=totals,
        error_rate=error_rate,
        shed_rate=totals.shed / sent if sent else None,
        late_share=totals.late / sent if sent else None,
        corrected=corrected,
        raw=raw,
        server_cpu_percent_mean=_mean(server_cpu),
        server_cpu_percent_max=max(server_cpu, default=None),
        server_cores_used_mean=_cores(_mean(server_cpu)),
        server_cores_used_max=_cores(max(server_cpu, default=None)),
        server_rss_max_bytes=max(rss, default=None),
        generator_cpu_percent_mean=_mean(generator_cpu),
        generator_cpu_percent_max=max(generator_cpu, default=None),
        generator_cores=generator_cores,
        generator_saturated_seconds=saturated,
        other_cpu_percent_mean=other,
        exchange_orders_per_sec_mean=_mean(exchange_rate),
        exchange_trades_per_sec_mean=_mean(trades),
        stalls=tuple(stalls),
        all_outcomes=all_outcomes,
        exchange_resting_orders_max=max(resting, default=None),
        slo=slo_verdict(scenario, *_slo_latency(corrected, all_outcomes), error_rate),
        generator_bound=bool(limits),
        limits=tuple(limits),
        advice=advice,
        notes=tuple(notes),
    )


def _slo_latency(corrected: Latency, all_outcomes: Latency | None) -> tuple[Latency, str]:
    """The latency the SLO holds the run to, and its name: all outcomes where measured."""
    if all_outcomes is not None and all_outcomes.count:
        return all_outcomes, "p99 of all outcomes"
    return corrected, "corrected p99"


def slo_verdict(scenario: Scenario, latency: Latency, what: str, error_rate: float | None) -> SloVerdict:
    """PASS when the p99 of ``latency`` (named ``what``: all outcomes, or corrected successes) and the
    error rate are both within the scenario's SLO."""
    slo = scenario.slo
    reasons = []
    p99 = latency.p99_ms if latency.count else None
    if p99 is None:
        reasons.append("no latency was measured (no successful requests)")
    elif p99 > slo.p99_ms:
        reasons.append(f"{what} {_ms(p99)} ms is above the SLO's {slo.p99_ms:g} ms")
    if error_rate is None:
        reasons.append("no requests were sent")
    elif error_rate > slo.error_rate:
        reasons.append(f"error rate {error_rate:.2%} is above the SLO's {slo.error_rate:.2%}")
    return SloVerdict(
        p99_limit_ms=slo.p99_ms,
        error_rate_limit=slo.error_rate,
        p99_ms=p99,
        error_rate=error_rate,
        passed=not reasons,
        reasons=tuple(reasons),
    )


def generator_limits(
    generator_cpu: Sequence[float],
    saturated_seconds: int,
    steady_seconds: int,
    generator_cores: float,
    totals: Counts,
    completed: bool = True,
) -> tuple[list[str], list[str]]:
    """``(limits, notes)``: plain-English reasons the generator limited the run (empty if it did not),
    from its own evidence only, and observations that look like a generator limit but are the server's."""
    limits: list[str] = []
    notes: list[str] = []
    needed = max(min(2, steady_seconds), math.ceil(SUSTAINED_SHARE * steady_seconds))
    if steady_seconds > 0 and saturated_seconds >= needed:
        limits.append(
            f"{_CPU_LIMIT_START} at or above {SATURATION:.0%} of the {generator_cores:g} core(s) "
            f"it could use for {saturated_seconds} of {steady_seconds} steady seconds "
            f"(max {max(generator_cpu):.0f} % of one core)"
        )
    if totals.scheduled and totals.generator_late / totals.scheduled > LATE_LIMIT:
        share = totals.generator_late / totals.scheduled
        limits.append(
            f"{share:.1%} of the scheduled requests went out late, or never, through the generator's own "
            "delay: the load generator fell behind its schedule"
        )
    held = []
    if totals.sent and totals.late / totals.sent > LATE_LIMIT:
        held.append(f"{totals.late / totals.sent:.1%} of the requests were sent late")
    if completed and totals.scheduled and (totals.scheduled - totals.sent) / totals.scheduled > UNSENT_LIMIT:
        unsent = totals.scheduled - totals.sent
        held.append(f"{unsent:,} of {totals.scheduled:,} scheduled requests were never sent")
    if held and len(limits) == 0:
        notes.append(
            f"{' and '.join(held)} because the server's answers held their users back (one request in "
            "flight per user): this is server latency, counted in the corrected figures, not a generator "
            "limit"
        )
    return limits, notes


_CPU_LIMIT_START = "the load generator's CPU was"


def _ms(value: float) -> str:
    """A latency for a sentence: ``4.25``, ``60``, ``5,980`` (no exponents)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _cores(percent: float | None) -> float | None:
    return None if percent is None else percent / 100
