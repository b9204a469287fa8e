"""The grader: executes each submitted notebook itself, then judges its answers in its own process.

For every student folder and lab notebook in it, the grader:

1. copies the notebook (only the notebook) into a fresh working folder beside
   the course's own specs, and injects its parameters with papermill
   (``OUT``, and ``SMOKE`` with ``--smoke``);
2. executes it top to bottom in a fresh kernel (nbclient), errors allowed, with
   the student's seed for the lab's parameters, hidden checks switched off in
   the kernel, and an answer channel; after every cell it reads the answers the
   cell handed over and notes the run directories that appeared, stamping both
   with the cell's index and its own clock;
3. judges every exercise the registry lists for the lab — not the ones the
   notebook happens to contain — with the hidden parts, against the runs it saw
   made; runs a component's live step itself, in its bounded short form,
   against a baseline it measured in the same session;
4. returns one :class:`GradeRow` per student and exercise.

Nothing the kernel writes about its own verdict is read. A reflection is
"needs review" and waits for the instructor's mark.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab.errors import ScaleLabError
from scalelab.exercises.base import Exercise, Verdict
from scalelab.exercises.blank import NOT_ANSWERED, is_blank
from scalelab.exercises.channel import CHANNEL_ENV, Reader, Record
from scalelab.exercises.checking import evaluate
from scalelab.exercises.context import Context, Prediction, Session, Stamp
from scalelab.exercises.instructor import INSTRUCTOR_ENV, ensure_hidden, missing_hidden
from scalelab.exercises.live import LIVE_ENV, LiveStep, find_scenarios
from scalelab.exercises.live_logs import LiveLogs
from scalelab.exercises.number import PredictionExercise
from scalelab.exercises.params import SEED_ENV, seed_for
from scalelab.exercises.registry import Lab, all_labs, lab_of_notebook
from scalelab.exercises.result import CheckResult

CELL_TIMEOUT_S = 1_800
BASELINE_MAX_AGE_S = 900.0
MIN_LIVE_REQUESTS = 20
"""Fewer requests than this in a live run are too few to judge a component by."""
_STUDENT = re.compile(r"^[\w.@+-]+$")


@dataclass
class GradeRow:
    """One student's result on one exercise."""

    student: str
    lab: str
    exercise: str
    kind: str
    title: str
    status: str
    points: float | None
    max_points: float
    message: str
    answer_text: str = ""
    figures: list[dict[str, Any]] = field(default_factory=list)
    instructor_points: float | None = None
    instructor_comment: str = ""


@dataclass
class NotebookRecord:
    """How one submitted notebook went: time taken, its cell errors, where the executed copy is."""

    student: str
    lab: str
    notebook: str
    seconds: float
    errors: list[str]
    executed: str = ""
    status: str = "graded"


@dataclass
class Submission:
    """A student's notebook for a lab."""

    student: str
    lab: Lab
    path: Path


def find_submissions(folder: Path) -> tuple[list[str], list[Submission], list[str]]:
    """Students (one folder each), their lab notebooks, and notes on files that are not."""
    if not folder.is_dir():
        raise ScaleLabError(
            f"{folder}: submissions folder not found; give a folder holding one folder per "
            "student, each with the student's notebooks"
        )
    students: list[str] = []
    found: list[Submission] = []
    notes: list[str] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            notes.append(f"{entry.name}: not a student folder, skipped")
            continue
        if not _STUDENT.match(entry.name):
            notes.append(
                f"{entry.name}: a student folder's name may hold letters, digits, . _ @ + -"
            )
            continue
        students.append(entry.name)
        for nb in sorted(entry.glob("*.ipynb")):
            lab = lab_of_notebook(nb.name)
            if lab is None:
                notes.append(f"{entry.name}/{nb.name}: no lab has this number, skipped")
                continue
            if any(s.student == entry.name and s.lab.id == lab.id for s in found):
                notes.append(f"{entry.name}/{nb.name}: a second notebook for {lab.id}, skipped")
                continue
            found.append(Submission(entry.name, lab, nb))
    if not students:
        raise ScaleLabError(f"{folder}: no student folders in it")
    return students, found, notes


