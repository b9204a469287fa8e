"""``scalelab exercises check``: a real kernel runs a fixture notebook; a score table comes out."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from scalelab.cli import main
from scalelab.exercises.grading import format_score, run_notebook
from scalelab.exercises.release import release

FIXTURES = Path(__file__).parent / "fixtures"

SOLUTION = FIXTURES / "solutions" / "90_demo.ipynb"
IDS = ["lab01.q1", "lab01.q3", "lab01.q4", "lab01.q5"]


def _rows(out: str) -> dict[str, str]:
    rows = {}
    for line in out.splitlines():
        parts = line.split(None, 1)
        if parts and parts[0] in IDS:
            rows[parts[0]] = parts[1]
    return rows


@pytest.mark.integration
def test_solution_notebook_scores_full_marks_in_smoke_mode(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["exercises", "check", "--smoke", str(SOLUTION)]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert list(rows) == IDS
    assert all(r.startswith("pass") for r in rows.values()), out
    assert "score: 4/4 passed" in out
    assert "errors in the notebook" not in out  # SMOKE=True was injected
    assert "lab01.q5: The closed loop stops sending" in out


@pytest.mark.integration
def test_student_notebook_with_mixed_answers(tmp_path: Path) -> None:
    release(SOLUTION.parent, tmp_path)
    path = tmp_path / SOLUTION.name
    nb = nbformat.read(path, as_version=4)
    sources = [c.source for c in nb.cells]
    # A right answer, a wrong one, an unrelated error that stops the knee's check.
    i = next(k for k, s in enumerate(sources) if "lab01.q1" in s)
    nb.cells[i].source = nb.cells[i].source.replace("queued = ...", "queued = rate * stall_s")
    j = next(k for k, s in enumerate(sources) if "lab01.q3" in s)
    nb.cells[j].source = "undefined_name + 1\n" + nb.cells[j].source
    k = next(k for k, s in enumerate(sources) if "lab01.q4" in s)
    nb.cells[k].source = nb.cells[k].source.replace(
        "raise NotImplementedError  # your code here", "return float(np.max(a))"
    )
    nb.cells.insert(k, new_code_cell("raise RuntimeError('unrelated')"))
    nbformat.write(nb, path)

    score = run_notebook(path, smoke=True)
    status = {r.exercise_id: r.status for r in score.rows}
    assert status == {
        "lab01.q1": "pass",
        "lab01.q3": "not run",
        "lab01.q4": "fail",
        "lab01.q5": "not answered",
    }
    assert any("NameError" in e for e in score.errors)
    assert any("RuntimeError: unrelated" in e for e in score.errors)
    text = format_score(score)
    assert "score: 1/4 passed" in text
    assert "hidden test" in next(r.message for r in score.rows if r.exercise_id == "lab01.q4")
