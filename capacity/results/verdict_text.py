"""Sentences for ``capacity.results.verdicts``' decisions: the one place a tier's limit becomes words.

Every surface (terminal summary, sweep lines, HTML and Markdown reports, the gate) renders a ``TierLimit``
here, so the same tier reads the same everywhere and never says two things at once.
"""

from __future__ import annotations

from capacity.results.run_file import Overload, Reason, Recovery, Summary, TierLimit
from capacity.results.verdicts import (
    COLLAPSED_GOODPUT_SHARE,
    PEAK_WINDOW_S,
    RECOVERED_FOR_S,
    RECOVERED_REFUSED_SHARE,
    REFUSING_SHARE,
    generator_evidence,
)
from capacity.text import sentence_ms

#: The tier's limit in a word or two, for tables.
LABELS = {
    "none": "none",
    "server": "server",
    "generator": "generator",
    "unreachable": "server unreachable",
    "disturbed": "disturbed",
}

_HEADLINES = {
    "none": "nothing limited this tier: the server kept up within its SLO",
    "server": "the server limited this tier",
    "generator": (
        "the load generator, not the server, limited this tier: its figures say nothing about the server"
    ),
    "unreachable": "the server did not answer: a failure of the server under test",
    "disturbed": (
        "other processes disturbed this tier: its figures are not the server's alone, so it is left out"
    ),
}

_ADVICE = {
    "generator": "add generator processes (--processes N) or a second machine",
    "disturbed": "measure it again on a quiet machine",
    "unreachable": "check the exchange's log and that --target is the exchange's API",
}


def reason_text(r: Reason) -> str:
    """One piece of evidence in words, with its numbers."""
    match r.code:
        case "no_answer":
            return f"none of the {r.measured:,.0f} requests sent was answered successfully"
        case "other_cpu":
            return f"other processes used {r.measured:.0f} % of a core on average (limit {r.limit:.0f} %)"
        case "generator_cpu":
            return (
                f"the generator's CPU was at or above {r.limit:.0%} of the cores it could use for "
                f"{r.measured:.0f} of {r.of:.0f} steady seconds"
            )
        case "generator_late":
            return (
                f"{r.measured:.1%} of the scheduled requests went out late, or never, through the "
                "generator's own delay"
            )
        case "fell_behind":
            return (
                f"the server delivered {r.measured:.0%} of the offered rate (kept up means ≥ {r.limit:.0%})"
            )
        case "slo_p99":
            return f"P99 {sentence_ms(r.measured)} ms is above the SLO's {r.limit:g} ms"
        case "slo_errors":
            return f"error rate {r.measured:.2%} is above the SLO's {r.limit:.2%}"
        case "stall":
            return (
                f"the server answered nothing for {duration_text(r.measured)} from t = {r.at or 0:.1f} s "
                "while requests were outstanding"
            )
        case "held_late":
            return (
                f"{r.measured:.1%} of the requests went out late because the server's answers held their "
                "users back (server latency, in the corrected figures)"
            )
        case "never_sent":
            return (
                f"{r.measured:,.0f} of {r.of:,.0f} scheduled requests were never sent: their users still "
                "waited for the server at the end"
            )
    raise ValueError(f"unknown reason code {r.code!r}")  # a bug: ReasonCode and this match disagree


def advice(limit: TierLimit) -> str | None:
    """What to do about the tier's limit, when something can be done."""
    return _ADVICE.get(limit.kind)


def limit_sentence(limit: TierLimit) -> str:
    """The tier's one verdict: headline, the evidence that decided it, and what to do."""
    text = _HEADLINES[limit.kind]
    if limit.reasons:
        text += ": " + "; ".join(reason_text(r) for r in limit.reasons)
    if limit.kind in _ADVICE:
        text += f" - {_ADVICE[limit.kind]}"
    return text


def aside_lines(limit: TierLimit) -> list[str]:
    """Evidence that did not decide the tier, as notes."""
    generator = generator_evidence(limit)
    if limit.kind == "server" and generator:
        lead = "the generator was near its limit too, but the server was saturated and slow: "
        return [lead + "; ".join(reason_text(r) for r in generator)]
    return [reason_text(r) for r in limit.asides]


def limit_of(summary: Summary) -> TierLimit:
    """The summary's limit; for files written before limits were recorded, what their flags imply."""
    if summary.limit is not None:
        return summary.limit
    if summary.counts.sent > 0 and summary.counts.ok == 0:
        return TierLimit("unreachable", (Reason("no_answer", summary.counts.sent),))
    if summary.generator_bound:
        return TierLimit("generator")
    return TierLimit("none" if summary.slo.passed else "server")


def duration_text(value: float) -> str:
    """``300 ms``, ``2.0 s``."""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


# ---------------------------------------------------------------------------------------------- overload

