"""Free-text reflections: recorded to a local answers file, not graded.

A reflection fails only when it is blank. The text is appended, with its
exercise id and time, to ``scalelab-answers.jsonl`` in the working directory
(or the file named by ``SCALELAB_ANSWERS``), which the teacher collects with the
notebook.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scalelab.exercises.base import Context, Exercise
from scalelab.exercises.result import CheckResult

ANSWERS_ENV = "SCALELAB_ANSWERS"
DEFAULT_ANSWERS = "scalelab-answers.jsonl"


def answers_path() -> Path:
    """Where reflections are recorded."""
    return Path(os.environ.get(ANSWERS_ENV) or DEFAULT_ANSWERS)


class ReflectionExercise(Exercise):
    """A free-text answer; recorded, never graded (blank is the only way to fail)."""

    kind = "reflection"

    def __init__(
        self,
        id: str,
        prompt: str,
        solution: str,
        *,
        hint: str = "",
        example_context: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(id, prompt, hint, example_context)
        self.solution = solution

    def solution_for(self, context: Context) -> str:
        return self.solution

    def judge(self, answer: Any, context: Context, live: bool = False) -> CheckResult:
        if not isinstance(answer, str):
            return self.result(
                "fail", f"write your reflection as text (a string), not {type(answer).__name__}."
            )
        record = {"id": self.id, "time": time.time(), "text": answer.strip()}
        path = answers_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        return self.result("pass", f"recorded in {path.name} (not graded; discuss it in class).")
