"""capacity gate --against / --baseline-target: the interleaving, the paired statistics on pairs with a
known answer, the verdicts, the worktree's life (checkout, build, clean-up also on Ctrl-C), and the whole
A/B mode against two embedded exchanges."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import support

from capacity.gate.ab import AB_METRICS, PairRun, compare_pairs, interleaving
from capacity.gate.metrics import MetricSamples, TierData
from capacity.gate.paired import bootstrap_interval, paired_test, pairs_needed, sign_flip_p, smallest_p
from capacity.gate.thresholds import Thresholds
from capacity.gate.worktree import WorktreeError, checkout, engine_of, exchange_env, resolve
from capacity.run.exchange_process import EmbeddedExchange

THRESHOLDS = Thresholds()


def test_runs_alternate_a_b_b_a() -> None:
    assert interleaving(3) == [(1, "A"), (1, "B"), (2, "B"), (2, "A"), (3, "A"), (3, "B")]
    order = [side for _, side in interleaving(6)]
    assert order.count("A") == order.count("B") == 6 and order[:4] == ["A", "B", "B", "A"]


def test_sign_flip_p_values_with_a_known_answer() -> None:
    assert sign_flip_p([1, 2, 3, 4, 5, 6]) == pytest.approx(2 / 64) == smallest_p(6)  # all one way
    assert sign_flip_p([1, -1, 1, -1]) == 1.0  # balanced: no evidence at all
    # [3, 1, -1]: |mean| 1 is reached by the signs of 4 of the 8 assignments (+-+, ++-, +--, and mirrors)
    assert sign_flip_p([3, 1, -1]) == pytest.approx(6 / 8)
    many = np.full(20, 0.1)
    assert sign_flip_p(many) < 0.001  # sampled above 16 pairs, still all one way
    low, high = bootstrap_interval([0.1, 0.2, 0.3, 0.4])
    assert 0.1 <= low < 0.25 < high <= 0.4
    test = paired_test([0.5] * 6)
    assert test.mean == pytest.approx(0.5) and test.low == pytest.approx(0.5) == test.high


def tier(
    cpu: float, *, p99: float = 3.0, problems: tuple[str, ...] = (), broken: tuple[str, ...] = ()
) -> TierData:
    values = {"cpu_per_order": cpu, "p99": p99, "throughput": 1.0, "error_rate": 0.0}
    metrics = {key: MetricSamples(values.get(key)) for key in (*AB_METRICS, "rss_per_resting_order")}
    return TierData("t", "completed", problems, 500.0, 8, {}, metrics, broken=broken)


def pairs_of(a_cpu: list[float], b_cpu: list[float], **b: object) -> list[PairRun]:
    runs = []
    for order, (pair, side) in enumerate(interleaving(len(a_cpu)), 1):
        data = tier(a_cpu[pair - 1]) if side == "A" else tier(b_cpu[pair - 1], **b)  # type: ignore[arg-type]
        runs.append(PairRun(pair, side, "t", order, f"pair-{pair}-{side}", data))
    return runs


def verdicts(runs: list[PairRun]) -> dict[str, str]:
    result = compare_pairs(runs, THRESHOLDS, "A", "B", alpha=0.05)
    return {c.key: c.verdict for c in result.checks} | {"status": result.status}


def test_a_cpu_regression_in_every_pair_is_worse() -> None:
    rng = np.random.default_rng(1)
    a = list(1e-4 * (1 + 0.05 * rng.standard_normal(6)))
    b = [x * 1.6 for x in a]  # journal sync=full against off: +60-80 % CPU per order
    found = verdicts(pairs_of(a, b))
    assert found["cpu_per_order"] == "worse" and found["status"] == "regression"
    assert verdicts(pairs_of(b, a))["cpu_per_order"] == "better"


def test_noise_alone_is_not_significant() -> None:
    rng = np.random.default_rng(2)
    a = list(1e-4 * (1 + 0.05 * rng.standard_normal(6)))
    b = list(1e-4 * (1 + 0.05 * rng.standard_normal(6)))
    found = verdicts(pairs_of(a, b))
    assert found["cpu_per_order"] == "not significant" and found["status"] == "pass"


def test_a_small_consistent_change_below_the_limit_is_not_worse() -> None:
    a = [1e-4] * 6
    found = verdicts(pairs_of(a, [1.05e-4] * 6))  # +5 %, every pair: significant but under the 10 % limit
    assert found["cpu_per_order"] == "not significant"


def test_too_few_pairs_to_reach_alpha_are_inconclusive_not_not_significant() -> None:
    a = [1e-4] * 5
    found = compare_pairs(pairs_of(a, [1.4e-4] * 5), THRESHOLDS, "A", "B", alpha=0.05)
    cpu = next(c for c in found.checks if c.key == "cpu_per_order")
    # +40 % in all five pairs, but five pairs cannot give p below 2 / 32 = 0.0625
    assert cpu.verdict == "inconclusive" and "needs 6" in cpu.detail and found.status == "inconclusive"
    assert pairs_needed(0.05) == 6 and pairs_needed(0.01) == 8
    assert verdicts(pairs_of([1e-4] * 6, [1.4e-4] * 6))["cpu_per_order"] == "worse"


def test_a_broken_candidate_fails_and_unusable_pairs_are_left_out() -> None:
    broken = pairs_of([1e-4] * 6, [1e-4] * 6, broken=("the run failed: the exchange died",))
    assert verdicts(broken)["status"] == "regression"
    runs = pairs_of([1e-4] * 6, [1e-4] * 6)
    runs = [
        r
        if r.pair > 4 or r.side == "B"
        else PairRun(r.pair, r.side, r.tier, r.order, r.run_dir, tier(1e-4, problems=("generator-bound",)))
        for r in runs
    ]
    result = compare_pairs(runs, THRESHOLDS, "A", "B", alpha=0.05)
    assert result.status == "inconclusive" and {c.pairs for c in result.checks} == {2}
    assert any("pair 1 left out" in note for note in result.notes)


@pytest.mark.timeout(300)
def test_the_worktree_is_built_from_the_revision_and_removed_afterwards() -> None:
    head = resolve("HEAD")
    with checkout("HEAD") as path:
        assert path.is_dir() and (path / "reference_exchange" / "matching.py").is_file()
        assert (
            subprocess.run(
                ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True
            ).stdout.strip()
            == head
        )
        assert engine_of(exchange_env(path)) == engine_of()  # its own build, of the same kind as ours
        listed = subprocess.run(
            ["git", "worktree", "list"], capture_output=True, text=True, cwd=support.REPO_ROOT
        ).stdout
        assert str(path) in listed
    assert not path.exists()
    with pytest.raises(KeyboardInterrupt), checkout("HEAD") as interrupted:
        raise KeyboardInterrupt  # Ctrl-C while the pairs run
    assert not interrupted.exists()
    listed = subprocess.run(
        ["git", "worktree", "list"], capture_output=True, text=True, cwd=support.REPO_ROOT
    ).stdout
    assert str(interrupted) not in listed and str(path) not in listed
    with pytest.raises(WorktreeError, match="not a commit"):
        resolve("no-such-revision-anywhere")


@pytest.mark.timeout(300)
def test_two_targets_ab_against_two_embedded_exchanges(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(
        "name: tiny\nload: {orders_per_second: 100, concurrent_users: 10, symbols: [BTCUSD], duration: 6s}\n"
        "slo: {p99_ms: 250, error_rate: 0.01}\n"
    )
    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text("min_steady_seconds: 3\nab_pairs: 3\n")
    with (
        EmbeddedExchange(env={"JOURNAL_PATH": "none"}) as a,
        EmbeddedExchange(env={"JOURNAL_PATH": "none"}) as b,
    ):
        result = support.invoke_capacity(
            "gate",
            scenario,
            "--baseline-target",
            a.url,
            "--baseline-server-pid",
            str(a.pid),
            "--target",
            b.url,
            "--server-pid",
            str(b.pid),
            "--thresholds",
            thresholds,
            "--output-dir",
            tmp_path / "ab",
            "--junit",
            tmp_path / "junit.xml",
        )
    assert result.exit_code == 0, result.output
    report = (tmp_path / "ab" / "ab.md").read_text()
    assert "capacity gate (A/B)" in report and "### Pairs in time order" in report
    pairs = report.split("### Pairs in time order")[1]
    rows = [line for line in pairs.splitlines() if line.startswith("| ") and " tiny |" in line]
    assert [row.split(" | ")[2] for row in rows] == [
        "A (baseline)",
        "B (candidate)",
        "B (candidate)",
        "A (baseline)",
        "A (baseline)",
        "B (candidate)",
    ]
    assert sorted(p.name for p in (tmp_path / "ab").iterdir() if p.is_dir()) == [
        "pair-01-A",
        "pair-01-B",
        "pair-02-A",
        "pair-02-B",
        "pair-03-A",
        "pair-03-B",
    ]
    assert 'name="cpu_per_order"' in (tmp_path / "junit.xml").read_text()


def test_bad_ab_options_exit_2(tmp_path: Path) -> None:
    for args, message in (
        (("--against", "HEAD", "--target", "http://127.0.0.1:1"), "no --baseline-target or --target"),
        (("--baseline-target", "http://127.0.0.1:1"), "needs both --baseline-target URL and --target URL"),
        (("--baseline-target", "http://10.1.1.1:1", "--target", "http://127.0.0.1:1"), "--baseline-target"),
        (("--against", "no-such-revision-anywhere"), "not a commit"),
        (("--against", "HEAD", "--pairs", "0"), "--pairs"),
        (("--against", "HEAD", "--pairs", "2"), "expected at least 3"),
        ((), "give --baseline FILE and RUN_OR_SWEEP_DIR, or --against REV"),
    ):
        result = support.invoke_capacity("gate", *args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
