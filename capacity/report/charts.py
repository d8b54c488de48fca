"""The report's charts: matplotlib figures returned as self-contained ``data:image/svg+xml`` URIs.

Figures are built with ``matplotlib.figure.Figure`` directly, never pyplot, so no GUI backend is ever
selected (headless by construction, as the Agg backend would be) and nothing global is left behind; the
report's style applies inside each chart function only (``_styled``).

One function per chart, each taking the report's data and returning a ``Chart`` (title, alt text, URI).
Colours follow the tier order everywhere; generator-bound tiers are grey hollow markers, since they are not
server measurements; fitted lines are drawn only over the measured range, with their 95 % band.
"""

from __future__ import annotations

import base64
import functools
import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator

from capacity.fit import CapacityModel
from capacity.fit.estimate import TIMES
from capacity.report.source import TierRun
from capacity.report.spectrum import Spectrum
from capacity.report.tables import MatrixRow
from capacity.text import MB

GREY = "#9aa0a6"
SLO_RED = "#c62828"
FIT_BLUE = "#1f5fa8"
STYLE: dict[Any, Any] = {  # Any: matplotlib's stubs key rcParams by literal names
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",  # text stays text: smaller files, the page's own font
    "svg.hashsalt": "capacity-report",  # deterministic ids: the same data gives the same file
}
WIDE = (8.6, 4.0)
SMALL = (5.4, 2.9)


P = ParamSpec("P")


def _styled(draw: Callable[P, Chart]) -> Callable[P, Chart]:
    """Run a chart function under the report's matplotlib style (fonts, grid, SVG output), and only it."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Chart:
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class Chart:
    """A rendered chart: a short title, an alt text saying what it shows, and its data URI."""

    key: str
    title: str
    alt: str
    uri: str


def tier_colours(names: Sequence[str]) -> dict[str, str]:
    """A colour per tier, light load to heavy, the same in every chart."""
    cmap = matplotlib.colormaps["viridis"]
    n = max(len(names) - 1, 1)
    return {name: matplotlib.colors.to_hex(cmap(0.9 * i / n)) for i, name in enumerate(names)}


def _svg_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(size: tuple[float, float], ncols: int = 1, top: float = 0.5) -> tuple[Figure, list[Axes]]:
    """A figure with fixed margins in inches (``top`` leaves room for a legend above the axes): faster
    than a layout engine, and every chart of a kind lines up with the others."""
    width, height = size
    fig = Figure(figsize=size)  # no pyplot: no global figure registry, no GUI backend, nothing to close
    axes = fig.subplots(1, ncols)
    fig.subplots_adjust(
        left=0.75 / width,
        right=1 - 0.45 / width,
        bottom=0.55 / height,
        top=1 - top / height,
        wspace=0.25 if ncols > 1 else None,
    )
    return fig, list(np.atleast_1d(axes))


def _legend(ax: Axes, ncols: int = 4) -> None:
    """The legend above the axes, out of the data's way."""
    ax.legend(
        loc="lower left", bbox_to_anchor=(0, 1.01), fontsize=7, frameon=False, ncols=ncols, borderaxespad=0
    )


def _rate_scale(ax: Axes, values: Sequence[float | None], axis: str = "x") -> None:
    """Log scale when the rates span more than a factor of 30, with plain-number tick labels."""
    positive = [v for v in values if v and v > 0]
    if positive and max(positive) / min(positive) > 30:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        _plain_log_ticks(ax.xaxis if axis == "x" else ax.yaxis)


def _plain_log_ticks(axis: Axis) -> None:
    """Log-axis ticks at 1, 2, 5 per decade written as plain numbers (1,000, not 10³), no minor labels."""
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _floats(values: Iterable[float | None]) -> list[float]:
    """Values to plot, an unknown one as NaN (matplotlib leaves a gap)."""
    return [np.nan if v is None else v for v in values]


def _ms_axis(ax: Axes, values: Sequence[float | None]) -> None:
    known = [v for v in values if v]
    if known and max(known) / min(known) > 20:
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
    ax.set_ylabel("latency (ms)")


def _mark_generator_bound(ax: Axes, rows: Sequence[MatrixRow], x: str, y: str) -> None:
    bound = [r for r in rows if r.generator_bound]
    if bound:
        ax.scatter(
            [getattr(r, x) for r in bound],
            [getattr(r, y) for r in bound],
            s=60,
            facecolors="none",
            edgecolors=GREY,
            linewidths=1.5,
            label="generator-bound (not a server limit)",
            zorder=4,
        )


