"""capacity audit: the claims format, each verdict kind on the recorded sweep, the seed's own arithmetic,
units and tolerances, bad claims files (file:line, exit 2), and the report's Claims audit section."""

from __future__ import annotations

import json
import shutil
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import support

from capacity.audit.claims import ClaimsError, load_claims
from capacity.audit.evidence import Figure, SweepEvidence
from capacity.audit.judge import audit, compare, inconsistency
from capacity.audit.render import AUDIT_FILE, read_audit, rewrite, to_record
from capacity.audit.units import to_base, unit_of
from capacity.fit.inputs import fit_result
from capacity.sweep.sweep_file import read_sweep

SEED_CLAIMS = support.REPO_ROOT / "claims" / "seed.yaml"
HEADER = """\
document: test document
hardware: {cores: 16, memory: 32GB}
claims:
"""


def claims_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text(HEADER + textwrap.indent(textwrap.dedent(body), "  "))
    return path


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """The recorded three-tier sweep (light 50/s, minimum 75/s, medium 100/s on one server core), copied:
    an audit writes audit.json into it."""
    copy = tmp_path / "sweep"
    shutil.copytree(support.FIXTURES / "sweep-small", copy)
    return copy


def evidence_of(sweep: Path) -> SweepEvidence:
    result = read_sweep(sweep)
    return SweepEvidence(result, fit_result(result).model)


EVERY_KIND = """\
- id: low_p99
  source: {section: s, quote: "P99 under a second at 50/s"}
  metric: p99_latency
  op: "<"
  value: 1
  unit: s
  at: {rate: 40, cores: 1}
- id: fast_p99
  source: {section: s, quote: "P99 under 1 us at 50/s"}
  metric: p99_latency
  op: "<"
  value: 1
  unit: us
  at: {rate: 40, cores: 1}
- id: big_machine
  source: {section: s, quote: "1,000 orders/s on 16 cores"}
  metric: rate
  op: ">="
  value: 1000
  unit: orders/s
- id: efficiency
  source: {section: s, quote: "85 % scaling efficiency"}
  metric: scaling_efficiency
  op: "≈"
  value: 85
  unit: "%"
- id: doubled
  source: {section: s, quote: "twice the big machine: 3,000/s"}
  metric: rate
  op: ">="
  value: 3000
  unit: orders/s
  formula: big_machine * 2
"""


def test_each_verdict_kind_on_the_recorded_sweep(tmp_path: Path, sweep: Path) -> None:
    result = audit(load_claims(claims_file(tmp_path, EVERY_KIND)), evidence_of(sweep), str(sweep))
    kinds = {v.claim.id: v for v in result.verdicts}
    assert kinds["low_p99"].kind == "holds" and kinds["low_p99"].measured < 1  # seconds, as claimed
    assert kinds["fast_p99"].kind == "refuted" and kinds["fast_p99"].ratio > 1
    assert kinds["big_machine"].kind == "projected" and kinds["big_machine"].meets is True
    assert "16 cores" in kinds["big_machine"].basis
    assert kinds["efficiency"].kind == "untestable" and "one core count" in kinds["efficiency"].reason
    assert kinds["doubled"].kind == "inconsistent" and "2,000" in kinds["doubled"].reason
    assert result.tally == {"holds": 1, "refuted": 1, "projected": 1, "untestable": 1, "inconsistent": 1}
    assert result.failed


def test_the_seeds_three_inconsistencies_by_arithmetic_alone() -> None:
    claims = load_claims(SEED_CLAIMS)
    assert len(claims.claims) >= 30
    formula = inconsistency(claims.claim("max_rate"), claims)  # 750 x 16 x 0.85 = 10,200, then 12,000
    assert (
        formula is not None and formula.kind == "inconsistent" and formula.measured == pytest.approx(10_200)
    )
    memory = inconsistency(claims.claim("memory_exhaustion"), claims)  # 32 GB reached at ~15,500/s
    assert memory is not None and memory.measured == pytest.approx(15_475)
    daily = inconsistency(claims.claim("max_daily"), claims)  # 12,000/s for all 86,400 s of a day
    assert daily is not None and "86,400 s" in daily.reason and "peak" in daily.reason
    assert inconsistency(claims.claim("avg_daily"), claims) is None  # 5,000/s sustained: 432M a day


def test_units_and_tolerances() -> None:
    ms, s, gb, gib = (unit_of(text) for text in ("ms", "s", "GB", "GiB"))
    assert ms and s and gb and gib
    assert to_base(20, ms) == pytest.approx(to_base(0.02, s))
    assert to_base(1, gib) == 2**30 and to_base(1, gb) == 1e9
    claim = load_claims(SEED_CLAIMS).claim("memory_baseline")  # ≈ 50 MB, tolerance 0.5
    near = compare(claim, Figure(70e6, "measured", "test"))
    far = compare(claim, Figure(80e6, "measured", "test"))
    assert near.kind == "holds" and far.kind == "refuted" and far.ratio == pytest.approx(1.6)
    in_gib = replace(claim, unit=gib, value=1, tolerance=0.05)  # 1 GiB is 7 % more than 1 GB
    assert compare(in_gib, Figure(1e9, "measured", "test")).kind == "refuted"
    assert compare(in_gib, Figure(2**30, "measured", "test")).kind == "holds"


