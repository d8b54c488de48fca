"""How many orders/s one Locust generator process (capacity/generator/locustfile.py) sustains on schedule.

For each offered rate: a fresh reference exchange (journal off) pinned to one CPU, one headless Locust
process pinned to another (``taskset``), the scenario's default mix for ``--seconds``. Prints offered vs
achieved (ok responses/s over the steady seconds), the share of requests sent late (more than 10 ms behind
their intended time), corrected and raw p99, and the CPU use of the generator and of the server over the
steady part of the run (sampled with psutil; 100 % = one core), and the CPU everything else on the
machine used meanwhile (a run next to other busy jobs is not a measurement of the generator).

Usage: python benchmarks/loadgen_max_rate.py [--rates 500,1000,2000,3000] [--seconds 10]
       [--per-user 20] [--generator-cpu 0] [--server-cpu 1] [--repeat 1] [--quiet-pct 15]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import busy_seconds, cpu_seconds, wait_until_quiet

from capacity.run.exchange_process import EmbeddedExchange

ROOT = Path(__file__).resolve().parent.parent
LOCUST = Path(sys.executable).parent / "locust"


def run_one(rate: int, seconds: int, users: int, generator_cpu: int, server_cpu: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="loadgen-bench-"))
    scenario = workdir / "bench.yaml"
    scenario.write_text(
        f"name: bench\nload: {{orders_per_second: {rate}, concurrent_users: {users}, "
        f"symbols: [BTCUSD, ETHUSD, SOLUSD, ADAUSD, DOTUSD], duration: {seconds}s}}\n"
        "slo: {p99_ms: 50, error_rate: 0.01}\n"
    )
    results = workdir / "results"
    command = [
        str(LOCUST),
        "-f",
        str(ROOT / "capacity/generator/locustfile.py"),
        "--headless",
        "--scenario",
        str(scenario),
    ]
    command += ["--results-dir", str(results), "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    try:
        with EmbeddedExchange(env={"JOURNAL_PATH": "none"}, cpus=[server_cpu]) as exchange:
            generator = subprocess.Popen(
                ["taskset", "-c", str(generator_cpu), *command, "--host", exchange.url],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            gen, server = psutil.Process(generator.pid), psutil.Process(exchange.pid)
            samples: dict[str, tuple[float, float, float, float]] = {}
            # steady part: from 2 s into the schedule to 1 s before its end
            for label, at in (("start", 2.0), ("end", seconds - 1.0)):
                while True:
                    progress = results / "progress.json"
                    if progress.exists() and json.loads(progress.read_text())["elapsed_s"] >= at:
                        break
                    if generator.poll() is not None:
                        raise RuntimeError("locust exited early")
                    time.sleep(0.02)
                samples[label] = (time.monotonic(), cpu_seconds(gen), cpu_seconds(server), busy_seconds())
            generator.wait(timeout=120)
        doc = json.loads((results / "loadgen.json").read_text())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    (t0, g0, s0, b0), (t1, g1, s1, b1) = samples["start"], samples["end"]
    steady = [s for s in doc["seconds"] if 2 <= s["t"] < seconds - 1]
    totals = doc["totals"]
    return {
        "offered": rate,
        "users": users,
        "achieved": sum(s["ok"] for s in steady) / len(steady),
        "late_pct": 100 * totals["late"] / max(totals["sent"], 1),
        "unsent": totals["scheduled"] - totals["sent"],
        "errors": totals["errors"],
        "p99_corrected_ms": totals["corrected"]["p99"],
        "p99_raw_ms": totals["raw"]["p99"],
        "lag_max_ms": totals["lag_max_ms"],
        "generator_cpu_pct": 100 * (g1 - g0) / (t1 - t0),
        "server_cpu_pct": 100 * (s1 - s0) / (t1 - t0),
        # everything else running on the machine meanwhile (other jobs compete for the two cores)
        "other_cpu_pct": 100 * ((b1 - b0) - (g1 - g0) - (s1 - s0)) / (t1 - t0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="500,1000,2000,3000")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--per-user", type=float, default=20.0, help="requests/s each user sends")
    parser.add_argument("--generator-cpu", type=int, default=0)
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="runs per rate (each printed)")
    parser.add_argument("--quiet-pct", type=float, default=15.0, help="wait for the machine to be this idle")
    parser.add_argument("--quiet-wait", type=float, default=300.0, help="seconds to wait for that, at most")
    args = parser.parse_args()
    header = (
        f"{'offered/s':>9} {'users':>5} {'achieved/s':>10} {'late %':>7} {'unsent':>6} {'errors':>6} "
        f"{'p99 corr ms':>11} {'p99 raw ms':>10} {'lag max ms':>10} {'gen CPU %':>9} {'srv CPU %':>9} "
        f"{'other CPU %':>11}"
    )
    print(header)
    rates = [int(r) for r in args.rates.split(",") for _ in range(args.repeat)]
    for rate in rates:
        users = max(1, round(rate / args.per_user))
        wait_until_quiet(args.quiet_pct, args.quiet_wait)
        r = run_one(rate, args.seconds, users, args.generator_cpu, args.server_cpu)
        print(
            f"{r['offered']:>9} {r['users']:>5} {r['achieved']:>10.0f} {r['late_pct']:>7.2f} "
            f"{r['unsent']:>6} {r['errors']:>6} {r['p99_corrected_ms']:>11} {r['p99_raw_ms']:>10} "
            f"{r['lag_max_ms']:>10} "
            f"{r['generator_cpu_pct']:>9.0f} {r['server_cpu_pct']:>9.0f} {r['other_cpu_pct']:>11.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
