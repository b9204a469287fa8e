"""Release: solutions blanked, outputs stripped, markers outside answer cells refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from scalelab.cli import main
from scalelab.exercises import ExerciseError
from scalelab.exercises.release import blank_source, release, student_version

FIXTURES = Path(__file__).parent / "fixtures"

SOURCE = FIXTURES / "solutions"


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
    shutil.copytree(SOURCE, source)
    # The source may carry outputs from an instructor's run: release strips them.
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
        "BEGIN SOLUTION",
        "END SOLUTION",
        "rate * stall_s",
        "np.concatenate",
        "never measured",
        "Instructor",
        "21.79",
        "open loop keeps arriving",
    ):
        assert leaked not in text, leaked
    assert "queued = ...  # your answer here" in text
    assert "raise NotImplementedError  # your code here" in text
    assert "*Your answer here.*" in text
    assert len(student.cells) == len(nb.cells) - 1  # the solution-tagged cell is dropped
    for cell in student.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert "papermill" not in student.metadata
    # The check calls and the parameters cell survive.
    assert text.count('check(\\"lab01.') == 4
    assert any("parameters" in c.metadata.get("tags", []) for c in student.cells)


def test_release_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["exercises", "release", "--source", str(SOURCE), "--output", str(out)]) == 0
    assert (out / "90_demo.ipynb").is_file()
    assert "wrote" in capsys.readouterr().out


def test_release_of_a_missing_folder_names_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["exercises", "release", "--source", str(tmp_path / "nope")]) == 2
    assert "--source" in capsys.readouterr().err


def test_list_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exercises", "list"]) == 0
    out = capsys.readouterr().out
    assert "lab01.q2  number" in out and "Little's law" in out
    assert "lab00.q4  code" in out
