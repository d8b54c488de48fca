"""Generator efficiency: capacity's scheduled, HDR-recording Locust user against a plain FastHttpUser.

Both run as one headless Locust process pinned to one CPU (``taskset``) against the same target, the bare
aiohttp app of ``_bare_server.py`` pinned to the other CPU (cheap, so the generator is the bottleneck), with
the same number of users, one after the other in the same run. The plain user (``_plain_locustfile.py``) posts
with no wait; then capacity's user (``capacity/generator/locustfile.py``) gets a limit-only scenario scheduled
at the rate the plain user just achieved (``--offered`` to choose another: far above it, the users run behind
schedule and pay for catching up, which costs more per request). Figure: capacity's requests/s / plain
requests/s over the steady seconds (Locust's stats history, from 2 s in), goal >= 0.85. Each generator's CPU
is printed: both should be near 100 %. On a machine shared with other work they may not be; the same ratio per
generator CPU-second over the same steady seconds (what a request costs the generator, whoever else runs) is
printed beside it.

Usage: python benchmarks/generator_efficiency.py [--seconds 12] [--users 32] [--quick] [--json PATH]
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bare_server import BareServer
from _common import ROOT, Figure, MachineLoad, cpu_seconds, emit, parser

LOCUST = Path(sys.executable).parent / "locust"
PLAIN = Path(__file__).resolve().parent / "_plain_locustfile.py"
GOAL_RATIO = 0.85


def steady_window(history_csv: Path, skip_s: float = 2.0) -> tuple[tuple[int, int], tuple[int, int]]:
    """(unix second, requests so far) at ``skip_s`` after the first row and at the last row of Locust's
    aggregated history."""
    history = [r for r in csv.DictReader(history_csv.open()) if r["Name"] == "Aggregated"]
    rows = [(int(r["Timestamp"]), int(r["Total Request Count"])) for r in history]
    t0 = rows[0][0] + skip_s
    steady = [r for r in rows if r[0] >= t0]
    return steady[0], steady[-1]


def cpu_at(samples: list[tuple[float, float]], t: float) -> float:
    """The generator's CPU seconds at unix time ``t``, interpolated between (time, CPU seconds) samples."""
    before = max((s for s in samples if s[0] <= t), default=samples[0])
    after = min((s for s in samples if s[0] >= t), default=samples[-1])
    if after[0] == before[0]:
        return before[1]
    return before[1] + (after[1] - before[1]) * (t - before[0]) / (after[0] - before[0])


def run_locust(
    kind: str, url: str, seconds: int, users: int, cpu: int, workdir: Path, offered: int = 0
) -> dict:
    prefix = workdir / kind
    common = [
        "--headless",
        "--host",
        url,
        "--csv",
        str(prefix),
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    if kind == "plain":
        command = [str(LOCUST), "-f", str(PLAIN), *common, "-u", str(users), "-r", str(users * 10)]
        command += ["--run-time", f"{seconds}s"]
    else:
        scenario = workdir / "limit_only.yaml"
        scenario.write_text(
            f"name: generator-efficiency\nload: {{orders_per_second: {offered}, concurrent_users: {users}, "
            f"symbols: [BTCUSD], duration: {seconds}s}}\n"
            "mix: {limit: 100, market: 0, cancel: 0, book: 0, price_offset_ticks: 30,"
            " marketable_percent: 25}\n"
            "slo: {p99_ms: 50, error_rate: 0.01}\n"
        )
        command = [
            str(LOCUST),
            "-f",
            str(ROOT / "capacity/generator/locustfile.py"),
            *common,
            "--scenario",
            str(scenario),
        ]
        command += ["--results-dir", str(workdir / "results")]
    started = time.monotonic()
    proc = subprocess.Popen(
        ["taskset", "-c", str(cpu), *command], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    gen = psutil.Process(proc.pid)
    cpu_s = 0.0
    samples: list[tuple[float, float]] = []  # (unix time, generator CPU seconds)
    while proc.poll() is None:
        try:
            cpu_s = cpu_seconds(gen)
        except psutil.Error:
            break
        samples.append((time.time(), cpu_s))
        time.sleep(0.2)
    _, err = proc.communicate(timeout=60)
    elapsed = time.monotonic() - started
    history = Path(f"{prefix}_stats_history.csv")
    if not history.exists() or not samples:
        raise RuntimeError(f"locust ({kind}) wrote no stats history:\n{err.decode()[-2000:]}")
    (ta, ca), (tb, cb) = steady_window(history)
    steady_cpu_s = cpu_at(samples, tb) - cpu_at(samples, ta)
    return {
        "requests_per_s": (cb - ca) / max(tb - ta, 1),
        "requests_per_cpu_s": (cb - ca) / steady_cpu_s if steady_cpu_s > 0 else None,
        "steady_cpu_pct": 100 * steady_cpu_s / max(tb - ta, 1),
        "generator_cpu_pct": 100 * cpu_s / elapsed,
        "seconds": elapsed,
    }


def per_cpu_ratio(plain: dict, ours: dict) -> float | None:
    if not plain["requests_per_cpu_s"] or not ours["requests_per_cpu_s"]:
        return None
    return ours["requests_per_cpu_s"] / plain["requests_per_cpu_s"]


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=None, help="per generator (default 12, quick 6)")
    p.add_argument("--users", type=int, default=32)
    p.add_argument(
        "--offered", type=int, default=None, help="capacity user's scheduled rate (default: plain's rate)"
    )
    args = p.parse_args(argv)
    seconds = args.seconds or (6 if args.quick else 12)
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, generator_cpu = cpus[-1], cpus[0]
    with MachineLoad() as load, tempfile.TemporaryDirectory(prefix="generator-bench-") as tmp:
        results: dict[str, dict] = {}
        with BareServer(cpus=[server_cpu]) as bare:
            for kind in ("plain", "capacity"):
                workdir = Path(tmp) / kind
                workdir.mkdir()
                offered = (
                    args.offered or round(results["plain"]["requests_per_s"]) if kind == "capacity" else 0
                )
                r = run_locust(kind, bare.url, seconds, args.users, generator_cpu, workdir, offered)
                results[kind] = r
                print(
                    f"  {kind:<9} {r['requests_per_s']:>8,.0f} requests/s"
                    + (f" of {offered:,}/s scheduled" if offered else "")
                    + f"  generator CPU {r['steady_cpu_pct']:4.0f} % (steady),"
                    + f" {r['requests_per_cpu_s'] or 0:,.0f} requests per CPU-second"
                )
                r["offered"] = offered
    plain, ours = results["plain"], results["capacity"]
    figures = [
        Figure(
            "generator efficiency: capacity / plain FastHttpUser",
            ours["requests_per_s"] / plain["requests_per_s"],
            "ratio",
            GOAL_RATIO,
            note=f"{ours['requests_per_s']:,.0f} / {plain['requests_per_s']:,.0f} requests/s, "
            f"{args.users} users",
        ),
        Figure(
            "the same per generator CPU-second",
            per_cpu_ratio(plain, ours),
            "ratio",
            None,
            note=f"generators at {ours['steady_cpu_pct']:.0f} / {plain['steady_cpu_pct']:.0f} % CPU",
        ),
    ]
    emit("generator_efficiency", figures, args, load, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
