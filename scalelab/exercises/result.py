"""The outcome of one check: what a student sees, and what the gradebook records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "not answered", "recorded", "needs review"]
"""What :func:`~scalelab.exercises.check` can say.

``recorded``: the answer has the right form and is kept, but its hidden check
is not installed here (a student's copy): the grader decides. ``needs review``:
a reflection, which an instructor marks.
"""

_MARKS: dict[str, str] = {
    "pass": "✔",
    "fail": "✘",
    "not answered": "…",
    "recorded": "✎",
    "needs review": "✎",
}


@dataclass
class CheckResult:
    """One check's verdict: ``status``, a short ``message``, and any ``figures`` measured live.

    ``message`` never contains the solution. ``figures`` holds the rows shown by
    a live step (one mapping per run) so a notebook can plot them.
    """

    exercise_id: str
    status: Status
    message: str
    kind: str = ""
    figures: list[dict[str, Any]] = field(default_factory=list)
    _shown_in: int | None = field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        """True when the answer passed its check."""
        return self.status == "pass"

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return f"{_MARKS.get(self.status, '?')} {self.exercise_id}: {self.message}"

    def show(self) -> None:
        """Print the verdict, remembering the notebook cell it was printed in."""
        print(self)
        self._shown_in = _execution_count()

    def _ipython_display_(self) -> None:
        # check() prints its verdict; when it is also a cell's last expression,
        # do not print the same line twice.
        if self._shown_in is None or self._shown_in != _execution_count():
            print(self)


def _execution_count() -> int | None:
    """The running IPython cell's execution count, or None outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return None if shell is None else int(shell.execution_count)
