"""Free-text reflections: recorded for an instructor to mark, never passed automatically.

A lab has at most one. Its public check asks only for enough words; its status
is then "needs review", and the gradebook leaves its points to the instructor
(``instructor_points``, merged back with ``scalelab exercises merge-marks``).
The hidden part holds a model answer and what a good answer names, for the
instructor's review.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scalelab.exercises.base import AnswerError, Exercise, Hidden, Verdict

if TYPE_CHECKING:
    from scalelab.exercises.context import Context


@dataclass
class ReflectionHidden(Hidden):
    """A model answer and the points a good answer makes (shown to the instructor only)."""

    model_answer: str = ""
    rubric: Sequence[str] = ()


class ReflectionExercise(Exercise):
    """Free text of at least ``min_words`` words; an instructor marks it."""

    kind = "reflection"
    hidden_type = ReflectionHidden

    def __init__(
        self,
        id: str,
        prompt: str,
        *,
        points: float,
        min_words: int = 20,
        hint: str = "",
        usage: str = "",
    ) -> None:
        super().__init__(id, prompt, points=points, hint=hint, usage=usage)
        self.min_words = min_words

    def public_check(self, answer: Any, context: Context) -> str:
        if not isinstance(answer, str):
            raise AnswerError(
                f"write your reflection as text (a string), not {type(answer).__name__}"
            )
        words = len(answer.split())
        if words < self.min_words:
            raise AnswerError(
                f"{words} words is too short to explain anything; write two or three sentences "
                f"(at least {self.min_words} words) saying what you saw and why"
            )
        return answer.strip()

    def grade(self, answer: Any, context: Context) -> Verdict:
        return Verdict(False, "recorded for your instructor to mark.")

    def reference(self, context: Context) -> Any:
        hidden = self.require_hidden()
        assert isinstance(hidden, ReflectionHidden)
        return hidden.model_answer
