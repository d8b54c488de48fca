"""The matching engine's public face: ``MatchingEngine`` and its records, enums and errors, from whichever
build of ``reference_exchange.matching`` is installed.

``matching`` is compiled with mypyc at install time when a C compiler is present (see ``setup.py``) and
runs interpreted otherwise. A compiled build records the SHA-256 of the source it was built from; importing
a compiled module whose source has changed since fails here, loudly, instead of running old code.
``IMPLEMENTATION`` says which build runs; ``interpreted_matching()`` loads the source uncompiled beside it
(the benchmark and the tests run both).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from types import ModuleType

from reference_exchange import matching
from reference_exchange.engine_types import (
    TERMINAL_STATUSES,
    EngineError,
    InvalidOrder,
    OrderNotFound,
    OrderNotOpen,
    OrderStatus,
    OrderType,
    Side,
    StaleBuild,
    TimeInForce,
    UnknownSymbol,
)
from reference_exchange.matching import (
    BookSide,
    MatchingEngine,
    Order,
    OrderBook,
    PlaceResult,
    SplitDict,
    Trade,
)

__all__ = [
    "IMPLEMENTATION",
    "TERMINAL_STATUSES",
    "BookSide",
    "EngineError",
    "InvalidOrder",
    "MatchingEngine",
    "Order",
    "OrderBook",
    "OrderNotFound",
    "OrderNotOpen",
    "OrderStatus",
    "OrderType",
    "PlaceResult",
    "Side",
    "SplitDict",
    "StaleBuild",
    "TimeInForce",
    "Trade",
    "UnknownSymbol",
    "interpreted_matching",
]

SOURCE = Path(__file__).with_name("matching.py")
BUILT_FROM_SUFFIX = ".built-from"  # beside the compiled module: the SHA-256 of the source it was built from


def source_digest(source: Path) -> str:
    return hashlib.sha256(source.read_bytes()).hexdigest()


def check_fresh(compiled: Path, source: Path) -> None:
    """Raise StaleBuild unless ``compiled`` records ``source``'s current digest."""
    record = compiled.with_name(source.stem + BUILT_FROM_SUFFIX)
    built_from = record.read_text().strip() if record.exists() else "(no record)"
    if built_from != source_digest(source):
        raise StaleBuild(
            f"{compiled.name} was compiled from another version of {source}: rebuild it "
            f"(any make target does, or `pip install -e .`) or delete it to run the source interpreted"
        )


def _is_compiled(module: ModuleType) -> bool:
    return str(module.__file__).endswith(tuple(EXTENSION_SUFFIXES))


if _is_compiled(matching):
    check_fresh(Path(str(matching.__file__)), SOURCE)
    IMPLEMENTATION = "compiled (mypyc)"
else:
    IMPLEMENTATION = "interpreted"


def interpreted_matching() -> ModuleType:
    """``matching`` loaded from its source, uncompiled, as a module of its own (sharing enums and errors)."""
    name = "reference_exchange._matching_interpreted"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SOURCE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class body runs
        spec.loader.exec_module(module)
    return sys.modules[name]
