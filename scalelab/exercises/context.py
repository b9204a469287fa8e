"""What a check reads besides the answer: runs the system made, and the grader's parameters.

A number a student types in proves nothing, so a check never takes its
expected value from numbers passed beside the answer. It reads run
directories (``run=`` a :class:`scalelab.analysis.Run`, a ``RunResult``, an
experiment, or a path), each validated against what the exercise declares —
the experiment it belongs to, the settings it ran with (:class:`Runs`) — and
the lab's parameters (:mod:`scalelab.exercises.params`), which the grader
sets. Under grading a run also has to be one the grader saw appear while it
executed the notebook (:class:`Session`): a directory written by hand, or left
from another day, does not count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalelab.exercises.base import AnswerError
from scalelab.exercises.params import Parameters

if TYPE_CHECKING:
    from scalelab.analysis.load import Run


@dataclass(frozen=True)
class Param:
    """A run's setting that must equal a parameter the grader sets (``Param("max_batch")``).

    ``index`` picks one item of a parameter whose values are tuples.
    """

    name: str
    index: int | None = None

    def value(self, params: Parameters) -> Any:
        """The parameter's value in ``params``."""
        value = params[self.name]
        return value if self.index is None else value[self.index]


@dataclass(frozen=True)
class Stamp:
    """When the grader saw something happen: the cell being executed and the grader's clock."""

    cell: int
    time: float


@dataclass
class Session:
    """What the grader observed while it executed a notebook: the runs that appeared, and when.

    ``runs`` maps each run directory (resolved) to the :class:`Stamp` of the
    cell after which it was first seen. Only these runs count in grading.
    """

    runs: dict[Path, Stamp] = field(default_factory=dict)

    def stamp_of(self, path: Path) -> Stamp | None:
        """The stamp of the run at ``path``, or None when the grader never saw it made."""
        return self.runs.get(Path(path).resolve())


@dataclass(frozen=True)
class Prediction:
    """A prediction recorded by :func:`~scalelab.exercises.predict` before a run."""

    value: Any
    time: float
    stamp: Stamp | None = None
    context: Mapping[str, Any] = field(default_factory=dict)


