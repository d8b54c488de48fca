"""Sentences for ``capacity.results.verdicts``' decisions: the one place a tier's limit becomes words.

Every surface (terminal summary, sweep lines, HTML and Markdown reports, the gate) renders a ``TierLimit``
here, so the same tier reads the same everywhere and never says two things at once.
"""

from __future__ import annotations

from capacity.results.run_file import Reason, Summary, TierLimit
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
    if limit.kind == "server" and any(r.code.startswith("generator") for r in limit.asides):
        lead = "the generator was near its limit too, but the server was saturated and slow: "
        return [lead + "; ".join(reason_text(r) for r in limit.asides if r.code.startswith("generator"))]
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
