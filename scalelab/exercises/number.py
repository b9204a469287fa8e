"""Exercises answered by a number: a measurement read right, or a prediction made before a run.

:class:`NumberExercise`: the answer is compared with an expected value the
hidden part computes from the context — from runs the grader validated, or
from theory with the grader's parameters — within a tolerance. Known wrong
models (:class:`Mistake`) get a hint of their own; slips of a factor of 1000
are recognised for free.

:class:`PredictionExercise`: predict-then-measure. ``predict(id, value, ...)``
records the prediction *before* the run it is about; ``check(id, run=...)``
afterwards compares the prediction with what the hidden part expects and shows
the measurement beside it. A prediction made after its run started fails.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scalelab.exercises.base import AnswerError, Exercise, Hidden, Verdict

if TYPE_CHECKING:
    from scalelab.exercises.context import Context, Runs


@dataclass(frozen=True)
class Mistake:
    """A plausible wrong model (a function of the context) and the hint it deserves."""

    value: Callable[[Context], float]
    hint: str


@dataclass
class NumberHidden(Hidden):
    """The hidden part of a number: the expected value and how close an answer must come.

    ``expected(context)`` is the right value. The tolerance is the larger of
    ``abs_tol`` and ``rel_tol`` times the expected value, or ``tolerance(context,
    expected)`` when given (for example from a run's own sampling error).
    ``measured(context)`` (predictions) is the measurement, in the answer's
    unit, shown beside the prediction. ``confirm(answer, context)`` is a further
    condition on a right answer (a run made at the predicted point, say): None
    when it holds, else a :class:`Verdict` saying why not. ``reference``
    defaults to ``expected``.
    """

    expected: Callable[[Context], float] | None = None
    rel_tol: float = 0.05
    abs_tol: float = 0.0
    tolerance: Callable[[Context, float], float] | None = None
    mistakes: Sequence[Mistake] = ()
    measured: Callable[[Context], float] | None = None
    confirm: Callable[[float, Context], Verdict | None] | None = None


def as_number(answer: Any, what: str = "a single number") -> float:
    """``answer`` as a finite float, or :class:`AnswerError` naming what it is instead."""
    if isinstance(answer, bool) or not isinstance(answer, numbers.Real):
        raise AnswerError(f"expected {what}, got {type(answer).__name__}")
    value = float(answer)
    if math.isnan(value):
        raise AnswerError(f"expected {what}, got NaN")
    return value


class NumberExercise(Exercise):
    """A number within a tolerance of the hidden ``expected(context)``.

    ``unit`` is shown with numbers; ``bounds`` (low, high) is a public sanity
    check (a hit ratio lies in [0, 1]); ``allow_inf`` accepts ``math.inf`` as an
    answer (a knee that never comes).
    """

    kind = "number"
    hidden_type = NumberHidden

    def __init__(
        self,
        id: str,
        prompt: str,
        *,
        points: float,
        unit: str = "",
        bounds: tuple[float | None, float | None] = (None, None),
        allow_inf: bool = False,
        hint: str = "",
        usage: str = "",
        context: Mapping[str, Runs] | None = None,
    ) -> None:
        super().__init__(id, prompt, points=points, hint=hint, usage=usage, context=context)
        self.unit = unit
        self.bounds = bounds
        self.allow_inf = allow_inf

    def public_check(self, answer: Any, context: Context) -> float:
        """A finite number (or inf where allowed) inside the public bounds."""
        value = as_number(answer)
        if math.isinf(value) and not self.allow_inf:
            raise AnswerError(f"{value} is not a finite number")
        low, high = self.bounds
        unit = f" {self.unit}" if self.unit else ""
        if low is not None and value < low:
            raise AnswerError(f"{value:.4g}{unit} is below {low:g}, which no answer here can be")
        if high is not None and value > high:
            raise AnswerError(f"{value:.4g}{unit} is above {high:g}, which no answer here can be")
        return value

    def hidden_number(self) -> NumberHidden:
        """The hidden part, typed."""
        hidden = self.require_hidden()
        assert isinstance(hidden, NumberHidden)
        return hidden

    def expected_value(self, context: Context) -> float:
        """The right value in ``context`` (:class:`AnswerError` when the context is unusable)."""
        hidden = self.hidden_number()
        if hidden.expected is None:
            raise AnswerError(f"{self.id}: no expected value")
        return float(hidden.expected(context))

    def reference(self, context: Context) -> Any:
        hidden = self.hidden_number()
        if hidden.reference is not None:
            return super().reference(context)
        return self.expected_value(context)

    def tolerance(self, context: Context, target: float) -> float:
        """How far from ``target`` an answer may be."""
        hidden = self.hidden_number()
        if hidden.tolerance is not None:
            return float(hidden.tolerance(context, target))
        return max(hidden.abs_tol, hidden.rel_tol * abs(target))

    def compare(self, value: float, context: Context) -> Verdict:
        """Judge ``value`` against the expected value: right, a known mistake, a unit slip, off."""
        hidden = self.hidden_number()
        target = self.expected_value(context)
        unit = f" {self.unit}" if self.unit else ""
        if math.isinf(target) or math.isinf(value):
            if math.isinf(target) and math.isinf(value) and (target > 0) == (value > 0):
                return Verdict(True, "correct.")
            return Verdict(False, self.with_hint(f"{value:.4g}{unit} is not it."))
        tol = self.tolerance(context, target)
        if abs(value - target) <= tol:
            return Verdict(True, f"correct ({value:.4g}{unit}).")
        for mistake in hidden.mistakes:
            try:
                wrong = float(mistake.value(context))
            except (KeyError, ZeroDivisionError, ValueError, AnswerError):
                continue
            if math.isfinite(wrong) and abs(value - wrong) <= max(tol, 1e-12):
                return Verdict(False, self.with_hint(f"{value:.4g}{unit} is not it.", mistake.hint))
        if target and any(abs(value / f - target) <= tol for f in (1e3, 1e-3, 1e6, 1e-6)):
            return Verdict(
                False,
                self.with_hint(
                    f"{value:.4g}{unit} is off by a power of 1000.",
                    "check your units (seconds or milliseconds? per second or per millisecond?).",
                ),
            )
        direction = "too high" if value > target else "too low"
        return Verdict(False, self.with_hint(f"{value:.4g}{unit} is {direction}."))

    def grade(self, answer: Any, context: Context) -> Verdict:
        return self.compare(float(answer), context)


class PredictionExercise(NumberExercise):
    """Predict-then-measure: a number recorded by ``predict`` before the run, checked after it.

    ``predict_context`` names the runs the prediction is made from (read when
    it is recorded); ``context`` the runs it is about, passed to ``check``.
    Every run under ``context`` must have started after the prediction was
    recorded — under grading, in a later cell than the one that recorded it.
    """

    kind = "prediction"

    def __init__(
        self,
        id: str,
        prompt: str,
        *,
        points: float,
        predict_context: Mapping[str, Runs] | None = None,
        unit: str = "",
        bounds: tuple[float | None, float | None] = (None, None),
        hint: str = "",
        usage: str = "",
        context: Mapping[str, Runs] | None = None,
    ) -> None:
        merged = {**dict(predict_context or {}), **dict(context or {})}
        super().__init__(
            id,
            prompt,
            points=points,
            unit=unit,
            bounds=bounds,
            hint=hint,
            usage=usage,
            context=merged,
        )
        self.predict_context = dict(predict_context or {})
        self.measure_context = dict(context or {})

    def check_order(self, context: Context) -> None:
        """:class:`AnswerError` unless the prediction came before every measured run."""
        prediction = context.prediction
        if prediction is None:
            raise AnswerError(
                f"no prediction recorded: call predict({self.id!r}, value, ...) in a cell "
                "before the one that runs the experiment"
            )
        for name in self.measure_context:
            for run, stamp in zip(context.runs(name), context.stamps(name), strict=True):
                if prediction.stamp is not None and stamp is not None:
                    late = stamp.cell <= prediction.stamp.cell
                else:
                    started = _started(run)
                    late = started is not None and started < prediction.time
                if late:
                    raise AnswerError(
                        f"the prediction was recorded after run {run.run_id} had started; "
                        "record it in a cell before the one that runs the experiment, then "
                        "run that cell again"
                    )

    def grade(self, answer: Any, context: Context) -> Verdict:
        self.check_order(context)
        verdict = self.compare(float(answer), context)
        hidden = self.hidden_number()
        if hidden.measured is not None:
            measured = float(hidden.measured(context))
            unit = f" {self.unit}" if self.unit else ""
            off = (float(answer) - measured) / measured if measured else math.nan
            verdict.message += f" Measured: {measured:.4g}{unit} (your prediction {off:+.0%})."
        if verdict.passed and hidden.confirm is not None:
            extra = hidden.confirm(float(answer), context)
            if extra is not None:
                verdict = Verdict(extra.passed, f"{verdict.message} {extra.message}".strip())
        return verdict


def _started(run: Any) -> float | None:
    """When a run started (Unix s), from its run.json."""
    from datetime import datetime

    text = run.info.get("started_at")
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


def interval(answer: Any, what: str = "an interval (low, high)") -> tuple[float, float]:
    """``answer`` as (low, high) with low <= high; an ABResult-like object gives its CI."""
    low = getattr(answer, "ci_low", None)
    high = getattr(answer, "ci_high", None)
    if low is not None and high is not None:
        answer = (low, high)
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        raise AnswerError(f"expected {what}, got {type(answer).__name__}")
    lo, hi = (as_number(v, "numbers in the interval") for v in answer)
    if lo > hi:
        raise AnswerError(f"the interval ({lo:.4g}, {hi:.4g}) has its low end above its high end")
    return lo, hi


ShapeCheck = Callable[[Any, "Context"], Any]


@dataclass
class AnswerHidden(Hidden):
    """The hidden part of a structured answer: a judge function (answer, context) -> Verdict."""

    judge: Callable[[Any, Context], Verdict] | None = None
    notes: list[str] = field(default_factory=list)


class AnswerExercise(Exercise):
    """An answer with a shape of its own (an interval, a factor and its share, a pair...).

    ``shape(answer, context)`` is the public check: it returns the answer
    normalised (tuples of floats, a lower-cased name...) or raises
    :class:`AnswerError`; the hidden ``judge`` decides.
    """

    kind = "answer"
    hidden_type = AnswerHidden

    def __init__(
        self,
        id: str,
        prompt: str,
        *,
        points: float,
        shape: ShapeCheck,
        hint: str = "",
        usage: str = "",
        context: Mapping[str, Runs] | None = None,
    ) -> None:
        super().__init__(id, prompt, points=points, hint=hint, usage=usage, context=context)
        self.shape = shape

    def public_check(self, answer: Any, context: Context) -> Any:
        return self.shape(answer, context)

    def grade(self, answer: Any, context: Context) -> Verdict:
        hidden = self.require_hidden()
        assert isinstance(hidden, AnswerHidden)
        if hidden.judge is None:
            raise AnswerError(f"{self.id}: no judge in its hidden part")
        verdict = hidden.judge(answer, context)
        if not verdict.passed:
            verdict.message = self.with_hint(verdict.message)
        return verdict
