"""The HTML report: ``capacity/templates/report.html.j2`` with autoescape, charts inline as data URIs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jinja2

from capacity.audit.render import tally_line
from capacity.report.charts import Chart
from capacity.report.repeats import RepeatsView
from capacity.report.tables import ReportView

TEMPLATE = "report.html.j2"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("capacity", "templates"),
        autoescape=True,  # every value is escaped, the CSS include is template source
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
    )


def render_html(
    view: ReportView,
    charts: Sequence[Chart],
    tier_charts: Mapping[str, Chart],
    generated: str,
    repeats: RepeatsView | None = None,
) -> str:
    """The complete page: no external CSS, scripts, fonts or images. ``repeats``: the spread between
    repeats of a sweep run with ``--repeat N``."""
    template = _environment().get_template(TEMPLATE)
    claims_tally = tally_line(view.claims.tally) if view.claims is not None else ""
    return template.render(
        view=view,
        charts=charts,
        tier_charts=tier_charts,
        generated=generated,
        repeats=repeats,
        claims_tally=claims_tally,
    )
