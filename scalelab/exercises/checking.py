"""``check`` and ``predict``: the calls a notebook makes, and ``evaluate``, which judges.

``check(exercise_id, answer, **context)`` prints and returns a
:class:`CheckResult`. The answer first meets the exercise's public checks (its
form, and the runs it names); then, where the instructor's hidden part is
installed, the hidden check decides. In a student's copy the verdict is
``recorded``: the grader decides, against the runs it watched the notebook
make.

``predict(exercise_id, value, **context)`` records a prediction before the run
it is about; ``check(exercise_id, run=...)`` after the run compares them.

Under grading (``SCALELAB_ANSWER_CHANNEL`` set by the grader) each call also
hands its answer and context — never its verdict — to the grader, and live
steps are left to the grader.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from scalelab.exercises import channel
from scalelab.exercises.base import AnswerError, Exercise, ExerciseError
from scalelab.exercises.blank import NOT_ANSWERED, is_blank
from scalelab.exercises.code import NotAnswered
from scalelab.exercises.context import Context, Prediction, Session, Stamp, run_paths
from scalelab.exercises.instructor import ensure_hidden
from scalelab.exercises.live import live_enabled
from scalelab.exercises.number import PredictionExercise
from scalelab.exercises.params import Parameters, current_seed
from scalelab.exercises.reflection import ReflectionExercise
from scalelab.exercises.registry import get, get_lab
from scalelab.exercises.result import CheckResult

_NOTHING: Any = object()
_PREDICTIONS: dict[str, Prediction] = {}
_PARAMETERS: dict[str, Parameters] = {}

LiveRunner = Callable[[Any, Any, Context], Any]


def remember_parameters(params: Parameters, lab: str) -> None:
    """The parameters this kernel drew for ``lab`` (its checks read the same ones)."""
    _PARAMETERS[lab] = params


def kernel_parameters(lab: str) -> Parameters:
    """The parameters of ``lab`` in this process: as the notebook drew them, else the defaults."""
    return _PARAMETERS.get(lab) or get_lab(lab).parameters_for(current_seed(), smoke=False)


def evaluate(
    exercise_id: str,
    answer: Any,
    context: Mapping[str, Any] | None = None,
    *,
    params: Parameters | None = None,
    session: Session | None = None,
    prediction: Prediction | None = None,
    stamp: Stamp | None = None,
    live: bool = False,
    live_runner: LiveRunner | None = None,
    hidden: bool = True,
) -> CheckResult:
    """Judge ``answer`` in ``context`` without printing or recording anything.

    ``params`` default to this process's; ``session`` (the grader's) makes only
    the runs it saw count; ``prediction`` is the recorded prediction of a
    prediction exercise; ``hidden=False`` runs the public checks only.
    Exceptions from the hidden part itself propagate (they are the instructor's
    to fix); everything the student can cause becomes a ``fail``.
    """
    exercise = get(exercise_id)
    values = dict(context or {})
    if isinstance(exercise, PredictionExercise) and prediction is not None:
        values = {**dict(prediction.context), **values}
        answer = prediction.value
    if isinstance(exercise, PredictionExercise) and prediction is None:
        return exercise.result(
            "fail",
            f"no prediction recorded: call predict({exercise_id!r}, value, ...) in a cell "
            "before the one that runs the experiment",
        )
    if is_blank(answer):
        return exercise.result("not answered", NOT_ANSWERED)
    ctx = Context(
        exercise,
        values,
        params or kernel_parameters(exercise.lab),
        session=session,
        prediction=prediction,
        stamp=stamp,
        live=live,
    )
    ctx.live_runner = live_runner  # type: ignore[attr-defined]
    try:
        normal = exercise.public_check(answer, ctx)
        for name in exercise.context:
            ctx.runs(name)
        if isinstance(exercise, PredictionExercise):
            exercise.check_order(ctx)
    except NotAnswered:
        return exercise.result("not answered", NOT_ANSWERED)
    except AnswerError as exc:
        return exercise.result("fail", _with_usage(exercise, str(exc)))
    if isinstance(exercise, ReflectionExercise):
        return exercise.result("needs review", "recorded for your instructor to mark.")
    if not hidden or not ensure_hidden() or exercise.hidden is None:
        return exercise.result(
            "recorded",
            "well-formed, and recorded: the grader checks it against the runs it watches "
            "your notebook make.",
        )
    try:
        verdict = exercise.grade(normal, ctx)
    except NotAnswered:
        return exercise.result("not answered", NOT_ANSWERED)
    except AnswerError as exc:
        return exercise.result("fail", _with_usage(exercise, str(exc)))
    result = exercise.result("pass" if verdict.passed else "fail", verdict.message)
    result.figures = verdict.figures
    return result


def _with_usage(exercise: Exercise, message: str) -> str:
    message = message.rstrip(".") + "."
    if exercise.usage and "Call it as" not in message and "pass " in message:
        message += f" Call it as {exercise.usage}"
    return message


def check(
    exercise_id: str, answer: Any = _NOTHING, live: bool | None = None, **context: Any
) -> CheckResult:
    """Check ``answer`` to ``exercise_id``; print and return the verdict.

    ``context`` names the runs the exercise reads (``run=...``), as its prompt
    says. ``live`` runs (True) or skips (False) a code exercise's live step;
    left ``None`` it follows ``SCALELAB_LIVE`` (on by default).
    """
    exercise = get(exercise_id)
    prediction = None
    if isinstance(exercise, PredictionExercise):
        if answer is not _NOTHING:
            raise ExerciseError(
                f"{exercise_id} is a prediction: record it with predict({exercise_id!r}, value, "
                f"...) before the run, then call check({exercise_id!r}, ...) with the runs only"
            )
        answer = None
        prediction = _PREDICTIONS.get(exercise_id)
    elif answer is _NOTHING:
        raise ExerciseError(f"check({exercise_id!r}, answer, ...): give your answer")
    grading = channel.active()
    if grading:
        channel.send("check", exercise_id, answer, context)
    run_live = live_enabled(live) and not grading
    try:
        result = evaluate(
            exercise_id,
            answer,
            context,
            prediction=prediction,
            live=run_live,
            hidden=not grading,
        )
    except ExerciseError:
        raise
    except Exception as exc:  # noqa: BLE001 - in a notebook, say it rather than crash the cell
        result = exercise.result(
            "fail", f"could not check this answer ({type(exc).__name__}: {exc})."
        )
    result.show()
    return result


def predict(exercise_id: str, value: Any, **context: Any) -> CheckResult:
    """Record a prediction for ``exercise_id`` before running the experiment it is about."""
    exercise = get(exercise_id)
    if not isinstance(exercise, PredictionExercise):
        raise ExerciseError(f"{exercise_id} is not a prediction; answer it with check(...)")
    if channel.active():
        channel.send("predict", exercise_id, value, context)
    if is_blank(value):
        result = exercise.result("not answered", NOT_ANSWERED)
        result.show()
        return result
    ctx = Context(exercise, context, kernel_parameters(exercise.lab))
    try:
        number = exercise.public_check(value, ctx)
        for name in exercise.predict_context:
            ctx.runs(name)
    except AnswerError as exc:
        result = exercise.result("fail", _with_usage(exercise, str(exc)))
        result.show()
        return result
    stored = {k: (run_paths(v) if k in exercise.predict_context else v) for k, v in context.items()}
    _PREDICTIONS[exercise_id] = Prediction(number, time.time(), None, stored)
    unit = f" {exercise.unit}" if exercise.unit else ""
    result = exercise.result(
        "recorded",
        f"prediction recorded ({number:.4g}{unit}); now run the experiment, then "
        f"check({exercise_id!r}, ...) with its runs.",
    )
    result.show()
    return result
