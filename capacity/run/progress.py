"""What a run shows while it goes on and when it ends.

``ProgressUpdate`` is what ``capacity.run.orchestrator.run_scenario`` reports about once a second (to any
callable: the CLI's live display, a sweep, the exchange's ``/demo/load-test`` status). ``LiveProgress`` draws
it with rich; ``summary_table`` renders a finished run's summary.

Units: seconds, requests per second, milliseconds, CPU percent of one core, bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from capacity.results.run_file import Run
from capacity.results.verdict_text import (
    backlog_text,
    duration_text,
    limit_of,
    limit_sentence,
    overload_sentence,
)
from capacity.text import figure, megabytes


@dataclass(frozen=True)
class ProgressUpdate:
    """A snapshot of a run; figures are ``None`` until known."""

    phase: str  # "starting", "running", "stopping" or "finished"
    message: str
    scenario: str
    duration_s: float  # scheduled length of the run
    elapsed_s: float | None = None  # seconds since t = 0 of the schedule
    offered_rate: float | None = None  # requests/s over the generator's last few seconds
    achieved_rate: float | None = None  # successful responses/s, same window
    p99_corrected_ms: float | None = None
    sent_total: int | None = None
    errors_total: int | None = None
    late_total: int | None = None
    users: int | None = None
    server_cpu_percent: float | None = None  # percent of one core
    server_rss_bytes: int | None = None
    generator_cpu_percent: float | None = None  # percent of one core
    exchange_orders_per_sec: float | None = None


ProgressCallback = Callable[[ProgressUpdate], None]


class LiveProgress:
    """A rich live panel fed by ``ProgressUpdate``s: ``with LiveProgress() as show: run_scenario(...,
    progress=show)``. Writes to stderr by default so stdout stays clean for the summary. The panel appears
    with the first update, so an error before the run starts prints alone."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        # Redrawn on each update (about once a second) from the caller's thread: no refresh thread.
        self._live = Live(Text(""), console=self.console, auto_refresh=False)
        self._started = False
        self._messages: list[str] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._started:
            self._live.__exit__(exc_type, exc, tb)
            if not self.console.is_terminal:  # rich ends its one non-terminal render without a newline
                self.console.line()

    def __call__(self, update: ProgressUpdate) -> None:
        if not self._started:
            self._live.__enter__()
            self._started = True
        if not self._messages or self._messages[-1] != update.message:
            self._messages.append(update.message)
            del self._messages[:-4]
        self._live.update(self.render(update), refresh=True)

    def render(self, update: ProgressUpdate) -> Group:
        lines = Text("\n".join(f"· {m}" for m in self._messages), style="dim")
        if update.elapsed_s is None:
            return Group(lines)
        elapsed = min(max(update.elapsed_s, 0.0), update.duration_s)
        remaining = update.duration_s - elapsed
        table = Table(
            title=f"capacity run {update.scenario}", title_justify="left", show_header=False, box=None
        )
        for style in ("bold", "", "bold", ""):
            table.add_column(style=style)
        table.add_row(
            "elapsed",
            f"{elapsed:.0f}/{update.duration_s:.0f} s ({remaining:.0f} s left)",
            "offered / achieved",
            f"{figure(update.offered_rate, '{:,.0f}')} / {figure(update.achieved_rate, '{:,.0f}')} per s",
        )
        table.add_row(
            "p99 corrected",
            figure(update.p99_corrected_ms, "{:.2f} ms"),
            "errors",
            f"{figure(update.errors_total, '{:,}')} of {figure(update.sent_total, '{:,}')} sent",
        )
        table.add_row(
            "server CPU",
            figure(update.server_cpu_percent, "{:.0f} %"),
            "generator CPU",
            figure(update.generator_cpu_percent, "{:.0f} %"),
        )
        return Group(lines, table)


