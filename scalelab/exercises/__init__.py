"""Course exercises: public checks in every copy, hidden checks with the instructor, a grader.

In a notebook::

    from scalelab.exercises import check, parameters, predict

    P = parameters("lab00", smoke=SMOKE)        # numbers the grader sets
    predict("lab00.q2", rps, direct=direct_runs) # before the run it is about
    check("lab00.q2", run=batched_runs)          # after it
    check("lab00.q1", ms, run=direct_runs[0])    # answers read against real runs

Each exercise is declared publicly in :mod:`scalelab.exercises.labs` (prompt,
points, the form of its answer, the runs it reads, the live step of a
component) and judged by a hidden part kept in the instructor's tree
(expected values, tolerances, wrong models, solutions, hidden tests;
:mod:`scalelab.exercises.instructor`). The kinds:

- :class:`NumberExercise`: a number against a value the hidden part computes
  from validated runs or from theory with the grader's parameters;
- :class:`PredictionExercise`: predict-then-measure;
- :class:`AnswerExercise`: a structured answer (an interval, a factor and its share);
- :class:`CodeExercise`: a function or class: public interface checks, hidden
  tests, and for a service component a :class:`LiveStep` under load;
- :class:`ReflectionExercise`: free text an instructor marks.

:func:`run_lab_experiment` runs a lab's spec from a notebook and stops, when a
run fails, with what failed and the paths of its logs.

``scalelab exercises grade`` executes submissions itself and writes a
gradebook and feedback (:mod:`scalelab.exercises.grading`). See
docs/course.md, "Writing a lab".
"""

from __future__ import annotations

from scalelab.exercises.base import AnswerError, Exercise, ExerciseError, Verdict
from scalelab.exercises.checking import check, evaluate, predict
from scalelab.exercises.code import CodeExercise
from scalelab.exercises.context import Param, Runs
from scalelab.exercises.experiments import RunFailed, run_lab_experiment
from scalelab.exercises.instructor import hide
from scalelab.exercises.live import HitRatioAbove, LiveStep, Outcome, ThroughputAtLeast
from scalelab.exercises.number import (
    AnswerExercise,
    Mistake,
    NumberExercise,
    PredictionExercise,
)
from scalelab.exercises.params import Parameters, parameters
from scalelab.exercises.reflection import ReflectionExercise
from scalelab.exercises.registry import Lab, all_exercises, all_labs, get, get_lab, lab
from scalelab.exercises.result import CheckResult

__all__ = [
    "AnswerError",
    "AnswerExercise",
    "CheckResult",
    "CodeExercise",
    "Exercise",
    "ExerciseError",
    "HitRatioAbove",
    "Lab",
    "LiveStep",
    "Mistake",
    "NumberExercise",
    "Outcome",
    "Param",
    "Parameters",
    "PredictionExercise",
    "ReflectionExercise",
    "RunFailed",
    "Runs",
    "ThroughputAtLeast",
    "Verdict",
    "all_exercises",
    "all_labs",
    "check",
    "evaluate",
    "get",
    "get_lab",
    "hide",
    "lab",
    "parameters",
    "predict",
    "run_lab_experiment",
]
