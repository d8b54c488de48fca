"""The summary of a run: steady-window rates, whole-run latency, SLO verdict, and whether the generator,
not the server, was the limit.

Rules (documented in ``docs/run-format.md``):

- **Steady window**: seconds ``t`` with ``max(1, ceil(ramp)) <= t < last - 1`` — the ramp and the first
  and last second are left out, as are any seconds the generator reports beyond the schedule, and the
  recovery phase: ``last`` is the end of the load phase. A run too short to have one uses all its seconds
  (the window in the summary says so).
- **Load phase**: with a recovery phase, counts, error rate, latency and the SLO verdict are the load
  phase's (the generator totals each phase apart); the recovery phase is judged by its time to recover.
- **Overload**: a run past its capacity (refusing, fallen behind) or with a recovery phase gets its
  degraded-mode figures and verdict (``capacity.results.verdicts.overload_verdict``), unless the
  generator limited it or the server answered nothing.
- **Latency** comes from the generator's merged whole-run histograms, never from averaged percentiles.
- **Error rate** = (sent - ok) / sent: failed requests *and* requests never answered by the end of the
  run (the generator waits a second for in-flight responses) count against the server. In an
  interrupted run, requests in flight at the interruption are left out: errors / (ok + errors).
- **SLO**: p99 <= ``slo.p99_ms`` and error rate <= ``slo.error_rate``. The p99 is that of all outcomes
  where the generator measured it (successes from their intended send time, and errors, timeouts and
  requests unanswered or unsent at the end with what they waited), else the corrected p99 of successes:
  a server that fails requests fast, or never answers them, cannot pass on the latency of the rest.
- **Limit**: each run gets exactly one, decided by ``capacity.results.verdicts`` (the rules and thresholds are
  there): unreachable, disturbed, generator, server, or none. ``generator_bound``, ``limits`` and
  ``advice`` are that decision as earlier readers knew it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from capacity.results.run_file import (
    Counts,
    Latency,
    Overload,
    Recovery,
    Second,
    SloVerdict,
    Stall,
    Summary,
    TierLimit,
)
from capacity.results.verdict_text import advice, aside_lines, reason_text
from capacity.results.verdicts import (
    GENERATOR_SATURATION,
    GeneratorEvidence,
    OverloadEvidence,
    TierEvidence,
    classify,
    overload_verdict,
    time_to_recover,
)
from capacity.scenario import Scenario
from capacity.text import sentence_ms

EDGE_S = 1  # seconds dropped at both ends of the steady window


def steady_window(scenario: Scenario, seconds: Sequence[int]) -> tuple[int, int]:
    """``(start, end)`` of the steady window in seconds (``start <= t < end``) for the run's seconds."""
    if not seconds:
        return 0, 0
    ramp = scenario.load.ramp_up.duration_s if scenario.load.ramp_up else 0.0
    last = min(max(seconds) + 1, math.ceil(scenario.load_end_s - 1e-9))
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
    server_cores: float | None = None,
    failed: bool = False,
    refused: Latency | None = None,
    lag_max_ms: float | None = None,
    recovery_phase: PhaseFigures | None = None,
) -> Summary:
    """The ``Summary`` of a run. ``generator_cores``: how many cores the generator could use; ``stalls``:
    times the server answered nothing while asked, as the generator saw them; ``server_cores``: the
    cores the server could use (None: unknown); ``failed``: the run failed (its problem says why), so no
    limit is judged from what little it measured. ``totals``, the latencies and ``refused`` (the
    refusals' latency) are the load phase's; ``recovery_phase``: the recovery phase's counts and admitted
    latency, when the scenario has one; ``lag_max_ms``: the generator's longest delay behind schedule."""
    start, end = steady_window(scenario, [s.t for s in series])
    steady = [s for s in series if start <= s.t < end]
    offered = _mean([s.offered_rate for s in steady]) or 0.0
    achieved = _mean([s.achieved_rate for s in steady]) or 0.0
    sent = totals.sent
    server_cpu = [s.server_cpu_percent for s in steady if s.server_cpu_percent is not None]
    generator_cpu = [s.generator_cpu_percent for s in steady if s.generator_cpu_percent is not None]
    saturated = sum(1 for v in generator_cpu if v >= GENERATOR_SATURATION * generator_cores * 100)
    other = _mean([s.other_cpu_percent for s in steady if s.other_cpu_percent is not None])
    rss = [s.server_rss_bytes for s in series if s.server_rss_bytes is not None]
    exchange_rate = [s.exchange_orders_per_sec for s in steady if s.exchange_orders_per_sec is not None]
    trades = [s.exchange_trades_per_sec for s in steady if s.exchange_trades_per_sec is not None]
    resting = [s.exchange_resting_orders for s in series if s.exchange_resting_orders is not None]
    if completed:
        error_rate = (sent - totals.ok) / sent if sent else None
    else:  # requests in flight when the run was cut short are neither failures nor successes
        answered = totals.ok + totals.errors
        error_rate = totals.errors / answered if answered else None
    slo_latency, slo_name = _slo_latency(corrected, all_outcomes)
    limit = (
        None
        if failed
        else classify(
            TierEvidence(
                offered_rate=offered,
                achieved_rate=achieved,
                sent=sent,
                ok=totals.ok,
                scheduled=totals.scheduled,
                late=totals.late,
                slo_p99_ms=slo_latency.p99_ms if slo_latency.count else None,
                raw_p99_ms=raw.p99_ms if raw.count else None,
                p99_limit_ms=scenario.slo.p99_ms,
                error_rate=error_rate,
                error_rate_limit=scenario.slo.error_rate,
                server_cpu_percent=_mean(server_cpu),
                server_cores=server_cores,
                other_cpu_percent=other,
                generator=GeneratorEvidence(
                    saturated_seconds=saturated,
                    steady_seconds=len(steady),
                    cores=generator_cores,
                    scheduled=totals.scheduled,
                    late_own=totals.generator_late,
                ),
                stalls=stalls,
                completed=completed,
            )
        )
    )
    generator_bound = limit is not None and limit.kind == "generator"
    overload = _overload(
        scenario, series, limit, offered, achieved, totals, corrected, refused, lag_max_ms, recovery_phase
    )
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
        slo=slo_verdict(scenario, slo_latency, slo_name, error_rate),
        generator_bound=generator_bound,
        limits=tuple(reason_text(r) for r in limit.reasons) if limit and generator_bound else (),
        advice=advice(limit) if limit else None,
        notes=tuple(aside_lines(limit)) if limit else (),
        limit=limit,
        refused=refused,
        overload=overload,
    )


