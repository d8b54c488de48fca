"""capacity.jsonfile: one reader for every JSON format, one line naming the file for each way it fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from capacity.jsonfile import read_json_file


class FormatError(ValueError):
    pass


def read(path: Path, **kwargs: str) -> object:
    return read_json_file(path, "a capacity-thing/1 file", FormatError, **kwargs)


def test_parsed_content(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"format": "capacity-thing/1", "x": [1, 2.5]}')
    assert read(tmp_path / "a.json") == {"format": "capacity-thing/1", "x": [1, 2.5]}


def test_each_failure_is_one_line_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=rf"^{tmp_path}/none\.json: no such file$"):
        read(tmp_path / "none.json")
    with pytest.raises(FormatError, match=rf"^{tmp_path}/none\.json: nothing was written$"):
        read(tmp_path / "none.json", missing="nothing was written")
    with pytest.raises(FormatError, match=rf"^{tmp_path}: is a directory, expected a capacity-thing/1 file$"):
        read(tmp_path)
    (tmp_path / "cut.json").write_text('{"format": ')
    expected = r"cut\.json: not valid JSON \(line 1, column 12: Expecting value\)$"
    with pytest.raises(FormatError, match=expected):
        read(tmp_path / "cut.json")
    (tmp_path / "latin.json").write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(FormatError, match=r"latin\.json: cannot read: 'utf-8' codec"):
        read(tmp_path / "latin.json")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "secret.json"
    path.write_text("{}")
    path.chmod(0)
    with pytest.raises(FormatError, match=r"secret\.json: cannot read: .*Permission denied"):
        read(path)
