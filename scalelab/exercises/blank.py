"""What counts as "not answered yet": the placeholders a released notebook starts with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NOT_ANSWERED = "not answered yet: replace the `...` with your answer and run the cell again"


def is_blank(answer: Any) -> bool:
    """True for the placeholders a student has not replaced.

    ``None``, ``...``, ``NotImplemented`` and empty or whitespace-only strings are
    blank, and so is a tuple, list or mapping holding nothing but blanks (an
    answer assembled from blank parts). A function or class that raises
    :class:`NotImplementedError` is found blank when it is run.
    """
    if answer is None or answer is Ellipsis or answer is NotImplemented:
        return True
    if isinstance(answer, str):
        return not answer.strip()
    if isinstance(answer, Mapping):
        return all(is_blank(v) for v in answer.values())
    if isinstance(answer, tuple | list):
        return all(is_blank(v) for v in answer)
    return False
