"""Files are written whole or not at all."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from scalelab.fileio import atomic_path, read_json, write_json, write_text
from scalelab.loadgen.records import empty_table, write_requests


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


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_results_files_honour_the_umask(tmp_path: Path, umask: int) -> None:
    """A class's shared results folder is readable by others as far as the umask allows:
    files written through a temporary file get the mode of any new file."""
    previous = os.umask(umask)
    try:
        write_json(tmp_path / "summary.json", {"n": 1})
        write_text(tmp_path / "spec.toml", "a = 1\n")
        write_requests(tmp_path / "requests.parquet", empty_table())
    finally:
        os.umask(previous)
    for name in ("summary.json", "spec.toml", "requests.parquet"):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == 0o666 & ~umask, (name, oct(mode))
