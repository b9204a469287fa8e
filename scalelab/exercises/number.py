"""Exercises answered by a number, checked within a tolerance of a value computed from the context.

The expected value is a function of the context, so it can come from theory
(``sigma=`` and ``kappa=`` of a fit) or from the student's own measured run
(``run=``). Known wrong answers (``mistakes``) get a targeted hint.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from scalelab.exercises.base import Context, Exercise, ExerciseError
from scalelab.exercises.result import CheckResult


class MissingContext(KeyError):
    """Raised by an expected-value function when the check was called without what it needs."""


@dataclass(frozen=True)
class Mistake:
    """A common wrong answer (a function of the context) and the hint it deserves."""

    value: Callable[[Context], float]
    hint: str


class NumberExercise(Exercise):
    """A number within ``abs_tol`` or ``rel_tol`` of ``expected(context)``."""

    kind = "number"

    def __init__(
        self,
        id: str,
        prompt: str,
        expected: Callable[[Context], float],
        *,
        rel_tol: float = 0.05,
        abs_tol: float = 0.0,
        unit: str = "",
        hint: str = "",
        usage: str = "",
        mistakes: Sequence[Mistake] = (),
        example_context: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(id, prompt, hint, example_context)
        self.expected = expected
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol
        self.unit = unit
        self.usage = usage
        self.mistakes = tuple(mistakes)

    def expected_value(self, context: Context) -> float:
        """The right answer in ``context``; an :class:`ExerciseError` names what is missing."""
        try:
            return float(self.expected(context))
        except (KeyError, MissingContext) as exc:
            how = f" Call it as {self.usage}." if self.usage else ""
            raise ExerciseError(
                f"{self.id} needs {exc.args[0] if exc.args else 'more'} in its context.{how}"
            ) from None

    def solution_for(self, context: Context) -> float:
        return self.expected_value(context)

    def close(self, answer: float, target: float) -> bool:
        """True when ``answer`` is within the tolerance of ``target``."""
        return abs(answer - target) <= max(self.abs_tol, self.rel_tol * abs(target))

    def judge(self, answer: Any, context: Context, live: bool = False) -> CheckResult:
        if isinstance(answer, bool) or not isinstance(answer, numbers.Real):
            return self.result(
                "fail",
                self.with_hint(f"expected a single number, got {type(answer).__name__}."),
            )
        value = float(answer)
        if not math.isfinite(value):
            return self.result("fail", self.with_hint(f"{value} is not a finite number."))
        target = self.expected_value(context)
        unit = f" {self.unit}" if self.unit else ""
        if self.close(value, target):
            return self.result("pass", f"correct ({value:.4g}{unit}).")
        for mistake in self.mistakes:
            try:
                wrong = float(mistake.value(context))
            except (KeyError, ZeroDivisionError, ValueError):
                continue
            if self.close(value, wrong):
                return self.result(
                    "fail", self.with_hint(f"{value:.4g}{unit} is not it.", mistake.hint)
                )
        if target and any(self.close(value / factor, target) for factor in (1e3, 1e-3, 1e6, 1e-6)):
            return self.result(
                "fail",
                self.with_hint(
                    f"{value:.4g}{unit} is off by a power of 1000.",
                    "check your units (seconds or milliseconds? per second or per millisecond?).",
                ),
            )
        direction = "too high" if value > target else "too low"
        return self.result("fail", self.with_hint(f"{value:.4g}{unit} is {direction}."))
