"""Files are written whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalelab.fileio import atomic_path, read_json, write_json


def test_write_json_round_trip(tmp_path: Path) -> None:
    write_json(tmp_path / "a" / "x.json", {"n": 1})
    assert read_json(tmp_path / "a" / "x.json") == {"n": 1}


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]
