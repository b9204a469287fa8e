"""Exercises answered by a function or a class: public interface checks, hidden tests, a live step.

The public part says what the answer must be — a class deriving from
``base`` (the service's extension point), or a function — and may carry
``public_tests`` that check the interface only. The hidden part holds the
reference ``solution`` and the ``tests``: plain functions that take the
student's answer and raise :class:`AssertionError` with a message saying what
went wrong (never what the right output is); their docstring's first line
names what they check. Where the answer is a service component, a public
:class:`~scalelab.exercises.live.LiveStep` then plugs it into the running
service under load, and it must reach the step's outcome there too.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from scalelab.exercises.answers import Snapshot, Unreadable
from scalelab.exercises.base import AnswerError, Exercise, Hidden, Verdict
from scalelab.exercises.live import LiveStep

if TYPE_CHECKING:
    from scalelab.exercises.context import Context

HiddenTest = Callable[[Any], None]


class NotAnswered(Exception):
    """The code still raises NotImplementedError: the exercise is not answered yet."""


def test_name(test: HiddenTest) -> str:
    """A test's name for messages: its docstring's first line, else its function name."""
    doc = (test.__doc__ or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else test.__name__.strip("_").replace("_", " ")


def run_tests(tests: Sequence[HiddenTest], answer: Any) -> str | None:
    """Run ``tests`` on ``answer``; None when all pass, else a message on the first failure."""
    for test in tests:
        name = test_name(test)
        try:
            test(answer)
        except NotImplementedError:
            raise NotAnswered from None
        except AssertionError as exc:
            return f"hidden test '{name}' failed: {exc or 'wrong result'}."
        except Exception as exc:  # noqa: BLE001 - any error in student code is feedback
            return f"test '{name}': your code raised {type(exc).__name__}: {exc}."
    return None


@dataclass
class CodeHidden(Hidden):
    """The hidden part of a code exercise: the reference ``solution`` and the hidden ``tests``."""

    solution: Any = None
    tests: Sequence[HiddenTest] = ()


class CodeExercise(Exercise):
    """A function or class that must pass hidden tests (and, with ``live``, reach an outcome live).

    ``expects`` is ``"class"`` or ``"function"``; ``base`` a class the answer
    must derive from; ``public_tests`` interface checks a student may see;
    ``live`` the live step of a service component.
    """

    kind = "code"
    hidden_type = CodeHidden

    def __init__(
        self,
        id: str,
        prompt: str,
        *,
        points: float,
        expects: Literal["function", "class"] = "function",
        base: type | None = None,
        public_tests: Sequence[HiddenTest] = (),
        live: LiveStep | None = None,
        hint: str = "",
        usage: str = "",
    ) -> None:
        super().__init__(id, prompt, points=points, hint=hint, usage=usage)
        self.expects = expects
        self.base = base
        self.public_tests = tuple(public_tests)
        self.live = live

    def public_check(self, answer: Any, context: Context) -> Any:
        """The answer as a class or function of the right shape, or :class:`AnswerError`."""
        if isinstance(answer, Unreadable):
            raise AnswerError(answer.what)
        if isinstance(answer, Snapshot):
            try:
                answer = answer.load()
            except Exception as exc:  # noqa: BLE001 - the student's module is broken
                raise AnswerError(
                    f"your module could not be imported: {type(exc).__name__}: {exc}"
                ) from None
        if self.expects == "class":
            if not isinstance(answer, type):
                raise AnswerError(f"expected a class, got {type(answer).__name__}")
            if self.base is not None and not issubclass(answer, self.base):
                raise AnswerError(
                    f"{answer.__name__} must subclass {self.base.__module__}.{self.base.__name__}"
                )
        elif isinstance(answer, type) or not callable(answer):
            raise AnswerError(f"expected a function, got {type(answer).__name__}")
        if context.grading:
            _refuse_instructor_code(answer)
        failed = run_tests(self.public_tests, answer)
        if failed:
            raise AnswerError(failed)
        return answer

    def grade(self, answer: Any, context: Context) -> Verdict:
        hidden = self.require_hidden()
        assert isinstance(hidden, CodeHidden)
        failed = run_tests(hidden.tests, answer)
        if failed:
            return Verdict(False, self.with_hint(failed))
        n = len(hidden.tests)
        passed = f"passed {n} hidden test{'s' if n != 1 else ''}"
        if self.live is None:
            return Verdict(True, f"{passed}.")
        if not context.live:
            return Verdict(True, f"{passed}; live step not run here.")
        runner = getattr(context, "live_runner", None)
        verdict = (
            runner(self, answer, context) if runner else self.live.run_here(answer, context.values)
        )
        joined = (
            f"{passed}; {verdict.message}" if verdict.passed else f"{passed}, but {verdict.message}"
        )
        return Verdict(verdict.passed, joined, verdict.figures)

    def reference(self, context: Context) -> Any:
        hidden = self.require_hidden()
        assert isinstance(hidden, CodeHidden)
        return hidden.solution


def _refuse_instructor_code(answer: Any) -> None:
    """An answer whose code lives in the instructor's tree is not the student's own."""
    from scalelab.exercises.instructor import instructor_roots

    snapshot = getattr(answer, "__scalelab_snapshot__", None)
    file = snapshot.file if snapshot is not None else None
    if file is None:
        try:
            file = inspect.getsourcefile(answer)
        except TypeError:
            file = None
    if not file:
        return
    path = Path(file).resolve()
    for root in instructor_roots(load=False):
        if path.is_relative_to(root.resolve()):
            raise AnswerError("this is the instructor's reference code, not yours")
