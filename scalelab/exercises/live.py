"""The live step of a code exercise: the student's component inside the running service, under load.

A lab declares it on its :class:`~scalelab.exercises.code.CodeExercise`::

    live=LiveStep(field="service.executor.kind", compare_with="direct")

and the check then runs a short experiment (``scenarios/quickstart.toml`` by
default) with ``field`` set to the component's import path (``module:Class``),
swept against the built-in ``compare_with`` when one is named, and prints the
figures of each run. The service checks the class against its stage's
interface when it starts, so a class that does not fit fails with the
service's own message.

The class must be importable by the service process: a class defined in a
notebook cell is not. Write it to a module beside the notebook
(``%%writefile my_executor.py``), import it, and check the imported class; its
folder is put on the service's ``PYTHONPATH``.

The step is skipped with ``check(..., live=False)`` or ``SCALELAB_LIVE=0`` in the
environment (``scalelab exercises check --smoke`` sets it). The service uses the
Dask scheduler given as ``check(..., scheduler=...)`` or ``SCALELAB_SCHEDULER``,
else a LocalCluster of its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LIVE_ENV = "SCALELAB_LIVE"
SCHEDULER_ENV = "SCALELAB_SCHEDULER"

DEFAULT_FIGURES: tuple[str, ...] = ("requests", "throughput_rps", "p50_ms", "p99_ms", "error_rate")


def live_enabled(flag: bool | None) -> bool:
    """Whether live steps run: the explicit flag, else ``SCALELAB_LIVE`` (on unless ``0``)."""
    if flag is not None:
        return flag
    return os.environ.get(LIVE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class LiveOutcome:
    """What a live step found: whether the component held up, a message, and one row per run."""

    ok: bool
    message: str
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def repo_root() -> Path:
    """The checkout holding ``scalelab/`` and ``scenarios/`` (for an editable install)."""
    return Path(__file__).resolve().parents[2]


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
def _on_pythonpath(folder: Path | None) -> Iterator[None]:
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


@dataclass(frozen=True)
class LiveStep:
    """Plug a component into the service by ``field`` and load it with ``spec`` for a short run.

    ``overrides`` are spec overrides (``{"duration_s": 5}``) applied to every
    run; ``compare_with`` a built-in value of ``field`` run alongside for
    comparison; ``max_error_rate`` the share of failed requests above which the
    component fails the check.
    """

    field: str
    spec: str = "scenarios/quickstart.toml"
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"duration_s": 5.0})
    compare_with: str | None = None
    figures: tuple[str, ...] = DEFAULT_FIGURES
    max_error_rate: float = 0.01

    def spec_path(self) -> Path:
        """The spec, relative to the working directory or else to the checkout."""
        path = Path(self.spec)
        if path.is_absolute() or path.exists():
            return path
        return repo_root() / path

    def run(self, component: Any, context: Mapping[str, Any]) -> LiveOutcome:
        """Run the experiment with ``component`` in place and judge and show its figures."""
        try:
            path, folder = import_path(component)
        except ValueError as exc:
            return LiveOutcome(False, str(exc))
        from scalelab import run_experiment  # heavy; only when a live step runs

        values = [path] + ([self.compare_with] if self.compare_with else [])
        overrides = {**self.overrides, "repeats": 1, "sweep": {self.field: values}}
        scheduler = context.get("scheduler") or os.environ.get(SCHEDULER_ENV) or None
        out = context.get("out") or "results"
        print(f"live: running {path} in the service ({self.field}) under load...", flush=True)
        try:
            with _on_pythonpath(folder):
                result = run_experiment(
                    str(self.spec_path()),
                    overrides=overrides,
                    out=out,
                    progress=False,
                    report=False,
                    scheduler=scheduler,
                )
        except Exception as exc:  # noqa: BLE001 - the service's refusal is the feedback
            return LiveOutcome(False, f"the service could not run it: {exc}")
        rows = []
        errors: dict[str, str] = {}
        for run in result.runs:
            summary = dict(run.summary)
            params = dict(getattr(run, "params", None) or summary.get("params") or {})
            value = params.get(self.field, params.get(self.field.rsplit(".", 1)[-1], path))
            label = "yours" if value == path else str(value)
            errors[label] = str(getattr(run, "error", None) or "")
            rows.append(
                {
                    "component": label,
                    "status": getattr(run, "status", None) or summary.get("status", "ok"),
                }
                | {k: summary.get(k) for k in self.figures}
            )
        print(format_rows(rows))
        mine = [r for r in rows if r["component"] == "yours"]
        if not mine:
            return LiveOutcome(False, "the live run of your component recorded nothing", rows)
        row = mine[0]
        if row["status"] != "ok":
            why = f": {errors['yours']}" if errors.get("yours") else ""
            return LiveOutcome(
                False,
                f"the live run ended {row['status']!r}{why} (see {result.path})",
                rows,
            )
        error_rate = float(row.get("error_rate") or 0.0)
        if error_rate > self.max_error_rate:
            return LiveOutcome(
                False,
                f"{error_rate:.1%} of requests failed with your component in the service "
                f"(at most {self.max_error_rate:.0%} allowed); see {result.path}",
                rows,
            )
        return LiveOutcome(
            True, f"it served the live load (figures above; results in {result.path}).", rows
        )


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
