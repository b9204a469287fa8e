"""A lab's experiments from a notebook: a failed run says what failed and where its logs are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalelab.errors import RunError


class RunFailed(RunError):
    """A run of a lab's experiment did not end ok; the message names it, its error and its logs."""


def run_lab_experiment(
    spec: str | Path,
    overrides: dict[str, Any] | None = None,
    *,
    out: str | Path = "results",
    scheduler: str | None = None,
    progress: bool = False,
) -> Any:
    """Run ``spec`` with ``overrides`` and load it back (a :class:`scalelab.analysis.Experiment`).

    When a run does not end ok, stop with :class:`RunFailed`: which run, what
    went wrong, and the paths of its service and Locust logs. When a run ended
    ok but recorded no request at all (a load generator that started too late
    on a busy machine), the experiment runs once more, saying so.
    """
    from scalelab.analysis import load_experiment
    from scalelab.experiment.runner import run_experiment

    result = run_experiment(
        spec,
        overrides=overrides or {},
        out=out,
        scheduler=scheduler,
        report=False,
        progress=progress,
    )
    empty = [r.run_id for r in result.runs if r.status == "ok" and not r.summary.get("requests")]
    if empty:
        # A load generator that starts late on a busy machine can use up a short run before
        # sending anything; such a run measured nothing, so the experiment runs once more.
        print(
            f"note: run(s) {', '.join(empty)} of {result.name} recorded no request (a busy "
            "machine?); running the experiment once more",
            flush=True,
        )
        result = run_experiment(
            spec,
            overrides=overrides or {},
            out=out,
            scheduler=scheduler,
            report=False,
            progress=progress,
        )
    bad = [r for r in result.runs if r.status != "ok"]
    if bad:
        lines = [f"{len(bad)} of {len(result.runs)} run(s) of {result.name} did not end ok:"]
        for run in bad:
            path = Path(run.path)
            lines.append(
                f"  {run.run_id}: {run.status}"
                + (f": {run.error}" if run.error else "")
                + f"\n    logs: {path / 'service.log'} and {path / 'locust' / 'locust.log'}"
            )
        lines.append(
            "Fix what the logs say (or rerun, if the machine was busy), then run the cell again."
        )
        raise RunFailed("\n".join(lines))
    return load_experiment(result.path)
