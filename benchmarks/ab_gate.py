"""The A/B gate's power and false alarms (issue 19): repeated A/B comparisons on this machine.

    python benchmarks/ab_gate.py [--power 10] [--same 20] [--busy] [--pairs 8] [--quick]

- **Power**: A runs the embedded exchange without its journal (``JOURNAL_PATH=none``), B journalling every
  order with ``JOURNAL_SYNC=full`` (a known CPU regression: tests/toolkit/gate/test_gate_e2e.py), both this
  checkout. Goal: "worse" CPU per order in at least 9 of 10. (``sync=off`` against ``full`` with the journal
  on both sides moved CPU per order by only +9 % here: the fsync waits are not CPU.)
- **False alarms**: A and B both this checkout with its defaults. Goal: "worse" in at most 1 of 20 gates.
- ``--busy``: each gate runs while another process keeps one core 50 % busy (a duty-cycled loop on the
  generator's CPU, 50 ms on, 50 ms off).

Each gate is ``capacity.gate.ab``'s ``run_pairs`` and ``compare_pairs`` on scenarios/sweeps/ab_smoke.yaml,
as ``capacity gate --against`` runs them (the worktree step, the same for every gate, is left out). Prints
each gate's verdict and change, the counts against the goals, and the gates' wall time.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Figure, MachineLoad, emit, parser

from capacity.gate.ab import PairedCheck, SideSetup, compare_pairs, run_pairs
from capacity.gate.thresholds import load_thresholds
from capacity.run.orchestrator import RunOptions, run_scenario
from capacity.scenario import load_sweep

SWEEP = ROOT / "scenarios" / "sweeps" / "ab_smoke.yaml"
THRESHOLDS = ROOT / "scenarios" / "gate" / "thresholds.yaml"


def _half_busy(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    while True:
        end = time.monotonic() + 0.05
        while time.monotonic() < end:
            pass
        time.sleep(0.05)


def one_gate(a: RunOptions, b: RunOptions, pairs: int, busy: bool) -> tuple[PairedCheck, float]:
    """The CPU-per-order check of one A/B gate (its "broken" check if the candidate broke), and its wall
    seconds."""
    thresholds = load_thresholds(THRESHOLDS)
    spinner = None
    if busy:
        spinner = multiprocessing.Process(target=_half_busy, args=(0,), daemon=True)
        spinner.start()
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="ab-bench-") as tmp:
            sides = {"A": SideSetup("A", a), "B": SideSetup("B", b)}
            runs = run_pairs(load_sweep(SWEEP), sides, pairs, Path(tmp), thresholds, run_scenario)  # type: ignore[arg-type]
            result = compare_pairs(runs, thresholds, "A", "B", thresholds.ab_alpha)
    finally:
        if spinner is not None:
            spinner.terminate()
            spinner.join()
    # A broken candidate has no metrics compared: its check ("fail") stands in, counted as such
    cpu = next((c for c in result.checks if c.key == "cpu_per_order"), None)
    return cpu or next(c for c in result.checks if c.key == "broken"), time.monotonic() - started


def _tally(verdicts: Counter[str]) -> str:
    return ", ".join(f"{verdict} {n}" for verdict, n in verdicts.most_common())


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--power", type=int, default=10, help="gates with a known regression (default 10)")
    p.add_argument("--same", type=int, default=20, help="gates of this checkout against itself (default 20)")
    p.add_argument("--pairs", type=int, default=8, help="pairs per gate (default 8, as thresholds.yaml)")
    p.add_argument("--busy", action="store_true", help="keep one core 50 %% busy during every gate")
    args = p.parse_args(argv)
    if args.quick:
        args.power, args.same, args.pairs = 1, 1, 3
    figures: list[Figure] = []
    with MachineLoad() as load:
        runs = {
            "power": (
                args.power,
                RunOptions(pin_self=True, journal_sync="off"),
                RunOptions(pin_self=True, journal_sync="full"),
            ),
            "same": (args.same, RunOptions(pin_self=True), RunOptions(pin_self=True)),
        }
        walls: list[float] = []
        counts: dict[str, int] = {}
        verdicts: dict[str, Counter[str]] = {}
        for name, (count, a, b) in runs.items():
            worse = 0
            seen = verdicts[name] = Counter()
            for index in range(1, count + 1):
                cpu, wall = one_gate(a, b, args.pairs, args.busy)
                walls.append(wall)
                worse += cpu.verdict == "worse"
                seen[cpu.verdict] += 1
                pairs = " ".join(f"{math.expm1(d) * 100:+.0f}" for d in cpu.differences)
                print(
                    f"{name} gate {index}/{count}: CPU per order {cpu.verdict}: {cpu.detail}; "
                    f"pairs {pairs} %; {wall:.0f} s",
                    flush=True,
                )
            counts[name] = worse
        where = " while one core is 50 % busy" if args.busy else ""
        if args.power:
            figures.append(
                Figure(
                    f"power: the journal found worse{where}",
                    counts["power"] / args.power,
                    "of gates",
                    0.9,
                    note=f"{counts['power']} of {args.power}; {_tally(verdicts['power'])}",
                )
            )
        if args.same:
            figures.append(
                Figure(
                    f"false alarms: the same code called worse{where}",
                    counts["same"] / args.same,
                    "of gates",
                    0.05,
                    op="<=",
                    note=f"{counts['same']} of {args.same}; {_tally(verdicts['same'])}",
                )
            )
        figures.append(
            Figure(
                "A/B gate wall time (longest)", max(walls), "s", 240.0, op="<=", note=f"{args.pairs} pairs"
            )
        )
    emit("ab_gate", figures, args, load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
