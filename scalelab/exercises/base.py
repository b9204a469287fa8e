"""The base of every exercise kind: a public declaration, and a hidden part kept by the instructor.

An exercise is identified by ``labNN.qK`` and declared in a lab module of the
package (:mod:`scalelab.exercises.labs`): its prompt, its points, what its
answer must look like and which runs it reads (its *public* part, which every
student has). What decides whether an answer is right — the expected value,
the tolerances, the known wrong answers, the reference solution, the hidden
tests — is its *hidden* part, attached by the instructor's lab module
(``instructor/labs/labNN.py``, outside the wheel) with :func:`hide`.

Without the hidden part, :func:`~scalelab.exercises.check` runs the public
checks only and says the answer is *recorded*; the grader, which has it,
decides.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from scalelab.errors import ScaleLabError
from scalelab.exercises.result import CheckResult, Status

if TYPE_CHECKING:
    from scalelab.exercises.context import Context, Runs

ID_PATTERN = re.compile(r"^lab(\d{2})\.q(\d+)$")


class ExerciseError(ScaleLabError):
    """An exercise is defined or used wrongly: an unknown id, a hidden part that does not fit."""


class AnswerError(Exception):
    """An answer (or the context it was checked in) cannot be judged; the message says why.

    Raised by public checks and context readers; the check turns it into a
    ``fail`` whose message is this one.
    """


@dataclass
class Verdict:
    """What a hidden check decided: passed or not, a message, and any figures to show."""

    passed: bool
    message: str
    figures: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Hidden:
    """The hidden part every kind shares: an optional reference answer for the tests.

    ``reference(context)`` computes the right answer the way a solution
    notebook would; the instructor's tests use it to show the solution passes.
    """

    reference: Any = None


class Exercise:
    """Base class of the exercise kinds.

    ``points`` is what the exercise is worth; ``usage`` how a notebook calls its
    check (shown when the call is wrong); ``context`` names the runs the check
    reads (``{"run": Runs("quickstart", where={...})}``).
    """

    kind: ClassVar[str] = "exercise"
    hidden_type: ClassVar[type[Hidden]] = Hidden

    def __init__(
        self,
        id: str,
        prompt: str,
        *,
        points: float,
        hint: str = "",
        usage: str = "",
        context: Mapping[str, Runs] | None = None,
    ) -> None:
        if not ID_PATTERN.match(id):
            raise ExerciseError(f"exercise id {id!r} must look like 'lab00.q1'")
        if points <= 0:
            raise ExerciseError(f"{id}: points must be above 0, got {points}")
        self.id = id
        self.prompt = _dedent(prompt)
        self.points = float(points)
        self.hint = hint.strip()
        self.usage = usage.strip()
        self.context = dict(context or {})
        self.hidden: Hidden | None = None

    @property
    def lab(self) -> str:
        """The lab this exercise belongs to, e.g. ``lab01``."""
        return self.id.split(".", 1)[0]

    @property
    def number(self) -> int:
        """K of ``labNN.qK``."""
        return int(self.id.rsplit("q", 1)[1])

    @property
    def title(self) -> str:
        """The prompt's first line."""
        return self.prompt.splitlines()[0] if self.prompt else ""

    def attach(self, **fields: Any) -> None:
        """Attach the hidden part (called through :func:`hide`); unknown fields are an error."""
        known = {f.name for f in dataclasses.fields(self.hidden_type)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ExerciseError(
                f"{self.id} ({self.kind}) has no hidden field(s) {unknown}; "
                f"its fields are {sorted(known)}"
            )
        try:
            self.hidden = self.hidden_type(**fields)
        except TypeError as exc:
            raise ExerciseError(f"{self.id}: hidden part incomplete: {exc}") from None

    def public_check(self, answer: Any, context: Context) -> Any:
        """The answer in the form the hidden check reads; :class:`AnswerError` when it is malformed.

        Public checks say what is wrong with the *form* of an answer (a class
        expected, a number outside [0, 1]...), never whether it is right.
        """
        return answer

    def grade(self, answer: Any, context: Context) -> Verdict:
        """Judge a well-formed answer with the hidden part (which must be attached)."""
        raise NotImplementedError

    def reference(self, context: Context) -> Any:
        """The reference answer in ``context`` (from the hidden part; for the tests)."""
        hidden = self.require_hidden()
        if hidden.reference is None:
            raise ExerciseError(f"{self.id}: its hidden part gives no reference answer")
        return hidden.reference(context) if callable(hidden.reference) else hidden.reference

    def require_hidden(self) -> Hidden:
        """The hidden part, or an error naming the instructor tree."""
        if self.hidden is None:
            raise ExerciseError(
                f"{self.id}: its hidden part is not loaded; point SCALELAB_INSTRUCTOR at the "
                "instructor tree (the folder holding labs/)"
            )
        return self.hidden

    def result(self, status: Status, message: str) -> CheckResult:
        """A :class:`CheckResult` for this exercise."""
        return CheckResult(self.id, status, message, kind=self.kind)

    def with_hint(self, message: str, hint: str | None = None) -> str:
        """``message`` followed by the hint (this exercise's own when none is given)."""
        hint = self.hint if hint is None else hint
        return f"{message} Hint: {hint}" if hint else message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"


def _dedent(text: str) -> str:
    """A prompt written as an indented triple-quoted string, without the indentation."""
    import textwrap

    lines = text.strip("\n").splitlines()
    if not lines:
        return ""
    first, rest = lines[0].strip(), textwrap.dedent("\n".join(lines[1:]))
    return (first + ("\n" + rest if rest else "")).strip()