def test_orders_are_a_share_of_requests(tmp_path: Path, sweep: Path) -> None:
    evidence = evidence_of(sweep)
    body = EVERY_KIND.split("- id: efficiency")[0]
    claims = load_claims(
        claims_file(
            tmp_path,
            body
            + body.replace("big_machine", "as_requests")
            .replace("low_p99", "a")
            .replace("fast_p99", "b")
            .replace("unit: orders/s", "unit: requests/s"),
        )
    )
    result = {v.claim.id: v for v in audit(claims, evidence, str(sweep)).verdicts}
    share = evidence.order_share  # the fixture's mix: limit 70 + market 10 of every 100 requests
    assert share == pytest.approx(0.8)
    assert result["big_machine"].measured == pytest.approx(result["as_requests"].measured * share)


def test_a_figure_on_fewer_cores_only_carries_a_pass(tmp_path: Path, sweep: Path) -> None:
    body = EVERY_KIND.split("- id: big_machine")[0].replace("cores: 1", "cores: 8")
    result = {
        v.claim.id: v
        for v in audit(load_claims(claims_file(tmp_path, body)), evidence_of(sweep), "s").verdicts
    }
    assert result["low_p99"].kind == "holds"  # under a second on 1 core: so on 8
    assert result["fast_p99"].kind == "untestable" and "fewer cores" in result["fast_p99"].reason


def one_claim(metric: str = "rate", op: str = ">=", unit: str = "ops/s", extra: str = "") -> str:
    head = f"- id: a\n  source: {{section: s, quote: q}}\n  metric: {metric}\n  op: '{op}'\n"
    return head + f"  value: 5\n  unit: {unit}\n" + extra


@pytest.mark.parametrize(
    ("claim", "message"),
    [
        (one_claim(unit="ms"), "claims.yaml:9: claims[0].unit: 'ms' measures time; metric rate is a rate"),
        (
            one_claim(extra="  formula: b * 2\n"),
            "claims.yaml:10: claims[0].formula: 'b' is neither a claim id",
        ),
        (one_claim(extra="  formula: __import__('os')\n"), "claims.yaml:10: claims[0].formula: only + - * /"),
        (one_claim(metric="other"), "claims.yaml:4: claims[0].what: missing required field"),
        (one_claim(op="~"), "claims.yaml:7: claims[0].op: expected one of"),
    ],
)
def test_bad_claims_files_name_file_line_and_field(tmp_path: Path, claim: str, message: str) -> None:
    path = claims_file(tmp_path, claim)
    with pytest.raises(ClaimsError) as raised:
        load_claims(path)
    assert any(message in str(problem) for problem in raised.value.problems), raised.value.problems
    result = support.invoke_capacity("audit", path, tmp_path)
    assert result.exit_code == 2 and "claims.yaml:" in result.output


def test_a_duplicate_id_is_refused(tmp_path: Path) -> None:
    one = one_claim()
    with pytest.raises(
        ClaimsError, match=r"claims\.yaml:10: claims\[1\]\.id: 'a' is used by an earlier claim"
    ):
        load_claims(claims_file(tmp_path, one + one))


def test_the_cli_writes_audit_json_and_the_report_shows_it(tmp_path: Path, sweep: Path) -> None:
    rewritten = tmp_path / "rewrite.md"
    result = support.invoke_capacity(
        "audit", SEED_CLAIMS, sweep, "--rewrite", rewritten, "--json", tmp_path / "a.json"
    )
    assert result.exit_code == 1, result.output  # the seed's inconsistencies fail the audit
    assert "audit: 53 claims:" in result.output and "8 inconsistent" in result.output
    record = read_audit(sweep)
    assert record.failed and len(record.rows) == 53
    assert json.loads((tmp_path / "a.json").read_text())["format"] == "capacity-audit/1"
    table = rewritten.read_text()
    assert "| Orders/Second |" in table and "(p)" in table and "Maximum (Peak)" in table
    report = support.invoke_capacity("report", sweep)
    assert report.exit_code == 0, report.output
    html = (sweep / "report" / "index.html").read_text()
    assert 'id="claims-audit"' in html and "memory_exhaustion" in html
    assert "### Claims audit" in (sweep / "report" / "report.md").read_text()


def test_a_broken_audit_json_stops_the_report_with_its_name(sweep: Path) -> None:
    (sweep / AUDIT_FILE).write_text('{"format": "capacity-audit/1", "rows": 3}')
    report = support.invoke_capacity("report", sweep)
    assert report.exit_code == 2 and AUDIT_FILE in report.output and "capacity audit" in report.output


def test_the_rewrite_marks_each_cell(sweep: Path) -> None:
    evidence = evidence_of(sweep)
    result = audit(load_claims(SEED_CLAIMS), evidence, str(sweep))
    text = rewrite(result, evidence)
    assert text.count("\n| ") == 8  # the header and seven rows
    assert to_record(result).tally == result.tally