#: An overload verdict in a word or two, for tables.
OVERLOAD_LABELS = {
    "kept_up": "kept up",
    "degraded": "degraded",
    "overwhelmed": "overwhelmed",
    "collapsed": "collapsed",
}


def share_text(fraction: float) -> str:
    """A share as ``30 %``, ``2.5 %``, ``0.04 %``: two significant figures below 10 %."""
    percent = 100 * fraction
    return f"{percent:.0f} %" if percent >= 10 or percent == 0 else f"{percent:.2g} %"


def rate_text(value: float) -> str:
    """A rate in a sentence: ``5,200/s``, ``12.5/s``."""
    return f"{value:,.0f}/s" if value >= 100 else f"{value:.3g}/s"


def _ms(value: float | None) -> str:
    return "unmeasured" if value is None else f"{sentence_ms(value)} ms"


def overload_sentence(o: Overload) -> str:
    """The run past its capacity in one line, the verdict first with the figures that decided it:
    ``degraded: refuses 30 %, admitted P99 120 ms ...`` or ``collapsed: goodput fell to 800/s ...``."""
    slo = f"the SLO's {o.p99_limit_ms:g} ms"
    offered = f"{rate_text(o.goodput)} of {rate_text(o.offered_rate)} offered"
    match o.kind:
        case "collapsed":
            best = o.peak_goodput if o.peak_goodput is not None else o.offered_rate
            text = (
                f"collapsed: goodput fell to {rate_text(o.goodput)}, {share_text(o.goodput / best)} of "
                f"the best {rate_text(best)} it delivered (offered {rate_text(o.offered_rate)}); refuses "
                f"{share_text(o.refused_share)}, admitted P99 {_ms(o.admitted_p99_ms)}"
            )
        case "degraded":
            text = (
                f"degraded: refuses {share_text(o.refused_share)}, admitted P99 {_ms(o.admitted_p99_ms)} "
                f"within {slo}; goodput {offered}"
            )
        case "overwhelmed":
            text = (
                f"overwhelmed: admitted P99 {_ms(o.admitted_p99_ms)} against {slo}, refuses "
                f"{share_text(o.refused_share)}; goodput {offered}"
            )
        case "kept_up":
            text = (
                f"kept up: goodput {offered}, admitted P99 {_ms(o.admitted_p99_ms)} within {slo}, "
                f"refuses {share_text(o.refused_share)}"
            )
    if o.recovery is not None:
        text += f"; {recovery_sentence(o.recovery)}"
    return text


def recovery_sentence(r: Recovery) -> str:
    """``recovered 4 s after the load dropped to 500/s`` or ``not recovered within the 30 s at 500/s``
    (the time is in whole seconds: ``capacity.results.verdicts.time_to_recover``)."""
    if r.time_to_recover_s is None:
        return (
            f"not recovered within the {r.duration_s:g} s at {rate_text(r.offered_rate)} "
            "after the load dropped"
        )
    rate = rate_text(r.offered_rate)
    if r.time_to_recover_s == 0:
        return f"recovered within the first second after the load dropped to {rate}"
    return f"recovered {r.time_to_recover_s:.0f} s after the load dropped to {rate}"


def backlog_text(o: Overload) -> str:
    """The generator's backlog behind its schedule: ``1,200 requests, up to 2.3 s late``."""
    parts = []
    if o.backlog_max is not None:
        parts.append(f"{o.backlog_max:,} requests")
    if o.lag_max_ms is not None:
        parts.append(f"up to {duration_text(o.lag_max_ms / 1000)} late")
    return ", ".join(parts) if parts else "unmeasured"


def overload_note() -> str:
    """What the degraded-mode figures are and how the verdicts are drawn, with the thresholds' values."""
    return (
        "Over each tier's load phase: offered and goodput (successful answers/s) are steady-window means; "
        "refused is the share of the requests sent that were answered 503 or 429; admitted P99 is the "
        "corrected P99 of the successful requests, refused P99 that of the refusals, both from the intended "
        f"send time. Degraded: it refused {share_text(REFUSING_SHARE)} or more and kept the admitted within "
        f"the SLO. Collapsed: its goodput fell below {share_text(COLLAPSED_GOODPUT_SHARE)} of the best "
        f"{PEAK_WINDOW_S}-second goodput it delivered in the run (or of the offered rate, if lower). "
        "Overwhelmed: neither (the admitted waited past the SLO, or it fell behind without refusing). The "
        "generator's backlog is the most requests it owed its schedule at the end of a second, and the "
        "longest any request went out behind its intended time. Time to recover: from the end of the load "
        f"to the first of {RECOVERED_FOR_S} seconds in a row whose admitted P99 is within the SLO with at "
        f"most {share_text(RECOVERED_REFUSED_SHARE)} refused (docs/report.md)."
    )
