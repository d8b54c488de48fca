"""The gate in bounded memory: ``capacity gate`` on baselines of 100,000 per-second samples per metric.

    python benchmarks/gate_memory.py [--samples 100000]

Builds a baseline from the recorded fixture sweep (tests/fixtures/sweep-small), replaces every metric's
samples by ``--samples`` random values, writes a second copy shifted by 1 %, and runs ``capacity gate`` on
the pair in a child process: its wall time and peak RSS (``ru_maxrss`` of the child) against issue 22's
goals, 10 s and 200 MB. The old permutation test held every resample (10,000 samples: 7 s, 2.4 GB); the
AR(1)-adjusted Welch test keeps O(n) floats.
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Figure, MachineLoad, emit, parser

CAPACITY = [sys.executable, "-m", "capacity"]


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=100_000, help="samples per metric (default 100,000)")
    args = p.parse_args(argv)
    with MachineLoad() as load, tempfile.TemporaryDirectory() as tmp:
        base, current = Path(tmp) / "base.json", Path(tmp) / "current.json"
        fixture = ROOT / "tests" / "fixtures" / "sweep-small"
        made = subprocess.run(
            [*CAPACITY, "baseline", "update", str(fixture), "-o", str(base), "--allow-unusable"],
            capture_output=True,
            text=True,
        )
        if made.returncode != 0:
            print(made.stderr, file=sys.stderr)
            return 1
        for path, shift in ((base, 1.0), (current, 1.01)):
            path.write_text(json.dumps(_inflated(json.loads(base.read_text()), args.samples, shift)))
        started = time.monotonic()
        gate = subprocess.run(
            [*CAPACITY, "gate", "-b", str(base), str(current)], capture_output=True, text=True
        )
        seconds = time.monotonic() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1000  # KiB on Linux
    print(gate.stdout[-600:])
    if gate.returncode not in (0, 1, 3):
        print(gate.stderr, file=sys.stderr)
        return 1
    figures = [
        Figure(f"capacity gate, {args.samples:,} samples per metric: wall time", seconds, "s", 10.0, "<"),
        Figure("  peak RSS of the gate process", peak_mb, "MB", 200.0, "<"),
    ]
    emit("gate_memory", figures, args, load, {"samples": args.samples, "exit": gate.returncode})
    return 0


def _inflated(document: dict, samples: int, shift: float) -> dict:
    """``document`` (a baseline) with every metric's samples replaced by ``samples`` noisy values around
    its value times ``shift``, and the tiers' steady seconds to match."""
    rng = random.Random(20261204)
    for tier in document["tiers"]:
        tier["steady_seconds"] = samples
        tier["problems"] = []
        for metric in tier["metrics"].values():
            if metric.get("value") is None:
                continue
            centre = metric["value"] * shift  # a zero (no errors) stays zero in every second
            metric["value"] = centre
            metric["samples"] = [centre * (1 + rng.gauss(0, 0.05)) for _ in range(samples)]
    return document


if __name__ == "__main__":
    sys.exit(main())
