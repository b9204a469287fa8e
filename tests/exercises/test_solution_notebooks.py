"""Every solution notebook, executed in SMOKE mode, passes every check it makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalelab.exercises.grading import format_score, run_notebook
from scalelab.exercises.release import student_version

SOLUTIONS = Path(__file__).resolve().parents[2] / "notebooks" / "solutions"
PATHS = sorted(SOLUTIONS.glob("*.ipynb")) if SOLUTIONS.is_dir() else []


@pytest.mark.integration
@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_solution_notebook_passes_in_smoke_mode(path: Path) -> None:
    score = run_notebook(path, smoke=True)
    assert score.rows, f"{path} makes no check(...) calls"
    assert not score.errors and score.passed == len(score.rows), format_score(score)


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_solution_notebook_releases(path: Path) -> None:
    import nbformat

    student = student_version(nbformat.read(path, as_version=4), path.name)
    assert "SOLUTION" not in nbformat.writes(student)
