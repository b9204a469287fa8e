"""The lab notebooks: each solution notebook (instructor/notebooks) has its student version
(notebooks/), released from it, and follows the lab conventions: a papermill parameters cell with
SMOKE, no Locust in the kernel, the lab's exercises in order, every experiment shrinking under
SMOKE, and labelled plot axes.

Executing the solution notebooks in SMOKE mode is the grading test
(tests/exercises/test_grading.py): the grader's run is the proof that they pass.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from scalelab.exercises import all_labs
from scalelab.exercises.release import MARKER, student_version

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOLUTIONS = ROOT / "instructor" / "notebooks"
LABS = {lab.notebook: lab for lab in all_labs()}
NAMES = sorted(LABS)
CALL = re.compile(r"""(?:check|predict)\(\s*["'](lab\d{2}\.q\d+)["']""")


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _code(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _comparable(nb: nbformat.NotebookNode) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source.strip(), list(c.metadata.get("tags", []))) for c in nb.cells]


def test_every_lab_has_a_notebook_and_every_notebook_a_lab() -> None:
    assert sorted(p.name for p in SOLUTIONS.glob("*.ipynb")) == NAMES
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == NAMES
    assert not (NOTEBOOKS / "solutions").exists(), "solutions live in instructor/notebooks"


@pytest.mark.parametrize("name", NAMES)
def test_student_version_is_the_released_solution(name: str) -> None:
    released = student_version(_read(SOLUTIONS / name), name)
    committed = _read(NOTEBOOKS / name)
    assert _comparable(committed) == _comparable(released), (
        f"notebooks/{name} is not the release of instructor/notebooks/{name}; "
        "run `scalelab exercises release` and commit both"
    )


@pytest.mark.parametrize("name", NAMES)
def test_parameters_cell_comes_first_with_smoke_off(name: str) -> None:
    first = _code(_read(SOLUTIONS / name))[0]
    assert "parameters" in first.metadata.get("tags", []), "first code cell is not 'parameters'"
    assert re.search(r"^SMOKE = False\b", first.source, re.M), "parameters cell lacks SMOKE"
    assert "SCALELAB_SCHEDULER" in first.source, "parameters cell lacks SCHEDULER"
    assert re.search(r"^OUT = ", first.source, re.M), "parameters cell lacks OUT"


@pytest.mark.parametrize("name", NAMES)
def test_kernel_never_imports_locust(name: str) -> None:
    for cell in _code(_read(SOLUTIONS / name)):
        assert not re.search(r"^\s*(import|from)\s+locust\b", cell.source, re.M), (
            f"{name} imports locust in the kernel:\n{cell.source}"
        )


@pytest.mark.parametrize("name", NAMES)
def test_every_exercise_of_the_lab_is_called_in_order(name: str) -> None:
    lab = LABS[name]
    calls: list[str] = []
    for cell in _code(_read(SOLUTIONS / name)):
        calls += [c for c in CALL.findall(cell.source) if c not in calls]
    assert calls == [e.id for e in lab.exercises], (
        f"{name} calls {calls}, but {lab.id} defines {[e.id for e in lab.exercises]}"
    )
    assert f'parameters("{lab.id}", smoke=SMOKE)' in "".join(
        c.source for c in _code(_read(SOLUTIONS / name))
    )


@pytest.mark.parametrize("name", NAMES)
def test_each_solution_sits_in_an_answer_cell_that_the_student_version_blanks(name: str) -> None:
    solution = _read(SOLUTIONS / name)
    answers = [c for c in _code(solution) if "answer" in c.metadata.get("tags", [])]
    assert len(answers) >= 4
    assert all(MARKER.search(c.source) for c in answers), "an answer cell holds no solution"
    student = "\n".join(c.source for c in _code(_read(NOTEBOOKS / name)))
    assert not MARKER.search(student), f"notebooks/{name} still holds a solution"
    blanks = student.count("# your answer here") + student.count("# your code here")
    assert blanks >= len(answers), f"notebooks/{name} has fewer blanks than answer cells"


@pytest.mark.parametrize("name", NAMES)
def test_every_experiment_shrinks_under_smoke(name: str) -> None:
    cells = [c.source for c in _code(_read(SOLUTIONS / name))]
    runs = [i for i, src in enumerate(cells) if re.search(r"run_lab_experiment\(|\brun\(\"", src)]
    assert runs, f"{name} runs no experiment"
    for i in runs:
        assert "SMOKE" in cells[i] or "SMOKE" in cells[i - 1] or "SHORT" in cells[i], (
            f"{name}: this experiment does not shrink under SMOKE:\n{cells[i]}"
        )


@pytest.mark.parametrize("name", NAMES)
def test_hand_drawn_plots_label_their_axes(name: str) -> None:
    """A plot drawn in the notebook itself (not by scalelab.plots) names both axes and units."""
    for cell in _code(_read(SOLUTIONS / name)):
        src = cell.source
        if re.search(r"\.(scatter|hist|plot\.hist|bar|barh)\(", src):
            assert re.search(r"set_xlabel\(\".*\(", src) or "xlabel" in src, src
            assert "set_ylabel" in src or "ylabel" in src, src


@pytest.mark.parametrize("name", NAMES)
def test_no_prompt_gives_a_formula(name: str) -> None:
    """The markdown before an answer cell states the question, not the arithmetic."""
    nb = _read(SOLUTIONS / name)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "answer" in cell.metadata.get("tags", []):
            prompt = nb.cells[i - 1].source if i and nb.cells[i - 1].cell_type == "markdown" else ""
            for formula in ("λW", "1000 /", "1000/", "sqrt((1", "1 − (1 − e", "p_i T_C", "B ×"):
                assert formula not in prompt, (name, formula, prompt)
