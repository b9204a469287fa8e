"""``scalelab exercises grade`` for real: each lab's reference notebook graded on its own (the
execution that proves it passes; one test per lab, so they can run side by side), and a blank
release and a partly wrong submission of a tiny demo lab in one gradebook."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from scalelab.cli import main
from scalelab.exercises.gradebook import COLUMNS
from scalelab.exercises.registry import all_labs, get_lab
from scalelab.exercises.release import release

REPO = Path(__file__).resolve().parents[2]
COURSE = Path(__file__).parent / "fixtures" / "course"
LABS = tuple(
    sorted(
        lab.id for lab in all_labs() if (REPO / "instructor" / "notebooks" / lab.notebook).exists()
    )
)
"""The course's labs: every registered lab with a solution notebook."""
pytestmark = pytest.mark.timeout(600)  # a lab's reference notebook is graded for real


@dataclass
class Graded:
    """One grading session's outcome."""

    status: int
    out: Path
    progress: str
    stdout: str
    seconds: float

    def rows(self) -> list[dict[str, str]]:
        with (self.out / "gradebook.csv").open(newline="") as f:
            return list(csv.DictReader(f))

    def row(self, student: str, exercise: str) -> dict[str, str]:
        return next(r for r in self.rows() if r["student"] == student and r["exercise"] == exercise)