@_styled
def throughput_chart(rows: Sequence[MatrixRow], colours: dict[str, str]) -> Chart:
    """Achieved against offered rate per tier, with the y = x line a server that keeps up would follow."""
    fig, (ax,) = _figure(WIDE, top=0.45)
    rows = [r for r in rows if r.offered is not None and r.achieved is not None]  # tiers that ran
    rates = [v for r in rows for v in (r.offered, r.achieved) if v is not None]
    top = max(rates, default=1.0) * 1.1
    low = min((v for v in rates if v > 0), default=1.0) * 0.8
    ax.plot([low, top], [low, top], ls="--", color=GREY, lw=1, label="achieved = offered")
    server = [r for r in rows if not r.generator_bound]
    ax.scatter(
        _floats(r.offered for r in server),
        _floats(r.achieved for r in server),
        c=[colours[r.tier] for r in server],
        s=40,
        zorder=5,
        label="tier (server-measured)",
    )
    for r in server:
        if not r.passed:
            ax.scatter(
                _floats([r.offered]),
                _floats([r.achieved]),
                s=110,
                facecolors="none",
                edgecolors=SLO_RED,
                zorder=6,
            )
    _mark_generator_bound(ax, rows, "offered", "achieved")
    for i, r in enumerate(sorted(rows, key=lambda r: r.offered or 0.0)):  # alternate sides: neighbours crowd
        above = i % 2 == 1
        ax.annotate(
            r.tier,
            (r.offered, r.achieved),
            xytext=(-6, 6) if above else (6, -10),
            textcoords="offset points",
            ha="right" if above else "left",
            fontsize=7,
        )
    if any(not r.passed for r in server):
        ax.scatter([], [], s=110, facecolors="none", edgecolors=SLO_RED, label="SLO fail")
    _rate_scale(ax, rates)
    _rate_scale(ax, rates, "y")
    ax.set_xlabel("offered rate (requests/s)")
    ax.set_ylabel("achieved rate (requests/s)")
    _legend(ax)
    alt = "Achieved against offered requests/s per tier; points below the dashed line fell behind."
    return Chart("throughput", "Throughput: achieved vs offered", alt, _svg_uri(fig))


@_styled
def latency_chart(rows: Sequence[MatrixRow], tiers: Sequence[TierRun]) -> Chart:
    """P50 / P99 / P99.9 corrected and P99 raw against achieved rate, server tiers in offered order."""
    fig, (ax,) = _figure(WIDE, top=0.6)
    by_name = {t.name: t for t in tiers}
    measured = [(r, by_name[r.tier]) for r in rows if r.ran and r.achieved is not None]
    pairs = sorted(((r, t) for r, t in measured if not r.generator_bound), key=lambda p: p[0].offered or 0)
    x = _floats(r.achieved for r, _ in pairs)
    lines = (
        ("P50 corrected", lambda t: t.run.summary.corrected.p50_ms, "-", "#6baed6"),
        ("P99 corrected", lambda t: t.run.summary.corrected.p99_ms, "-", FIT_BLUE),
        ("P99.9 corrected", lambda t: t.run.summary.corrected.p999_ms, "-", "#08306b"),
        ("P99 raw", lambda t: t.run.summary.raw.p99_ms, "--", FIT_BLUE),
    )
    every: list[float | None] = []
    for label, get, style, colour in lines:
        y = [get(t) for _, t in pairs]
        every += y
        ax.plot(x, _floats(y), style, marker="o", ms=3, color=colour, label=label)
    slo = [(r.achieved, r.slo_p99_ms) for r, _ in pairs if r.slo_p99_ms]
    if slo:
        ax.scatter(
            _floats(rate for rate, _ in slo),
            _floats(ms for _, ms in slo),
            marker="_",
            s=200,
            color=SLO_RED,
            label="tier's P99 SLO",
            zorder=5,
        )
    bound = [(r, t) for r, t in measured if r.generator_bound]
    if bound:
        ax.scatter(
            _floats(r.achieved for r, _ in bound),
            _floats(t.run.summary.corrected.p99_ms for _, t in bound),
            s=50,
            facecolors="none",
            edgecolors=GREY,
            label="P99 of a generator-bound tier",
        )
    _rate_scale(ax, x + [r.achieved for r, _ in bound])
    _ms_axis(ax, every + [v for _, v in slo])
    ax.set_xlabel("achieved rate (requests/s)")
    _legend(ax, ncols=3)
    alt = "Corrected P50, P99, P99.9 and raw P99 latency against achieved requests/s, with each tier's SLO."
    return Chart("latency", "Latency percentiles vs throughput", alt, _svg_uri(fig))


