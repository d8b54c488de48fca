"""Environment metadata for every run (as pyperf's ``_collect_metadata``): a number never travels alone.

``collect_environment`` reads the machine (CPU model, cores, governor, memory), the OS and kernel, the
Python build, the versions of the packages that shape the measurement, the git revision of this checkout
(and whether it has uncommitted changes), the host name and the CPU placement of server and generator.
Each probe is best-effort: what cannot be read is ``None``, never an exception.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psutil

from capacity.results.run_file import Environment

PACKAGES = ("capacity", "locust", "aiohttp", "hdrhistogram", "psutil", "uvloop", "orjson")
REPO_ROOT = Path(__file__).resolve().parents[2]


def collect_environment(
    server_cpus: Sequence[int] | None = None,
    generator_cpus: Sequence[int] | None = None,
    pinned: bool = False,
    repo_root: Path = REPO_ROOT,
) -> Environment:
    """Metadata of this machine and checkout; ``server_cpus``/``generator_cpus`` are the CPUs each side
    was pinned to (``None``: not pinned or not known), ``pinned`` whether pinning was applied."""
    return Environment(
        timestamp_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        hostname=socket.gethostname(),
        cpu_model=cpu_model(),
        logical_cpus=os.cpu_count() or 1,
        physical_cpus=psutil.cpu_count(logical=False),
        cpu_governor=_read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        cpu_freq_mhz=_cpu_freq_mhz(),
        memory_total_bytes=psutil.virtual_memory().total,
        os=platform.system(),
        kernel=platform.release(),
        platform=platform.platform(),
        python_version=platform.python_version(),
        python_implementation=platform.python_implementation(),
        packages={name: package_version(name) for name in PACKAGES},
        git_revision=_git(repo_root, "rev-parse", "HEAD"),
        git_dirty=_git_dirty(repo_root),
        available_cpus=tuple(sorted(os.sched_getaffinity(0))),
        server_cpus=tuple(server_cpus) if server_cpus is not None else None,
        generator_cpus=tuple(generator_cpus) if generator_cpus is not None else None,
        pinned=pinned,
        load_average_1m=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    )


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """The CPU's model name from ``/proc/cpuinfo`` (x86 ``model name``, ARM ``Hardware``/``Model``)."""
    text = _read_text(cpuinfo)
    for key in ("model name", "Hardware", "Model", "cpu model", "cpu"):
        for line in (text or "").splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or None


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None if it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_freq_mhz() -> float | None:
    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError):
        return None
    return float(freq.current) if freq and freq.current else None


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip() or None
    except OSError:
        return None


def git_state(repo_root: Path = REPO_ROOT) -> tuple[str | None, bool | None]:
    """This checkout's revision and whether tracked files differ from it (None: not a git checkout)."""
    return _git(repo_root, "rev-parse", "HEAD"), _git_dirty(repo_root)


def _git(repo_root: Path, *args: str) -> str | None:
    if not (repo_root / ".git").exists():
        return None
    try:
        result = subprocess.run(
            ["git", "-C", str(repo_root), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _git_dirty(repo_root: Path) -> bool | None:
    """Whether tracked files differ from the revision (untracked files do not count)."""
    status = _git(repo_root, "status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)