@contextlib.contextmanager
def course_environment() -> Iterator[None]:
    """The demo lab's public module and hidden part beside the course's own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCALELAB_LABS", str(COURSE / "labs"))
        mp.setenv(
            "SCALELAB_INSTRUCTOR",
            os.pathsep.join([str(REPO / "instructor"), str(COURSE / "instructor")]),
        )
        yield


def grade(submissions: Path, out: Path, *extra: str) -> Graded:
    stdout, stderr = io.StringIO(), io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["exercises", "grade", str(submissions), "--out", str(out), *extra])
    return Graded(status, out, stderr.getvalue(), stdout.getvalue(), time.monotonic() - started)


def _partly_wrong(folder: Path) -> None:
    """The demo released, then answered: one right, one wrong, a reflection, a cell deleted,
    an unrelated error, and a cell that writes verdicts of its own where the grader might look."""
    release(COURSE / "instructor" / "notebooks", folder)
    path = folder / "90_demo.ipynb"
    nb = nbformat.read(path, as_version=4)

    def cell_with(text: str) -> int:
        return next(i for i, c in enumerate(nb.cells) if text in c.source)

    nb.cells[cell_with('"lab90.q1"')].source = 'product = P.a * P.b\ncheck("lab90.q1", product)'
    i = cell_with('"lab90.q2"')
    nb.cells[i].source = nb.cells[i].source.replace(
        "raise NotImplementedError  # your code here", "return x + 2"
    )
    i = cell_with('"lab90.q3"')
    nb.cells[i].source = nb.cells[i].source.replace(
        "reflection = ...  # your answer here",
        'reflection = "Because a notebook could claim any grade for itself."',
    )
    del nb.cells[cell_with('"lab90.q4"')]
    nb.cells.insert(3, new_code_cell("raise RuntimeError('unrelated')"))
    nb.cells.append(
        new_code_cell(
            "import json, os\n"
            "for name in ('SCALELAB_ANSWER_CHANNEL', 'SCALELAB_CHECK_LOG'):\n"
            "    if os.environ.get(name):\n"
            "        with open(os.environ[name], 'a') as f:\n"
            "            for q in ('q1', 'q2', 'q4'):\n"
            "                f.write(json.dumps({'id': 'lab90.' + q, 'status': 'pass'}) + '\\n')\n"
            "print('score: 5/5 passed')"
        )
    )
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Graded:
    """The demo lab graded for three students: its reference, a blank release, a partial one."""
    root = tmp_path_factory.mktemp("grading")
    subs = root / "submissions"
    (subs / "reference").mkdir(parents=True)
    shutil.copy(COURSE / "instructor" / "notebooks" / "90_demo.ipynb", subs / "reference")
    release(COURSE / "instructor" / "notebooks", subs / "blank")
    _partly_wrong(subs / "partial")
    (subs / "absent").mkdir()  # a student who handed in nothing
    (subs / "notes.txt").write_text("not a student")
    with course_environment():
        return grade(subs, root / "grades", "--smoke")


@pytest.mark.integration
def test_grading_exits_0_and_shows_progress(graded: Graded) -> None:
    assert graded.status == 0, graded.progress
    lines = graded.progress.splitlines()
    assert "note: notes.txt: not a student folder, skipped" in lines
    assert any(line.startswith("[1/3] blank/90_demo.ipynb: executing (SMOKE)") for line in lines)
    assert any(
        line.startswith("[3/3] reference/90_demo.ipynb: ") and "points" in line for line in lines
    )
    assert "gradebook:" in graded.stdout and "need review" in graded.stdout


@pytest.mark.integration
@pytest.mark.parametrize("lab", LABS)
def test_reference_solutions_pass_when_graded(
    lab: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A lab's reference notebook, executed by the grader in SMOKE mode, earns every point
    there is to earn automatically; its reflection waits for the instructor. What the kernel,
    its workers and the live cluster print goes to log files, not the grader's terminal."""
    notebook = get_lab(lab).notebook
    (tmp_path / "submissions" / "reference").mkdir(parents=True)
    shutil.copy(
        REPO / "instructor" / "notebooks" / notebook, tmp_path / "submissions" / "reference"
    )
    graded = grade(tmp_path / "submissions", tmp_path / "grades", "--smoke", "--lab", lab)
    assert graded.status == 0, graded.progress
    for exercise in get_lab(lab).exercises:
        row = graded.row("reference", exercise.id)
        want = "needs review" if exercise.kind == "reflection" else "pass"
        assert row["status"] == want, f"{exercise.id}: {row['status']}: {row['message']}"
        if exercise.kind == "code" and exercise.live is not None:
            assert "in the service" in row["message"], row["message"]
    data = json.loads((graded.out / "gradebook.json").read_text())
    (mine,) = [n for n in data["notebooks"] if n["student"] == "reference" and n["lab"] == lab]
    assert mine["errors"] == [], mine["errors"]
    terminal = capfd.readouterr()
    assert '"event":"task"' not in terminal.err and "distributed." not in terminal.err
    assert (graded.out / "work" / "reference" / lab / "kernel.log").is_file()
    if any(e.kind == "code" and e.live is not None for e in get_lab(lab).exercises):
        assert (graded.out / "live" / "cluster.log").is_file()
    warnings.warn(f"seconds to grade {notebook} (SMOKE): {mine['seconds']:.1f}", stacklevel=1)


@pytest.mark.integration
def test_the_expected_gradebook(graded: Graded) -> None:
    status = {(r["student"], r["exercise"]): r["status"] for r in graded.rows()}
    assert {
        k: v for k, v in status.items() if k[0] in ("blank", "partial") and k[1].startswith("lab90")
    } == {
        ("blank", "lab90.q1"): "not answered",
        ("blank", "lab90.q2"): "not answered",
        ("blank", "lab90.q3"): "not answered",
        ("blank", "lab90.q4"): "not answered",
        ("partial", "lab90.q1"): "pass",
        ("partial", "lab90.q2"): "fail",
        ("partial", "lab90.q3"): "needs review",
        ("partial", "lab90.q4"): "missing",
    }
    assert status[("reference", "lab90.q4")] == "pass"
    with course_environment():
        for exercise in get_lab("lab90").exercises:
            row = graded.row("absent", exercise.id)
            assert row["status"] == "missing" and "no notebook" in row["message"]
    partial_q2 = graded.row("partial", "lab90.q2")
    assert "hidden test" in partial_q2["message"] and partial_q2["points"] == "0"
    assert graded.row("partial", "lab90.q3")["answer_text"].startswith("Because a notebook")
    assert graded.row("partial", "lab90.q3")["points"] == ""
    data = json.loads((graded.out / "gradebook.json").read_text())
    assert data["students"]["partial"]["labs"]["lab90"] == {
        "points": 1.0,
        "max_points": 5.0,
        "pending_review": 1,
    }
    assert data["students"]["blank"]["points"] == 0.0
    notebook = next(
        n for n in data["notebooks"] if n["student"] == "partial" and n["lab"] == "lab90"
    )
    assert any("RuntimeError: unrelated" in e for e in notebook["errors"])
    assert (graded.out / notebook["executed"]).is_file()


