"""The matching engine's vocabulary: order enums and the errors it raises (and the one its build raises).

Kept apart from ``matching`` (which may run compiled) so the compiled and the interpreted engine share the
very same enum members and exception classes: the engine compares enum members by identity.
"""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(StrEnum):
    GTC = "gtc"  # rests until filled or cancelled
    IOC = "ioc"  # fills what it can now, cancels the rest
    FOK = "fok"  # fills completely now or not at all, leaving the book untouched


class OrderStatus(StrEnum):
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


TERMINAL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED})


class EngineError(Exception):
    """A command the engine refuses. ``code`` is stable and machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UnknownSymbol(EngineError):
    pass


class InvalidOrder(EngineError):
    pass


class OrderNotFound(EngineError):
    pass


class OrderNotOpen(EngineError):
    """Cancel of an order that is already filled, cancelled or rejected."""


class StaleBuild(ImportError):
    """The compiled matching module was built from a different source than the one in the tree.

    Defined here, not in ``engine`` (whose import raises it), so an entry point can catch it."""


class TrackedDict(dict):  # type: ignore[type-arg]
    """A dict the garbage collector never stops tracking.

    CPython stops tracking an exact dict whose keys and values are all untracked (in a full collection),
    and tracks it again, as a new young object, the moment a tracked one goes in. The engine's finished
    orders (up to a million records, each a tuple the collector untracks) then went through every
    generation after each full collection, walked at each: pauses that grew with the dict
    (docs/benchmarks.md). A subclass is never untracked, so it stays wherever the collector, or
    ``gc.freeze``, put it."""

    __slots__ = ()
