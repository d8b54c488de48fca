"""What limited a tier: the one classifier, and every threshold it uses.

Each tier of a run gets exactly one ``TierLimit``, decided from evidence in this order:

1. ``unreachable``: requests were sent and none was answered successfully (hung, refused, only errors).
   A failure of the server under test, never "inconclusive".
2. ``disturbed``: other processes on the machine used ``DISTURBED_OTHER_CPU_PERCENT`` or more of a core on
   average during the steady window. The tier's CPU and latency are not the server's alone: it is left out of
   the fits, and a gate against a stored baseline cannot judge it (an A/B pair can: both its runs share the
   machine's moment). The generator's own evidence is kept as asides.
3. ``generator``: the load generator's own evidence - its CPU at ``GENERATOR_SATURATION`` of the cores it
   could use for a sustained part of the steady window, or more than ``GENERATOR_LATE_LIMIT`` of the
   scheduled requests late through its own delay - while the server had spare CPU or answered promptly
   (raw P99 within the SLO). When the server was saturated and slow at the same time, the server's limit is
   the one that counts and the generator's evidence is kept as an aside.
4. ``server``: the server fell behind the offered rate by more than ``KEPT_UP_TOLERANCE``, broke its SLO
   (P99 or errors), or stalled (answered nothing while asked) for ``STALL_LIMIT_S`` or longer.
5. ``none``: the server kept up within its SLO; nothing limited the tier.

Past its capacity a server either refuses what it cannot serve in time or does not. A run that refused
``REFUSING_SHARE`` or more of its requests, fell behind, or has a recovery phase also gets an ``Overload``
(``overload_verdict``), its degraded-mode figures with one of four verdicts, in this order:

1. ``collapsed``: goodput (successful answers/s) below ``COLLAPSED_GOODPUT_SHARE`` of the best it delivered
   in the run (the highest ``PEAK_WINDOW_S``-second mean of the load phase) or of the offered rate, if lower.
2. ``degraded``: it refused ``REFUSING_SHARE`` or more and the admitted requests' P99 stayed within the SLO.
3. ``kept_up``: it refused less than that, kept up and stayed within the SLO: no overload at all.
4. ``overwhelmed``: anything else (it queued what it admitted past the SLO, or fell behind without refusing).

**Time to recover** (``time_to_recover``): from the end of the load phase to the first second, by intended
send time, that starts ``RECOVERED_FOR_S`` consecutive recovered seconds; a second is recovered when its
successful requests' corrected P99 is within the SLO and at most ``RECOVERED_REFUSED_SHARE`` of the requests
sent in it were refused. Whole seconds; none if it does not happen within the recovery phase.

Decisions are structured (``Reason`` codes with the numbers); ``capacity.results.verdict_text`` renders them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from capacity.results.run_file import (
    LimitKind,
    Overload,
    OverloadKind,
    Reason,
    Recovery,
    Second,
    Stall,
    TierLimit,
)

#: Generator CPU, as a share of the cores it could use, that counts as saturated in a second.
GENERATOR_SATURATION = 0.90
#: Share of the steady seconds at saturation that makes it sustained (and at least 2 when there are 2).
SUSTAINED_SHARE = 0.25
#: Share of the scheduled requests late (or never sent) through the generator's own delay that means it fell
#: behind its schedule.
GENERATOR_LATE_LIMIT = 0.01
#: Share of the sent requests held late by the server's answers (one request in flight per user) worth a note.
HELD_LATE_LIMIT = 0.01
#: Mean CPU of other processes (percent of one core) over the steady window that disturbs a measurement.
DISTURBED_OTHER_CPU_PERCENT = 25.0
#: The server kept up when it delivered at least ``1 - KEPT_UP_TOLERANCE`` of the offered rate.
KEPT_UP_TOLERANCE = 0.05
#: Errors or shed requests above this share of those sent mean the server did not keep up (the seed's
#: scenarios' error SLO): where a sweep stops, which tier saturated, what the matrix flags.
SATURATION_ERROR_SHARE = 0.01
#: Server CPU, as a share of its cores, at which it has no spare capacity.
SERVER_SATURATION = 0.90
#: A stall (no answer while requests were outstanding) this long or longer is a server limit; shorter ones
#: are counted in the latency but do not decide the tier.
STALL_LIMIT_S = 0.5
#: Refusals (503, 429) at or above this share of the requests sent: the run was refusing load, past its
#: capacity, and gets its degraded-mode figures (and "degraded" when the admitted stayed within the SLO).
REFUSING_SHARE = 0.01
#: Goodput below this share of the best the server delivered in the run (or of the offered rate, if lower)
#: is a collapse: overload cost it most of its useful work.
COLLAPSED_GOODPUT_SHARE = 0.5
#: Seconds averaged for the best goodput of a run (one second alone is noisy; a backlog drains in bursts).
PEAK_WINDOW_S = 3
#: Recovered means at most this share of a second's requests refused: about none.
RECOVERED_REFUSED_SHARE = 0.001
#: Consecutive recovered seconds that make a recovery (one good second amid bad ones is not one).
RECOVERED_FOR_S = 3
#: Limits whose tier's figures are not the server's: left out of the fits, greyed in the report, not judged
#: by the gate.
NOT_THE_SERVERS = frozenset({"generator", "disturbed"})


@dataclass(frozen=True)
class GeneratorEvidence:
    """The load generator's own account of a run's steady window."""

    saturated_seconds: int
    steady_seconds: int
    cores: float
    scheduled: int
    late_own: int  # late or never sent through its own delay


@dataclass(frozen=True)
class TierEvidence:
    """Everything the classifier looks at, from one run's summary (rates per second, shares 0-1)."""

    offered_rate: float
    achieved_rate: float
    sent: int
    ok: int
    scheduled: int
    late: int  # sent late for any reason
    slo_p99_ms: float | None  # the P99 the SLO holds the tier to (all outcomes where measured)
    raw_p99_ms: float | None
    p99_limit_ms: float
    error_rate: float | None
    error_rate_limit: float
    server_cpu_percent: float | None  # mean over the steady window, percent of one core
    server_cores: float | None
    other_cpu_percent: float | None
    generator: GeneratorEvidence
    stalls: Sequence[Stall] = ()
    completed: bool = True  # the run reached its end (an interrupted one owes nothing unsent)


