"""The report's content as data: every table the HTML, Markdown, JSON and CSV show, built once, here.

``build_view(source)`` returns a ``ReportView``. Renderers only lay it out: the scalability matrix rows
(``MatrixRow``, one per tier, columns in ``MATRIX_COLUMNS``), the capacity summary, one ``TierView`` per
tier, resource efficiency, breaking points and projections (``EstimateRow``: an ``Estimate`` with a label),
and the fitted formulas. Units: rates in requests/s (the Orders column: orders/s the exchange
accepted), CPU in cores, memory in MB (10⁶ bytes), latency in ms.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from capacity.audit.render import AuditRecord
from capacity.fit import CapacityModel, Estimate
from capacity.fit.estimate import DASH, fmt
from capacity.fit.repeat_spread import RepeatSpread
from capacity.fit.service_demand import cores_text
from capacity.report.repeats import HEADLINE_FIGURE
from capacity.report.source import ReportSource, TierRun
from capacity.report.units import (
    MISSING,
    basis_label,
    estimate_interval,
    estimate_value,
    number,
    percent,
)
from capacity.results.run_file import Overload
from capacity.results.verdict_text import (
    LABELS,
    OVERLOAD_LABELS,
    backlog_text,
    limit_of,
    limit_sentence,
    overload_note,
    overload_sentence,
    share_text,
)
from capacity.results.verdicts import NOT_THE_SERVERS, kept_up
from capacity.sweep.sweep_file import MatrixRow as SweepRow
from capacity.sweep.sweep_file import matrix_rows

SECONDS_PER_DAY = 86_400
#: The seed's hardware profile, the machine its numbers claim: projections carry the model there.
SEED_CORES = 16
SEED_MEMORY_BYTES = 32 * 2**30


# ---------------------------------------------------------------------------------------------- matrix


class _TierLimit:
    """What a tier's one limit (``capacity.results.verdicts``, as its name in ``limit``) means for a table."""

    limit: str

    @property
    def generator_bound(self) -> bool:
        return self.limit == "generator"

    @property
    def left_out(self) -> bool:
        """Its figures are not the server's (generator-bound or disturbed): greyed, never fitted."""
        return self.limit in NOT_THE_SERVERS


@dataclass(frozen=True)
class MatrixRow(_TierLimit):
    """One tier in the scalability matrix: ``capacity.sweep.sweep_file``' row of the tier (the same figures
    ``capacity sweep`` prints) with what the report adds. ``None``: not measured, or the tier never ran."""

    tier: str
    anchor: str
    status: str  # the sweep's tier status: done, failed, interrupted, skipped, pending
    ran: bool
    offered: float | None  # requests/s (orders, cancels and book reads), mean over the steady window
    achieved: float | None  # requests/s answered successfully
    orders: float | None  # orders/s the exchange accepted, when it reports them
    trades: float | None  # trades/s, when the exchange reports it
    users: int | None
    cpu_cores: float | None  # mean over the steady window
    rss_mb: float | None  # largest RSS of the run
    p99_all_ms: float | None  # all outcomes: what the SLO holds the tier to
    p99_ms: float | None  # corrected, successes only
    p99_raw_ms: float | None
    slo_p99_ms: float | None
    error_rate: float | None  # 0-1
    verdict: str  # PASS / FAIL; "" when the tier did not run
    limit: str  # the tier's one limit (capacity.results.verdicts), "" when it did not run
    notes: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.verdict == "PASS"


@dataclass(frozen=True)
class Column:
    """A matrix column: its key (CSV header, JSON key), name and unit, and how a cell reads."""

    key: str
    name: str
    unit: str
    value: Callable[[MatrixRow], Any]
    text: Callable[[MatrixRow], str]
    optional: bool = False  # hidden in HTML and Markdown when no row has a value
    numeric: bool = True

    @property
    def header(self) -> str:
        """``Offered (requests/s)``."""
        return f"{self.name} ({self.unit})" if self.unit else self.name


def _numeric(key: str, name: str, unit: str, attr: str, optional: bool = False) -> Column:
    """A column of one numeric ``MatrixRow`` attribute, shown to three significant figures."""
    return Column(
        key, name, unit, lambda r: getattr(r, attr), lambda r: number(getattr(r, attr)), optional=optional
    )


