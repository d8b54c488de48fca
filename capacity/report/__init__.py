"""capacity.report: the capacity document of a sweep (or one run), measured — HTML, Markdown, JSON, CSV.

``render_report(source_dir, output_dir=None) -> ReportPaths``; ``ReportSourceError`` for a directory that is
not a readable sweep or run. Modules: ``source`` (read and fit), ``tables`` (every table, once), ``charts``,
``spectrum`` (HDR logs), ``html``, ``markdown``, ``render``, ``units`` and ``repeats``.
"""

from capacity.report.render import ReportPaths, render_report
from capacity.report.source import ReportSourceError

__all__ = ["ReportPaths", "ReportSourceError", "render_report"]
