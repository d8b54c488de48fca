"""capacity report: every section, inline figures, no external URLs, honest labels, MD/CSV/JSON, CLI errors.

Rendered from the synthetic sample sweep (``capacity.testing.sample_sweep``: 9 tiers, one generator-bound, one
overloaded), from the recorded ``tests/fixtures/sweep-small`` sweep, and from single run directories.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import support
from click.testing import CliRunner

from capacity.cli.main import main as cli
from capacity.report import ReportPaths, ReportSourceError, render_report
from capacity.report.markdown import LIMIT, render_markdown
from capacity.report.source import load_source
from capacity.report.tables import MATRIX_COLUMNS, build_view
from capacity.results.run_file import Overload, Recovery, read_run, write_run
from capacity.testing.sample_sweep import SEED_TIERS, SampleTier, write_sample_run, write_sample_sweep

FIXTURE = support.FIXTURES / "sweep-small"
SECTIONS = (
    "environment",
    "summary",
    "tiers",
    "matrix",
    "efficiency",
    "breaking-points",
    "formulas",
    "projections",
    "charts",
)
OVERVIEW_CHARTS = ("throughput", "latency", "resources", "spectrum")
# src/href/url() that point anywhere but into this file: a scheme, or a protocol-relative "//".
EXTERNAL = re.compile(
    r"""(?:\b(?:src|href|action|poster)\s*=\s*["']?\s*|url\(\s*["']?\s*)(?:[a-z][a-z0-9+.-]*:|//)""", re.I
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    sweep = write_sample_sweep(tmp_path_factory.mktemp("sample") / "sweep", duration_s=12)
    return render_report(sweep)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    return render_report(FIXTURE, tmp_path_factory.mktemp("recorded"))


def html_of(paths: ReportPaths) -> str:
    return paths.html.read_text(encoding="utf-8")


def section(html: str, ident: str) -> str:
    """The HTML of the <section> with ``id=ident`` (up to the next section at any depth)."""
    start = html.index(f'id="{ident}"')
    end = html.find("<section", start + 1)
    return html[start : end if end != -1 else len(html)]


def has_badge(html: str, basis: str, text: str) -> bool:
    """Whether ``html`` shows a badge of ``basis`` reading ``text``."""
    return re.search(rf'class="badge basis-{basis}"[^>]*>{text}<', html) is not None


def external_references(html: str) -> list[str]:
    """Attribute values and CSS urls that leave the file (data: URIs are the only scheme allowed)."""
    return [m.group(0) for m in EXTERNAL.finditer(html) if not m.group(0).rstrip().lower().endswith("data:")]


# ---------------------------------------------------------------------------------------------- HTML


def test_report_files_are_written_next_to_the_sweep(sample: ReportPaths) -> None:
    assert sample.directory.name == "report"
    for path in (sample.html, sample.markdown, sample.json, sample.csv):
        assert path.is_file() and path.stat().st_size > 0, path


@pytest.mark.parametrize("paths", ["sample", "recorded"])
def test_every_section_and_tier_is_present(paths: str, request: pytest.FixtureRequest) -> None:
    rendered: ReportPaths = request.getfixturevalue(paths)
    html = html_of(rendered)
    for ident in SECTIONS:
        assert f'<section id="{ident}">' in html, ident
    tiers = json.loads(rendered.json.read_text())["tiers"]
    assert tiers
    for tier in tiers:
        assert f'id="{tier["anchor"]}"' in html
        assert f'href="#{tier["anchor"]}"' in html  # the matrix links to the tier's section


def test_a_stopped_sweep_lists_the_tiers_that_did_not_run(tmp_path: Path) -> None:
    sweep = write_sample_sweep(tmp_path / "sweep", SEED_TIERS[:4], duration_s=8)
    record = json.loads((sweep / "sweep.json").read_text())
    record["status"] = "stopped"
    record["tiers"][-1].update(status="skipped", run_dir=None)
    (sweep / "sweep.json").write_text(json.dumps(record))
    paths = render_report(sweep)
    html = html_of(paths)
    assert "The sweep is stopped" in html
    assert "did not run (skipped)" in html[html.index('id="tiers"') : html.index('id="matrix"')]
    assert 'id="tier-medium"' not in html
    for target in re.findall(r'href="#([^"]+)"', html):  # no link into a section that is not there
        assert f'id="{target}"' in html, target
    rows = list(csv.DictReader(io.StringIO(paths.csv.read_text())))
    assert (
        rows[-1]["tier"] == "medium"
        and rows[-1]["notes"] == "skipped"
        and rows[-1]["offered_requests_per_s"] == ""
    )


@pytest.mark.parametrize("paths", ["sample", "recorded"])
def test_figures_are_embedded(paths: str, request: pytest.FixtureRequest) -> None:
    rendered: ReportPaths = request.getfixturevalue(paths)
    html = html_of(rendered)
    n_tiers = len(json.loads(rendered.json.read_text())["tiers"])
    images = re.findall(r'<img src="data:image/svg\+xml;base64,[A-Za-z0-9+/=]+"', html)
    assert len(images) >= len(OVERVIEW_CHARTS) + n_tiers
    for key in OVERVIEW_CHARTS:
        assert f'id="chart-{key}"' in section(html, "charts")


@pytest.mark.parametrize("paths", ["sample", "recorded"])
def test_no_external_urls(paths: str, request: pytest.FixtureRequest) -> None:
    html = html_of(request.getfixturevalue(paths))
    assert external_references(html) == []
    assert not re.search(r"<(?:script|link|iframe|object|embed)\b", html, re.I)
    assert "@import" not in html


def test_the_url_check_catches_what_it_should() -> None:
    bad = ['<img src="https://x/y.png">', "<a href='http://x'>", "<img src=//cdn/x>", "url( 'https://f')"]
    assert all(external_references(b) for b in bad)
    assert external_references('<img src="data:image/png;base64,AA"> <a href="#tier-x">') == []


def test_generator_bound_tier_is_greyed_with_its_reason_and_advice(sample: ReportPaths) -> None:
    html = html_of(sample)
    burst = section(html, "tier-burst")
    assert (
        'class="tier generator-bound"'
        in html[html.rindex("<section", 0, html.index('id="tier-burst"')) :][:80]
    )
    assert "the load generator, not the server, limited this tier" in burst
    assert "left out of every fit" in burst
    assert "generator&#39;s CPU was at or above 90%" in burst  # the run's own evidence, escaped
    assert "add generator processes (--processes N)" in burst
    matrix = section(html, "matrix")
    row = re.search(r'<tr class="generator-bound">.*?</tr>', matrix, re.S)
    assert row and "burst" in row.group(0) and "<td>generator</td>" in row.group(0)
    overload = section(html, "tier-overload")
    assert "generator-bound" not in overload.split("</h3>")[0]  # an overloaded server is not a generator


def test_generator_bound_tiers_get_a_grey_each_in_the_spectrum() -> None:
    """Issue 17: two generator-bound tiers drew their spectra in one grey; one tier keeps the usual grey."""
    from capacity.report.charts import GREY, _greys

    assert _greys(["burst"]) == {"burst": GREY}
    shades = _greys(["burst", "overload", "gauntlet"])
    assert len(set(shades.values())) == 3 and list(shades) == ["burst", "overload", "gauntlet"]


def test_extrapolated_estimates_carry_a_badge(tmp_path: Path) -> None:
    """Without the overload tier, CPU saturation lies beyond the measured rates: extrapolated."""
    sweep = write_sample_sweep(tmp_path / "sweep", SEED_TIERS[:7], duration_s=10)
    paths = render_report(sweep)
    html = html_of(paths)
    points = section(html, "breaking-points")
    cpu_row = re.search(r"<tr[^>]*>\s*<td>CPU saturation.*?</tr>", points, re.S)
    assert cpu_row and has_badge(cpu_row.group(0), "extrapolated", "EXTRAPOLATED")
    report = json.loads(paths.json.read_text())
    cpu = next(r for r in report["breaking_points"] if r["label"].startswith("CPU saturation"))
    assert cpu["basis"] == "extrapolated"
    assert "EXTRAPOLATED" in paths.markdown.read_text()


def test_measured_and_projection_look_different(sample: ReportPaths) -> None:
    html = html_of(sample)
    assert has_badge(section(html, "efficiency"), "measured", "measured")
    projections = section(html, "projections")
    assert 'class="projection-box"' in projections
    assert has_badge(projections, "projection", "PROJECTION")
    assert "Assumptions" in projections
    assert "basis-measured" not in projections  # a projection never passes for a measurement


def test_user_text_is_escaped(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_sample_run(run_dir, SampleTier("light", 50, 5, 15))
    data = json.loads((run_dir / "run.json").read_text())
    data["scenario"]["description"] = "<script>alert(1)</script> & more"
    (run_dir / "run.json").write_text(json.dumps(data))
    html = html_of(render_report(run_dir))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html


# ----------------------------------------------------------------------------------------- MD / CSV / JSON


def test_markdown_fits_a_pr_comment_and_holds_the_matrix(sample: ReportPaths) -> None:
    text = sample.markdown.read_text(encoding="utf-8")
    assert len(text) < 65_000
    absent = {"trades_per_s", "p99_all_outcomes_ms"}  # optional columns the sample has no values for
    header = "| " + " | ".join(c.header for c in MATRIX_COLUMNS if c.key not in absent) + " |"
    assert header in text
    for tier in SEED_TIERS:
        assert re.search(rf"^\| (~~)?{tier.name}(~~ ⊘)? \|", text, re.M), tier.name
    assert "### Tier verdicts" in text and "**overload**: FAIL" in text
    assert "Recommended maximum" in text


def test_markdown_shortens_notes_before_it_would_overflow(sample: ReportPaths, tmp_path: Path) -> None:
    view = build_view(load_source(sample.directory.parent))
    long = ("a very long note " * 400,)
    bloated = dataclasses.replace(
        view, matrix=tuple(dataclasses.replace(r, notes=long) for r in view.matrix) * 6
    )
    text = render_markdown(bloated)
    assert len(text) <= LIMIT
    assert "| overload |" in text  # every matrix row survives


def test_csv_has_the_header_and_a_row_per_tier(sample: ReportPaths) -> None:
    rows = list(csv.DictReader(io.StringIO(sample.csv.read_text(encoding="utf-8"))))
    assert list(rows[0]) == [c.key for c in MATRIX_COLUMNS]
    assert [r["tier"] for r in rows] == [t.name for t in SEED_TIERS]
    overload = rows[-1]
    assert float(overload["achieved_requests_per_s"]) < float(overload["offered_requests_per_s"]) * 0.9
    assert overload["slo_verdict"] == "FAIL"
    assert {r["limit"] for r in rows} >= {"generator", "server"}


def test_json_holds_what_the_html_shows(sample: ReportPaths) -> None:
    report = json.loads(sample.json.read_text(encoding="utf-8"))
    assert report["format"] == "capacity-report/1"
    assert len(report["matrix"]) == len(SEED_TIERS)
    assert report["model"]["format"] == "capacity-fit/1"
    assert report["model"]["excluded"] == {"burst": report["model"]["excluded"]["burst"]}
    assert {c["key"] for c in report["charts"]} >= set(OVERVIEW_CHARTS)
    for row in report["breaking_points"] + report["efficiency"]:
        assert row["unit"] and row["basis"]
    html = html_of(sample)
    assert report["headline"] in html
    for row in report["summary"]["rows"]:
        assert row["metric"] in html


# ---------------------------------------------------------------------------------------------- single run


def test_a_single_run_directory_renders_with_insufficient_data(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_sample_run(run_dir, SampleTier("average", 1000, 50, 50))
    paths = render_report(run_dir)
    assert paths.directory == run_dir / "report"
    html = html_of(paths)
    for ident in SECTIONS:
        assert f'<section id="{ident}">' in html
    assert has_badge(section(html, "efficiency"), "insufficient_data", "insufficient data")
    resources = re.search(r'id="chart-resources">\s*<img src="data:image/svg\+xml;base64,([^"]+)"', html)
    assert resources and b"no fitted line" in base64.b64decode(resources.group(1))  # said, not drawn
    assert "No recommended maximum" in html or "not reached" in section(html, "breaking-points")
    rows = list(csv.DictReader(io.StringIO(paths.csv.read_text())))
    assert [r["tier"] for r in rows] == ["average"]


def test_the_recorded_fixture_reads_as_three_tiers(recorded: ReportPaths) -> None:
    report = json.loads(recorded.json.read_text())
    assert [r["tier"] for r in report["matrix"]] == ["light", "minimum", "medium"]
    assert report["environment"]["CPU placement"].startswith("server on CPU")
    assert report["environment"]["Load generator"].endswith("(docs/engines.md)")


def test_fit_json_options_are_used(tmp_path: Path) -> None:
    """The report fits with what capacity fit recorded: cores, memory, buffer, and its projection."""
    sweep = tmp_path / "sweep"
    shutil.copytree(FIXTURE, sweep)
    inputs = {"available_cores": 2.0, "memory_bytes": 8 * 2**30, "safety_buffer": 0.3, "project_cores": 8}
    (sweep / "fit.json").write_text(json.dumps({"format": "capacity-fit/1", "inputs": inputs}))
    report = json.loads(render_report(sweep).json.read_text())
    assert report["model"]["available_cores"] == 2.0
    assert report["model"]["safety_buffer"] == 0.3
    assert "as in fit.json" in report["fit_options"]
    assert report["projections"][0]["title"] == "As asked of capacity fit: 8 cores, 8 GiB"


# ------------------------------------------------------------------------------------------ errors and CLI


def test_missing_or_invalid_directories_raise_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReportSourceError, match="no such directory"):
        render_report(tmp_path / "nope")
    with pytest.raises(ReportSourceError, match="neither a sweep"):
        render_report(tmp_path)


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt-run", "corrupt-sweep", "a-file"])
def test_cli_bad_directory_exits_2_without_a_traceback(case: str, tmp_path: Path) -> None:
    target = tmp_path / "dir"
    if case != "missing":
        target.mkdir()
    if case == "corrupt-run":
        (target / "run.json").write_text("{")
    if case == "corrupt-sweep":
        (target / "sweep.json").write_text('{"format": "capacity-sweep/9"}')
    if case == "a-file":
        target = tmp_path / "file.txt"
        target.write_text("x")
    result = CliRunner().invoke(cli, ["report", str(target)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("capacity report: error: ")
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_writes_the_report_where_asked(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_sample_run(run_dir, SampleTier("light", 50, 5, 15), duration_s=6)
    result = CliRunner().invoke(cli, ["report", str(run_dir), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "index.html").is_file()
    assert str(tmp_path / "out" / "index.html") in result.output


# ---------------------------------------------------------------------------------------------- overload


def test_breaking_points_tell_degraded_from_collapsed_with_the_figures(tmp_path: Path) -> None:
    """Two tiers past the limit: one refuses 30 % with its admitted P99 within the SLO (degraded, and
    recovers 4 s after the load drops), the other's goodput fell to a fifth of its best (collapsed)."""
    sweep = write_sample_sweep(tmp_path / "sweep", SEED_TIERS[:5], duration_s=8)
    degraded = Overload(
        kind="degraded",
        offered_rate=10_000.0,
        goodput=7_000.0,
        peak_goodput=7_100.0,
        refused_share=0.30,
        admitted_p99_ms=120.0,
        refused_p99_ms=2.5,
        p99_limit_ms=500.0,
        backlog_max=40,
        lag_max_ms=35.0,
        recovery=Recovery(start_s=8, duration_s=20, offered_rate=500, time_to_recover_s=4.0),
    )
    collapsed = dataclasses.replace(
        degraded,
        kind="collapsed",
        goodput=1_400.0,
        peak_goodput=7_000.0,
        refused_share=0.02,
        admitted_p99_ms=4_200.0,
        refused_p99_ms=None,
        backlog_max=52_000,
        lag_max_ms=9_800.0,
        recovery=dataclasses.replace(degraded.recovery, time_to_recover_s=None),  # type: ignore[type-var]
    )
    for directory, overload in (("04-medium", degraded), ("05-average", collapsed)):
        run_dir = sweep / "tiers" / directory
        run = read_run(run_dir)
        write_run(
            run_dir, dataclasses.replace(run, summary=dataclasses.replace(run.summary, overload=overload))
        )
    paths = render_report(sweep)
    part = section(html_of(paths), "breaking-points")
    assert "Past the limit: degraded or collapsed" in part
    assert (
        "degraded: refuses 30 %, admitted P99 120 ms within the SLO&#39;s 500 ms; goodput 7,000/s of "
        "10,000/s offered; recovered 4 s after the load dropped to 500/s"
    ) in part
    assert (
        "collapsed: goodput fell to 1,400/s, 20 % of the best 7,000/s it delivered (offered 10,000/s); "
        "refuses 2 %, admitted P99 4,200 ms; not recovered within the 20 s at 500/s after the load dropped"
    ) in part
    for figure in ("2.50 ms", "40 requests, up to 35 ms late", "52,000 requests, up to 9.8 s late", "4 s"):
        assert figure in part, figure
    assert "not within 20 s" in part and "Time to recover" in part
    markdown = paths.markdown.read_text()
    assert "#### Past the limit: degraded or collapsed" in markdown
    assert (
        "| medium | degraded | 10,000 requests/s | 7,000 requests/s | 30 % | 120 ms | 2.50 ms | 4 s |"
        in markdown
    )
    assert "- **average**: collapsed: goodput fell to 1,400/s" in markdown
    rows = json.loads(paths.json.read_text())["overload"]
    assert [(r["tier"], r["kind"], r["figures"]["refused_share"]) for r in rows] == [
        ("medium", "degraded", 0.30),
        ("average", "collapsed", 0.02),
    ]
