"""Course exercises that check themselves.

A notebook calls ``check("lab01.q2", answer, run=run)`` and gets a short
confirmation, or a message that says what is wrong with a hint (never the
solution). Exercises are registered by id in the lab modules
(``scalelab/exercises/labNN.py``); their kinds are:

- :class:`NumberExercise`: a number within a tolerance of a value computed from
  the context (theory, or the student's own run);
- :class:`CodeExercise`: a function or class run against hidden tests, and,
  for a service component, optionally plugged into the live service under load
  (:class:`LiveStep`);
- :class:`ReflectionExercise`: free text, recorded, not graded.

Blank answers (``None``, ``...``, ``NotImplemented``, ``""``, code that raises
``NotImplementedError``) fail as "not answered yet". See ``docs/course.md``
("Authoring a lab") for how to write a lab.
"""

from __future__ import annotations

from scalelab.exercises.base import Exercise, ExerciseError
from scalelab.exercises.checking import check, evaluate
from scalelab.exercises.code import CodeExercise
from scalelab.exercises.live import LiveStep
from scalelab.exercises.number import Mistake, NumberExercise
from scalelab.exercises.reflection import ReflectionExercise
from scalelab.exercises.registry import all_exercises, get, register
from scalelab.exercises.result import CheckResult

__all__ = [
    "CheckResult",
    "CodeExercise",
    "Exercise",
    "ExerciseError",
    "LiveStep",
    "Mistake",
    "NumberExercise",
    "ReflectionExercise",
    "all_exercises",
    "check",
    "evaluate",
    "get",
    "register",
]
