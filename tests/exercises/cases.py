"""How every exercise is tested: its reference passes, blanks and wrong models fail, and so does
an answer checked in a context the student made up.

A lab's test module builds :class:`Case` objects (runs written from a known
model, the grader's parameters, a prediction where there is one) and hands
them to :func:`judge`. :data:`ROLES` are the four things each exercise must be
shown to do; ``test_coverage.py`` checks that every registered exercise has a
case of each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scalelab.exercises import evaluate
from scalelab.exercises.context import Prediction, Session
from scalelab.exercises.params import Parameters
from scalelab.exercises.result import CheckResult

ROLES = ("reference", "blank", "wrong model", "made-up context")


@dataclass
class Case:
    """One answer to one exercise in one context, and the verdict it must get."""

    exercise: str
    role: str
    name: str
    answer: Any
    context: dict[str, Any]
    params: Parameters
    expect: str
    says: str = ""
    prediction: Prediction | None = None
    session: Session | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.exercise}-{self.role}-{self.name}"


def judge(case: Case) -> CheckResult:
    """Evaluate ``case`` with the hidden parts, as the grader would."""
    return evaluate(
        case.exercise,
        case.answer,
        case.context,
        params=case.params,
        session=case.session,
        prediction=case.prediction,
        **case.extra,
    )


def problems(case: Case) -> list[str]:
    """What is wrong with the verdict ``case`` gets (nothing when it is the one expected)."""
    result = judge(case)
    found = []
    if result.status != case.expect:
        found.append(
            f"{case.id}: expected {case.expect!r}, got {result.status!r}: {result.message}"
        )
    elif case.says and case.says not in result.message:
        found.append(f"{case.id}: {result.message!r} does not say {case.says!r}")
    return found


def check_cases(exercise: str, cases: list[Case]) -> None:
    """Every case of ``exercise`` gets its verdict, and the four roles are all there."""
    mine = [c for c in cases if c.exercise == exercise]
    missing = [role for role in ROLES if not any(c.role == role for c in mine)]
    assert not missing, f"{exercise} has no case for: {missing}"
    if any(c.role == "reference" for c in mine):
        assert all(c.expect in ("pass", "needs review") for c in mine if c.role == "reference")
    assert all(c.expect != "pass" for c in mine if c.role != "reference"), "only references pass"
    failures = [p for c in mine for p in problems(c)]
    assert not failures, "\n".join(failures)