@dataclass(frozen=True)
class PhaseFigures:
    """A phase's counts and the corrected latency of its successes."""

    counts: Counts
    corrected: Latency


def _overload(
    scenario: Scenario,
    series: Sequence[Second],
    limit: TierLimit | None,
    offered: float,
    achieved: float,
    totals: Counts,
    corrected: Latency,
    refused: Latency | None,
    lag_max_ms: float | None,
    recovery_phase: PhaseFigures | None,
) -> Overload | None:
    """The run's degraded-mode figures (None when it was not overloaded, or they would say nothing: see
    ``overload_verdict``)."""
    if limit is None:  # a failed run: its problem says what happened
        return None
    load_end = scenario.load_end_s
    recovery = None
    if scenario.recovery is not None:
        phase = recovery_phase.counts if recovery_phase else None
        recovery = Recovery(
            start_s=load_end,
            duration_s=scenario.recovery.duration_s,
            offered_rate=scenario.recovery.orders_per_second,
            time_to_recover_s=time_to_recover(
                series, load_end, scenario.total_duration_s, scenario.slo.p99_ms
            ),
            refused_share=phase.shed / phase.sent if phase and phase.sent else None,
            admitted_p99_ms=recovery_phase.corrected.p99_ms if recovery_phase else None,
        )
    backlog = [s.backlog for s in series if s.backlog is not None]
    return overload_verdict(
        OverloadEvidence(
            offered_rate=offered,
            goodput=achieved,
            goodput_per_second=[s.achieved_rate for s in series if s.t < load_end],
            sent=totals.sent,
            refused=totals.shed,
            admitted_p99_ms=corrected.p99_ms if corrected.count else None,
            refused_p99_ms=refused.p99_ms if refused is not None and refused.count else None,
            p99_limit_ms=scenario.slo.p99_ms,
            backlog_max=max(backlog, default=None),
            lag_max_ms=lag_max_ms,
            recovery=recovery,
            limit=limit.kind,
        )
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
        reasons.append(f"{what} {sentence_ms(p99)} ms is above the SLO's {slo.p99_ms:g} ms")
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


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _cores(percent: float | None) -> float | None:
    return None if percent is None else percent / 100
