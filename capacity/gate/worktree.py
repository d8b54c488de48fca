"""A revision of this project checked out beside it, with its own engine built, for ``capacity gate
--against REV``.

``checkout(rev)`` is a context manager: ``git worktree add --detach`` into a temporary directory, the
matching engine compiled there from that revision's source (``setup.py build_ext --inplace``, as the
install does), and on leaving, by any way out (an error, Ctrl-C), the worktree removed and pruned.
Nothing is installed: the baseline's exchange runs this environment's Python with the worktree first on
``PYTHONPATH`` (``exchange_env``), so its code and its compiled engine are the revision's, and its
dependencies this environment's. Both sides must run the same kind of engine (compiled or interpreted),
or the comparison would measure the build, not the change: ``engine_of`` asks each side.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from capacity.run.environment import REPO_ROOT

BUILD_TIMEOUT_S = 600.0
GIT_TIMEOUT_S = 120.0


class WorktreeError(Exception):
    """The revision cannot be checked out or built; the message says why."""


def resolve(rev: str, repo: Path = REPO_ROOT) -> str:
    """The full commit id of ``rev``, or WorktreeError naming it."""
    found = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if found.returncode != 0 or not found.stdout.strip():
        raise WorktreeError(f"{rev!r} is not a commit of {repo} (git rev-parse found nothing)")
    return found.stdout.strip()


def exchange_env(worktree: Path) -> dict[str, str]:
    """The environment that makes an embedded exchange run the worktree's code."""
    # PYTHONSAFEPATH: no working directory first on sys.path, where a checkout of the candidate may be
    return {"PYTHONPATH": str(worktree), "PYTHONSAFEPATH": "1"}


def engine_of(env: dict[str, str] | None = None) -> str:
    """Which build of the matching engine an exchange started with ``env`` imports (compiled or
    interpreted), as ``reference_exchange.engine.IMPLEMENTATION`` says; WorktreeError if it fails."""
    code = "import reference_exchange.engine as e; print(e.IMPLEMENTATION)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise WorktreeError(f"its engine does not import: {_tail(done.stderr)}")
    return done.stdout.strip()


@contextmanager
def checkout(rev: str, repo: Path = REPO_ROOT) -> Iterator[Path]:
    """``rev`` checked out and built in a temporary worktree, removed again on the way out."""
    commit = resolve(rev, repo)
    parent = Path(tempfile.mkdtemp(prefix="capacity-ab-"))
    path = parent / commit[:12]
    try:
        added = _git(repo, "worktree", "add", "--detach", "--quiet", str(path), commit, check=False)
        if added.returncode != 0:
            raise WorktreeError(f"git worktree add {commit[:12]} failed: {_tail(added.stderr)}")
        build_engine(path)
        yield path
    finally:
        _git(repo, "worktree", "remove", "--force", str(path), check=False)
        shutil.rmtree(parent, ignore_errors=True)
        _git(repo, "worktree", "prune", check=False)


def build_engine(path: Path) -> None:
    """Compile the worktree's engine in place, as its own setup.py does (skipped with
    CAPACITY_PURE_PYTHON=1, as the install skips it)."""
    if not (path / "setup.py").is_file():
        return  # a revision from before the compiled engine: it runs interpreted
    done = subprocess.run(
        [sys.executable, "setup.py", "--quiet", "build_ext", "--inplace"],
        cwd=path,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise WorktreeError(f"building the engine of {path.name} failed: {_tail(done.stderr or done.stdout)}")


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=check
    )


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"
