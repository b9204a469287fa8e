"""Reading an exercise's context: figures from a student's run, or numbers passed directly.

Expected-value functions in the lab modules use these so that one exercise
accepts ``run=`` (a :class:`scalelab.analysis.Run`, a ``RunResult``, a
``summary.json`` mapping, or a run directory) as well as the plain numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scalelab.exercises.base import Context
from scalelab.exercises.number import MissingContext


def summary_of(run: Any) -> Mapping[str, Any]:
    """The ``summary.json`` figures of ``run``, whatever form it was given in."""
    if isinstance(run, Mapping):
        return run
    summary = getattr(run, "summary", None)
    if isinstance(summary, Mapping):
        return summary
    if isinstance(run, str | Path) and (Path(run) / "summary.json").is_file():
        data = json.loads((Path(run) / "summary.json").read_text())
        if isinstance(data, dict):
            return data
    raise MissingContext(f"a run with summary figures (got {type(run).__name__})")


def figure(context: Context, name: str, from_run: str | None = None, scale: float = 1.0) -> float:
    """``context[name]``, else ``from_run`` of ``context["run"]``'s summary times ``scale``."""
    if name in context:
        return float(context[name])
    if from_run is not None and "run" in context:
        summary = summary_of(context["run"])
        if from_run in summary and summary[from_run] is not None:
            return float(summary[from_run]) * scale
        raise MissingContext(f"'{from_run}' in the run's summary")
    raise MissingContext(f"{name}=" + (" (or run=)" if from_run else ""))


def attribute(context: Context, name: str, holder: str) -> float:
    """``context[name]``, else the attribute or key ``name`` of ``context[holder]``."""
    if name in context:
        return float(context[name])
    if holder in context:
        obj = context[holder]
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if value is not None:
            return float(value)
    raise MissingContext(f"{name}= (or {holder}=)")
