"""Cost of ``ServerMetrics.observe_request`` against a bare ``HdrHistogram.record_value``, in one run.

    .venv/bin/python benchmarks/metrics_observe.py [--calls N] [--repeat R]

Prints nanoseconds per call (best of R repeats, so scheduler noise does not inflate it) and the ratio to
the bare record, which is the floor: the order route records into an HdrHistogram too.
"""

from __future__ import annotations

import argparse
import timeit

from hdrh.histogram import HdrHistogram

from reference_exchange.metrics import ServerMetrics


def best_ns_per_call(statement: str, namespace: dict[str, object], calls: int, repeat: int) -> float:
    """Fastest of ``repeat`` timings of ``calls`` executions, in nanoseconds per execution."""
    timer = timeit.Timer(statement, globals=namespace)
    return min(timer.repeat(repeat=repeat, number=calls)) / calls * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    namespace: dict[str, object] = {"metrics": ServerMetrics(), "hist": HdrHistogram(1, 60_000_000, 3)}
    bare_name = "HdrHistogram.record_value (bare)"
    cases = {
        bare_name: "hist.record_value(1234)",
        "observe_request, order route (HDR + counters)": (
            "metrics.observe_request('/api/orders', 'POST', 201, 0.001234)"
        ),
        "observe_request, other route (counters only)": (
            "metrics.observe_request('/api/orders/{id}', 'GET', 200, 0.0004)"
        ),
    }
    results = {
        name: best_ns_per_call(code, namespace, args.calls, args.repeat) for name, code in cases.items()
    }
    bare = results[bare_name]
    for name, ns in results.items():
        print(f"{name:<48} {ns:8.0f} ns/call   {ns / bare:5.2f}x bare record")


if __name__ == "__main__":
    main()
