"""The live step of a code exercise: the student's component inside the running service, under load.

A lab declares it publicly on its :class:`~scalelab.exercises.code.CodeExercise`::

    live=LiveStep(
        field="service.executor.kind",          # where the component plugs in
        spec="scenarios/executor_live.toml",     # the load it must carry
        compare_with="direct",                   # the built-in it is measured against
        outcome=ThroughputAtLeast(0.8),          # what it must reach
    )

Once the hidden tests pass, the check starts the service with ``field`` set to
the component's import path (``module:Class``), loads it with Locust for the
spec's few seconds (``overrides`` keep the step short), measures the built-in
the same way, and judges the outcome. The service checks the class against
its stage's interface when it starts, so a class that does not fit fails with
the service's own message.

The class must be importable by the service process: a class defined in a
notebook cell is not. Write it to a module beside the notebook
(``%%writefile my_executor.py``), import it, and check the imported class.

In a notebook the step runs unless ``check(..., live=False)`` or
``SCALELAB_LIVE=0``; under grading the grader runs it itself, in its own
process, against a baseline it measured in the same session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalelab.exercises.base import Verdict

if TYPE_CHECKING:
    from scalelab.analysis.load import Run

LIVE_ENV = "SCALELAB_LIVE"
SCHEDULER_ENV = "SCALELAB_SCHEDULER"

FIGURES: tuple[str, ...] = ("requests", "throughput_rps", "p50_ms", "p99_ms", "error_rate")


def live_enabled(flag: bool | None) -> bool:
    """Whether live steps run: the explicit flag, else ``SCALELAB_LIVE`` (on unless ``0``)."""
    if flag is not None:
        return flag
    return os.environ.get(LIVE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def repo_root() -> Path:
    """The checkout holding ``scalelab/`` and ``scenarios/`` (for an editable install)."""
    return Path(__file__).resolve().parents[2]


def find_scenarios(start: Path | None = None) -> Path | None:
    """The ``scenarios/`` folder of the course: beside or above ``start`` (the working
    directory), else the checkout's."""
    here = (start or Path.cwd()).resolve()
    for folder in [here, *here.parents]:
        if (folder / "scenarios").is_dir():
            return folder / "scenarios"
    fallback = repo_root() / "scenarios"
    return fallback if fallback.is_dir() else None


def import_path(component: Any) -> tuple[str, Path | None]:
    """``module:Class`` for ``component`` and the folder its module must be imported from.

    Raises :class:`ValueError` with the fix when the service could not import it.
    """
    module_name = getattr(component, "__module__", None)
    qualname = getattr(component, "__qualname__", None)
    if not module_name or not qualname or "<locals>" in qualname:
        raise ValueError(
            "the service imports your class by name; define it at the top level of a module"
        )
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if module_name == "__main__" or file is None:
        raise ValueError(
            "the service cannot import a class defined in a notebook cell; write it to a file "
            "beside the notebook (%%writefile my_component.py), import it from there, "
            "and check the imported class"
        )
    folder = Path(file).resolve().parent
    for _ in range(module_name.count(".")):
        folder = folder.parent
    if module_name.startswith("scalelab."):
        return f"{module_name}:{qualname}", None
    return f"{module_name}:{qualname}", folder


@contextlib.contextmanager
def on_pythonpath(folder: Path | None) -> Iterator[None]:
    """Within the block, child processes also import from ``folder``."""
    if folder is None:
        yield
        return
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), old) if p)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


class Outcome:
    """What a component must reach in the live step, judged from its run and the built-in's."""

    def describe(self) -> str:
        """The rule, in words."""
        raise NotImplementedError

    def judge(self, mine: Run, baseline: Run | None, step: LiveStep) -> Verdict:
        """Whether ``mine`` reached the outcome."""
        raise NotImplementedError


@dataclass(frozen=True)
class ThroughputAtLeast(Outcome):
    """Throughput of at least ``share`` of the built-in's, measured in the same session."""

    share: float

    def describe(self) -> str:
        return f"at least {self.share:.0%} of the built-in's throughput"

    def judge(self, mine: Run, baseline: Run | None, step: LiveStep) -> Verdict:
        if baseline is None:
            return Verdict(False, "the built-in was not measured, so the live step cannot judge")
        x_mine = float(mine.summary.get("throughput_rps") or 0.0)
        x_base = float(baseline.summary.get("throughput_rps") or 0.0)
        ratio = x_mine / x_base if x_base > 0 else math.nan
        text = (
            f"in the service it served {x_mine:.0f} requests/s against {x_base:.0f} for the "
            f"built-in {step.compare_with} ({ratio:.0%})"
        )
        if not ratio >= self.share:
            return Verdict(
                False,
                f"{text}; it must reach {self.share:.0%}: what in your code makes requests "
                "wait for each other?",
            )
        return Verdict(True, f"{text}.")


