"""The design's one-way data flow, checked: the exchange imports nothing from ``capacity`` and ``capacity``
nothing from the exchange (they talk over HTTP), whichever of their modules is loaded."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

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
