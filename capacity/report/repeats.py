"""The report's "Spread between repeats" section, for a sweep run with ``capacity sweep --repeat N``.

Each headline figure (``capacity.fit.repeat_spread.SPREAD_FIGURES``) is shown twice: pooled over all repeats
with its within-run interval, and as the spread of the values the repeats gave when each was fitted alone;
the section says what each range means, and reads which of them to plan with. A sweep without repeats has
no such section (``repeats_view`` gives None).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from capacity.fit.repeat_spread import METHOD, RepeatFigure, RepeatSpread
from capacity.report.units import estimate_interval, estimate_value

#: The figure the report leads with, highlighted in the table.
HEADLINE_FIGURE = "recommended_max"

#: What a figure's comparison of the two ranges says (``RepeatFigure.within_ci``: True, False, None).
READINGS = {
    True: "every repeat lies within the pooled interval",
    False: "the repeats differ by more than the within-run interval shows: plan with the spread",
    None: "",
}


@dataclass(frozen=True)
class SpreadRow:
    """One figure: the pooled value and its within-run interval, the spread between repeats, each repeat's
    value, and the reading of the two ranges side by side."""

    label: str
    pooled: str
    within_run: str
    spread: str
    each: str
    reading: str
    highlight: bool = False


@dataclass(frozen=True)
class RepeatsView:
    """The section: how many repeats, one row per figure, and what each range means (sentences)."""

    count: int
    rows: tuple[SpreadRow, ...]
    meaning: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "rows": [asdict(r) for r in self.rows], "meaning": list(self.meaning)}


def repeats_view(spread: RepeatSpread | None) -> RepeatsView | None:
    """The section for ``spread`` (a ``ReportSource``'s ``repeats``); None for a sweep without repeats."""
    if spread is None:
        return None
    return RepeatsView(spread.count, tuple(_row(f) for f in spread.figures), meaning(spread))


def _row(figure: RepeatFigure) -> SpreadRow:
    return SpreadRow(
        label=figure.label,
        pooled=estimate_value(figure.pooled),
        within_run=estimate_interval(figure.pooled),
        spread=figure.spread_text(),
        each=figure.each_text(),
        reading=READINGS[figure.within_ci],
        highlight=figure.key == HEADLINE_FIGURE,
    )


def meaning(spread: RepeatSpread) -> tuple[str, ...]:
    """What the section shows, for SREs who plan with it: how the repeats ran, then each range."""
    count, total = spread.count, spread.count + len(spread.left_out)
    ran = (
        f"The sweep runs every tier {total} times, interleaved (all tiers in order, then all of them "
        "again), so drift of the machine during the sweep falls on every tier alike."
    )
    if spread.left_out:
        several = len(spread.left_out) > 1
        ran += (
            f" Repeat{'s' if several else ''} {', '.join(map(str, spread.left_out))} did not complete "
            f"every tier: {'their' if several else 'its'} finished tiers count in the pooled fit, not in "
            "the spread."
        )
    return (
        ran,
        f"Pooled interval: the model fitted on the runs of the {total} repeats together. The CPU curve's "
        "figures (CPU saturation, and the recommended maximum when CPU binds) take their 95 % CI from a "
        "wild bootstrap over tiers, which moves every tier's run as a whole, so the drift between the "
        "repeats' runs of one tier counts in it. Other figures come from a block bootstrap over the "
        "seconds within each tier, or are 'between tiers' (the measured tiers on either side of a figure "
        "located on the tier grid): those say how precisely these runs pin the figure down if the machine "
        "stayed the same throughout, and cannot see drift from one run to the next.",
        f"Spread between {count} repeats: {METHOD}. Run-to-run drift (other load on the machine, thermal "
        f"state, the journal file growing) shows here. It is the range {count} reruns gave: a further "
        "rerun can land outside it.",
    )
