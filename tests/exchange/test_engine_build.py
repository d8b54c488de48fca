"""The compiled engine build: a stale one is refused at import, and the interpreted source loads beside it."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
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


@pytest.mark.skipif(engine.IMPLEMENTATION == "interpreted", reason="only a compiled build can be stale")
def test_the_exchange_refuses_a_stale_build_in_one_line_and_exit_2(tmp_path):
    copy = tmp_path / "reference_exchange"
    shutil.copytree(Path(engine.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "matching.py").open("a") as source:
        source.write("# edited after it was compiled\n")
    done = subprocess.run(
        [sys.executable, "-m", "reference_exchange", "--port", "1"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr.startswith("reference-exchange: matching.")
        and "compiled from another version" in done.stderr
    )
    assert "Traceback" not in done.stderr
