"""The Capacity tab in Locust's web UI, and the same figures as JSON at ``GET /capacity``.

Locust's own Statistics and Charts tabs time each response from its actual send (raw: what coordinated
omission hides) and know nothing of the server. The tab adds, live, what ``capacity run`` reports: the
corrected and raw P50/P99/P99.9 of the run so far from the merged HdrHistograms, offered against achieved
requests/s (completions), late and unsent requests, errors, the SLO verdict so far, the server's CPU and
RSS from its ``/api/metrics``, and the generator's own CPU with its health verdict (the classifier's rules
in ``capacity.results.verdicts``). Built on Locust's extension points: ``template_args`` ``extended_tabs`` and
``extended_tables`` (the tab and its columns), rows added to ``/stats/requests`` under ``extended_stats``
(the UI polls it), and a Flask route.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from capacity.measure.latency import Second, summarize
from capacity.measure.sampler import CpuMeter, ExchangeSample, MetricsPoller
from capacity.results.verdict_text import reason_text
from capacity.results.verdicts import GENERATOR_SATURATION, GeneratorEvidence, generator_reasons
from capacity.scenario import Scenario
from capacity.text import figure, megabytes

TAB = "capacity"
RAW_NOTE = (
    "Locust's Statistics and Charts tabs show raw response times, from the actual send; the corrected "
    "figures here count from the scheduled send (coordinated omission corrected)."
)


@dataclass
class LiveFigures:
    """What the tab shows, updated once a second by the run's progress loop (``update``)."""

    scenario: Scenario
    generator_cores: float
    server: MetricsPoller | None = None
    generator_cpu: CpuMeter = field(default_factory=lambda: CpuMeter(os.getpid(), include_children=True))
    saturated_seconds: int = 0
    seconds: int = 0
    latest: dict[str, Any] = field(default_factory=dict)
    _last: float = field(default_factory=time.monotonic)

    def update(self, progress: dict[str, Any], total: Second) -> dict[str, Any]:
        """Take this second's readings beside the run's ``progress.json`` document and its merged seconds
        (``total``); the figures are kept in ``latest``."""
        now, cpu_s = time.monotonic(), self.generator_cpu.take()
        wall, self._last = max(now - self._last, 1e-6), now
        generator_percent = None if cpu_s is None else 100.0 * cpu_s / wall
        self.seconds += 1
        saturated = 100 * GENERATOR_SATURATION * self.generator_cores
        if generator_percent is not None and generator_percent >= saturated:
            self.saturated_seconds += 1
        server = self.server.poll() if self.server is not None else None
        self.latest = self.figures(progress, total, generator_percent, server)
        return self.latest

    def figures(
        self,
        progress: dict[str, Any],
        total: Second,
        generator_percent: float | None,
        server: ExchangeSample | None,
    ) -> dict[str, Any]:
        corrected, raw = summarize(total.corrected), summarize(total.raw)
        slo = self.scenario.slo
        error_rate = total.errors / total.sent if total.sent else None
        p99 = corrected["p99"]
        slo_passed = None
        if p99 is not None and error_rate is not None:
            slo_passed = p99 <= slo.p99_ms and error_rate <= slo.error_rate
        evidence = GeneratorEvidence(
            self.saturated_seconds, self.seconds, self.generator_cores, total.scheduled, total.generator_late
        )
        reasons = generator_reasons(evidence)
        return {
            "scenario": self.scenario.name,
            "elapsed_s": progress["elapsed_s"],
            "duration_s": self.scenario.total_duration_s,
            "users": progress["users"],
            "offered_rate": progress["offered_rate"],
            "achieved_rate": progress["achieved_rate"],
            "scheduled": total.scheduled,
            "sent": total.sent,
            "late": total.late,
            "unsent": total.scheduled - total.sent,
            "errors": total.errors,
            "corrected_ms": {k: corrected[k] for k in ("p50", "p99", "p999")},
            "raw_ms": {k: raw[k] for k in ("p50", "p99", "p999")},
            "slo": {"p99_ms": slo.p99_ms, "error_rate": slo.error_rate, "passed": slo_passed},
            "server_cpu_percent": None if server is None else server.cpu_percent,
            "server_rss_bytes": None if server is None else server.rss_bytes,
            "generator_cpu_percent": generator_percent,
            "generator_healthy": not reasons,
            "generator_reasons": [reason_text(r) for r in reasons],
            "note": RAW_NOTE,
        }


