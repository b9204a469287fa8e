"""What counts as "not answered yet": the placeholders a released notebook starts with."""

from __future__ import annotations

from typing import Any

NOT_ANSWERED = "not answered yet: replace the `...` with your answer and run the cell again"


def is_blank(answer: Any) -> bool:
    """True for the placeholders a student has not replaced.

    ``None``, ``...``, ``NotImplemented`` and empty or whitespace-only strings are
    blank. A function or class that raises :class:`NotImplementedError` is found
    blank when it is run (see :class:`~scalelab.exercises.code.CodeExercise`).
    """
    if answer is None or answer is Ellipsis or answer is NotImplemented:
        return True
    return isinstance(answer, str) and not answer.strip()