def _text(key: str, name: str, value: Callable[[MatrixRow], Any], text: Callable[[MatrixRow], str]) -> Column:
    return Column(key, name, "", value, text, numeric=False)


MATRIX_COLUMNS: tuple[Column, ...] = (
    _text("tier", "Load level", lambda r: r.tier, lambda r: r.tier),
    _numeric("offered_requests_per_s", "Offered", "requests/s", "offered"),
    _numeric("achieved_requests_per_s", "Achieved", "requests/s", "achieved"),
    _numeric("orders_per_s", "Orders", "orders/s", "orders", optional=True),
    _numeric("trades_per_s", "Trades", "trades/s", "trades", optional=True),
    _numeric("users", "Users", "", "users"),  # the header is the unit
    _numeric("cpu_cores", "CPU", "cores", "cpu_cores"),
    _numeric("rss_mb", "Memory", "MB RSS", "rss_mb"),
    _numeric("p99_all_outcomes_ms", "P99 all outcomes", "ms", "p99_all_ms", optional=True),
    _numeric("p99_corrected_ms", "P99 corrected", "ms", "p99_ms"),
    _numeric("p99_raw_ms", "P99 raw", "ms", "p99_raw_ms"),
    _numeric("slo_p99_ms", "SLO P99", "ms", "slo_p99_ms"),
    Column("error_rate", "Errors", "%", lambda r: r.error_rate, lambda r: _percent_number(r.error_rate)),
    _text("slo_verdict", "SLO", lambda r: r.verdict, lambda r: r.verdict),
    _text("limit", "Limit", lambda r: r.limit, lambda r: LABELS.get(r.limit, "")),
    _text("notes", "Notes", lambda r: "; ".join(r.notes), lambda r: "; ".join(r.notes)),
)


def visible_columns(rows: Sequence[MatrixRow]) -> tuple[Column, ...]:
    """The columns worth showing: optional ones only when some row has a value."""
    return tuple(c for c in MATRIX_COLUMNS if not c.optional or any(c.value(r) is not None for r in rows))


def matrix_record(row: MatrixRow) -> dict[str, Any]:
    """The row as plain values keyed like ``MATRIX_COLUMNS`` (CSV, JSON)."""
    return {c.key: c.value(row) for c in MATRIX_COLUMNS}


def _percent_number(fraction: float | None) -> str:
    """A fraction as a percentage without the sign (the header carries the unit)."""
    return MISSING if fraction is None else fmt(100 * fraction) if fraction else "0"


def anchor(name: str) -> str:
    """An HTML id for a tier section: ``tier-<name>`` with anything but letters, digits, - and _ dropped."""
    return "tier-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")


