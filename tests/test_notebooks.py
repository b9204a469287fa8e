"""The lab notebooks: both exist, their student versions are released from them, and they
follow the lab conventions (a papermill parameters cell with SMOKE, no Locust in the
kernel, one answer cell per exercise of their lab, checks wired to the lab's ids).

Executing every solution notebook in SMOKE mode is tests/exercises/test_solution_notebooks.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from scalelab.exercises import all_exercises
from scalelab.exercises.grading import exercise_ids
from scalelab.exercises.release import MARKER, student_version

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOLUTIONS = NOTEBOOKS / "solutions"
LABS = {"00_quickstart.ipynb": "lab00", "01_latency_and_throughput.ipynb": "lab01"}


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _code(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _comparable(nb: nbformat.NotebookNode) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source.strip(), list(c.metadata.get("tags", []))) for c in nb.cells]


@pytest.mark.parametrize("name", sorted(LABS))
def test_solution_and_student_versions_exist(name: str) -> None:
    assert (SOLUTIONS / name).is_file(), f"missing solution notebook {name}"
    assert (NOTEBOOKS / name).is_file(), (
        f"missing student notebook {name}; run `scalelab exercises release`"
    )


@pytest.mark.parametrize("name", sorted(LABS))
def test_student_version_is_the_released_solution(name: str) -> None:
    released = student_version(_read(SOLUTIONS / name), name)
    committed = _read(NOTEBOOKS / name)
    assert _comparable(committed) == _comparable(released), (
        f"notebooks/{name} is not the release of notebooks/solutions/{name}; "
        "run `scalelab exercises release` and commit both"
    )


@pytest.mark.parametrize("name", sorted(LABS))
def test_parameters_cell_comes_first_with_smoke_off(name: str) -> None:
    first = _code(_read(SOLUTIONS / name))[0]
    assert "parameters" in first.metadata.get("tags", []), "first code cell is not 'parameters'"
    assert re.search(r"^SMOKE = False\b", first.source, re.M), "parameters cell lacks SMOKE"
    assert "SCALELAB_SCHEDULER" in first.source, "parameters cell lacks SCHEDULER"
    assert re.search(r"^OUT = ", first.source, re.M), "parameters cell lacks OUT"


@pytest.mark.parametrize("name", sorted(LABS))
def test_kernel_never_imports_locust(name: str) -> None:
    for cell in _code(_read(SOLUTIONS / name)):
        assert not re.search(r"^\s*(import|from)\s+locust\b", cell.source, re.M), (
            f"{name} imports locust in the kernel:\n{cell.source}"
        )


@pytest.mark.parametrize("name", sorted(LABS))
def test_every_exercise_of_the_lab_is_checked_in_order(name: str) -> None:
    lab = LABS[name]
    registered = [e.id for e in all_exercises() if e.lab == lab]
    checked = exercise_ids(_read(SOLUTIONS / name))
    assert len(checked) >= 3, f"{name} has fewer than three exercises"
    assert sorted(checked) == sorted(registered), (
        f"{name} checks {checked}, but {lab} defines {registered}"
    )
    assert checked == sorted(checked, key=lambda i: int(i.rsplit("q", 1)[1])), (
        f"{name}: exercises should appear in the order of their ids, got {checked}"
    )


@pytest.mark.parametrize("name", sorted(LABS))
def test_each_solution_sits_in_an_answer_cell_that_the_student_version_blanks(
    name: str,
) -> None:
    solution = _read(SOLUTIONS / name)
    answers = [c for c in _code(solution) if "answer" in c.metadata.get("tags", [])]
    assert len(answers) >= 3
    assert all(MARKER.search(c.source) for c in answers), "an answer cell holds no solution"
    student = "\n".join(c.source for c in _code(_read(NOTEBOOKS / name)))
    assert not MARKER.search(student), f"notebooks/{name} still holds a solution"
    blanks = student.count("# your answer here") + student.count("# your code here")
    assert blanks >= len(answers), f"notebooks/{name} has fewer blanks than answer cells"


@pytest.mark.parametrize("name", sorted(LABS))
def test_every_experiment_shrinks_under_smoke(name: str) -> None:
    cells = [c.source for c in _code(_read(SOLUTIONS / name))]
    runs = [i for i, src in enumerate(cells) if "run_experiment(" in src]
    assert runs, f"{name} runs no experiment"
    for i in runs:
        assert "SMOKE" in cells[i] or "SMOKE" in cells[i - 1], (
            f"{name}: this experiment does not shrink under SMOKE:\n{cells[i]}"
        )


def test_knee_check_accepts_an_unbounded_knee() -> None:
    """A real sweep may fit κ = 0; the notebook's answer is then math.inf."""
    import math

    from scalelab.exercises import evaluate

    assert evaluate("lab01.q3", math.inf, sigma=0.2, kappa=0.0).passed
    assert not evaluate("lab01.q3", 40.0, sigma=0.2, kappa=0.0).passed
    assert not evaluate("lab01.q3", math.inf, sigma=0.2, kappa=0.001).passed


def test_executor_check_runs_inside_a_running_event_loop() -> None:
    """A Jupyter kernel runs an event loop; lab00.q4's hidden tests must still run there."""
    import asyncio

    from scalelab.exercises import evaluate
    from scalelab.exercises.lab00 import SolutionDirectExecutor

    async def in_kernel() -> str:
        return evaluate("lab00.q4", SolutionDirectExecutor).status

    assert asyncio.run(in_kernel()) == "pass"
