"""The base of every exercise kind: an id, a prompt, a hint, a solution, and a check.

An exercise is identified by ``labNN.qK``. Its ``check`` judges an answer in a
context (the keyword arguments a notebook passes to
:func:`scalelab.exercises.check`, such as ``run=`` or ``sigma=``) and returns a
:class:`CheckResult` whose message says what is wrong and gives a hint, but
never the solution. ``solution_for(context)`` produces the right answer; the
tests use it to prove that every solution passes and every blank fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from scalelab.errors import ScaleLabError
from scalelab.exercises.result import CheckResult, Status

Context = Mapping[str, Any]

ID_PATTERN = re.compile(r"^lab(\d{2})\.q(\d+)$")


class ExerciseError(ScaleLabError):
    """An exercise is used wrongly: an unknown id, or a check missing the context it needs."""


class Exercise:
    """Base class of the exercise kinds; subclasses implement :meth:`judge`."""

    kind: ClassVar[str] = "exercise"

    def __init__(
        self,
        id: str,
        prompt: str,
        hint: str = "",
        example_context: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        if not ID_PATTERN.match(id):
            raise ExerciseError(f"exercise id {id!r} must look like 'lab00.q1'")
        self.id = id
        self.prompt = prompt.strip()
        self.hint = hint.strip()
        self._example_context = example_context

    @property
    def lab(self) -> str:
        """The lab this exercise belongs to, e.g. ``lab01``."""
        return self.id.split(".", 1)[0]

    @property
    def title(self) -> str:
        """The prompt's first line."""
        return self.prompt.splitlines()[0] if self.prompt else ""

    def example_context(self) -> dict[str, Any]:
        """A context the exercise can be checked in without a notebook (for the tests)."""
        return dict(self._example_context()) if self._example_context else {}

    def solution_for(self, context: Context) -> Any:
        """The right answer in ``context``."""
        raise NotImplementedError

    def judge(self, answer: Any, context: Context, live: bool = False) -> CheckResult:
        """Check a non-blank ``answer``; subclasses say what is wrong and hint at the fix."""
        raise NotImplementedError

    def result(self, status: Status, message: str) -> CheckResult:
        """A :class:`CheckResult` for this exercise."""
        return CheckResult(self.id, status, message, kind=self.kind)

    def with_hint(self, message: str, hint: str | None = None) -> str:
        """``message`` followed by the hint (this exercise's own when none is given)."""
        hint = self.hint if hint is None else hint
        return f"{message} Hint: {hint}" if hint else message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"
