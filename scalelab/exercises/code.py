"""Exercises answered by a function or a class, run against hidden tests.

The hidden tests live in the lab's module next to the exercise. Each is a
function that takes the student's answer and raises :class:`AssertionError`
with a message that says what went wrong (never what the right output is); its
docstring's first line names what it checks. Where the answer is a service
component, an optional :class:`~scalelab.exercises.live.LiveStep` then plugs it
into the running service under a short Locust load and shows the figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from scalelab.exercises.base import Context, Exercise
from scalelab.exercises.blank import NOT_ANSWERED
from scalelab.exercises.live import LiveStep
from scalelab.exercises.result import CheckResult

HiddenTest = Callable[[Any], None]


def _test_name(test: HiddenTest) -> str:
    doc = (test.__doc__ or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else test.__name__.strip("_").replace("_", " ")


class CodeExercise(Exercise):
    """A function or class that must pass ``tests``; ``solution`` is a reference answer."""

    kind = "code"

    def __init__(
        self,
        id: str,
        prompt: str,
        solution: Any,
        tests: Sequence[HiddenTest],
        *,
        expects: Literal["function", "class"] = "function",
        hint: str = "",
        live: LiveStep | None = None,
        example_context: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(id, prompt, hint, example_context)
        if not tests:
            raise ValueError(f"{id}: a code exercise needs at least one hidden test")
        self.solution = solution
        self.tests = tuple(tests)
        self.expects = expects
        self.live = live

    def solution_for(self, context: Context) -> Any:
        return self.solution

    def judge(self, answer: Any, context: Context, live: bool = False) -> CheckResult:
        if self.expects == "class" and not isinstance(answer, type):
            return self.result(
                "fail", self.with_hint(f"expected a class, got {type(answer).__name__}.")
            )
        if self.expects == "function" and (isinstance(answer, type) or not callable(answer)):
            return self.result(
                "fail", self.with_hint(f"expected a function, got {type(answer).__name__}.")
            )
        for test in self.tests:
            name = _test_name(test)
            try:
                test(answer)
            except NotImplementedError:
                return self.result("not answered", NOT_ANSWERED)
            except AssertionError as exc:
                what = str(exc) or "wrong result"
                return self.result("fail", self.with_hint(f"hidden test '{name}' failed: {what}."))
            except Exception as exc:  # noqa: BLE001 - any error in student code is feedback
                return self.result(
                    "fail",
                    self.with_hint(
                        f"hidden test '{name}': your code raised {type(exc).__name__}: {exc}."
                    ),
                )
        passed = f"passed {len(self.tests)} hidden test{'s' if len(self.tests) != 1 else ''}"
        if self.live is None or not live:
            return self.result("pass", f"{passed}.")
        outcome = self.live.run(answer, context)
        result = self.result(
            "pass" if outcome.ok else "fail",
            f"{passed}; {outcome.message}" if outcome.ok else f"{passed}, but {outcome.message}",
        )
        result.figures = outcome.rows
        return result
