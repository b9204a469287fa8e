"""The registry of labs and their exercises, filled by the public lab modules.

A lab module (``scalelab/exercises/labs/labNN.py``) declares one :class:`Lab`
with :func:`lab` and adds its exercises to it in notebook order. Every such
module of the package is imported the first time the registry is read; a
course may add labs of its own without touching the package by listing
folders of ``labNN.py`` modules in ``SCALELAB_LABS`` (what a lab declares
there is public: students need it too).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import pkgutil
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from scalelab.exercises.base import Exercise, ExerciseError
from scalelab.exercises.params import Parameters, draw

LABS_ENV = "SCALELAB_LABS"
_LAB_MODULE = re.compile(r"^lab\d{2}$")
_LAB_ID = re.compile(r"^lab(\d{2})$")

E = TypeVar("E", bound=Exercise)


@dataclass
class Lab:
    """A lab: its notebook, its exercises in notebook order, and the parameters the grader sets.

    ``parameters`` maps each parameter to the values it may take; the grader
    draws one per student (:mod:`scalelab.exercises.params`).
    ``smoke_parameters`` replaces them in SMOKE mode, where experiments are tiny.
    """

    id: str
    notebook: str
    title: str
    parameters: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    smoke_parameters: Mapping[str, Sequence[Any]] | None = None
    exercises: list[Exercise] = field(default_factory=list)

    @property
    def number(self) -> str:
        """The two digits of the lab (``"00"``), which also start its notebook's name."""
        return self.id[3:]

    @property
    def points(self) -> float:
        """What the whole lab is worth."""
        return sum(e.points for e in self.exercises)

    def add(self, exercise: E) -> E:
        """Register ``exercise`` as the lab's next one."""
        if exercise.lab != self.id:
            raise ExerciseError(f"{exercise.id} does not belong to {self.id}")
        if exercise.kind == "reflection":
            others = [
                e.id for e in self.exercises if e.kind == "reflection" and e.id != exercise.id
            ]
            if others:
                raise ExerciseError(
                    f"{self.id} already has a reflection ({others[0]}); a lab has at most one"
                )
        self.exercises = [e for e in self.exercises if e.id != exercise.id] + [exercise]
        self.exercises.sort(key=lambda e: e.number)
        _EXERCISES[exercise.id] = exercise
        return exercise

    def parameters_for(self, seed: int, smoke: bool) -> Parameters:
        """The parameters drawn for ``seed`` (SMOKE's set in SMOKE mode)."""
        choices = self.smoke_parameters if smoke and self.smoke_parameters else self.parameters
        return draw(self.id, choices, seed, smoke)


_LABS: dict[str, Lab] = {}
_EXERCISES: dict[str, Exercise] = {}
_loaded: tuple[str, ...] | None = None
_from_extra: set[str] = set()


def lab(
    id: str,
    notebook: str,
    title: str,
    *,
    parameters: Mapping[str, Sequence[Any]] | None = None,
    smoke_parameters: Mapping[str, Sequence[Any]] | None = None,
) -> Lab:
    """Declare a lab (a module's first statement); declaring it again replaces it."""
    match = _LAB_ID.match(id)
    if not match:
        raise ExerciseError(f"lab id {id!r} must look like 'lab00'")
    if not notebook.startswith(match.group(1)) or not notebook.endswith(".ipynb"):
        raise ExerciseError(f"{id}: its notebook's name must start with {match.group(1)}")
    old = _LABS.get(id)
    if old is not None:
        for exercise in old.exercises:
            _EXERCISES.pop(exercise.id, None)
    new = Lab(id, notebook, title, dict(parameters or {}), smoke_parameters)
    _LABS[id] = new
    return new


def _extra_dirs() -> tuple[str, ...]:
    return tuple(p for p in os.environ.get(LABS_ENV, "").split(os.pathsep) if p.strip())


def load_labs() -> None:
    """Import every lab module once (again when ``SCALELAB_LABS`` changed)."""
    global _loaded
    extra = _extra_dirs()
    if _loaded == extra:
        return
    import scalelab.exercises.labs as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if _LAB_MODULE.match(info.name):
            importlib.import_module(f"scalelab.exercises.labs.{info.name}")
    for lab_id in _from_extra:  # labs of folders no longer listed
        for exercise in _LABS.pop(lab_id).exercises if lab_id in _LABS else []:
            _EXERCISES.pop(exercise.id, None)
    _from_extra.clear()
    for folder in extra:
        root = Path(folder)
        if not root.is_dir():
            raise ExerciseError(f"{LABS_ENV}: {root} is not a folder of labNN.py modules")
        tag = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
        for path in sorted(root.glob("lab[0-9][0-9].py")):
            name = f"scalelab_labs_{tag}.{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            before = set(_LABS)
            spec.loader.exec_module(module)
            _from_extra.update(set(_LABS) - before)
    _loaded = extra
    from scalelab.exercises import instructor

    instructor.forget()  # the labs were declared anew: attach their hidden parts again


def all_labs() -> list[Lab]:
    """Every lab, in order."""
    load_labs()
    return [_LABS[k] for k in sorted(_LABS)]


def get_lab(lab_id: str) -> Lab:
    """The lab ``lab_id`` (``"lab00"``)."""
    load_labs()
    try:
        return _LABS[lab_id]
    except KeyError:
        known = ", ".join(sorted(_LABS)) or "none"
        raise ExerciseError(f"unknown lab {lab_id!r}; the labs are {known}") from None


def lab_of_notebook(name: str) -> Lab | None:
    """The lab whose notebook's name starts with the same two digits as ``name``."""
    digits = Path(name).name[:2]
    for found in all_labs():
        if found.number == digits:
            return found
    return None


def all_exercises() -> list[Exercise]:
    """Every registered exercise, by lab and question number."""
    return [e for lab_ in all_labs() for e in lab_.exercises]


def get(exercise_id: str) -> Exercise:
    """The exercise registered as ``exercise_id``."""
    load_labs()
    try:
        return _EXERCISES[exercise_id]
    except KeyError:
        raise ExerciseError(
            f"unknown exercise {exercise_id!r}; `scalelab exercises list` shows the ids"
        ) from None
