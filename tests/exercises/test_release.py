"""Release: solutions blanked, outputs stripped; the student bundle and the wheel hold none."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from scalelab.cli import main
from scalelab.exercises import ExerciseError
from scalelab.exercises.release import _solution_lines, blank_source, release, student_version

REPO = Path(__file__).resolve().parents[2]
INSTRUCTOR = REPO / "instructor"
DEMO = Path(__file__).parent / "fixtures" / "course" / "instructor" / "notebooks"


def test_blank_source_keeps_surroundings_and_blanks_assignments() -> None:
    src = (
        "x = 1\n# BEGIN SOLUTION\nanswer = x * 2\nother: int = 3\n# END SOLUTION\n"
        "check('lab00.q1', answer)"
    )
    assert blank_source(src) == (
        "x = 1\nanswer = ...  # your answer here\nother = ...  # your answer here\n"
        "check('lab00.q1', answer)"
    )


def test_blank_source_in_a_function_raises_not_implemented() -> None:
    src = "def f(a):\n    # BEGIN SOLUTION\n    b = a + 1\n    return b\n    # END SOLUTION\n"
    assert blank_source(src) == "def f(a):\n    raise NotImplementedError  # your code here"


@pytest.mark.parametrize(
    "src",
    ["# BEGIN SOLUTION\nx = 1", "x = 1\n# END SOLUTION", "# BEGIN SOLUTION\n# BEGIN SOLUTION\n"],
)
def test_unbalanced_markers_are_errors(src: str) -> None:
    with pytest.raises(ExerciseError, match="SOLUTION"):
        blank_source(src)


def test_markers_outside_answer_cells_are_refused() -> None:
    nb = new_notebook(cells=[new_code_cell("# BEGIN SOLUTION\nx = 1\n# END SOLUTION")])
    with pytest.raises(ExerciseError, match="not tagged 'answer'"):
        student_version(nb)


def test_release_blanks_solutions_and_strips_outputs(tmp_path: Path) -> None:
    source = tmp_path / "solutions"
    shutil.copytree(DEMO, source)
    path = source / "90_demo.ipynb"
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [new_output("stream", name="stdout", text="21.79\n")]
            cell.execution_count = 7
    nb.metadata["papermill"] = {"parameters": {"SMOKE": True}}
    nbformat.write(nb, path)

    written = release(source, tmp_path / "student")
    assert [p.name for p in written] == ["90_demo.ipynb"]
    student = nbformat.read(written[0], as_version=4)
    nbformat.validate(student)
    text = written[0].read_text()
    for leaked in (
        "SOLUTION",
        "P.a * P.b",
        "return 2 * x",
        "Instructor",
        "21.79",
        "the grader decides",
    ):
        assert leaked not in text, leaked
    assert "product = ...  # your answer here" in text
    assert "raise NotImplementedError  # your code here" in text
    assert "*Your answer here.*" in text
    assert len(student.cells) == len(nb.cells) - 1  # the solution-tagged cell is dropped
    for cell in student.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert "papermill" not in student.metadata
    assert text.count('check(\\"lab90.') == 4


def test_release_cli_refreshes_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["exercises", "release", "--source", str(DEMO), "--output", str(out)]) == 0
    assert (out / "90_demo.ipynb").is_file()
    assert "wrote" in capsys.readouterr().out


def test_release_of_a_missing_folder_names_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["exercises", "release", "--source", str(tmp_path / "nope")]) == 2
    assert "--source" in capsys.readouterr().err


def test_bundle_inside_the_instructor_tree_is_refused(tmp_path: Path) -> None:
    assert (
        main(
            [
                "exercises",
                "release",
                "--source",
                str(INSTRUCTOR / "notebooks"),
                "--to",
                str(INSTRUCTOR / "x"),
            ]
        )
        == 2
    )
    assert not (INSTRUCTOR / "x").exists()


def test_list_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exercises", "list"]) == 0
    out = capsys.readouterr().out
    assert "lab01.q2  number" in out and "Little's law" in out
    assert "lab00.q5  code" in out and "lab02.q5  answer" in out


GENERIC = {
    # Lines a solution shares with the public service code it builds on: not secrets.
    "self.metrics.tasks_submitted.inc()",
}


def _normal(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines())


def _solution_blocks() -> list[str]:
    """Each solution block of the solution notebooks, and each of its telling lines."""
    found: list[str] = []
    for path in sorted((INSTRUCTOR / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            block: list[str] = []
            inside = False
            for line in cell.source.splitlines():
                if "SOLUTION" in line:
                    if inside and len(block) >= 2:
                        found.append("\n".join(block))
                    inside, block = "BEGIN" in line, []
                elif inside and line.strip() and not line.strip().startswith("#"):
                    block.append(line.strip())
    lines = [line for line in _solution_lines(INSTRUCTOR / "notebooks") if line not in GENERIC]
    return found + lines


def _hidden_texts() -> list[str]:
    """What the instructor's modules hold: reference and test names, and their longer strings."""
    found: set[str] = set()
    for path in sorted((INSTRUCTOR / "labs").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name.lower().startswith(
                ("solution", "_test_", "judge_")
            ):
                found.add(node.name)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and len(node.value) >= 30
            ):
                found.add(node.value.strip().splitlines()[0][:80])
    return sorted(found)


def _grep(texts: dict[str, str], needles: list[str]) -> list[str]:
    normal = {where: _normal(text) for where, text in texts.items()}
    return [
        f"{needle!r} in {where}"
        for needle in needles
        for where, text in normal.items()
        if needle in text
    ]


@pytest.mark.integration
def test_wheel_and_bundle_hold_no_solution(tmp_path: Path) -> None:
    """Build the wheel and the student bundle; grep both for every solution block and line of the
    solution notebooks and every reference name, hidden test and message of the hidden parts."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = list((tmp_path / "dist").glob("scalelab-*.whl"))
    texts: dict[str, str] = {}
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert not any(n.startswith("instructor/") or "/instructor/" in n for n in names), names
        for name in names:
            texts[f"wheel:{name}"] = z.read(name).decode("utf-8", "replace")
    bundle = tmp_path / "bundle"
    assert (
        main(
            [
                "exercises",
                "release",
                "--source",
                str(INSTRUCTOR / "notebooks"),
                "--to",
                str(bundle),
                "--scenarios",
                str(REPO / "scenarios"),
            ]
        )
        == 0
    )
    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    assert {p.relative_to(bundle).parts[0] for p in files} == {
        "notebooks",
        "scenarios",
        "README.md",
    }
    bundled = {f"bundle:{p.relative_to(bundle)}": p.read_text() for p in files}
    solutions, hidden = _solution_blocks(), _hidden_texts()
    assert len(solutions) > 30 and len(hidden) > 40, (len(solutions), len(hidden))
    assert "SolutionBoundedExecutor" in hidden and "judge_knee" in hidden
    needles = solutions + hidden + ["from scalelab_instructor", "scalelab_instructor."]
    assert _grep(texts | bundled, needles) == []
    assert _grep(bundled, ["BEGIN SOLUTION", "END SOLUTION"]) == []
    # What the wheel must hold: the public framework and the labs' public declarations.
    assert "wheel:scalelab/exercises/labs/lab00.py" in texts
    assert "wheel:scalelab/analysis/factorial.py" in texts