def table_rows(figures: dict[str, Any]) -> list[dict[str, str]]:
    """The tab's rows: a figure and its value, as text."""
    if not figures:
        return [{"figure": "run", "value": "no run yet: start one"}, {"figure": "note", "value": RAW_NOTE}]
    c, r, slo = figures["corrected_ms"], figures["raw_ms"], figures["slo"]
    verdict = {None: "not yet known", True: "PASS so far", False: "FAIL so far"}[slo["passed"]]
    health = "healthy" if figures["generator_healthy"] else "; ".join(figures["generator_reasons"])
    rss = figures["server_rss_bytes"]
    f = figures
    rows = {
        "scenario": f"{f['scenario']}: {f['elapsed_s']:.0f} of {f['duration_s']:.0f} s, {f['users']} users",
        "offered / achieved": (
            f"{f['offered_rate']:,.0f} / {f['achieved_rate']:,.0f} requests/s (completions)"
        ),
        "P50 / P99 / P99.9 corrected": _ms3(c),
        "P50 / P99 / P99.9 raw": _ms3(r),
        "late / unsent / errors": (
            f"{f['late']:,} / {f['unsent']:,} / {f['errors']:,} of {f['scheduled']:,} scheduled"
        ),
        "SLO (P99 corrected, errors)": (
            f"{verdict}: P99 ≤ {slo['p99_ms']:g} ms, errors ≤ {100 * slo['error_rate']:g} %"
        ),
        "server CPU / RSS": (
            f"{figure(f['server_cpu_percent'], '{:.0f} %')} / {figure(megabytes(rss), '{:,.0f} MB')}"
        ),
        "generator CPU": f"{figure(f['generator_cpu_percent'], '{:.0f} %')}: {health}",
        "note": RAW_NOTE,
    }
    return [{"figure": k, "value": v} for k, v in rows.items()]


#: Above Locust's own page: its Statistics and Charts percentiles are raw, the corrected ones are in the tab.
RAW_BANNER = (
    '<div id="capacity-raw-note" style="font: 13px sans-serif; padding: 6px 16px; background: #fff3cd; '
    "color: #664d03; border-bottom: 1px solid #ffe69c\">Locust's Statistics and Charts time each request "
    "from its actual send: <b>raw</b> latency, which hides the queueing a late send waited. The "
    "<b>Capacity</b> tab shows the coordinated-omission-corrected percentiles (from the intended send "
    "time), offered against achieved requests/s, and the server's CPU and memory.</div>"
)


def install(environment: Any, figures: Callable[[], dict[str, Any]]) -> None:
    """Add the tab and ``GET /capacity`` to the environment's web UI (nothing without one)."""
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:
        return
    from flask import jsonify, request  # Locust's web UI is Flask; headless runs never import it

    web_ui.template_args["extended_tabs"] = [{"title": "Capacity", "key": TAB}]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB, "structure": [{"key": "figure", "title": "Figure"}, {"key": "value", "title": "Value"}]}
    ]

    @web_ui.app.route("/capacity")
    def capacity() -> Any:
        return jsonify(figures() or {"state": "no run yet"})

    @web_ui.app.after_request
    def with_capacity_rows(response: Any) -> Any:
        if request.path == "/stats/requests" and response.is_json:
            body = response.get_json()
            body["extended_stats"] = [{"key": TAB, "data": table_rows(figures())}]
            response.set_data(jsonify(body).get_data())
        elif request.path == "/" and response.mimetype == "text/html":
            response.direct_passthrough = False
            page = response.get_data(as_text=True)
            response.set_data(page.replace("<body>", "<body>" + RAW_BANNER, 1))
        return response


def _ms3(values: dict[str, float | None]) -> str:
    return " / ".join(figure(values[k], "{:,.1f}") for k in ("p50", "p99", "p999")) + " ms"
