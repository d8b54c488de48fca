"""The Markdown report: what fits in a pull-request comment (< 65,536 characters).

Headline, capacity summary, scalability matrix, per-tier verdicts and breaking points (and, for a sweep run
with ``--repeat N``, the spread between repeats), from the same ``ReportView`` as the HTML. Notes are cut
before the matrix is, and the matrix never is.
"""

from __future__ import annotations

from collections.abc import Sequence

from capacity.audit.render import AuditRecord, tally_line
from capacity.report.repeats import RepeatsView
from capacity.report.tables import EstimateRow, ReportView

LIMIT = 65_000  # GitHub's comment limit is 65,536 characters; keep a margin
NOTE_LIMIT = 300


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool] = ()) -> list[str]:
    """A pipe table; ``numeric`` columns are right-aligned (default: all but the first)."""
    numeric = numeric or [i > 0 for i in range(len(header))]
    align = ["---:" if right else "---" for right in numeric]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _badge(row: EstimateRow) -> str:
    """The basis; in bold where it is not a measurement of this machine (extrapolated, projection)."""
    return f"**{row.badge}**" if row.basis in ("extrapolated", "projection") else row.badge


def _estimates(rows: Sequence[EstimateRow], note_limit: int) -> list[str]:
    body = [(r.label, r.value, r.interval, _badge(r), _short(r.note, note_limit)) for r in rows]
    return _table(
        ("Figure", "Value", "Interval", "Basis", "How we know"), body, (False, True, False, False, False)
    )


def render_markdown(
    view: ReportView, note_limit: int = NOTE_LIMIT, repeats: RepeatsView | None = None
) -> str:
    """The Markdown report; notes are shortened until it fits ``LIMIT`` characters."""
    while True:
        text = _render(view, note_limit, repeats)
        if len(text) <= LIMIT or note_limit <= 40:
            return text[:LIMIT]
        note_limit //= 2


def _claims(audit: AuditRecord, note_limit: int) -> list[str]:
    """The claims audit: its tally, then claim, source, claimed, measured, verdict."""
    rows = [
        (
            row.id,
            _short(row.section, 40),
            row.claimed,
            row.measured,
            row.verdict_text,
            _short(row.why, note_limit),
        )
        for row in audit.rows
    ]
    return [
        "### Claims audit",
        "",
        f"{audit.document} ({audit.claims_file}): **{tally_line(audit.tally)}**",
        "",
        *_table(("Claim", "Source", "Claimed", "Measured", "Verdict", "Basis or reason"), rows),
    ]


def _repeats(repeats: RepeatsView) -> list[str]:
    """The spread between repeats beside the pooled figures, then what each range means."""
    n = repeats.count
    header = (
        "Figure",
        "Pooled",
        "Within-run interval",
        f"Spread between {n} repeats",
        "Each repeat",
        "Reading",
    )
    body = [(r.label, r.pooled, r.within_run, r.spread, r.each, r.reading) for r in repeats.rows]
    out = [f"### Spread between repeats ({n} repeats)", "", repeats.meaning[0], ""]
    out += _table(header, body, (False, True, False, False, False, False))
    return [*out, "", *(f"- {m}" for m in repeats.meaning[1:]), ""]


def _render(view: ReportView, note_limit: int, repeats: RepeatsView | None = None) -> str:
    out = [f"## {view.title}", "", f"**{view.headline}**", ""]
    out += [f"> ⚠ {w}" for w in view.warnings]
    out += ["", f"_{view.fit_options}_", "", "### Capacity summary", ""]
    out += _table(
        ("Metric", *view.summary.columns), [(label, *values) for label, values in view.summary.rows]
    )
    out += ["", f"_{view.summary.note}_", "", "### Scalability matrix", ""]
    columns = view.columns
    out += _table(
        [c.header for c in columns],
        [
            [
                f"~~{row.tier}~~ ⊘" if row.left_out and c.key == "tier" else _short(c.text(row), note_limit)
                for c in columns
            ]
            for row in view.matrix
        ],
        [c.numeric for c in columns],
    )
    out += [
        "",
        "⊘ generator-bound or disturbed: the tier's figures are not the server's (left out of the fits).",
        "",
    ]
    out += ["### Tier verdicts", ""]
    for tier in view.tiers:
        why = f": {_short('; '.join(tier.reasons), note_limit)}" if tier.reasons else ""
        out.append(f"- **{tier.name}**: {tier.verdict}{why}")
        if tier.limit_sentence:
            out.append(f"  - limit: {_short(tier.limit_sentence, note_limit)}")
    out += ["", "### Breaking points", ""]
    out += _estimates(view.breaking_points, note_limit)
    if view.overload:
        out += ["", "#### Past the limit: degraded or collapsed", ""]
        out += _table(
            (
                "Tier",
                "Verdict",
                "Offered",
                "Goodput",
                "Refused",
                "Admitted P99",
                "Refused P99",
                "Time to recover",
            ),
            [
                (r.tier, r.label, r.offered, r.goodput, r.refused, r.admitted_p99, r.refused_p99, r.recovery)
                for r in view.overload
            ],
            (False, False, True, True, True, True, True, True),
        )
        out += [""] + [f"- **{r.tier}**: {r.sentence}" for r in view.overload]
    if repeats is not None:
        out += ["", *_repeats(repeats)]
    out += ["", "### Resource efficiency", ""]
    out += _estimates(view.efficiency, note_limit)
    if view.claims is not None:
        out += ["", *_claims(view.claims, note_limit)]
    out += ["", "_Full report with charts, projections and formulas: `report/index.html`._", ""]
    return "\n".join(out)