def matrix_row(base: SweepRow, tier: TierRun | None, saturated: bool) -> MatrixRow:
    """The matrix row of one tier from the sweep's own row, its run (None: it never ran), and whether the
    fit found the server saturated there."""
    if tier is None:
        unmeasured = (None,) * 12  # offered ... error_rate
        return MatrixRow(base.level, anchor(base.level), base.status, False, *unmeasured, "", "", base.notes)
    run, s = tier.run, tier.run.summary
    notes = [n for n in base.notes if n != "generator-bound"]  # the Limit column says it
    if not s.slo.passed:
        notes.append("SLO fail")
    if saturated:
        notes.append("server saturated")
    users = run.scenario.get("load", {}).get("concurrent_users")  # the effective scenario
    return MatrixRow(
        tier=tier.name,
        anchor=anchor(tier.name),
        status=base.status,
        ran=True,
        offered=base.offered,
        achieved=base.achieved,
        orders=s.exchange_orders_per_sec_mean,
        trades=base.trades_per_s,
        users=users if isinstance(users, int) else None,
        cpu_cores=base.server_cores,
        rss_mb=base.rss_mb,
        p99_all_ms=s.all_outcomes.p99_ms if s.all_outcomes and s.all_outcomes.count else None,
        p99_ms=base.p99_corrected_ms,
        p99_raw_ms=base.p99_raw_ms,
        slo_p99_ms=s.slo.p99_limit_ms,
        error_rate=s.error_rate,
        verdict=s.slo.verdict,
        limit="" if run.status == "failed" else limit_of(s).kind,
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class SummaryTable:
    """The seed's "Performance Capacity Summary", measured: one column per representative tier."""

    columns: tuple[str, ...]  # "Minimum — light"
    rows: tuple[tuple[str, tuple[str, ...]], ...]  # (metric with unit, one text per column)
    note: str


def summary_table(rows: Sequence[MatrixRow], server_cores: float) -> SummaryTable:
    """Minimum (lowest load), average (the tier named so, else the middle one), maximum (the highest
    achieved rate within its SLO) over the tiers whose figures are the server's (neither generator-bound
    nor disturbed). Never averages across tiers: each column is one measured tier."""
    ran = [r for r in rows if r.ran]
    server = [r for r in ran if not r.left_out]
    pool = sorted(server or ran, key=lambda r: r.offered or 0.0)
    within = [r for r in pool if r.passed]
    peak = max(within or pool, key=lambda r: r.achieved or 0.0)
    average = next((r for r in pool if r.tier == "average"), pool[len(pool) // 2])
    roles = [("Minimum", pool[0]), ("Average", average)]
    roles.append(("Maximum (peak within SLO)" if within else "Maximum (peak; no tier met its SLO)", peak))
    picked: dict[str, list[str]] = {}
    for role, row in roles:  # a tier that fills two roles gets one column
        picked.setdefault(row.tier, []).append(role)
    by_name = {r.tier: r for r in pool}
    columns = [(" / ".join(names), by_name[tier]) for tier, names in picked.items()]
    metrics: list[tuple[str, Callable[[MatrixRow], str]]] = [
        ("Requests/s achieved (offered)", lambda r: f"{number(r.achieved)} ({number(r.offered)})"),
        ("Orders/s", lambda r: number(r.orders)),
        ("Trades/s", lambda r: number(r.trades)),
        ("Concurrent users", lambda r: number(r.users)),
        (
            "Latency P99 all outcomes (SLO)",
            lambda r: f"{number(r.p99_all_ms, 'ms')} (< {number(r.slo_p99_ms, 'ms')})",
        ),
        (
            "Latency P99 corrected, successes",
            lambda r: number(r.p99_ms, "ms"),
        ),
        ("CPU (cores, share of budget)", lambda r: _cpu_text(r.cpu_cores, server_cores)),
        ("Memory (RSS)", lambda r: number(r.rss_mb, "MB")),
        (
            "Daily volume at this rate",
            lambda r: number(r.orders and r.orders * SECONDS_PER_DAY, "orders/day"),
        ),
        ("SLO verdict", lambda r: r.verdict),
    ]
    for label, attr in (
        ("Trades/s", "trades"),
        ("Orders/s", "orders"),
        ("Latency P99 all outcomes", "p99_all_ms"),
    ):
        if all(getattr(r, attr) is None for r in rows):
            metrics = [m for m in metrics if not m[0].startswith(label)]
    excluded = [r.tier for r in ran if r.left_out]
    note = (
        "Each column is one measured tier, never an average of tiers. Requests/s count every request the "
        "scenario's mix sends (orders, cancels, book reads); orders/s only the orders the exchange accepted."
    )
    if excluded and server:
        note += f" Tiers left out (generator-bound or disturbed): {', '.join(excluded)}."
    elif not server:
        note += (
            " No tier measured the server alone (generator-bound or disturbed): these are not server "
            "capacity."
        )
    return SummaryTable(
        columns=tuple(f"{role} — {row.tier}" for role, row in columns),
        rows=tuple((label, tuple(text(row) for _, row in columns)) for label, text in metrics),
        note=note,
    )


def _cores(cores: float | None) -> str:
    return MISSING if cores is None else cores_text(cores)


def _cpu_text(cores: float | None, budget: float) -> str:
    if cores is None:
        return MISSING
    return f"{_cores(cores)} ({fmt(100 * cores / budget)} % of {fmt(budget)})"


# ---------------------------------------------------------------------------------------------- tiers


@dataclass(frozen=True)
class TargetRow:
    """One line of a tier's targets-versus-measured table; ``verdict`` PASS / FAIL / "" (information)."""

    metric: str
    target: str
    measured: str
    verdict: str = ""


@dataclass(frozen=True)
class TierView(_TierLimit):
    """One tier's section: what the scenario asked for, what was measured, and the verdicts."""

    name: str
    anchor: str
    index: int
    description: str
    path: str
    status: str
    problem: str | None
    verdict: str
    reasons: tuple[str, ...]
    limit: str  # the tier's one limit (capacity.results.verdicts)
    limit_sentence: str
    notes: tuple[str, ...]
    rows: tuple[TargetRow, ...]


def tier_view(index: int, tier: TierRun, row: MatrixRow, shown: Sequence[str] = ()) -> TierView:
    """The section of one tier; ``shown``: notes the report already shows once at the top."""
    run, s = tier.run, tier.run.summary
    load = run.scenario.get("load", {})
    target_rate = run.overrides.orders_per_second or load.get("orders_per_second")
    ratio = s.achieved_ratio
    kept = "" if ratio is None else ("PASS" if kept_up(s.offered_rate, s.achieved_rate) else "FAIL")
    limit = None if run.status == "failed" else limit_of(s)  # a failed run's problem says it all
    slo = s.slo
    ramp = load.get("ramp_up")
    recovery = run.scenario.get("recovery")
    duration = run.overrides.duration_s or load.get("duration")
    rows: tuple[TargetRow, ...] = (
        TargetRow(
            "Requests/s",
            number(target_rate, "requests/s"),
            f"{number(s.achieved_rate, 'requests/s')} ({percent(ratio)} of offered)",
            kept,
        ),
        TargetRow("Orders/s accepted", "", number(s.exchange_orders_per_sec_mean, "orders/s")),
        TargetRow("Users", number(row.users, "users"), number(row.users, "users")),
        TargetRow(
            "P99 all outcomes" if s.all_outcomes and s.all_outcomes.count else "P99 corrected",
            f"≤ {number(slo.p99_limit_ms, 'ms')}",
            number(slo.p99_ms, "ms"),
            "PASS" if slo.p99_ms is not None and slo.p99_ms <= slo.p99_limit_ms else "FAIL",
        ),
        TargetRow(
            "Error rate",
            f"≤ {percent(slo.error_rate_limit)}",
            percent(slo.error_rate),
            "PASS" if slo.error_rate is not None and slo.error_rate <= slo.error_rate_limit else "FAIL",
        ),
        TargetRow("P99 corrected (successes)", "", number(s.corrected.p99_ms, "ms")),
        TargetRow(
            "P50 / P99.9 / max corrected",
            "",
            " / ".join(
                number(v, "ms") for v in (s.corrected.p50_ms, s.corrected.p999_ms, s.corrected.max_ms)
            ),
        ),
        TargetRow("P99 raw", "", number(s.raw.p99_ms, "ms")),
        TargetRow("Refused (503, 429)", "", percent(s.shed_rate)),
        TargetRow(
            "Server CPU mean / max",
            "",
            f"{number(s.server_cores_used_mean)} / {_cores(s.server_cores_used_max)}",
        ),
        TargetRow("Server RSS (max)", "", number(row.rss_mb, "MB")),
        TargetRow("Resting orders (max)", "", number(s.exchange_resting_orders_max, "orders")),
        TargetRow(
            "Generator CPU mean / max",
            f"< 90 % of {cores_text(s.generator_cores)}",
            f"{number(s.generator_cpu_percent_mean)} / {number(s.generator_cpu_percent_max, '% of a core')}",
            "FAIL" if s.generator_bound else "PASS",
        ),
        TargetRow(
            "Duration",
            f"{number(duration, 's')}"
            + (f" (ramp {number(ramp.get('duration'), 's')})" if ramp else "")
            + (_recovery_target(recovery) if recovery else ""),
            f"steady t = {s.steady_start_s}{DASH}{s.steady_end_s} s",
        ),
    )
    if s.other_cpu_percent_mean is not None:  # other work on the machine disturbs the measurement
        rows += (TargetRow("Other processes' CPU", "", number(s.other_cpu_percent_mean, "% of a core")),)
    if s.overload is not None:
        rows += (TargetRow("Overload", "", overload_sentence(s.overload)),)
    return TierView(
        name=tier.name,
        anchor=row.anchor,
        index=index,
        description=str(run.scenario.get("description", "")),
        path=str(tier.path),
        status=run.status,
        problem=run.problem,
        verdict=slo.verdict,
        reasons=slo.reasons,
        limit=limit.kind if limit else "",
        limit_sentence=limit_sentence(limit) if limit else "",
        notes=tuple(n for n in (*s.notes, *run.notes) if n not in shown),
        rows=rows,
    )


def _recovery_target(recovery: dict[str, Any]) -> str:
    """`` then 20 s at 500 requests/s to recover``: the scenario's recovery phase as its table shows it."""
    rate = number(recovery.get("orders_per_second"), "requests/s")
    return f", then {number(recovery.get('duration'), 's')} at {rate} to recover"


# ---------------------------------------------------------------------------------------------- estimates


@dataclass(frozen=True)
class EstimateRow:
    """An ``Estimate`` with a label, and its texts as the tables show them."""

    label: str
    estimate: Estimate
    highlight: bool = False

    @property
    def basis(self) -> str:
        return self.estimate.basis

    @property
    def badge(self) -> str:
        return basis_label(self.estimate.basis)

    @property
    def value(self) -> str:
        return estimate_value(self.estimate)

    @property
    def interval(self) -> str:
        return estimate_interval(self.estimate)

    @property
    def note(self) -> str:
        """The estimate's note, and why it has no interval when it could not have one."""
        return "; ".join(filter(None, (self.estimate.note, self.estimate.no_interval)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "text": self.value,
            "interval_text": self.interval,
            **asdict(self.estimate),
        }


def efficiency_rows(model: CapacityModel) -> tuple[EstimateRow, ...]:
    """The seed's "Resource Efficiency", fitted."""
    demand, memory = model.service_demand, model.memory
    return (
        EstimateRow("Throughput per core", demand.requests_per_core),
        EstimateRow("Cores per 1,000 requests/s", demand.cores_per_1k_requests),
        EstimateRow("CPU time per request", demand.cpu_seconds_per_request),
        EstimateRow("Idle CPU (zero load)", demand.idle_cores),
        EstimateRow("Memory per resting order", memory.bytes_per_resting_order),
        EstimateRow("Memory per 10,000 resting orders", memory.mb_per_10k_resting_orders),
        EstimateRow("Memory per 1,000 requests/s", memory.mb_per_1k_requests_per_s),
        EstimateRow("Base memory (zero load)", memory.base_mb),
    )


def breaking_rows(model: CapacityModel) -> tuple[EstimateRow, ...]:
    """The seed's "Breaking Point Analysis", fitted: four limits, then the recommended maximum."""
    points = model.breaking_points
    labels = {
        "cpu": "CPU saturation",
        "memory": "Memory exhaustion",
        "latency": "Latency degradation",
        "throughput": "Throughput saturation",
    }
    rows = [
        EstimateRow(
            labels[name] + (" (binding)" if name == points.binding else ""), est, name == points.binding
        )
        for name, est in points.limits().items()
    ]
    buffer = f"{points.safety_buffer:.0%} safety buffer"
    rows.append(EstimateRow(f"Recommended maximum ({buffer})", points.recommended_max, True))
    return tuple(rows)


@dataclass(frozen=True)
class OverloadRow(_TierLimit):
    """One tier past its capacity (or with a recovery phase): its degraded-mode figures as the breaking-point
    section shows them, and its verdict (``capacity.results.verdicts.overload_verdict``) in words. A
    disturbed tier's row is greyed as in the matrix: its figures are not the server's alone."""

    tier: str
    anchor: str
    limit: str  # the tier's one limit
    kind: str  # kept_up, degraded, overwhelmed, collapsed
    label: str
    offered: str
    goodput: str
    refused: str
    admitted_p99: str
    refused_p99: str
    backlog: str
    recovery: str
    sentence: str
    overload: Overload

    def to_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in asdict(self).items() if k != "overload"},
            "figures": asdict(self.overload),
        }


def overload_rows(source: ReportSource, matrix: Sequence[MatrixRow]) -> tuple[OverloadRow, ...]:
    """The tiers that have degraded-mode figures, in sweep order."""
    anchors = {row.tier: row.anchor for row in matrix}
    rows = []
    for tier in source.tiers:
        o = tier.run.summary.overload
        if o is None or tier.run.status == "failed":
            continue
        limit = limit_of(tier.run.summary)
        disturbed = limit.kind == "disturbed"
        recovery = o.recovery
        if recovery is None:
            recovered = MISSING
        elif recovery.time_to_recover_s is None:
            recovered = f"not within {number(recovery.duration_s, 's')}"
        else:
            recovered = number(recovery.time_to_recover_s, "s")
        rows.append(
            OverloadRow(
                tier=tier.name,
                anchor=anchors.get(tier.name, ""),
                limit=limit.kind,
                kind=o.kind,
                label=OVERLOAD_LABELS[o.kind],
                offered=number(o.offered_rate, "requests/s"),
                goodput=number(o.goodput, "requests/s"),
                refused=share_text(o.refused_share),
                admitted_p99=number(o.admitted_p99_ms, "ms"),
                refused_p99=number(o.refused_p99_ms, "ms"),
                backlog=backlog_text(o),
                recovery=recovered,
                sentence=overload_sentence(o)
                + (" (disturbed: not the server's figures alone)" if disturbed else ""),
                overload=o,
            )
        )
    return tuple(rows)


@dataclass(frozen=True)
class ProjectionView:
    """The model carried to a machine that was not measured: always labelled, assumptions listed."""

    title: str
    rows: tuple[EstimateRow, ...]
    assumptions: tuple[str, ...]


def projection_views(source: ReportSource) -> tuple[ProjectionView, ...]:
    """Projections to the machine ``capacity fit --project-cores`` asked for (``fit.json``), to every core
    of this machine (if the server had fewer), and to the seed's hardware profile."""
    model, options, logical_cpus = source.model, source.options, source.environment.logical_cpus
    targets: list[tuple[str, float, int | None]] = []
    if options.project_cores:
        memory = options.project_memory_bytes or options.memory_bytes
        size = "" if memory is None else f", {fmt(memory / 2**30)} GiB"
        targets.append(
            (
                f"As asked of capacity fit: {cores_text(options.project_cores)}{size}",
                options.project_cores,
                memory,
            )
        )
    if logical_cpus > model.available_cores:
        targets.append((f"This machine, all {logical_cpus} CPUs for the server", logical_cpus, None))
    targets.append(
        (f"The seed's hardware profile: {SEED_CORES} cores, 32 GiB", SEED_CORES, SEED_MEMORY_BYTES)
    )
    views = []
    for title, cores, memory in targets:
        p = model.project(cores=cores, memory_bytes=memory)
        rows = [
            EstimateRow("CPU-bound rate, linear per core", p.cpu_bound_rate),
            EstimateRow("CPU-bound rate, Universal Scalability Law", p.usl_bound_rate),
            EstimateRow("Memory-bound rate", p.memory_bound_rate),
            EstimateRow("Max throughput", p.max_throughput, True),
            EstimateRow(f"Recommended maximum ({p.safety_buffer:.0%} buffer)", p.recommended_max, True),
        ]
        if memory is None:
            rows = [r for r in rows if r.label != "Memory-bound rate"]
        views.append(ProjectionView(title, tuple(rows), p.assumptions))
    return tuple(views)


# ---------------------------------------------------------------------------------------------- formulas


@dataclass(frozen=True)
class FormulaBlock:
    """A titled list of statements, as the seed's "CPU Scaling Pattern" and "Memory Scaling Pattern"."""

    title: str
    lines: tuple[str, ...]


def formula_blocks(model: CapacityModel) -> tuple[FormulaBlock, ...]:
    """The fitted formulas, grouped as the seed groups them; every line from the model's own statements."""
    parts = (
        ("CPU scaling pattern", model.service_demand.formulas()),
        ("Memory scaling pattern", model.memory.formulas()),
        ("Latency against load", model.latency.formulas()),
        ("Throughput", model.throughput.formulas()),
        ("Concurrency (Universal Scalability Law)", model.usl.formulas()),
        ("Breaking points", model.breaking_points.formulas()),
    )
    blocks = [FormulaBlock(title, tuple(lines)) for title, lines in parts]
    if model.excluded:
        blocks.insert(0, FormulaBlock("Left out of every fit", tuple(_excluded(model))))
    return tuple(blocks)


def _excluded(model: CapacityModel) -> list[str]:
    return [f"{name}: {why}" for name, why in model.excluded.items()]


# ---------------------------------------------------------------------------------------------- all


@dataclass(frozen=True)
class EnvironmentRow:
    label: str
    value: str


@dataclass(frozen=True)
class ReportView:
    """Everything a report shows."""

    title: str
    kind: str
    name: str
    description: str
    source_path: str
    headline: str
    environment: tuple[EnvironmentRow, ...]
    summary: SummaryTable
    matrix: tuple[MatrixRow, ...]
    columns: tuple[Column, ...]
    tiers: tuple[TierView, ...]
    efficiency: tuple[EstimateRow, ...]
    breaking_points: tuple[EstimateRow, ...]
    projections: tuple[ProjectionView, ...]
    formulas: tuple[FormulaBlock, ...]
    fit_options: str
    warnings: tuple[str, ...] = field(default=())
    claims: AuditRecord | None = None  # the claims audit, when the sweep was audited
    overload: tuple[OverloadRow, ...] = ()  # tiers past their capacity: degraded mode, collapse, recovery
    overload_note: str = field(default_factory=overload_note)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every table, with numbers as numbers (the matrix) and estimates in full."""
        return {
            "title": self.title,
            "kind": self.kind,
            "name": self.name,
            "description": self.description,
            "source": self.source_path,
            "headline": self.headline,
            "warnings": list(self.warnings),
            "environment": {r.label: r.value for r in self.environment},
            "summary": {
                "columns": list(self.summary.columns),
                "rows": [{"metric": label, "values": list(v)} for label, v in self.summary.rows],
                "note": self.summary.note,
            },
            "matrix": [matrix_record(r) for r in self.matrix],
            "tiers": [{**asdict(t), "rows": [asdict(r) for r in t.rows]} for t in self.tiers],
            "efficiency": [r.to_dict() for r in self.efficiency],
            "breaking_points": [r.to_dict() for r in self.breaking_points],
            "overload": [r.to_dict() for r in self.overload],
            "overload_note": self.overload_note,
            "projections": [
                {"title": p.title, "rows": [r.to_dict() for r in p.rows], "assumptions": list(p.assumptions)}
                for p in self.projections
            ],
            "formulas": [{"title": b.title, "lines": list(b.lines)} for b in self.formulas],
            "fit_options": self.fit_options,
            "claims_audit": None if self.claims is None else asdict(self.claims),
        }


def _engines(source: ReportSource) -> str:
    """The engine(s) and process counts the tiers were measured with, e.g. ``native, 1 process``."""
    seen = dict.fromkeys(
        f"{t.run.loadgen.engine}, {t.run.loadgen.workers} process{'es' if t.run.loadgen.workers > 1 else ''}"
        for t in source.tiers
    )
    return "; ".join(seen) + " (docs/engines.md)"


def environment_rows(source: ReportSource) -> tuple[EnvironmentRow, ...]:
    """The seed's "System Specifications", as the first tier's run recorded them."""
    env = source.environment
    cores = f"{env.logical_cpus} logical" + (f", {env.physical_cpus} physical" if env.physical_cpus else "")
    freq = f" at {number(env.cpu_freq_mhz, 'MHz')}" if env.cpu_freq_mhz else ""
    revision = env.git_revision[:12] if env.git_revision else MISSING
    if env.git_dirty:
        revision += " (uncommitted changes)"
    packages = ", ".join(f"{k} {v}" for k, v in env.packages.items() if v)
    if env.pinned:
        placement = (
            f"server on CPU {_cpus(env.server_cpus)}, load generator on CPU {_cpus(env.generator_cpus)}"
        )
    else:
        placement = "not pinned: server and load generator shared every CPU"
    rows = [
        ("CPU", f"{env.cpu_model or 'unknown model'}{freq}"),
        ("Cores", cores + (f"; governor {env.cpu_governor}" if env.cpu_governor else "")),
        ("Memory", number(env.memory_total_bytes / 2**30, "GiB")),
        ("OS", f"{env.os} {env.kernel} ({env.platform})"),
        ("Python", f"{env.python_implementation} {env.python_version}"),
        ("Versions", packages or MISSING),
        ("Git revision", revision),
        ("CPU placement", placement),
        ("Load generator", _engines(source)),
        ("Host", env.hostname),
        ("Load average at start (1 min)", number(env.load_average_1m)),
        ("Target", f"{source.tiers[0].run.target.url} ({_target(source)})"),
        ("Measured", f"{source.tiers[0].run.started_utc} → {source.tiers[-1].run.finished_utc}"),
    ]
    return tuple(EnvironmentRow(label, value) for label, value in rows)


def _cpus(cpus: Sequence[int] | None) -> str:
    return ", ".join(str(c) for c in cpus) if cpus else "?"


def _target(source: ReportSource) -> str:
    return "embedded reference exchange" if source.tiers[0].run.target.embedded else "external exchange"


def headline(model: CapacityModel, repeats: RepeatSpread | None = None) -> str:
    """The recommended maximum and what binds it; for a repeated sweep, the range its repeats gave."""
    if not model.tiers:
        return "No tier completed, so nothing could be fitted: no recommended maximum."
    points = model.breaking_points
    rec = points.recommended_max
    if not rec.known:
        return f"No recommended maximum: {rec.note}."
    text = (
        f"Recommended maximum {estimate_value(rec)} ({basis_label(rec.basis)}), "
        f"set by the {points.binding} limit less a {points.safety_buffer:.0%} safety buffer."
    )
    spread = next((f for f in repeats.figures if f.key == HEADLINE_FIGURE), None) if repeats else None
    if spread is not None and spread.low is not None:
        text += (
            f" Its {len(spread.per_repeat)} repeats, each fitted alone, gave {spread.spread_text()}"
            " (see Spread between repeats)."
        )
    return text


def build_view(source: ReportSource) -> ReportView:
    """Every table of the report for ``source``."""
    model = source.model
    runs = {t.name: t for t in source.tiers}
    saturated = model.throughput.reasons
    matrix = tuple(
        matrix_row(base, runs.get(base.level), base.level in saturated) for base in matrix_rows(source.result)
    )
    warnings = _shared_notes(source)
    if source.status != "completed":
        warnings = (f"The {source.kind} is {source.status}: not every tier ran to the end.", *warnings)
    tiers = tuple(tier_view(i, runs[r.tier], r, warnings) for i, r in enumerate(matrix, 1) if r.ran)
    what = "Sweep" if source.kind == "sweep" else "Run"
    return ReportView(
        title=f"Capacity report — {source.name}",
        kind=source.kind,
        name=source.name,
        description=source.description,
        source_path=str(source.path),
        headline=headline(model, source.repeats),
        environment=environment_rows(source),
        summary=summary_table(matrix, model.available_cores),
        matrix=matrix,
        columns=visible_columns(matrix),
        tiers=tiers,
        efficiency=efficiency_rows(model),
        breaking_points=breaking_rows(model),
        projections=projection_views(source),
        formulas=formula_blocks(model),
        fit_options=(
            f"{what} of {len(matrix)} tier(s); fitted for {fmt(model.available_cores)} server core(s) "
            f"({source.options.origin}), {_memory(model.memory_bytes)}, "
            f"{model.safety_buffer:.0%} safety buffer, {model.confidence:.0%} intervals"
        ),
        warnings=tuple(warnings),
        claims=source.audit,
        overload=overload_rows(source, matrix),
    )


def _shared_notes(source: ReportSource) -> tuple[str, ...]:
    """Run notes every tier has (e.g. "synthetic sample data"): shown once at the top, not per tier."""
    if len(source.tiers) < 2:
        return ()
    first, *rest = (set(t.run.notes) for t in source.tiers)
    return tuple(sorted(first.intersection(*rest)))


def _memory(memory_bytes: int | None) -> str:
    return "no memory size" if memory_bytes is None else f"{fmt(memory_bytes / 2**30)} GiB memory"
