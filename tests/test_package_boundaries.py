"""The design's one-way data flow, checked: the exchange imports nothing from ``capacity`` and ``capacity``
nothing from the exchange (they talk over HTTP), whichever of their modules is loaded; inside ``capacity``,
each stage imports only from the stages before it."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import capacity
import reference_exchange


def _modules(package) -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + "."))


def _top_level_imports_of(modules: list[str]) -> set[str]:
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return set(out.stdout.split())


@pytest.mark.parametrize(
    ("package", "forbidden"), [(reference_exchange, "capacity"), (capacity, "reference_exchange")]
)
def test_a_package_never_imports_the_other(package, forbidden: str) -> None:
    modules = [m for m in _modules(package) if not m.endswith(".__main__")]
    assert modules, f"found no modules in {package.__name__}"
    assert forbidden not in _top_level_imports_of(modules)


# capacity's stages in the order data flows (capacity/__init__.py): a module may import its own stage and
# those before it, never one after. Shared helpers (exit_codes, input_limits, jsonfile, text) come first;
# ``testing`` (synthetic data for tests and benchmarks) may use every stage but the CLI.
STAGES = (
    "",  # the top-level helpers
    "scenario",
    "measure",
    "results",
    "generator",
    "run",
    "sweep",
    "fit",
    "audit",
    "report",
    "gate",
    "testing",
    "cli",
)


def _stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in STAGES) else ""


def _capacity_imports(path: Path) -> set[str]:
    """Every ``capacity`` module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "capacity":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "capacity")
    return found


def test_every_capacity_module_belongs_to_a_stage() -> None:
    root = Path(capacity.__file__).parent
    packages = {path.name for path in root.iterdir() if (path / "__init__.py").is_file()}
    assert packages == set(STAGES) - {""}, "a new subpackage needs its place in STAGES"


def test_capacity_stages_import_only_earlier_stages() -> None:
    root = Path(capacity.__file__).parent
    backwards = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "__main__.py":  # ``python -m capacity``: the entry point runs the CLI
            continue
        module = ".".join(("capacity", *path.relative_to(root).with_suffix("").parts))
        own = STAGES.index(_stage_of(module))
        for imported in _capacity_imports(path):
            if STAGES.index(_stage_of(imported)) > own:
                backwards.append(f"{module} imports {imported}")
    assert not backwards, "imports against the flow of data:\n" + "\n".join(backwards)
