"""``check(exercise_id, answer, **context)``: the one call a notebook makes per exercise.

It prints and returns a :class:`CheckResult`. Blank answers fail as "not
answered yet" whatever the exercise. When ``SCALELAB_CHECK_LOG`` names a file,
each result is also appended to it as a JSON line: that is how
``scalelab exercises check`` collects a score table from a notebook it runs.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from scalelab.exercises.base import ExerciseError
from scalelab.exercises.blank import NOT_ANSWERED, is_blank
from scalelab.exercises.live import live_enabled
from scalelab.exercises.reflection import ReflectionExercise
from scalelab.exercises.registry import get
from scalelab.exercises.result import CheckResult

CHECK_LOG_ENV = "SCALELAB_CHECK_LOG"


def evaluate(
    exercise_id: str, answer: Any, live: bool | None = False, **context: Any
) -> CheckResult:
    """Judge ``answer`` without printing or logging (what :func:`check` and the tests use)."""
    exercise = get(exercise_id)
    if is_blank(answer):
        return exercise.result("not answered", NOT_ANSWERED)
    try:
        return exercise.judge(answer, context, live=live_enabled(live))
    except ExerciseError:
        raise
    except NotImplementedError:
        return exercise.result("not answered", NOT_ANSWERED)
    except Exception as exc:  # noqa: BLE001 - an odd answer is feedback, not a crash
        return exercise.result(
            "fail",
            exercise.with_hint(f"could not check this answer ({type(exc).__name__}: {exc})."),
        )


def check(exercise_id: str, answer: Any, live: bool | None = None, **context: Any) -> CheckResult:
    """Check ``answer`` to ``exercise_id``; print and return the verdict.

    ``context`` carries what the exercise's expected value depends on, such as
    ``run=`` (a run from :func:`scalelab.analysis.load_run`) or ``sigma=``.
    ``live`` runs (True) or skips (False) a code exercise's live step; left
    ``None`` it follows ``SCALELAB_LIVE`` (on by default).
    """
    result = evaluate(exercise_id, answer, live=live, **context)
    _log(result, answer)
    result.show()
    return result


def _log(result: CheckResult, answer: Any) -> None:
    """Append the result to the check log, when one is set."""
    path = os.environ.get(CHECK_LOG_ENV)
    if not path:
        return
    record: dict[str, Any] = {
        "id": result.exercise_id,
        "status": result.status,
        "message": result.message,
        "kind": result.kind,
        "time": time.time(),
    }
    if result.status == "pass" and isinstance(get(result.exercise_id), ReflectionExercise):
        record["text"] = str(answer).strip()
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