@pytest.mark.integration
def test_gradebook_csv_and_json_hold_the_same_rows(graded: Graded) -> None:
    rows = graded.rows()
    with (graded.out / "gradebook.csv").open(newline="") as f:
        assert tuple(csv.DictReader(f).fieldnames or ()) == COLUMNS
    with course_environment():
        exercises = len(get_lab("lab90").exercises)
    assert len(rows) == 4 * exercises  # four students, one lab
    data = json.loads((graded.out / "gradebook.json").read_text())
    assert [(r["student"], r["exercise"], r["status"]) for r in data["rows"]] == [
        (r["student"], r["exercise"], r["status"]) for r in rows
    ]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip(
            "chromium is not installed (apt-get install chromium): the feedback page is not opened"
        )
    return found


@pytest.mark.integration
@pytest.mark.parametrize("student", ["reference", "partial"])
def test_feedback_opens_in_chromium_without_console_errors(
    graded: Graded, student: str, tmp_path: Path
) -> None:
    page = graded.out / "feedback" / f"{student}.html"
    text = page.read_text()
    assert "<script" not in text and "SOLUTION" not in text
    assert "Because what a kernel says about itself" not in text  # the model answer stays hidden
    shot = tmp_path / f"{student}.png"
    proc = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    assert shot.is_file() and shot.stat().st_size > 10_000, proc.stderr[-2000:]


@pytest.mark.integration
def test_instructor_marks_merge_back(graded: Graded, tmp_path: Path) -> None:
    out = tmp_path / "grades"
    shutil.copytree(graded.out, out, ignore=shutil.ignore_patterns("work", "live", "executed"))
    with (out / "gradebook.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["student"] == "partial" and row["exercise"] == "lab90.q3":
            row["instructor_points"] = "0.5"
            row["instructor_comment"] = "Say who could claim it."
    with (out / "gradebook.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    assert main(["exercises", "merge-marks", str(out)]) == 0
    data = json.loads((out / "gradebook.json").read_text())
    row = next(r for r in data["rows"] if r["student"] == "partial" and r["exercise"] == "lab90.q3")
    assert (row["status"], row["points"]) == ("reviewed", 0.5)
    assert data["students"]["partial"]["labs"]["lab90"]["points"] == 1.5
    assert "Say who could claim it." in (out / "feedback" / "partial.html").read_text()
    rows[0]["instructor_points"] = "99"
    with (out / "gradebook.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    assert main(["exercises", "merge-marks", str(out)]) == 2  # out of range: named, nothing lost


@pytest.mark.integration
def test_a_failing_hidden_part_is_a_grading_error(tmp_path: Path) -> None:
    subs = tmp_path / "submissions" / "student"
    release(COURSE / "instructor" / "notebooks", subs)
    path = subs / "90_demo.ipynb"
    nb = nbformat.read(path, as_version=4)
    i = next(i for i, c in enumerate(nb.cells) if '"lab90.q4"' in c.source)
    nb.cells[i].source = 'check("lab90.q4", 1.0, explode=True)'
    nbformat.write(nb, path)
    with course_environment():
        graded = grade(tmp_path / "submissions", tmp_path / "grades", "--smoke", "--lab", "90")
    assert graded.status == 1
    assert "grading errors" in graded.progress and "a bug in the hidden part" in graded.progress
    assert graded.row("student", "lab90.q4")["status"] == "error"
    assert graded.row("student", "lab90.q1")["status"] == "not answered"