def kept_up(offered_rate: float, achieved_rate: float, tolerance: float = KEPT_UP_TOLERANCE) -> bool:
    """True when the server delivered at least ``1 - tolerance`` of the offered rate (an idle tier always
    does; a closed-loop tier, offered ``inf``, never does)."""
    return not (offered_rate > 0 and achieved_rate < offered_rate * (1 - tolerance))


def generator_reasons(g: GeneratorEvidence) -> tuple[Reason, ...]:
    """The generator's own evidence that it limited the run (empty when it did not)."""
    reasons = []
    needed = max(min(2, g.steady_seconds), math.ceil(SUSTAINED_SHARE * g.steady_seconds))
    if g.steady_seconds > 0 and g.saturated_seconds >= needed:
        reasons.append(
            Reason("generator_cpu", g.saturated_seconds, GENERATOR_SATURATION, of=g.steady_seconds)
        )
    if g.scheduled and g.late_own / g.scheduled > GENERATOR_LATE_LIMIT:
        reasons.append(Reason("generator_late", g.late_own / g.scheduled, GENERATOR_LATE_LIMIT))
    return tuple(reasons)


def server_reasons(e: TierEvidence) -> tuple[Reason, ...]:
    """The server's evidence of a limit: it fell behind, broke its SLO, or stalled."""
    reasons = []
    if not kept_up(e.offered_rate, e.achieved_rate) and math.isfinite(e.offered_rate):
        reasons.append(Reason("fell_behind", e.achieved_rate / e.offered_rate, 1 - KEPT_UP_TOLERANCE))
    if e.slo_p99_ms is not None and e.slo_p99_ms > e.p99_limit_ms:
        reasons.append(Reason("slo_p99", e.slo_p99_ms, e.p99_limit_ms))
    if e.error_rate is not None and e.error_rate > e.error_rate_limit:
        reasons.append(Reason("slo_errors", e.error_rate, e.error_rate_limit))
    for stall in sorted(e.stalls, key=lambda s: -s.duration_s):
        if stall.duration_s >= STALL_LIMIT_S:
            reasons.append(Reason("stall", stall.duration_s, STALL_LIMIT_S, at=stall.start_s))
    return tuple(reasons)


def held_back(e: TierEvidence) -> tuple[Reason, ...]:
    """Lateness the server's answers caused (one request in flight per user): server latency, never the
    generator's."""
    asides = []
    if e.sent and e.late / e.sent > HELD_LATE_LIMIT:
        asides.append(Reason("held_late", e.late / e.sent, HELD_LATE_LIMIT))
    unsent = e.scheduled - e.sent
    if e.completed and e.scheduled and unsent / e.scheduled > GENERATOR_LATE_LIMIT:
        asides.append(Reason("never_sent", unsent, of=e.scheduled))
    return tuple(asides)


def classify(e: TierEvidence) -> TierLimit:
    """The tier's one limit (see the module docstring for the order of the rules)."""
    if e.sent > 0 and e.ok == 0:
        return TierLimit("unreachable", (Reason("no_answer", e.sent),))
    generator = generator_reasons(e.generator)
    if e.other_cpu_percent is not None and e.other_cpu_percent >= DISTURBED_OTHER_CPU_PERCENT:
        # The generator's own evidence rides along: an A/B pair can still use a disturbed run, not a
        # generator-bound one (capacity.gate.metrics.unusable_reasons)
        return TierLimit(
            "disturbed", (Reason("other_cpu", e.other_cpu_percent, DISTURBED_OTHER_CPU_PERCENT),), generator
        )
    server = server_reasons(e)
    if generator and not _server_saturated_and_slow(e):
        return TierLimit("generator", generator)
    asides = generator + (held_back(e) if not generator else ())
    if server:
        return TierLimit("server", server, asides)
    return TierLimit("none", (), asides)


