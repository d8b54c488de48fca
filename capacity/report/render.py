"""``render_report``: a sweep or run directory in, ``index.html``, ``report.md``, ``report.json`` and
``matrix.csv`` out (in ``<source>/report/`` unless told otherwise).

The source is read and fitted once (``capacity.report.source``), turned into tables once
(``capacity.report.tables``, and ``capacity.report.repeats`` for a sweep run with ``--repeat N``), and every
output lays out those same tables.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from capacity.report import charts
from capacity.report.html import render_html
from capacity.report.markdown import render_markdown
from capacity.report.repeats import RepeatsView, repeats_view
from capacity.report.source import ReportSource, load_source
from capacity.report.spectrum import spectrum
from capacity.report.tables import MATRIX_COLUMNS, ReportView, build_view, matrix_record

FORMAT = "capacity-report/1"
REPORT_DIR = "report"


@dataclass(frozen=True)
class ReportPaths:
    """Where the report was written."""

    directory: Path
    html: Path
    markdown: Path
    json: Path
    csv: Path


def render_report(source_dir: Path, output_dir: Path | None = None) -> ReportPaths:
    """Render the report of the sweep or run at ``source_dir`` into ``output_dir``
    (default ``source_dir/report``). Raises ``ReportSourceError`` for a missing or unreadable source."""
    source = load_source(source_dir)
    view = build_view(source)
    repeats = repeats_view(source.repeats)
    overview, per_tier = _charts(source, view)
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    out = Path(output_dir) if output_dir is not None else Path(source_dir) / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(out, out / "index.html", out / "report.md", out / "report.json", out / "matrix.csv")
    _write(paths.html, render_html(view, overview, per_tier, generated, repeats))
    _write(paths.markdown, render_markdown(view, repeats=repeats))
    document = _json(source, view, repeats, overview, per_tier, generated)
    _write(paths.json, json.dumps(document, indent=2) + "\n")
    _write(paths.csv, matrix_csv(view))
    return paths


def _charts(source: ReportSource, view: ReportView) -> tuple[list[charts.Chart], dict[str, charts.Chart]]:
    colours = charts.tier_colours([t.name for t in source.tiers])
    spectra = [(t, spectrum(t, "corrected"), spectrum(t, "raw")) for t in source.tiers]
    overview = [
        charts.throughput_chart(view.matrix, colours),
        charts.latency_chart(view.matrix, source.tiers),
        charts.resources_chart(source.tiers, source.model, colours),
        charts.spectrum_chart(spectra, colours),
    ]
    per_tier = {t.name: charts.over_time_chart(t) for t in source.tiers}
    return overview, per_tier


def matrix_csv(view: ReportView) -> str:
    """The scalability matrix as CSV: a header of ``MATRIX_COLUMNS`` keys, one row per tier."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[c.key for c in MATRIX_COLUMNS], lineterminator="\n")
    writer.writeheader()
    for row in view.matrix:
        writer.writerow({k: "" if v is None else v for k, v in matrix_record(row).items()})
    return buffer.getvalue()


def _json(
    source: ReportSource,
    view: ReportView,
    repeats: RepeatsView | None,
    overview: list[charts.Chart],
    per_tier: dict[str, charts.Chart],
    generated: str,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "generated_utc": generated,
        **view.to_dict(),
        "charts": [{"key": c.key, "title": c.title, "alt": c.alt} for c in [*overview, *per_tier.values()]],
        "model": source.model.to_dict(),
        # The spread between repeats (--repeat N): the section's rows, and every repeat's estimates.
        "repeats": None
        if repeats is None or source.repeats is None
        else {**repeats.to_dict(), "spread": source.repeats.to_dict()},
    }


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