@_styled
def resources_chart(tiers: Sequence[TierRun], model: CapacityModel, colours: dict[str, str]) -> Chart:
    """CPU cores and RSS against achieved rate: per-second samples, tier means, fitted lines with bands."""
    fig, (cpu_ax, mem_ax) = _figure(WIDE, ncols=2, top=0.6)
    explained = False  # the first generator-bound tier's points carry the legend entry that says why
    for tier in tiers:
        steady = tier.run.steady_series()
        colour = GREY if tier.run.summary.generator_bound else colours[tier.name]
        x = [s.achieved_rate for s in steady]
        cpu = [np.nan if s.server_cpu_percent is None else s.server_cpu_percent / 100 for s in steady]
        rss = [np.nan if s.server_rss_bytes is None else s.server_rss_bytes / MB for s in steady]
        bound = tier.run.summary.generator_bound
        size = 6 if len(x) > 10 else 16  # a short tier's few seconds should still be visible
        label = None
        if bound and not explained:
            label, explained = "generator-bound tier: the generator's limit, not fitted", True
        for ax, y in ((cpu_ax, cpu), (mem_ax, rss)):
            if bound:
                ax.scatter(x, y, s=size, alpha=0.6, facecolors="none", edgecolors=colour, label=label)
            else:
                ax.scatter(x, y, s=size, alpha=0.6, c=colour)
    measured = model.service_demand.rate_range
    if measured is not None:
        grid = np.linspace(measured[0], measured[1], 40)
        fits = [model.cores_needed(float(r), 1.0) for r in grid]
        shape = "rate" if model.service_demand.shape == "linear" else "rate^exponent (power law)"
        _band(cpu_ax, grid, fits, f"fit: cores = idle + scale {TIMES} {shape}")
    else:
        _no_fit(cpu_ax, model.service_demand.cpu_seconds_per_request.note)
    if model.memory.rate_range is not None:
        grid = np.linspace(*model.memory.rate_range, 40)
        _band(
            mem_ax,
            grid,
            [model.memory.rss_at(float(r)) for r in grid],
            f"fit: RSS = base + MB per request/s {TIMES} rate",
        )
    else:
        _no_fit(mem_ax, model.memory.exhaustion_rate.note)
    cpu_ax.axhline(model.available_cores, color=SLO_RED, ls=":", lw=1, label="server's CPU budget")
    cpu_ax.set_ylim(bottom=0, top=max(model.available_cores * 1.1, cpu_ax.get_ylim()[1]))
    low, high = mem_ax.get_ylim()  # never zoom so far in that noise of a few kB looks like growth
    span = max(high - low, 0.2 * high)
    mem_ax.set_ylim(max(0.0, (low + high - span) / 2), (low + high + span) / 2)
    for ax, label in ((cpu_ax, "server CPU (cores)"), (mem_ax, "server RSS (MB)")):
        ax.set_xlim(left=0)  # linear axes: a straight fit should look straight, a curve curved
        ax.set_xlabel("achieved rate (requests/s)")
        ax.set_ylabel(label)
        if ax.get_legend_handles_labels()[0]:
            _legend(ax, ncols=1)
    alt = (
        "Server CPU cores and RSS per second against achieved requests/s, with the fitted lines and 95 % "
        "bands; hollow grey points are generator-bound tiers, which the fits leave out."
    )
    return Chart("resources", "CPU and memory vs throughput", alt, _svg_uri(fig))


def _band(ax: Axes, grid: np.ndarray, fits: Sequence, label: str) -> None:
    value = np.array([np.nan if f.value is None else f.value for f in fits])
    low = np.array([np.nan if f.low is None else f.low for f in fits])
    high = np.array([np.nan if f.high is None else f.high for f in fits])
    ax.plot(grid, value, color=FIT_BLUE, lw=1.5, label=label)
    ax.fill_between(grid, low, high, color=FIT_BLUE, alpha=0.2, lw=0, label="95 % confidence band")