@dataclass(frozen=True)
class HitRatioAbove(Outcome):
    """A hit ratio at least ``margin`` above the built-in policy's on the same load."""

    margin: float

    def describe(self) -> str:
        return f"a hit ratio at least {self.margin:.2f} above the built-in's"

    def judge(self, mine: Run, baseline: Run | None, step: LiveStep) -> Verdict:
        from scalelab.analysis.caching import hit_ratio

        if baseline is None:
            return Verdict(False, "the built-in was not measured, so the live step cannot judge")
        h_mine, h_base = hit_ratio(mine), hit_ratio(baseline)
        text = (
            f"in the service your policy hit {h_mine:.1%} of reads, the built-in "
            f"{step.compare_with} {h_base:.1%}"
        )
        if not h_mine >= h_base + self.margin:
            return Verdict(False, f"{text}; it must beat it by {self.margin:.0%} on this load")
        return Verdict(True, f"{text}.")


@dataclass(frozen=True)
class LiveStep:
    """Plug a component into the service by ``field`` and load it with ``spec`` for a short run.

    ``overrides`` shorten or reshape the spec (the bounded form: seconds);
    ``compare_with`` is the built-in value of ``field`` measured alongside;
    ``outcome`` what the component must reach; ``max_error_rate`` the share of
    failed requests above which it fails whatever else it reached.
    """

    field: str
    spec: str
    compare_with: str
    outcome: Outcome
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    max_error_rate: float = 0.01

    def describe(self) -> str:
        """What the live step does and requires, in a sentence."""
        return (
            f"plugged into the service as {self.field} under {Path(self.spec).name}, "
            f"it must reach {self.outcome.describe()} ({self.compare_with})"
        )

    def spec_path(self, scenarios: Path | None = None) -> Path:
        """The spec: under ``scenarios`` when given, else found from the working directory."""
        path = Path(self.spec)
        if path.is_absolute():
            return path
        folder = scenarios or find_scenarios()
        name = path.name if path.parts[0] == "scenarios" else str(path)
        if folder is not None and (folder / name).is_file():
            return folder / name
        return repo_root() / path

    def measure(
        self,
        values: list[str],
        *,
        folder: Path | None,
        out: str | Path,
        scheduler: str | None,
        scenarios: Path | None = None,
    ) -> dict[str, Run]:
        """Run the spec once per value of ``field``, interleaved; each value's run, loaded."""
        from scalelab import run_experiment
        from scalelab.analysis import load_experiment

        overrides = {**self.overrides, "repeats": 1, "sweep": {self.field: values}}
        with on_pythonpath(folder):
            result = run_experiment(
                str(self.spec_path(scenarios)),
                overrides=overrides,
                out=out,
                progress=False,
                report=False,
                scheduler=scheduler,
            )
        runs: dict[str, Run] = {}
        for run in load_experiment(result.path).runs:
            runs[str(run.params.get(self.field, ""))] = run
        return runs

    def judge(self, mine: Run | None, baseline: Run | None) -> Verdict:
        """The outcome of the component's run, with one figure row per run."""
        rows = [figures_row("yours", mine)] if mine is not None else []
        if baseline is not None:
            rows.append(figures_row(self.compare_with, baseline))
        if mine is None:
            return Verdict(False, "the live run of your component recorded nothing", rows)
        if mine.status != "ok":
            error = str(mine.info.get("error") or "")
            return Verdict(
                False,
                f"the live run ended {mine.status!r}"
                + (f": {error}" if error else "")
                + f" (its logs: {mine.path / 'service.log'})",
                rows,
            )
        if len(mine.measured_requests) == 0:
            return Verdict(
                False,
                "the live run recorded no answered request: does run() return, and soon? "
                f"(its logs: {mine.path / 'service.log'})",
                rows,
            )
        error_rate = float(mine.summary.get("error_rate") or 0.0)
        if error_rate > self.max_error_rate:
            return Verdict(
                False,
                f"{error_rate:.1%} of requests failed with your component in the service "
                f"(at most {self.max_error_rate:.0%} allowed; its logs: "
                f"{mine.path / 'service.log'})",
                rows,
            )
        verdict = self.outcome.judge(mine, baseline, self)
        verdict.figures = rows
        return verdict

    def run_here(self, component: Any, context: Mapping[str, Any]) -> Verdict:
        """The live step from a notebook: the component and the built-in, interleaved, now."""
        try:
            path, folder = import_path(component)
        except ValueError as exc:
            return Verdict(False, str(exc))
        scheduler = context.get("scheduler") or os.environ.get(SCHEDULER_ENV) or None
        out = context.get("out") or "results"
        print(f"live: running {path} in the service ({self.field}) under load...", flush=True)
        try:
            runs = self.measure(
                [path, self.compare_with], folder=folder, out=out, scheduler=scheduler
            )
        except Exception as exc:  # noqa: BLE001 - the service's refusal is the feedback
            return Verdict(False, f"the service could not run it: {exc}")
        verdict = self.judge(runs.get(path), runs.get(self.compare_with))
        print(format_rows(verdict.figures))
        return verdict


def figures_row(label: str, run: Run) -> dict[str, Any]:
    """One row of the live step's table: the component and its run's figures."""
    return {"component": label, "status": run.status} | {k: run.summary.get(k) for k in FIGURES}


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of figure rows."""
    if not rows:
        return "(no runs)"
    columns = list(rows[0])

    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    widths = {c: max(len(c), *(len(cell(r.get(c))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(cell(r.get(c)).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)
