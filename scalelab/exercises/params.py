"""Parameters the grader sets: each lab's numbers drawn from a seed, the same in kernel and grader.

A lab declares the values a parameter may take (``{"max_batch": (2, 3, 4)}``).
A notebook reads its own with :func:`parameters` and configures its runs and
predictions with them; the grader draws the same ones from the same seed and
checks against *those*, whatever the notebook passed. A student practising at
home gets seed 0; under grading each student gets a seed of their own, so an
answer typed in as a number rather than computed does not carry over.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from scalelab.errors import ScaleLabError

SEED_ENV = "SCALELAB_EXERCISE_SEED"


class Parameters(Mapping[str, Any]):
    """A lab's drawn parameters: a read-only mapping that also reads as attributes."""

    def __init__(self, lab: str, values: Mapping[str, Any], seed: int, smoke: bool) -> None:
        self._lab = lab
        self._values = dict(values)
        self.seed = seed
        self.smoke = smoke

    def __getitem__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise KeyError(
                f"{self._lab} has no parameter {name!r}; it has {', '.join(self._values) or 'none'}"
            ) from None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(str(exc)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Parameters({self._lab}: {inner})"


def current_seed() -> int:
    """The seed of this process: ``SCALELAB_EXERCISE_SEED``, else 0."""
    text = os.environ.get(SEED_ENV, "").strip()
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        raise ScaleLabError(f"{SEED_ENV}={text!r}: give a whole number") from None


def seed_for(student: str) -> int:
    """A stable seed for a student's name, so regrading draws the same parameters."""
    return int(hashlib.sha256(student.encode()).hexdigest()[:8], 16)


def draw(lab: str, choices: Mapping[str, Sequence[Any]], seed: int, smoke: bool) -> Parameters:
    """One value per parameter, drawn from ``choices`` by ``seed`` (salted with the lab's id)."""
    salt = int(hashlib.sha256(lab.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng([seed, salt])
    values = {}
    for name, options in choices.items():
        if not options:
            raise ScaleLabError(f"{lab}: parameter {name!r} has no values to draw from")
        value = options[int(rng.integers(len(options)))]
        values[name] = value.item() if isinstance(value, np.generic) else value
    return Parameters(lab, values, seed, smoke)


def parameters(lab: str, smoke: bool = False, seed: int | None = None) -> Parameters:
    """This notebook's parameters of ``lab`` (for example ``parameters("lab00", smoke=SMOKE)``).

    Under grading the grader sets the seed; at home it is 0.
    """
    from scalelab.exercises.checking import remember_parameters
    from scalelab.exercises.registry import get_lab

    drawn = get_lab(lab).parameters_for(current_seed() if seed is None else seed, smoke)
    remember_parameters(drawn, lab)
    return drawn
