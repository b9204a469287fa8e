"""The registry of exercises by id, filled by the lab modules ``scalelab.exercises.labNN``.

A lab module registers its exercises when it is imported; every module of this
package named ``lab`` + two digits is imported the first time the registry is
read, so a new lab needs no other wiring.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys

from scalelab.exercises.base import Exercise, ExerciseError

_REGISTRY: dict[str, Exercise] = {}
_OWNER: dict[str, str] = {}
_LAB_MODULE = re.compile(r"^lab\d{2}$")
_loaded = False


def register(exercise: Exercise) -> Exercise:
    """Add ``exercise``; re-registering from the same module (a reload) replaces it."""
    owner = str(sys._getframe(1).f_globals.get("__name__", ""))
    if _OWNER.get(exercise.id, owner) != owner:
        raise ExerciseError(
            f"exercise id {exercise.id!r} is registered by {_OWNER[exercise.id]} and {owner}; "
            "give one of them a new id"
        )
    _REGISTRY[exercise.id] = exercise
    _OWNER[exercise.id] = owner
    return exercise


def lab_modules() -> list[str]:
    """Names of the lab modules in this package, in lab order."""
    import scalelab.exercises as package

    names = [m.name for m in pkgutil.iter_modules(package.__path__) if _LAB_MODULE.match(m.name)]
    return [f"scalelab.exercises.{n}" for n in sorted(names)]


def load_labs() -> None:
    """Import every lab module once, registering its exercises."""
    global _loaded
    if _loaded:
        return
    for name in lab_modules():
        importlib.import_module(name)
    _loaded = True


def _sort_key(exercise_id: str) -> tuple[str, int]:
    lab, _, q = exercise_id.partition(".q")
    return lab, int(q) if q.isdigit() else 0


def all_exercises() -> list[Exercise]:
    """Every registered exercise, ordered by lab and question number."""
    load_labs()
    return [_REGISTRY[i] for i in sorted(_REGISTRY, key=_sort_key)]


def get(exercise_id: str) -> Exercise:
    """The exercise registered as ``exercise_id``."""
    load_labs()
    try:
        return _REGISTRY[exercise_id]
    except KeyError:
        raise ExerciseError(
            f"unknown exercise {exercise_id!r}; `scalelab exercises list` shows the ids"
        ) from None
