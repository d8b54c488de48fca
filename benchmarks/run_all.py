"""``make bench``: run every benchmark with ``--json`` and collect the figures into reports/bench/latest.json.

Each script runs as its own process (one after the other: they pin CPUs and must not overlap) and prints its
own lines; the end is one table of every figure beside its goal, PASS/MISS, with the load average and the
CPU other processes used while that benchmark measured. A MISS is a finding, not a failure: the exit code is
non-zero only when a benchmark crashed.

Usage: python benchmarks/run_all.py [--quick] [--only engine_throughput,engine_memory] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Figure, git_revision, print_figures, wait_until_quiet

BENCHMARKS = (
    "engine_throughput",
    "engine_memory",
    "gc_pauses",
    "engine_stalls",
    "journal_group_commit",
    "report_render",
    "http_efficiency",
    "generator_efficiency",
    "native_engine",
    "shipped_capacity",
    "overload",
    "admission_shares",
    "overload_budget",
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="every benchmark's short version")
    p.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    p.add_argument("--out", default=str(ROOT / "reports/bench/latest.json"))
    p.add_argument(
        "--quiet-pct", type=float, default=15.0, help="before each benchmark, wait for the machine's"
    )
    p.add_argument(
        "--quiet-wait", type=float, default=60.0, help="other CPU to drop to this %% (at most this long)"
    )
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    started = datetime.now(UTC)
    docs: dict[str, dict] = {}
    crashed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for name in names:
            out = Path(tmp) / f"{name}.json"
            command = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--json", str(out)]
            print(f"\n== {name}{' (quick)' if args.quick else ''}", flush=True)
            busy = wait_until_quiet(args.quiet_pct, args.quiet_wait)
            if busy > args.quiet_pct:
                print(f"(machine still {busy:.0f} % busy after {args.quiet_wait:g} s: measuring anyway)")
            t0 = time.monotonic()
            rc = subprocess.run(command + (["--quick"] if args.quick else []), cwd=ROOT).returncode
            if rc != 0 or not out.exists():
                crashed.append(name)
                print(f"{name}: exited {rc} without figures", file=sys.stderr)
                continue
            docs[name] = json.loads(out.read_text())
            docs[name]["wall_s"] = round(time.monotonic() - t0, 1)
    figures = [
        {**f, "benchmark": name, "load": doc["load"]} for name, doc in docs.items() for f in doc["figures"]
    ]
    result = {
        "started_at": started.isoformat(timespec="seconds"),
        "git_revision": git_revision(),
        "command": "make bench" + (" BENCH_ARGS=--quick" if args.quick else ""),
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "crashed": crashed,
        "figures": figures,
        "benchmarks": docs,
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n== summary (git {result['git_revision']}, {os.cpu_count()} CPUs) -> {path}")
    for name, doc in docs.items():
        load = doc["load"]
        print(f"{name}: load average {load['loadavg_1m_mean']}, other CPU {load['other_cpu_pct']} %")
        keep = {"name", "value", "unit", "goal", "op", "note", "upper"}
        print_figures(
            [
                Figure(**{k: v for k, v in f.items() if k in keep} | {"goal": f["goal_value"]})
                for f in doc["figures"]
            ]
        )
    if crashed:
        print(f"crashed: {', '.join(crashed)}", file=sys.stderr)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