def generator_evidence(limit: TierLimit) -> tuple[Reason, ...]:
    """The generator's own evidence among ``limit``'s asides (a disturbed or server-limited tier's)."""
    return tuple(r for r in limit.asides if r.code.startswith("generator"))


def _server_saturated_and_slow(e: TierEvidence) -> bool:
    """No spare CPU on the server and slow answers even by the generator's clock: the server's limit."""
    busy = (
        e.server_cpu_percent is not None
        and e.server_cores is not None
        and e.server_cpu_percent >= SERVER_SATURATION * e.server_cores * 100
    )
    slow = e.raw_p99_ms is not None and e.raw_p99_ms > e.p99_limit_ms
    return busy and slow


# ---------------------------------------------------------------------------------------------- overload


@dataclass(frozen=True)
class OverloadEvidence:
    """The load phase's figures ``overload_verdict`` judges (rates per second, shares 0-1, latency ms)."""

    offered_rate: float
    goodput: float
    goodput_per_second: Sequence[float]  # successful answers/s of each second of the load phase
    sent: int
    refused: int
    admitted_p99_ms: float | None
    refused_p99_ms: float | None
    p99_limit_ms: float
    backlog_max: int | None = None
    lag_max_ms: float | None = None
    recovery: Recovery | None = None
    limit: LimitKind = "none"  # the tier's one limit (``classify``)


#: Limits under which a run says nothing about overload: the generator could not offer the load, or the
#: server answered nothing at all (its own verdict says so).
NO_OVERLOAD_FIGURES = frozenset({"generator", "unreachable"})


def peak_goodput(per_second: Sequence[float], window: int = PEAK_WINDOW_S) -> float | None:
    """The highest mean over ``window`` consecutive seconds (all of them when fewer); None when empty."""
    if not per_second:
        return None
    width = min(window, len(per_second))
    return max(sum(per_second[i : i + width]) / width for i in range(len(per_second) - width + 1))


def overload_kind(e: OverloadEvidence, peak: float | None) -> OverloadKind:
    """The one verdict on a run past its capacity (see the module docstring for the order)."""
    reference = min(e.offered_rate, peak) if peak is not None else e.offered_rate
    if reference > 0 and e.goodput < COLLAPSED_GOODPUT_SHARE * reference:
        return "collapsed"
    within = e.admitted_p99_ms is not None and e.admitted_p99_ms <= e.p99_limit_ms
    refusing = e.sent > 0 and e.refused / e.sent >= REFUSING_SHARE
    if refusing and within:
        return "degraded"
    if not refusing and within and kept_up(e.offered_rate, e.goodput):
        return "kept_up"
    return "overwhelmed"


def overload_verdict(e: OverloadEvidence) -> Overload | None:
    """The run's degraded-mode figures and verdict; None for a run that neither refused ``REFUSING_SHARE``,
    fell behind, nor has a recovery phase (nothing to say about overload), or whose limit is in
    ``NO_OVERLOAD_FIGURES``. A disturbed run keeps its figures; the report shows it left out, as elsewhere."""
    share = e.refused / e.sent if e.sent else 0.0
    if e.limit in NO_OVERLOAD_FIGURES:
        return None
    if share < REFUSING_SHARE and kept_up(e.offered_rate, e.goodput) and e.recovery is None:
        return None
    peak = peak_goodput(e.goodput_per_second)
    return Overload(
        kind=overload_kind(e, peak),
        offered_rate=e.offered_rate,
        goodput=e.goodput,
        peak_goodput=peak,
        refused_share=share,
        admitted_p99_ms=e.admitted_p99_ms,
        refused_p99_ms=e.refused_p99_ms,
        p99_limit_ms=e.p99_limit_ms,
        backlog_max=e.backlog_max,
        lag_max_ms=e.lag_max_ms,
        recovery=e.recovery,
    )


def recovered_second(second: Second, p99_limit_ms: float) -> bool:
    """A second (by intended send time) whose successes' corrected P99 is within ``p99_limit_ms`` and of
    whose sent requests at most ``RECOVERED_REFUSED_SHARE`` were refused."""
    if second.sent_rate <= 0 or second.corrected_p99_ms is None:
        return False
    return (
        second.corrected_p99_ms <= p99_limit_ms
        and second.shed_per_s / second.sent_rate <= RECOVERED_REFUSED_SHARE
    )


def time_to_recover(
    series: Sequence[Second], start_s: float, end_s: float, p99_limit_ms: float
) -> float | None:
    """Seconds from ``start_s`` (the end of the load phase) to the first second that begins
    ``RECOVERED_FOR_S`` consecutive recovered seconds (``recovered_second``) before ``end_s`` (the end of
    the recovery phase); None when there is none. A second the load's end falls in is the load's."""
    by_t = {s.t: s for s in series}
    first = math.ceil(start_s - 1e-9)
    last = math.ceil(end_s - 1e-9)  # seconds first .. last - 1 belong to the recovery phase
    streak = 0
    for t in range(first, last):
        second = by_t.get(t)
        streak = streak + 1 if second is not None and recovered_second(second, p99_limit_ms) else 0
        if streak == min(RECOVERED_FOR_S, last - first):
            return max(t - streak + 1 - start_s, 0.0)
    return None
