"""SplitDict, the engine's order maps: a dict's behaviour, with no part holding more than a small share.

Run on both builds of ``reference_exchange.matching`` (compiled where the machine could, and interpreted)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_exchange.engine import IMPLEMENTATION, SplitDict, interpreted_matching
from reference_exchange.engine_types import TrackedDict
from reference_exchange.matching import SPLIT_PARTS, SPLIT_RUN_BITS

BUILDS = [
    pytest.param(SplitDict, id=IMPLEMENTATION.split()[0]),
    pytest.param(interpreted_matching().SplitDict, id="interpreted"),
]
if IMPLEMENTATION == "interpreted":
    BUILDS.pop()

KEYS = st.one_of(st.integers(-(2**70), 2**70), st.text(max_size=8))
OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["set", "del", "pop", "get", "in"]), KEYS, st.integers()), max_size=200
)


@pytest.mark.parametrize("split_dict", BUILDS)
@settings(max_examples=200, deadline=None)
@given(operations=OPERATIONS)
def test_it_answers_every_operation_as_a_dict_does(split_dict: type, operations: list) -> None:
    split, plain = split_dict(), {}
    for operation, key, value in operations:
        if operation == "set":
            split[key] = plain[key] = value
        elif operation == "del":
            if key in plain:
                del split[key], plain[key]
            else:
                with pytest.raises(KeyError):
                    del split[key]
        elif operation == "pop":
            assert split.pop(key) == plain.pop(key, None)
        elif operation == "get":
            assert split.get(key) == plain.get(key)
        else:
            assert (key in split) == (key in plain)
        assert len(split) == len(plain)
    assert sorted(map(repr, split)) == sorted(map(repr, plain))
    assert sorted(map(repr, split.items())) == sorted(map(repr, plain.items()))
    assert sorted(map(repr, split.values())) == sorted(map(repr, plain.values()))
    if plain:
        key = next(iter(plain))
        assert split[key] == plain[key]


@pytest.mark.parametrize("split_dict", BUILDS)
def test_sequential_order_ids_spread_evenly_over_the_parts(split_dict: type) -> None:
    """What bounds a resize: order ids are sequential, and no part may gather more than its share (they
    go to a part in runs of consecutive ids, for the cache)."""
    split = split_dict()
    count = SPLIT_PARTS << SPLIT_RUN_BITS
    for order_id in range(10**6, 10**6 + count):
        split[order_id] = None
    sizes = [len(part) for part in split._parts]
    assert len(sizes) == SPLIT_PARTS and max(sizes) == min(sizes) == count // SPLIT_PARTS


@pytest.mark.parametrize("split_dict", BUILDS)
def test_client_order_ids_spread_over_the_parts(split_dict: type) -> None:
    split = split_dict()
    count = 64 * SPLIT_PARTS
    for number in range(count):
        split[f"client-{number}"] = number
    assert max(len(part) for part in split._parts) < 2 * count // SPLIT_PARTS


@pytest.mark.parametrize("split_dict", BUILDS)
def test_its_parts_are_made_by_the_factory_given(split_dict: type) -> None:
    split = split_dict(TrackedDict)
    assert all(type(part) is TrackedDict for part in split._parts)