def _mentions(nb: Any, exercise_id: str) -> bool:
    pattern = re.compile(r"""(check|predict)\(\s*["']""" + re.escape(exercise_id) + """["']""")
    return any(c.cell_type == "code" and pattern.search(c.source) for c in nb.cells)


def cell_errors(nb: Any) -> list[str]:
    """``cell N: Name: value`` for every cell whose output is an error."""
    errors = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                errors.append(f"cell {index}: {out.get('ename')}: {out.get('evalue')}")
    return errors


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class GradingError(ScaleLabError):
    """The grader itself could not do its job (not a student's failing answer)."""


class UnreadableNotebook(Exception):
    """A submitted file the grader cannot open as a notebook: the student's to fix."""


class Grader:
    """Grades folders of submissions into rows; one instance is one grading session.

    ``out`` receives the working folders, the executed notebooks and the live
    runs; ``scenarios`` is the course's specs folder (the checkout's by
    default); ``smoke`` injects ``SMOKE = True``; ``live=False`` skips live steps
    (they then fail: a component that was not seen under load has not passed).
    """

    def __init__(
        self,
        out: Path,
        *,
        smoke: bool = False,
        scenarios: Path | None = None,
        cell_timeout: float = CELL_TIMEOUT_S,
        live: bool = True,
        progress: Callable[[str], None] = _stderr,
    ) -> None:
        self.out = Path(out).resolve()
        self.smoke = smoke
        scenarios = scenarios or find_scenarios()
        if scenarios is None or not scenarios.is_dir():
            raise ScaleLabError("no scenarios/ folder found; pass --scenarios DIR")
        self.scenarios = scenarios.resolve()
        self.cell_timeout = cell_timeout
        self.live = live
        self.progress = progress
        self.grading_errors: list[str] = []
        self._cluster: Any = None
        self._logs: LiveLogs | None = None
        self._client: Any = None
        self._baselines: dict[tuple[str, str, str], tuple[float, Any]] = {}
        self._student = ""

    # --- the session ----------------------------------------------------------------------

    def grade(
        self, submissions: Path, labs: Iterable[str] | None = None
    ) -> tuple[list[GradeRow], list[NotebookRecord]]:
        """Grade every submission under ``submissions`` (only ``labs`` when given)."""
        if not ensure_hidden():
            raise ScaleLabError(
                f"no instructor tree found: set {INSTRUCTOR_ENV} to the folder holding labs/ "
                "(the hidden parts), or run from the course checkout"
            )
        missing = missing_hidden()
        if missing:
            raise ScaleLabError(f"the instructor tree has no hidden part for {', '.join(missing)}")
        students, subs, notes = find_submissions(Path(submissions))
        for note in notes:
            self.progress(f"note: {note}")
        wanted = set(labs) if labs else None
        graded_labs = [
            lab_
            for lab_ in all_labs()
            if any(s.lab.id == lab_.id for s in subs) and (wanted is None or lab_.id in wanted)
        ]
        subs = [s for s in subs if s.lab in graded_labs]
        rows: list[GradeRow] = []
        records: list[NotebookRecord] = []
        total = len(subs)
        done = 0
        try:
            for student in students:
                for lab_ in graded_labs:
                    sub = next(
                        (s for s in subs if s.student == student and s.lab.id == lab_.id), None
                    )
                    if sub is None:
                        rows += [
                            self._row(
                                student, e, "missing", 0.0, "no notebook for this lab was submitted"
                            )
                            for e in lab_.exercises
                        ]
                        records.append(
                            NotebookRecord(student, lab_.id, "", 0.0, [], status="missing")
                        )
                        continue
                    done += 1
                    mode = " (SMOKE)" if self.smoke else ""
                    self.progress(f"[{done}/{total}] {student}/{sub.path.name}: executing{mode}...")
                    nb_rows, record = self.grade_notebook(sub)
                    rows += nb_rows
                    records.append(record)
                    earned = sum(r.points or 0.0 for r in nb_rows)
                    pending = sum(r.status == "needs review" for r in nb_rows)
                    errs = sum(r.status == "error" for r in nb_rows)
                    self.progress(
                        f"[{done}/{total}] {student}/{sub.path.name}: {record.seconds:.0f} s, "
                        f"{earned:g}/{lab_.points:g} points"
                        + (f", {pending} awaiting review" if pending else "")
                        + (f", {errs} GRADING ERROR(S)" if errs else "")
                    )
        finally:
            self.close()
        return rows, records

    def close(self) -> None:
        """Stop the live steps' cluster."""
        for thing in (self._client, self._cluster):
            if thing is not None:
                with contextlib.suppress(Exception):  # closing is best effort
                    thing.close()
        self._client = self._cluster = None
        if self._logs is not None:
            self._logs.close()
            self._logs = None

    def _row(
        self,
        student: str,
        exercise: Exercise,
        status: str,
        points: float | None,
        message: str,
        text: str = "",
    ) -> GradeRow:
        return GradeRow(
            student=student,
            lab=exercise.lab,
            exercise=exercise.id,
            kind=exercise.kind,
            title=exercise.title,
            status=status,
            points=points,
            max_points=exercise.points,
            message=message,
            answer_text=text,
        )

    # --- one notebook ---------------------------------------------------------------------

    def grade_notebook(self, sub: Submission) -> tuple[list[GradeRow], NotebookRecord]:
        """Execute one notebook and judge every exercise of its lab."""
        import nbformat

        self._student = sub.student
        work = self.out / "work" / sub.student / sub.lab.id
        if work.exists():
            shutil.rmtree(work)
        (work / "notebooks").mkdir(parents=True)
        shutil.copytree(
            self.scenarios, work / "scenarios", ignore=shutil.ignore_patterns("__pycache__")
        )
        notebook = work / "notebooks" / sub.path.name
        shutil.copy2(sub.path, notebook)
        results = work / "results"
        results.mkdir()
        channel_path = work / ".answers.jsonl"
        reader = Reader(channel_path)
        session = Session()
        started = time.monotonic()
        seed = seed_for(sub.student)
        try:
            nb, errors = self._execute(notebook, results, channel_path, seed, reader, session)
        except UnreadableNotebook as exc:
            rows = [self._row(sub.student, e, "not run", 0.0, str(exc)) for e in sub.lab.exercises]
            record = NotebookRecord(
                sub.student, sub.lab.id, sub.path.name, time.monotonic() - started, [str(exc)]
            )
            return rows, record
        except GradingError as exc:
            self.grading_errors.append(f"{sub.student}/{sub.path.name}: {exc}")
            rows = [
                self._row(sub.student, e, "error", None, f"grading error: {exc}")
                for e in sub.lab.exercises
            ]
            return rows, NotebookRecord(
                sub.student,
                sub.lab.id,
                sub.path.name,
                time.monotonic() - started,
                [str(exc)],
                status="error",
            )
        executed = self.out / "executed" / sub.student / sub.path.name
        executed.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, executed)
        params = sub.lab.parameters_for(seed, self.smoke)
        rows = [
            self._judge(sub, e, nb, reader.records, session, params, errors, work)
            for e in sub.lab.exercises
        ]
        record = NotebookRecord(
            sub.student,
            sub.lab.id,
            sub.path.name,
            time.monotonic() - started,
            errors,
            executed=str(executed.relative_to(self.out)),
        )
        return rows, record

    def _execute(
        self,
        notebook: Path,
        results: Path,
        channel_path: Path,
        seed: int,
        reader: Reader,
        session: Session,
    ) -> tuple[Any, list[str]]:
        from nbclient import NotebookClient
        from nbclient.exceptions import CellTimeoutError, DeadKernelError
        from papermill.iorw import load_notebook_node
        from papermill.parameterize import parameterize_notebook

        try:
            nb = load_notebook_node(str(notebook))
        except Exception as exc:  # noqa: BLE001 - a corrupt file is the student's
            raise UnreadableNotebook(f"the notebook could not be read: {exc}") from exc
        values: dict[str, Any] = {"OUT": str(results)}
        if self.smoke:
            values["SMOKE"] = True
        nb = parameterize_notebook(nb, values, kernel_name="python3", language="python")
        env = dict(os.environ)
        env.update(
            {
                CHANNEL_ENV: str(channel_path),
                SEED_ENV: str(seed),
                LIVE_ENV: "0",
                INSTRUCTOR_ENV: "none",
            }
        )
        last = [0]

        def after_cell(cell: Any, cell_index: int, **_: Any) -> None:
            last[0] = cell_index
            stamp = Stamp(cell_index, time.time())
            reader.read(stamp)
            for run_json in results.rglob("run.json"):
                session.runs.setdefault(run_json.parent.resolve(), stamp)

        client = NotebookClient(
            nb,
            timeout=self.cell_timeout,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(notebook.parent)}},
            on_cell_executed=after_cell,
        )
        stopped: list[str] = []
        # The kernel's own output (and that of the Dask workers it starts) is the notebook's
        # log, not the grader's console: it is kept beside the student's results.
        kernel_log = results.parent / "kernel.log"
        kernel_log.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(kernel_log, "ab") as log:
                client.execute(env=env, stdout=log, stderr=log)
        except (DeadKernelError, CellTimeoutError) as exc:
            stopped.append(
                f"the notebook stopped: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            )
        except Exception as exc:  # noqa: BLE001 - the kernel could not even start
            raise GradingError(f"could not execute notebooks: {type(exc).__name__}: {exc}") from exc
        after_cell(None, last[0])
        return nb, cell_errors(nb) + stopped

    def _judge(
        self,
        sub: Submission,
        exercise: Exercise,
        nb: Any,
        records: list[Record],
        session: Session,
        params: Any,
        errors: list[str],
        work: Path,
    ) -> GradeRow:
        mine = [r for r in records if r.exercise_id == exercise.id]
        checks = [r for r in mine if r.call == "check"]
        if not checks:
            predictions = [r for r in mine if r.call == "predict"]
            if predictions and is_blank(predictions[-1].answer):
                return self._row(sub.student, exercise, "not answered", 0.0, NOT_ANSWERED)
            if _mentions(nb, exercise.id):
                why = f" (first error: {errors[0]})" if errors else ""
                return self._row(
                    sub.student, exercise, "not run", 0.0, f"its check did not run{why}"
                )
            return self._row(
                sub.student, exercise, "missing", 0.0, "the notebook has no check for it"
            )
        last = checks[-1]
        prediction = None
        if isinstance(exercise, PredictionExercise):
            before = [r for r in mine if r.call == "predict" and r.stamp.cell <= last.stamp.cell]
            if before:
                p = before[-1]
                prediction = Prediction(p.answer, p.kernel_time, p.stamp, p.context)
        try:
            result = evaluate(
                exercise.id,
                last.answer,
                last.context,
                params=params,
                session=session,
                prediction=prediction,
                stamp=last.stamp,
                live=True,
                live_runner=self._live_runner,
            )
        except Exception as exc:  # noqa: BLE001 - the hidden part failed: the instructor's to fix
            self.grading_errors.append(f"{sub.student}/{exercise.id}: {type(exc).__name__}: {exc}")
            return self._row(
                sub.student, exercise, "error", None, f"grading error: {type(exc).__name__}: {exc}"
            )
        return self._result_row(sub.student, exercise, result, last.answer)

    def _result_row(
        self, student: str, exercise: Exercise, result: CheckResult, answer: Any
    ) -> GradeRow:
        points: float | None = exercise.points if result.status == "pass" else 0.0
        if result.status == "needs review":
            points = None
        text = answer if isinstance(answer, str) else ""
        row = self._row(student, exercise, result.status, points, result.message, text)
        row.figures = result.figures
        return row

    # --- live steps -----------------------------------------------------------------------

    def _scheduler(self) -> str:
        if self._client is None:
            from distributed import Client, LocalCluster

            # The cluster's workers are threads of this process: their lines go to files
            # beside the live runs, not into the progress on this terminal.
            self._logs = LiveLogs(self.out / "live")

            self._cluster = LocalCluster(
                n_workers=2,
                threads_per_worker=2,
                processes=False,
                protocol="tcp://",
                dashboard_address=":0",
            )
            self._client = Client(self._cluster)
        return str(self._client.scheduler.address)

    def _baseline(self, step: LiveStep, fresh: bool = False) -> Any:
        key = (step.spec, step.field, step.compare_with)
        cached = self._baselines.get(key)
        if not fresh and cached is not None and time.monotonic() - cached[0] < BASELINE_MAX_AGE_S:
            return cached[1]
        run = None
        for _ in range(2):  # a busy machine can leave a short run empty: measure once more
            run = step.measure(
                [step.compare_with],
                folder=None,
                out=self.out / "live" / "baselines",
                scheduler=self._scheduler(),
                scenarios=self.scenarios,
            ).get(step.compare_with)
            if run is not None and len(run.measured_requests) >= MIN_LIVE_REQUESTS:
                break
        if run is None or run.status != "ok" or len(run.measured_requests) < MIN_LIVE_REQUESTS:
            raise GradingError(
                f"the built-in {step.compare_with} did not serve a measurable load under "
                f"{step.spec}; is the machine too busy?"
            )
        self._baselines[key] = (time.monotonic(), run)
        return run

    def _live_runner(self, exercise: Any, answer: Any, context: Context) -> Verdict:
        return self.live_step(exercise, answer)

    def live_step(self, exercise: Any, answer: Any) -> Verdict:
        """Run ``exercise``'s live step on ``answer``, a class loaded from its module's snapshot."""
        step: LiveStep = exercise.live
        if not self.live:
            return Verdict(False, "live steps were switched off for this grading session")
        snapshot = getattr(answer, "__scalelab_snapshot__", None)
        if snapshot is None:
            return Verdict(
                False, "the component must be a class from a module file beside the notebook"
            )
        folder = self.out / "live" / "components" / snapshot.digest
        snapshot.write(folder)
        path = f"{snapshot.module}:{snapshot.qualname}"
        try:
            baseline = self._baseline(step)
            mine = self._measure(step, path, folder)
            if mine is not None and len(mine.measured_requests) < MIN_LIVE_REQUESTS:
                # Too few requests to judge from: the machine, not the component, is the
                # likelier cause. Measure once more, and say so.
                self.progress(
                    f"note: {self._student}: the live run of {path} recorded "
                    f"{len(mine.measured_requests)} requests; measuring it again"
                )
                mine = self._measure(step, path, folder)
            verdict = step.judge(mine, baseline)
            if not verdict.passed and mine is not None and mine.status == "ok":
                # Both ran, and the outcome was missed. The two runs are short and were
                # measured apart, so a change in the machine's load between them moves the
                # comparison: measure the built-in and the component again, back to back,
                # and judge that pair. A component that really misses misses twice.
                self.progress(
                    f"note: {self._student}: {path} missed the live outcome once "
                    f"({verdict.message}); measuring it and the built-in again, back to back"
                )
                baseline = self._baseline(step, fresh=True)
                mine = self._measure(step, path, folder)
                verdict = step.judge(mine, baseline)
        except GradingError:
            raise
        except Exception as exc:  # noqa: BLE001 - the service's refusal is the feedback
            return Verdict(False, f"the service could not run it: {exc}")
        return verdict

    def _measure(self, step: LiveStep, path: str, folder: Path) -> Any:
        return step.measure(
            [path],
            folder=folder,
            out=self.out / "live" / (self._student or "components"),
            scheduler=self._scheduler(),
            scenarios=self.scenarios,
        ).get(path)


def check_ready() -> None:
    """Raise when the grader cannot work here (no kernel): before touching any submission."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        if "python3" not in KernelSpecManager().find_kernel_specs():
            raise GradingError("no 'python3' Jupyter kernel is installed (pip install ipykernel)")
    except ImportError as exc:
        raise GradingError(f"jupyter_client is missing: {exc}") from exc


__all__ = [
    "GradeRow",
    "Grader",
    "GradingError",
    "NotebookRecord",
    "Submission",
    "check_ready",
    "find_submissions",
]
