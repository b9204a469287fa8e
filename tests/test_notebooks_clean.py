"""Notebooks under notebooks/ are committed clean: no outputs, no execution counts."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(NOTEBOOKS.rglob("*.ipynb")) if NOTEBOOKS.is_dir() else []


def dirty_cells(path: Path) -> list[int]:
    """Indices of code cells that carry outputs or an execution count."""
    nb = nbformat.read(path, as_version=4)
    return [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]


@pytest.mark.parametrize("path", PATHS, ids=[str(p.relative_to(NOTEBOOKS)) for p in PATHS])
def test_notebook_has_no_outputs(path: Path) -> None:
    dirty = dirty_cells(path)
    assert not dirty, (
        f"{path} has outputs in cells {dirty}; clear them (scalelab exercises release "
        "strips them, or Jupyter's 'Clear All Outputs') before committing"
    )


def test_dirty_cells_finds_outputs(tmp_path: Path) -> None:
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    cell = new_code_cell(
        "1",
        execution_count=3,
        outputs=[new_output("execute_result", {"text/plain": "1"}, execution_count=3)],
    )
    nbformat.write(new_notebook(cells=[new_code_cell("2"), cell]), tmp_path / "x.ipynb")
    assert dirty_cells(tmp_path / "x.ipynb") == [1]
