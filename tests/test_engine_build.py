"""The compiled engine build: a stale one is refused at import, and the interpreted source loads beside it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from reference_exchange import engine, matching
from reference_exchange.engine import StaleBuild, check_fresh, interpreted_matching


def _built(tmp_path: Path, source_text: str, recorded: str | None) -> tuple[Path, Path]:
    source = tmp_path / "matching.py"
    source.write_text(source_text)
    compiled = tmp_path / "matching.cpython-311-x86_64-linux-gnu.so"
    compiled.write_bytes(b"")
    if recorded is not None:
        (tmp_path / "matching.built-from").write_text(recorded + "\n")
    return compiled, source


def test_a_build_from_the_current_source_is_accepted(tmp_path):
    compiled, source = _built(tmp_path, "x = 1\n", hashlib.sha256(b"x = 1\n").hexdigest())
    check_fresh(compiled, source)


@pytest.mark.parametrize("recorded", [hashlib.sha256(b"x = 1\n").hexdigest(), None])
def test_a_build_from_another_source_or_without_a_record_is_refused(tmp_path, recorded):
    compiled, source = _built(tmp_path, "x = 2\n", recorded)
    with pytest.raises(StaleBuild, match="compiled from another version"):
        check_fresh(compiled, source)


def test_the_implementation_names_the_module_that_runs():
    expected = "compiled (mypyc)" if Path(str(matching.__file__)).suffix == ".so" else "interpreted"
    assert expected == engine.IMPLEMENTATION
    assert engine.MatchingEngine is matching.MatchingEngine


def test_the_interpreted_source_shares_the_enums_and_errors():
    interpreted = interpreted_matching()
    assert Path(str(interpreted.__file__)) == engine.SOURCE
    assert interpreted.Side is engine.Side and interpreted.OrderNotOpen is engine.OrderNotOpen
    assert interpreted_matching() is interpreted  # loaded once
