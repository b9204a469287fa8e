"""The instructor's tree: the exercises' hidden parts, kept out of the wheel and the student bundle.

An instructor tree is a folder holding ``labs/labNN.py`` modules (and the
solution notebooks under ``notebooks/``). Each module attaches the hidden part
of its lab's exercises with :func:`hide`: expected values, tolerances, wrong
models, reference answers, solution classes, hidden tests, model answers.
The modules are imported as the package ``scalelab_instructor`` (so they may
share helpers with relative imports).

Where it is found: ``SCALELAB_INSTRUCTOR`` (one or more folders, separated by
``os.pathsep``; ``none`` to switch hidden checks off, as the grader does in a
student's kernel), else an ``instructor/`` folder holding ``labs/`` in the
working directory or one of its parents (a course checkout). A student's copy
has none, so its checks are the public ones.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path
from typing import Any

from scalelab.exercises.base import ExerciseError

INSTRUCTOR_ENV = "SCALELAB_INSTRUCTOR"
PACKAGE = "scalelab_instructor"
_OFF = ("none", "off", "0", "no")

_loaded: tuple[Path, ...] | None = None


def instructor_roots(load: bool = True) -> list[Path]:
    """The instructor trees in force (empty when none is found or they are switched off)."""
    text = os.environ.get(INSTRUCTOR_ENV)
    if text is not None:
        if text.strip().lower() in _OFF:
            return []
        roots = [Path(p) for p in text.split(os.pathsep) if p.strip()]
        for root in roots:
            if not (root / "labs").is_dir():
                raise ExerciseError(
                    f"{INSTRUCTOR_ENV}: {root} holds no labs/ folder; point it at the "
                    "instructor tree (the folder holding labs/ and notebooks/)"
                )
        return [r.resolve() for r in roots]
    here = Path.cwd().resolve()
    for folder in [here, *here.parents]:
        if (folder / "instructor" / "labs").is_dir():
            return [(folder / "instructor").resolve()]
    return []


def hide(exercise_id: str, **fields: Any) -> None:
    """Attach the hidden part of ``exercise_id`` (called by an instructor's lab module).

    The fields depend on the exercise's kind: ``expected``, ``rel_tol``,
    ``abs_tol``, ``tolerance``, ``mistakes``, ``measured``, ``reference`` for
    numbers and predictions; ``judge`` and ``reference`` for structured
    answers; ``solution`` and ``tests`` for code; ``model_answer`` and
    ``rubric`` for reflections.
    """
    from scalelab.exercises.registry import get

    get(exercise_id).attach(**fields)


def ensure_hidden() -> bool:
    """Load the hidden parts of the trees in force (once per set of trees); True when any."""
    global _loaded
    roots = tuple(instructor_roots())
    if roots == _loaded:
        return bool(roots)
    from scalelab.exercises.registry import all_exercises

    for exercise in all_exercises():
        exercise.hidden = None
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]
    if roots:
        package = types.ModuleType(PACKAGE)
        package.__path__ = [str(r / "labs") for r in roots]
        package.__doc__ = "The hidden parts of the exercises (an instructor's tree)."
        sys.modules[PACKAGE] = package
        for root in roots:
            for path in sorted((root / "labs").glob("lab[0-9][0-9].py")):
                try:
                    importlib.import_module(f"{PACKAGE}.{path.stem}")
                except ExerciseError:
                    raise
                except Exception as exc:
                    raise ExerciseError(f"{path}: the instructor's module failed: {exc}") from exc
    _loaded = roots
    return bool(roots)


def forget() -> None:
    """Attach the hidden parts again at the next :func:`ensure_hidden` (the labs were reloaded)."""
    global _loaded
    _loaded = None


def missing_hidden() -> list[str]:
    """Exercises without a hidden part once the trees in force are loaded."""
    from scalelab.exercises.registry import all_exercises

    ensure_hidden()
    return [e.id for e in all_exercises() if e.hidden is None]
