"""What limited a tier: the one classifier, and every threshold it uses.

Each tier of a run gets exactly one ``TierLimit``, decided from evidence in this order:

1. ``unreachable``: requests were sent and none was answered successfully (hung, refused, only errors).
   A failure of the server under test, never "inconclusive".
2. ``disturbed``: other processes on the machine used ``DISTURBED_OTHER_CPU_PERCENT`` or more of a core on
   average during the steady window. The tier's CPU and latency are not the server's alone: it is left out of
   the fits, and the gate cannot judge it.
3. ``generator``: the load generator's own evidence - its CPU at ``GENERATOR_SATURATION`` of the cores it
   could use for a sustained part of the steady window, or more than ``GENERATOR_LATE_LIMIT`` of the
   scheduled requests late through its own delay - while the server had spare CPU or answered promptly
   (raw P99 within the SLO). When the server was saturated and slow at the same time, the server's limit is
   the one that counts and the generator's evidence is kept as an aside.
4. ``server``: the server fell behind the offered rate by more than ``KEPT_UP_TOLERANCE``, broke its SLO
   (P99 or errors), or stalled (answered nothing while asked) for ``STALL_LIMIT_S`` or longer.
5. ``none``: the server kept up within its SLO; nothing limited the tier.

Decisions are structured (``Reason`` codes with the numbers); ``capacity.results.verdict_text`` renders them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from capacity.results.run_file import Reason, Stall, TierLimit

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
    if e.other_cpu_percent is not None and e.other_cpu_percent >= DISTURBED_OTHER_CPU_PERCENT:
        return TierLimit(
            "disturbed", (Reason("other_cpu", e.other_cpu_percent, DISTURBED_OTHER_CPU_PERCENT),)
        )
    generator = generator_reasons(e.generator)
    server = server_reasons(e)
    if generator and not _server_saturated_and_slow(e):
        return TierLimit("generator", generator)
    asides = generator + (held_back(e) if not generator else ())
    if server:
        return TierLimit("server", server, asides)
    return TierLimit("none", (), asides)


def _server_saturated_and_slow(e: TierEvidence) -> bool:
    """No spare CPU on the server and slow answers even by the generator's clock: the server's limit."""
    busy = (
        e.server_cpu_percent is not None
        and e.server_cores is not None
        and e.server_cpu_percent >= SERVER_SATURATION * e.server_cores * 100
    )
    slow = e.raw_p99_ms is not None and e.raw_p99_ms > e.p99_limit_ms
    return busy and slow
