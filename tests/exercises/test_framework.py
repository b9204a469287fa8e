"""The exercise framework's parts: answers over the channel, parameters, runs as context,
the instructor tree, checks in a student's copy, predictions, the gradebook and feedback."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exercises.runs import closed_loop_requests, lab_run
from scalelab.exercises import ExerciseError, check, checking, evaluate, get, parameters, predict
from scalelab.exercises.answers import Snapshot, Unreadable, dump, load
from scalelab.exercises.blank import is_blank
from scalelab.exercises.channel import CHANNEL_ENV, Reader, send
from scalelab.exercises.context import Stamp
from scalelab.exercises.gradebook import carry_marks, to_csv, write_gradebook
from scalelab.exercises.grading import GradeRow, NotebookRecord
from scalelab.exercises.instructor import INSTRUCTOR_ENV, instructor_roots
from scalelab.exercises.params import draw, seed_for
from scalelab.exercises.registry import all_labs, lab


def test_answers_survive_the_channel(tmp_path: Path) -> None:
    run = lab_run(tmp_path / "000-r0", "quickstart", closed_loop_requests(100, duration_s=2))
    values = [
        1.5,
        7,
        "text",
        None,
        ...,
        math.inf,
        (1.0, (2.0, 3.0)),
        [1, 2],
        {"A/A": (1.0, 2.0)},
        np.float64(2.5),
        Path("/x"),
    ]
    for value in values:
        assert load(json.loads(json.dumps(dump(value)))) == value or value is ..., value
    assert load(json.loads(json.dumps(dump([run])))) == [run.path.resolve()]
    assert load(dump(object())).__class__ is Unreadable


def test_a_class_travels_as_its_module_source(tmp_path: Path) -> None:
    module = tmp_path / "mine_a.py"
    module.write_text("class Mine:\n    answer = 42\n")
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("mine_a", module)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["mine_a"] = mod
    spec.loader.exec_module(mod)
    data = json.loads(json.dumps(dump(mod.Mine)))
    module.write_text("class Mine:\n    answer = 0\n")  # a later edit does not count
    snapshot = load(data)
    assert isinstance(snapshot, Snapshot)
    assert snapshot.load().answer == 42
    assert snapshot.write(tmp_path / "copy").read_text().endswith("answer = 42\n")
    notebook_class = type("InCell", (), {"__module__": "__main__"})
    assert "notebook cell" in load(dump(notebook_class)).what


def test_reader_stamps_calls_and_ignores_what_is_not_a_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "channel.jsonl"
    monkeypatch.setenv(CHANNEL_ENV, str(path))
    send("check", "lab01.q2", 3.5, {"run": None})
    with path.open("a") as f:
        f.write(json.dumps({"id": "lab01.q2", "status": "pass"}) + "\n")  # a verdict: ignored
        f.write('{"call": "check", "id": "lab01.q')  # a line still being written
    reader = Reader(path)
    [record] = reader.read(Stamp(4, 1.0))
    assert (record.exercise_id, record.answer, record.stamp.cell) == ("lab01.q2", 3.5, 4)
    with path.open("a") as f:
        f.write('4", "answer": 1, "context": {}, "time": 0}\n')
    [later] = reader.read(Stamp(6, 2.0))
    assert (later.exercise_id, later.stamp.cell) == ("lab01.q4", 6)


def test_parameters_are_drawn_per_seed_and_lab() -> None:
    choices = {"a": (1, 2, 3, 4, 5, 6, 7, 8), "b": (0.5, 1.0)}
    assert draw("lab00", choices, 3, False) == draw("lab00", choices, 3, False)
    seeds = {tuple(draw("lab00", choices, s, False).values()) for s in range(20)}
    assert len(seeds) > 4
    assert seed_for("alice") == seed_for("alice") != seed_for("bob")
    p = parameters("lab00")
    assert p.max_batch in (2, 3, 4) and p["max_batch"] == p.max_batch
    with pytest.raises(AttributeError, match="no parameter"):
        _ = p.nope


def test_a_lab_has_at_most_one_reflection() -> None:
    from scalelab.exercises import ReflectionExercise

    demo = lab("lab98", "98_x.ipynb", "x")
    demo.add(ReflectionExercise("lab98.q1", "Why?", points=1))
    with pytest.raises(ExerciseError, match="at most one"):
        demo.add(ReflectionExercise("lab98.q2", "Why again?", points=1))
    from scalelab.exercises import registry

    registry._LABS.pop("lab98")
    registry._EXERCISES.pop("lab98.q1")


def test_every_public_exercise_has_a_hidden_part_and_a_test_module() -> None:
    from scalelab.exercises.instructor import missing_hidden

    assert missing_hidden() == []
    here = Path(__file__).parent
    for found in all_labs():
        assert (here / f"test_{found.id}.py").is_file(), f"{found.id} has no test module"


def test_instructor_roots_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(INSTRUCTOR_ENV, "none")
    assert instructor_roots() == []
    monkeypatch.setenv(INSTRUCTOR_ENV, str(tmp_path))
    with pytest.raises(ExerciseError, match="labs/"):
        instructor_roots()
    monkeypatch.delenv(INSTRUCTOR_ENV)
    assert [r.name for r in instructor_roots()] == ["instructor"]  # the checkout's


def test_a_students_copy_runs_the_public_checks_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INSTRUCTOR_ENV, "none")
    result = evaluate("lab02.q4", 1.2)
    assert result.status == "recorded" and "grader" in result.message
    assert evaluate("lab02.q4", -1.0).status == "fail"  # below the public bound
    assert evaluate("lab02.q4", "1.2").status == "fail"
    assert evaluate("lab02.q4", ...).status == "not answered"
    assert evaluate("lab01.q5", "A short sentence.").status == "fail"


def test_blank_containers_are_not_answered() -> None:
    assert is_blank((..., ...)) and is_blank({"A/A": ..., "A/B": None})
    assert not is_blank((1.0, ...)) and not is_blank(0.0)


def test_predict_then_check_in_one_process(tmp_path: Path) -> None:
    """The kernel's flow: predict before the run, check after it; the order is enforced."""
    p = parameters("lab00")
    direct = [
        lab_run(
            tmp_path / f"{i:03d}-r{i}",
            "quickstart",
            closed_loop_requests(200, duration_s=2),
            settings={"service.executor.kind": "direct"},
        )
        for i in range(2)
    ]
    with pytest.raises(ExerciseError, match="predict"):
        check("lab00.q2", 3.0, run=direct)
    checking._PREDICTIONS.pop("lab00.q2", None)
    assert check("lab00.q2", run=direct).status == "fail"  # nothing predicted yet
    x_direct = sum(r.summary["throughput_rps"] for r in direct) / len(direct)
    assert predict("lab00.q2", p.max_batch * x_direct, direct=direct).status == "recorded"
    batched = [
        lab_run(
            tmp_path / f"b{i:03d}-r{i}",
            "quickstart",
            closed_loop_requests(500, duration_s=2),
            settings={
                "service.executor.kind": "batched",
                "service.executor.max_batch": p.max_batch,
            },
            started_at="2099-01-01T00:00:00+00:00",
        )
        for i in range(2)
    ]
    result = check("lab00.q2", run=batched)
    assert result.status == "pass", result.message
    old = lab_run(
        tmp_path / "old-r0",
        "quickstart",
        closed_loop_requests(500, duration_s=2),
        settings={"service.executor.kind": "batched", "service.executor.max_batch": p.max_batch},
    )
    assert "after run" in check("lab00.q2", run=[old]).message


def _row(**kw: Any) -> GradeRow:
    base = dict(
        student="s",
        lab="lab90",
        exercise="lab90.q3",
        kind="reflection",
        title="t",
        status="needs review",
        points=None,
        max_points=2.0,
        message="m",
        answer_text="x",
    )
    return GradeRow(**(base | kw))


def test_marks_carry_over_only_while_the_answer_is_unchanged(tmp_path: Path) -> None:
    row = _row(instructor_points=1.5)
    write_gradebook(tmp_path, [row], [NotebookRecord("s", "lab90", "n.ipynb", 1.0, [])], smoke=True)
    same, changed = _row(), _row(answer_text="y")
    carry_marks(tmp_path, [same])
    carry_marks(tmp_path, [changed])
    assert same.instructor_points == 1.5 and changed.instructor_points is None
    assert "instructor_points" in to_csv([same]).splitlines()[0]


def test_feedback_escapes_what_students_wrote() -> None:
    from scalelab.exercises.feedback import render

    page = render("s", [_row(answer_text="<script>alert(1)</script>")], [], smoke=False)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_unknown_ids_name_the_fix() -> None:
    with pytest.raises(ExerciseError, match="scalelab exercises list"):
        get("lab99.q1")
