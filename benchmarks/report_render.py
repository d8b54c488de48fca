"""How long ``capacity report`` takes for a 9-tier sweep (the seed's whole matrix), against a 3 s goal.

    python benchmarks/report_render.py [--tiers 9] [--seconds 120] [--repeat 3]

Writes a synthetic sweep (``capacity.testing.sample_sweep``: 9 tiers of ``--seconds`` per-second samples each,
with HDR interval logs), then renders it ``--repeat`` times in this process. Prints the import time (paid
once per ``capacity report`` command: jinja2, matplotlib, scipy), each render (read, fit, charts, write),
and the first import + render as the figure a user waits for, against the goal.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, MachineLoad, emit, parser

GOAL_S = 3.0


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--tiers", type=int, default=9, help="tiers in the sweep (at most 9)")
    p.add_argument("--seconds", type=int, default=120, help="seconds per tier")
    p.add_argument("--repeat", type=int, default=None, help="renders (default 3, quick 1)")
    args = p.parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 3)
    with MachineLoad() as load:
        figures, details = _measure(args)
    emit("report_render", figures, args, load, details)
    return 0


def _measure(args: argparse.Namespace) -> tuple[list[Figure], dict]:
    started = time.perf_counter()
    from capacity.report import render_report  # the command's own imports, timed
    from capacity.testing.sample_sweep import SEED_TIERS, write_sample_sweep

    imported = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        sweep = write_sample_sweep(Path(tmp) / "sweep", SEED_TIERS[: args.tiers], duration_s=args.seconds)
        renders = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            paths = render_report(sweep)
            renders.append(time.perf_counter() - start)
        size = paths.html.stat().st_size

    first = imported + renders[0]
    print(f"sweep: {args.tiers} tiers x {args.seconds} s, HTML {size / 1e6:.2f} MB")
    print(f"import: {imported:.2f} s; renders: {', '.join(f'{r:.2f}' for r in renders)} s")
    print(f"median render {statistics.median(renders):.2f} s")
    figures = [
        Figure(f"report render, {args.tiers}-tier sweep (import + first)", first, "s", GOAL_S, "<"),
        Figure("  median render alone", statistics.median(renders), "s", None),
    ]
    return figures, {"import_s": imported, "renders_s": renders, "html_bytes": size}


if __name__ == "__main__":
    sys.exit(main())
