"""Run a student's notebook in a fresh kernel and score it, one row per exercise.

The notebook runs with ``nbclient`` in its own folder, errors allowed, so a
cell that fails does not stop the rest. Each ``check(...)`` it makes appends a
JSON line to the file named by ``SCALELAB_CHECK_LOG``; the score table has one
row for every exercise id the notebook's code mentions in a ``check`` call (and
any other it logged), with the last verdict of each, or ``not run``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab.exercises.base import ExerciseError
from scalelab.exercises.checking import CHECK_LOG_ENV
from scalelab.exercises.live import LIVE_ENV

CHECK_CALL = re.compile(r"""check\(\s*["'](lab\d{2}\.q\d+)["']""")
CELL_TIMEOUT_S = 1_800


@dataclass
class ScoreRow:
    """One exercise's line in the score table."""

    exercise_id: str
    status: str
    message: str = ""
    text: str = ""


@dataclass
class Score:
    """A notebook's score: rows by exercise, and the errors its cells raised."""

    notebook: Path
    rows: list[ScoreRow]
    errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        """Exercises that passed."""
        return sum(r.status == "pass" for r in self.rows)


def exercise_ids(nb: Any) -> list[str]:
    """Exercise ids named in the notebook's ``check("...")`` calls, in order of appearance."""
    ids: list[str] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for found in CHECK_CALL.findall(cell.source):
            if found not in ids:
                ids.append(found)
    return ids


def _read_log(path: Path) -> dict[str, dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return last
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "id" in record:
            last[str(record["id"])] = record
    return last


def _cell_errors(nb: Any) -> list[str]:
    errors = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                errors.append(f"cell {index}: {out.get('ename')}: {out.get('evalue')}")
    return errors


def run_notebook(path: str | Path, smoke: bool = False) -> Score:
    """Execute the notebook at ``path`` in a fresh kernel and score its checks."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb_path = Path(path)
    if not nb_path.is_file():
        raise ExerciseError(f"{nb_path}: notebook not found; pass the path of an .ipynb file")
    nb = nbformat.read(nb_path, as_version=4)
    ids = exercise_ids(nb)
    if smoke:
        from papermill.iorw import load_notebook_node
        from papermill.parameterize import parameterize_notebook

        nb = load_notebook_node(str(nb_path))  # with the metadata papermill expects
        nb = parameterize_notebook(nb, {"SMOKE": True}, kernel_name="python3", language="python")
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="scalelab-check-") as tmp:
        log = Path(tmp) / "checks.jsonl"
        env = dict(os.environ)
        env[CHECK_LOG_ENV] = str(log)
        env["SCALELAB_ANSWERS"] = str(Path(tmp) / "answers.jsonl")
        if smoke:
            env[LIVE_ENV] = "0"
        client = NotebookClient(
            nb,
            timeout=CELL_TIMEOUT_S,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(nb_path.parent.resolve())}},
        )
        try:
            client.execute(env=env)
        except (DeadKernelError, CellTimeoutError) as exc:
            errors.append(f"the notebook stopped: {type(exc).__name__}: {exc}")
        results = _read_log(log)
    errors = _cell_errors(nb) + errors
    rows = []
    for exercise_id in ids + [i for i in results if i not in ids]:
        record = results.get(exercise_id)
        if record is None:
            rows.append(ScoreRow(exercise_id, "not run", "its check did not run"))
        else:
            rows.append(
                ScoreRow(
                    exercise_id,
                    str(record.get("status", "fail")),
                    str(record.get("message", "")),
                    str(record.get("text", "")),
                )
            )
    return Score(nb_path, rows, errors)


def format_score(score: Score, width: int = 100) -> str:
    """The score table as text: id, status, message; then cell errors and reflections."""
    id_w = max([len("exercise"), *(len(r.exercise_id) for r in score.rows)])
    st_w = max([len("status"), *(len(r.status) for r in score.rows)])
    msg_w = max(20, width - id_w - st_w - 4)
    lines = [f"{score.notebook}", f"{'exercise'.ljust(id_w)}  {'status'.ljust(st_w)}  message"]
    lines.append(f"{'-' * id_w}  {'-' * st_w}  {'-' * 7}")
    for r in score.rows:
        msg = r.message if len(r.message) <= msg_w else r.message[: msg_w - 1] + "…"
        lines.append(f"{r.exercise_id.ljust(id_w)}  {r.status.ljust(st_w)}  {msg}")
    lines.append(f"score: {score.passed}/{len(score.rows)} passed")
    if score.errors:
        lines.append("errors in the notebook:")
        lines += [f"  {e}" for e in score.errors]
    reflections = [r for r in score.rows if r.text]
    if reflections:
        lines.append("reflections:")
        lines += [f"  {r.exercise_id}: {r.text}" for r in reflections]
    return "\n".join(lines)