def _lookup(spec: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted path of a resolved spec (``faults.0.stall`` indexes a list)."""
    node: Any = spec
    for part in dotted.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return None
    return node


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return str(a) == str(b)


def run_paths(value: Any) -> list[Path]:
    """The run directories ``value`` stands for (a run, runs, an experiment, a path)."""
    from scalelab.analysis.load import _run_dirs, is_experiment_dir, is_run_dir

    if value is None:
        return []
    if isinstance(value, str | Path):
        p = Path(value)
        if is_run_dir(p):
            return [p]
        if is_experiment_dir(p):
            return _run_dirs(p)
        raise AnswerError(f"{p} is not a run directory (one holding run.json and spec.toml)")
    runs = getattr(value, "runs", None)
    if runs is not None and not isinstance(value, Mapping):
        return [p for r in runs for p in run_paths(r)]
    path = getattr(value, "path", None)
    if path is not None and getattr(value, "run_id", None) is not None:
        return [Path(path)]
    if isinstance(value, list | tuple):
        return [p for item in value for p in run_paths(item)]
    if isinstance(value, Mapping):
        raise AnswerError(
            "a mapping of figures cannot be checked: pass the run itself "
            "(the analysis.Run, the RunResult or its directory), so the check reads what it "
            "measured"
        )
    raise AnswerError(f"expected a run, runs or a run directory, got {type(value).__name__}")


@dataclass(frozen=True)
class Runs:
    """The runs a check reads under one context name, and what they must be.

    ``experiment`` is the spec's ``name`` (``"quickstart"``); ``where`` the
    settings every run must have (a dotted spec path to a value, or to a
    :class:`Param` the grader sets); ``min_runs`` how many runs at least;
    ``min_repeats`` how many repeats of each setting at least (repeats are
    what an interval or a significance test rests on).
    """

    experiment: str
    where: Mapping[str, Any] = field(default_factory=dict)
    min_runs: int = 1
    min_repeats: int = 1
    what: str = ""

    def describe(self) -> str:
        """A phrase naming these runs, for messages."""
        if self.what:
            return self.what
        settings = ", ".join(f"{k.rsplit('.', 1)[-1]}={_shown(v)}" for k, v in self.where.items())
        return f"runs of {self.experiment}" + (f" with {settings}" if settings else "")


def _shown(value: Any) -> str:
    return f"<{value.name}>" if isinstance(value, Param) else repr(value)


class Context:
    """Everything a check may read: the context values passed, the parameters, the session.

    ``values`` are the keyword arguments of the ``check``/``predict`` call;
    ``prediction`` the recorded prediction (prediction exercises); ``stamp``
    when the grader saw the check call (None outside grading).
    """

    def __init__(
        self,
        exercise: Any,
        values: Mapping[str, Any],
        params: Parameters,
        session: Session | None = None,
        prediction: Prediction | None = None,
        stamp: Stamp | None = None,
        live: bool = False,
    ) -> None:
        self.exercise = exercise
        self.values = dict(values)
        self.params = params
        self.session = session
        self.prediction = prediction
        self.stamp = stamp
        self.live = live
        self._runs: dict[str, list[Run]] = {}

    @property
    def grading(self) -> bool:
        """True when the grader is judging (only runs it saw made count)."""
        return self.session is not None

    def param(self, name: str) -> Any:
        """The grader's parameter ``name``."""
        return self.params[name]

    def has(self, name: str) -> bool:
        """True when the check was given ``name``."""
        return name in self.values and self.values[name] is not None

    def runs(self, name: str) -> list[Run]:
        """The validated runs under ``name``; :class:`AnswerError` says what is wrong with them."""
        if name in self._runs:
            return self._runs[name]
        spec = self.exercise.context.get(name)
        if spec is None:
            raise AnswerError(f"{self.exercise.id} reads no runs called {name!r}")
        if not self.has(name):
            how = f" Call it as {self.exercise.usage}" if self.exercise.usage else ""
            raise AnswerError(f"pass {name}= ({spec.describe()}).{how}")
        runs = self._validate(name, spec, run_paths(self.values[name]))
        self._runs[name] = runs
        return runs

    def run(self, name: str) -> Run:
        """The one validated run under ``name``."""
        runs = self.runs(name)
        if len(runs) != 1:
            raise AnswerError(f"{name}= must be one run, got {len(runs)}")
        return runs[0]

    def stamps(self, name: str) -> list[Stamp | None]:
        """The grader's stamps of the runs under ``name`` (Nones outside grading)."""
        runs = self.runs(name)
        if self.session is None:
            return [None] * len(runs)
        return [self.session.stamp_of(r.path) for r in runs]

    def _validate(self, name: str, spec: Runs, paths: Iterable[Path]) -> list[Run]:
        from scalelab.analysis.load import load_run

        runs = []
        for path in paths:
            try:
                run = load_run(path)
            except Exception as exc:  # noqa: BLE001 - a damaged directory is the student's to fix
                raise AnswerError(f"{name}=: {exc}") from None
            if self.session is not None and self.session.stamp_of(run.path) is None:
                raise AnswerError(
                    f"{name}=: {run.path} was not made while the grader ran this notebook; "
                    "pass the runs the notebook itself made (under OUT)"
                )
            if run.status != "ok":
                error = str(run.info.get("error") or "")
                raise AnswerError(
                    f"{name}=: run {run.run_id} ended {run.status!r}"
                    + (f" ({error})" if error else "")
                    + f"; rerun it (its logs are in {run.path})"
                )
            experiment = run.spec.get("name")
            if experiment != spec.experiment:
                raise AnswerError(
                    f"{name}=: run {run.run_id} is from {experiment!r}; this check reads "
                    f"{spec.describe()}"
                )
            for key, wanted in spec.where.items():
                value = wanted.value(self.params) if isinstance(wanted, Param) else wanted
                got = _lookup(run.spec, key)
                if not _same(got, value):
                    raise AnswerError(
                        f"{name}=: run {run.run_id} has {key}={got!r}; this check reads "
                        f"{spec.describe()}"
                        + (f" (here {wanted.name}={value!r})" if isinstance(wanted, Param) else "")
                    )
            runs.append(run)
        if len(runs) < spec.min_runs:
            raise AnswerError(
                f"{name}= needs at least {spec.min_runs} run(s) ({spec.describe()}), "
                f"got {len(runs)}"
            )
        if spec.min_repeats > 1:
            groups: dict[str, int] = {}
            for run in runs:
                key = repr(sorted((k, repr(v)) for k, v in run.params.items()))
                groups[key] = groups.get(key, 0) + 1
            fewest = min(groups.values())
            if fewest < spec.min_repeats:
                raise AnswerError(
                    f"{name}= needs at least {spec.min_repeats} repeats of each setting "
                    f"(an interval rests on them); some setting has {fewest}"
                )
        return runs
