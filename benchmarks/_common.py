"""Shared by the benchmark scripts: goals, PASS/MISS, the machine's load while measuring, JSON output.

Every script builds ``Figure``s, measures inside ``with MachineLoad() as load:`` and ends with
``emit(name, figures, args, load)``, which prints each figure beside its goal and, with ``--json PATH``,
writes them (plus load average, other processes' CPU and the git revision) as one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Figure:
    """One measured figure against its goal: ``value <op> goal`` passes (op is ">=", "<=" or "<"; with
    ``upper``, ``goal <= value <= upper``)."""

    name: str
    value: float | None
    unit: str
    goal: float | None  # None: reported, no goal
    op: str = ">="
    note: str = ""
    extra: dict = field(default_factory=dict)
    upper: float | None = None

    @property
    def passed(self) -> bool | None:
        if self.goal is None:
            return None
        if self.value is None:
            return False
        if self.upper is not None:
            return self.goal <= self.value <= self.upper
        return {">=": self.value >= self.goal, "<=": self.value <= self.goal, "<": self.value < self.goal}[
            self.op
        ]

    @property
    def goal_text(self) -> str | None:
        if self.goal is None:
            return None
        if self.upper is not None:
            return f"{self.goal:g}-{self.upper:g}"
        return f"{self.op} {self.goal:g}"

    def as_dict(self) -> dict:
        goal = self.goal_text
        return {**asdict(self), "goal": goal, "goal_value": self.goal, "pass": self.passed}


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a short version (seconds, not minutes)")
    p.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    return p


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def core_busy_seconds(cpu: int) -> float:
    """Seconds CPU ``cpu`` has been busy: user, system and interrupt time, whoever it was for. Beside a
    process's own CPU, it tells whether that process had its core to itself and whether the core was full."""
    times = psutil.cpu_times(percpu=True)[cpu]
    return times.user + times.nice + times.system + times.irq + times.softirq


class ServerCpu:
    """The server's CPU over a span of a run, as percent of one core: its process's own (user + system)
    and its core's whole busy share (``core_busy_seconds``). ``mark()`` at the span's start and end."""

    def __init__(self, process: psutil.Process, cpu: int) -> None:
        self._process, self._cpu = process, cpu
        self._marks: list[tuple[float, float, float]] = []

    def mark(self) -> None:
        self._marks.append((time.perf_counter(), cpu_seconds(self._process), core_busy_seconds(self._cpu)))

    def percent(self) -> tuple[float, float]:
        """(process %, core busy %) between the first and the last mark (now, if only one was made)."""
        if len(self._marks) < 2:
            self.mark()
        (t0, process0, core0), (t1, process1, core1) = self._marks[0], self._marks[-1]
        return 100 * (process1 - process0) / (t1 - t0), 100 * (core1 - core0) / (t1 - t0)


def tcp_segments_sent() -> int:
    """TCP segments this machine has sent (``/proc/net/snmp``'s OutSegs): over loopback the clients' and the
    server's alike. Two an answer when each request carries the ACK of the answer before it and each answer
    the request's; more when ACKs go on their own."""
    head, values = (
        line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line[:4] == "Tcp:"
    )
    return int(values[head.index("OutSegs")])


def pin_server_cpu() -> int:
    """Keep the last CPU for a server under test: this process (the generator) moves to the others.

    Returns the server's CPU. On a one-CPU machine both share it (and the figures say less)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(0, cpus[:-1])
    return cpus[-1]


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def wait_until_quiet(max_busy_pct: float, max_wait_s: float) -> float:
    """Wait (up to ``max_wait_s``) until the machine is idle but for ``max_busy_pct`` of one core over 3 s;
    returns the busy share last seen."""
    deadline = time.monotonic() + max_wait_s
    while True:
        b0, t0 = busy_seconds(), time.monotonic()
        time.sleep(3)
        busy = 100 * (busy_seconds() - b0) / (time.monotonic() - t0)
        if busy <= max_busy_pct or time.monotonic() > deadline:
            return busy


class MachineLoad:
    """Load average and the CPU used by processes *outside this process tree* while a benchmark measures.

    A thread samples every ``interval`` s: the machine's busy CPU seconds minus those of this process and
    its descendants (servers, generators) = "other CPU" (100 % = one core). Other work on a 2-core machine
    inflates every figure; this says how much there was.
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.loadavg: list[float] = []
        self.other_cpu_s = 0.0
        self.seconds = 0.0
        self._stop = threading.Event()
        self._last: dict[int, float] = {}

    def _own_delta(self) -> float:
        me = psutil.Process()
        delta = 0.0
        for proc in [me, *me.children(recursive=True)]:
            try:
                now = cpu_seconds(proc)
            except psutil.Error:
                continue
            delta += now - self._last.get(proc.pid, 0.0)  # a new child: all its CPU is in this window
            self._last[proc.pid] = now
        return delta

    def _run(self) -> None:
        busy = busy_seconds()
        while not self._stop.wait(self.interval):
            now_busy = busy_seconds()
            own = self._own_delta()
            self.other_cpu_s += max(0.0, (now_busy - busy) - own)
            busy = now_busy
            self.loadavg.append(os.getloadavg()[0])

    def __enter__(self) -> MachineLoad:
        self._started = time.monotonic()
        self._last = {}
        self._own_delta()  # prime: CPU used before measuring does not count
        self.loadavg.append(os.getloadavg()[0])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.seconds = time.monotonic() - self._started

    def as_dict(self) -> dict:
        return {
            "loadavg_1m_mean": round(sum(self.loadavg) / len(self.loadavg), 2) if self.loadavg else None,
            "loadavg_1m_max": round(max(self.loadavg), 2) if self.loadavg else None,
            "other_cpu_pct": round(100 * self.other_cpu_s / self.seconds, 1) if self.seconds else None,
            "measured_s": round(self.seconds, 1),
        }


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def format_value(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def print_figures(figures: list[Figure]) -> None:
    for f in figures:
        verdict = {True: "PASS", False: "MISS", None: "-"}[f.passed]
        goal = "-" if f.goal is None else f.goal_text or "-"
        print(
            f"  {f.name:<48} {format_value(f.value):>12} {f.unit:<10} goal {goal:<12} {verdict}"
            + (f"  ({f.note})" if f.note else "")
        )


def emit(
    name: str,
    figures: list[Figure],
    args: argparse.Namespace,
    load: MachineLoad | None,
    details: dict | None = None,
) -> dict:
    """Print the figures beside their goals and write the JSON document if ``--json`` was given."""
    doc = {
        "benchmark": name,
        "quick": bool(getattr(args, "quick", False)),
        "git_revision": git_revision(),
        "cpus": os.cpu_count(),
        "load": load.as_dict() if load else {},
        "figures": [f.as_dict() for f in figures],
        "details": details or {},
    }
    ld: dict[str, Any] = load.as_dict() if load else {}
    print(
        f"{name}: load average {ld.get('loadavg_1m_mean')} (max {ld.get('loadavg_1m_max')}), "
        f"other CPU {ld.get('other_cpu_pct')} % while measuring, git {doc['git_revision']}"
    )
    print_figures(figures)
    if getattr(args, "json", None):
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2) + "\n")
    return doc
