"""Do the recommended maximum's intervals cover what a rerun shows? ``make demo``'s sweep, run N times.

    python benchmarks/demo_reruns.py [--runs 5] [--sweep scenarios/sweeps/quick.yaml]
    python benchmarks/demo_reruns.py --runs 5 --keep DIR      # keep the sweeps to re-fit later
    python benchmarks/demo_reruns.py --from DIR [DIR ...]     # re-fit sweeps already on disk

Runs the demo's sweep ``--runs`` times in a row (each a full sweep against fresh embedded exchanges, as
``make demo`` does; about 4 minutes each), fits each one as ``capacity fit`` does, and prints every run's
recommended maximum with its interval and the limit that set it. Then, for each run, how many of the *other*
runs' recommended maximums its interval covers: the figure an SRE relies on when reading one report's
interval. Goal: at least ``n - 2`` of ``n - 1`` on average (3 of 4 for five runs).

A run whose recommendation has no interval covers nothing. Measure on a quiet machine: other work moves the
figures and is reported beside them (``other_cpu_pct``).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Figure, MachineLoad, emit, parser


@dataclass(frozen=True)
class Recommendation:
    """One sweep's recommended maximum as its fit reports it."""

    sweep: str
    value: float | None
    low: float | None
    high: float | None
    basis: str
    binding: str | None

    def covers(self, value: float | None) -> bool:
        return (
            value is not None
            and self.low is not None
            and self.high is not None
            and (self.low <= value <= self.high)
        )


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="sweeps to run (default 5; at least 2)")
    p.add_argument("--sweep", type=Path, default=ROOT / "scenarios" / "sweeps" / "quick.yaml")
    p.add_argument("--from", dest="existing", type=Path, nargs="+", help="sweep directories to re-fit")
    p.add_argument("--keep", type=Path, help="keep the sweeps under DIR")
    args = p.parse_args(argv)
    if args.existing is None and args.runs < 2:
        p.error("--runs must be at least 2: coverage compares runs with each other")
    with MachineLoad() as load:
        if args.existing:
            recommendations = [recommendation(d) for d in args.existing]
        else:
            recommendations = run_sweeps(args.sweep, args.runs, args.keep)
    figures, details = coverage(recommendations)
    emit("demo_reruns", figures, args, load, details)
    return 0


def run_sweeps(sweep_file: Path, runs: int, keep: Path | None) -> list[Recommendation]:
    """``runs`` sweeps of ``sweep_file`` as ``make demo`` runs them, each fitted; kept under ``keep``."""
    from capacity.run.orchestrator import RunOptions
    from capacity.scenario import load_sweep
    from capacity.sweep.runner import start_sweep

    sweep = load_sweep(sweep_file)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            output_dir = (keep or Path(tmp)) / f"run{i + 1}"
            result = start_sweep(sweep, RunOptions(pin_self=True), output_dir=output_dir)
            out.append(recommendation(result.path))
            print(f"run {i + 1}/{runs}: {_text(out[-1])}", flush=True)
    return out


def recommendation(sweep_dir: Path) -> Recommendation:
    """The recommended maximum of the sweep in ``sweep_dir``, fitted as ``capacity fit`` fits it."""
    from capacity.fit.inputs import fit_result
    from capacity.sweep.sweep_file import read_sweep

    model = fit_result(read_sweep(sweep_dir)).model
    rec = model.recommended_max
    return Recommendation(
        sweep_dir.name, rec.value, rec.low, rec.high, rec.basis, model.breaking_points.binding
    )


def coverage(recs: list[Recommendation]) -> tuple[list[Figure], dict]:
    """Per run, how many of the other runs' values its interval covers; the mean against the goal."""
    covered = [sum(r.covers(o.value) for o in recs if o is not r) for r in recs]
    for r, c in zip(recs, covered, strict=True):
        print(f"  {r.sweep:<40} {_text(r):<60} covers {c} of {len(recs) - 1}")
    values = [r.value for r in recs if r.value is not None]
    spread = (max(values) - min(values)) / statistics.median(values) if len(values) > 1 else None
    others = len(recs) - 1
    figures = [
        Figure(
            "other runs covered by a run's interval (mean)",
            statistics.fmean(covered) if covered else None,
            f"of {others}",
            max(others - 1, 1),
            note="recommended maximum, each run's 95 % interval against the other runs' values",
        ),
        Figure("spread of the recommended maximum (max-min)/median", spread, "ratio", None),
    ]
    details = {"runs": [r.__dict__ | {"covers": c} for r, c in zip(recs, covered, strict=True)]}
    return figures, details


def _text(r: Recommendation) -> str:
    if r.value is None:
        return f"no recommendation ({r.basis})"
    interval = f"{r.low:,.0f}-{r.high:,.0f}" if r.low is not None and r.high is not None else "no interval"
    return f"{r.value:,.0f} ({interval}, {r.basis}, {r.binding} limit)"


if __name__ == "__main__":
    sys.exit(main())