def summary_table(run: Run) -> Table:
    """The run's summary as a two-column table (figure, value)."""
    s = run.summary
    table = Table(
        title=f"{run.scenario.get('name', '?')}: {run.status}", title_justify="left", show_header=False
    )
    table.add_column("figure", style="bold")
    table.add_column("value")
    ratio = f" ({s.achieved_ratio:.0%})" if s.achieved_ratio is not None else ""
    table.add_row(
        "steady window", f"{s.steady_start_s}s - {s.steady_end_s}s ({s.steady_end_s - s.steady_start_s} s)"
    )
    table.add_row("offered / achieved", f"{s.offered_rate:,.0f} / {s.achieved_rate:,.0f} per s{ratio}")
    table.add_row(
        "requests",
        f"{s.counts.sent:,} sent, {s.counts.ok:,} ok, {s.counts.errors:,} errors "
        f"({figure(s.error_rate, '{:.2%}')}), {s.counts.shed:,} refused (503, 429), {s.counts.late:,} late "
        f"({s.counts.generator_late:,} by the generator)",
    )
    latencies = [("latency corrected", s.corrected), ("latency raw", s.raw)]
    if s.all_outcomes is not None:
        latencies.insert(0, ("latency all outcomes", s.all_outcomes))
    for label, lat in latencies:
        table.add_row(
            label,
            f"p50 {figure(lat.p50_ms, '{:.2f}')}  p99 {figure(lat.p99_ms, '{:.2f}')}  "
            f"p99.9 {figure(lat.p999_ms, '{:.2f}')}  max {figure(lat.max_ms, '{:.2f}')} ms",
        )
    table.add_row(
        "server CPU",
        f"mean {figure(s.server_cpu_percent_mean, '{:.0f}')} %, "
        f"max {figure(s.server_cpu_percent_max, '{:.0f}')} % of one core "
        f"({figure(s.server_cores_used_mean, '{:.2f}')} cores on average)",
    )
    table.add_row("server RSS max", figure(megabytes(s.server_rss_max_bytes), "{:,.1f} MB"))
    if s.other_cpu_percent_mean is not None:
        table.add_row("other processes' CPU", f"mean {s.other_cpu_percent_mean:.0f} % of one core")
    table.add_row(
        "generator CPU",
        f"mean {figure(s.generator_cpu_percent_mean, '{:.0f}')} %, "
        f"max {figure(s.generator_cpu_percent_max, '{:.0f}')} % of {s.generator_cores:g} core(s) "
        f"({run.loadgen.engine} engine, {run.loadgen.workers} process(es))",
    )
    slo = s.slo
    verdict = Text(slo.verdict, style="bold green" if slo.passed else "bold red")
    verdict.append(
        f"  (p99 {figure(slo.p99_ms, '{:.2f}')} ms vs {slo.p99_limit_ms:g} ms; "
        f"errors {figure(slo.error_rate, '{:.2%}')} vs {slo.error_rate_limit:.2%})",
        style="default",
    )
    for reason in slo.reasons:
        verdict.append(f"\n{reason}", style="default")
    table.add_row("SLO", verdict)
    if run.status != "failed":  # a failed run's problem says what went wrong; it measured no limit
        limit = limit_of(s)
        style = {"none": "green", "server": "bold red", "unreachable": "bold red"}.get(
            limit.kind, "bold yellow"
        )
        table.add_row("limit", Text(limit_sentence(limit), style=style))
    if s.overload is not None:
        table.add_row("overload", overload_sentence(s.overload))
        table.add_row("generator backlog", backlog_text(s.overload))
    if s.stalls:
        longest = max(s.stalls, key=lambda stall: stall.duration_s)
        table.add_row(
            "server stalls",
            f"{len(s.stalls)}: the server answered nothing while asked, "
            f"{duration_text(longest.duration_s)} from t = {longest.start_s:.1f} s the longest "
            "(in the corrected latency; not the generator)",
        )
    if run.problem:
        table.add_row("problem", Text(run.problem, style="red"))
    for note in (*s.notes, *run.notes):
        table.add_row("note", note)
    return table