def _no_fit(ax: Axes, why: str) -> None:
    ax.text(
        0.5,
        0.8,
        "no fitted line: " + _wrap(why, 48),
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=8,
        color="#555",
        bbox={"facecolor": "white", "edgecolor": GREY, "boxstyle": "round"},
    )


def _wrap(text: str, width: int) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


@_styled
def over_time_chart(tier: TierRun) -> Chart:
    """One tier's P99 per second, corrected and raw, with its SLO and the steady window shaded."""
    fig, (ax,) = _figure(SMALL)
    run = tier.run
    t = [s.t for s in run.series]
    corrected = [np.nan if s.corrected_p99_ms is None else s.corrected_p99_ms for s in run.series]
    raw = [np.nan if s.raw_p99_ms is None else s.raw_p99_ms for s in run.series]
    colour = GREY if run.summary.generator_bound else FIT_BLUE
    ax.plot(t, corrected, color=colour, lw=1.3, label="P99 corrected")
    ax.plot(t, raw, color=colour, lw=1, ls="--", label="P99 raw")
    slo = run.summary.slo.p99_limit_ms
    ax.axhline(slo, color=SLO_RED, ls=":", lw=1, label=f"SLO {slo:g} ms")
    ax.axvspan(
        run.summary.steady_start_s, run.summary.steady_end_s, color="#dce8f7", zorder=0, label="steady window"
    )
    _ms_axis(ax, [*corrected, *raw, slo])
    ax.set_xlabel("time since start (s)")
    _legend(ax)
    alt = f"Tier {tier.name}: corrected and raw P99 latency per second against its {slo:g} ms SLO."
    return Chart(f"over-time-{tier.name}", f"{tier.name}: latency over time", alt, _svg_uri(fig))


def _greys(names: Sequence[str]) -> dict[str, str]:
    """One grey per generator-bound tier, dark to light in tier order (lines of one grey cannot be told
    apart in the spectrum's legend); the scatters' single ``GREY`` when there is one."""
    if len(names) <= 1:
        return dict.fromkeys(names, GREY)
    shades = matplotlib.colormaps["Greys"](np.linspace(0.75, 0.35, len(names)))
    return {name: matplotlib.colors.to_hex(shade) for name, shade in zip(names, shades, strict=True)}


@_styled
def spectrum_chart(
    spectra: Sequence[tuple[TierRun, Spectrum | None, Spectrum | None]], colours: dict[str, str]
) -> Chart:
    """Latency by percentile on the usual 1 / (1 - p) axis, corrected solid and raw dashed, per tier."""
    fig, (ax,) = _figure(WIDE, top=0.6)
    deepest, values = 99.0, list[float]()
    greys = _greys([tier.name for tier, _, _ in spectra if tier.run.summary.generator_bound])
    for tier, corrected, raw in spectra:
        bound = tier.run.summary.generator_bound
        colour = greys[tier.name] if bound else colours[tier.name]
        label = tier.name + (" (generator-bound)" if bound else "")
        for spec, style, name in ((corrected, "-", label), (raw, "--", None)):
            if spec is None:
                continue
            x = [1 / (1 - p / 100) for p in spec.percentiles]
            marker = "o" if spec.source == "summary" else None
            ax.plot(
                x,
                spec.latency_ms,
                ls=style,
                lw=1.2 if style == "-" else 0.8,
                color=colour,
                label=name,
                marker=marker,
                ms=3,
            )
            deepest = max(deepest, spec.percentiles[-1])
            values += spec.latency_ms
    ax.set_xscale("log")
    decades = max(2, math.ceil(-math.log10(max(1 - deepest / 100, 1e-9)) - 1e-9))
    ticks = [10.0**k for k in range(decades + 1)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _percentile_label(v)))
    ax.set_xlim(1, ticks[-1])
    _ms_axis(ax, values)
    ax.set_xlabel("percentile (solid: corrected, dashed: raw)")
    _legend(ax, ncols=max(4, math.ceil(len(spectra) / 2)))
    alt = "Latency by percentile per tier, from the merged HDR histograms; corrected solid, raw dashed."
    return Chart("spectrum", "HDR percentile spectrum", alt, _svg_uri(fig))


def _percentile_label(x: float) -> str:
    """1 / (1 - p) back to a percentile label: 10 -> 90 %, 1000 -> 99.9 %."""
    if x <= 1:
        return "0 %"
    p = 100 * (1 - 1 / x)
    return f"{p:.{max(0, round(math.log10(x)) - 2)}f} %"
