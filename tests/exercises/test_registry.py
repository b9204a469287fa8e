"""Every registered exercise: its solution passes, its blank fails, and no message gives it away."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from scalelab.exercises import (
    CodeExercise,
    ExerciseError,
    NumberExercise,
    ReflectionExercise,
    all_exercises,
    check,
    evaluate,
    get,
)
from scalelab.exercises.registry import lab_modules

EXERCISES = all_exercises()
IDS = [e.id for e in EXERCISES]
BLANKS: list[Any] = [None, ..., NotImplemented, "", "   "]


def _raises_not_implemented(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


class _BlankClass:
    """A class whose methods are still placeholders."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def run(self, *args: Any) -> Any:
        raise NotImplementedError

    def __call__(self, *args: Any) -> Any:
        raise NotImplementedError


def _renderings(value: float) -> list[str]:
    """Ways a number could appear in a message."""
    forms = {repr(value), f"{value:.4g}", f"{value:.3g}", f"{value:.2f}", f"{value:.1f}"}
    if value == int(value):
        forms.add(str(int(value)))
    return [f for f in forms if len(f.replace(".", "").replace("-", "")) >= 2]


def test_labs_00_and_01_have_at_least_three_exercises() -> None:
    assert {"scalelab.exercises.lab00", "scalelab.exercises.lab01"} <= set(lab_modules())
    for lab in ("lab00", "lab01"):
        assert len([e for e in EXERCISES if e.lab == lab]) >= 3


@pytest.mark.parametrize("exercise_id", IDS)
def test_solution_passes(exercise_id: str) -> None:
    exercise = get(exercise_id)
    context = exercise.example_context()
    result = evaluate(exercise_id, exercise.solution_for(context), **context)
    assert result.status == "pass", result.message
    assert result.passed and bool(result)


@pytest.mark.parametrize("exercise_id", IDS)
@pytest.mark.parametrize(
    "blank", BLANKS, ids=["None", "Ellipsis", "NotImplemented", "empty", "space"]
)
def test_blank_fails_as_not_answered(exercise_id: str, blank: Any) -> None:
    context = get(exercise_id).example_context()
    result = evaluate(exercise_id, blank, **context)
    assert result.status == "not answered"
    assert "not answered yet" in result.message
    assert not result


@pytest.mark.parametrize("exercise_id", [e.id for e in EXERCISES if isinstance(e, CodeExercise)])
def test_code_that_raises_not_implemented_is_not_answered(exercise_id: str) -> None:
    exercise = get(exercise_id)
    blank = _BlankClass if exercise.expects == "class" else _raises_not_implemented
    result = evaluate(exercise_id, blank, **exercise.example_context())
    assert result.status == "not answered", result.message


@pytest.mark.parametrize("exercise_id", [e.id for e in EXERCISES if isinstance(e, NumberExercise)])
@pytest.mark.parametrize("factor", [0.1, 0.5, 1.3, 3.0])
def test_wrong_number_fails_without_revealing_the_solution(exercise_id: str, factor: float) -> None:
    exercise = get(exercise_id)
    context = exercise.example_context()
    solution = exercise.solution_for(context)
    assert math.isfinite(solution)
    result = evaluate(exercise_id, solution * factor, **context)
    assert result.status == "fail"
    assert result.message
    for rendering in _renderings(solution):
        assert rendering not in result.message, (rendering, result.message)


@pytest.mark.parametrize("exercise_id", [e.id for e in EXERCISES if isinstance(e, NumberExercise)])
def test_number_exercise_rejects_non_numbers(exercise_id: str) -> None:
    context = get(exercise_id).example_context()
    for answer in ("12", [1.0], True, float("nan")):
        assert evaluate(exercise_id, answer, **context).status == "fail"


def test_number_exercise_names_missing_context() -> None:
    with pytest.raises(ExerciseError, match="lab01.q2 needs"):
        evaluate("lab01.q2", 3.0)


def test_run_context_accepts_a_run_directory(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({"throughput_rps": 100.0, "mean_ms": 50.0}))
    assert evaluate("lab01.q2", 5.0, run=tmp_path).passed
    assert evaluate("lab01.q2", 5000.0, run=tmp_path).status == "fail"


def test_known_mistake_gets_its_own_hint() -> None:
    run = {"throughput_rps": 412.7, "mean_ms": 38.9, "p50_ms": 31.2}
    result = evaluate("lab01.q2", 412.7 * 0.0312, run=run)
    assert result.status == "fail"
    assert "mean" in result.message


def test_unit_slip_is_named() -> None:
    result = evaluate("lab01.q2", 412.7 * 38.9, throughput_rps=412.7, mean_ms=38.9)
    assert "units" in result.message


def test_averaged_percentiles_get_a_pointed_hint() -> None:
    import numpy as np

    def averaged(a: Any, b: Any) -> float:
        return float((np.percentile(a, 99) + np.percentile(b, 99)) / 2)

    result = evaluate("lab01.q4", averaged)
    assert result.status == "fail"
    assert "average" in result.message


def test_code_that_crashes_is_reported_not_raised() -> None:
    result = evaluate("lab01.q4", lambda a, b: a.nonexistent)
    assert result.status == "fail"
    assert "AttributeError" in result.message


def test_class_expected_but_function_given() -> None:
    result = evaluate("lab00.q4", lambda: None)
    assert result.status == "fail"
    assert "expected a class" in result.message


def test_pure_executor_fails_the_hidden_test() -> None:
    from scalelab.exercises.lab00 import SolutionDirectExecutor
    from scalelab.service.executors import TaskResult
    from scalelab.service.workloads import run_task

    class Merging(SolutionDirectExecutor):
        async def run(self, fn: Any, args: tuple[Any, ...]) -> TaskResult:
            worker, value = await self.client.submit(run_task, fn, args)
            return TaskResult(value, worker, 1)

    result = evaluate("lab00.q4", Merging)
    assert result.status == "fail"
    assert "equal requests" in result.message


def test_unknown_id_names_the_fix() -> None:
    with pytest.raises(ExerciseError, match="scalelab exercises list"):
        evaluate("lab99.q1", 1.0)


def test_check_prints_logs_and_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "checks.jsonl"
    monkeypatch.setenv("SCALELAB_CHECK_LOG", str(log))
    assert check("lab01.q1", 375.0, rate=250.0, stall_s=1.5).passed
    assert not check("lab01.q1", 10.0, rate=250.0, stall_s=1.5)
    assert check("lab01.q5", "The users wait, so nothing is sent while it stalls.").passed
    out = capsys.readouterr().out
    assert "lab01.q1" in out and "correct" in out and "too low" in out
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["status"] for r in records] == ["pass", "fail", "pass"]
    assert records[2]["text"].startswith("The users wait")
    answers = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert answers[0]["id"] == "lab01.q5"


def test_reflection_is_not_graded_beyond_blank() -> None:
    exercise = get("lab00.q3")
    assert isinstance(exercise, ReflectionExercise)
    assert evaluate("lab00.q3", "short").passed
    assert evaluate("lab00.q3", 42).status == "fail"


def test_live_step_is_skipped_without_live() -> None:
    from scalelab.exercises.lab00 import SolutionDirectExecutor

    result = evaluate("lab00.q4", SolutionDirectExecutor, live=False)
    assert result.passed and result.figures == []
