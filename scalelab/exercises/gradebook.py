"""The gradebook: one row per student and exercise, as CSV and JSON, with the instructor's marks.

``gradebook.csv`` holds student, lab, exercise, kind, title, status, points,
max_points, message, the text of a reflection, and two columns the instructor
fills: ``instructor_points`` (for rows that say "needs review", or to override
any row) and ``instructor_comment``. ``scalelab exercises merge-marks OUT``
reads them back, checks them, and rewrites the gradebook and the feedback;
grading again into the same folder keeps every mark whose answer did not change.
``gradebook.json`` holds the same rows, each student's totals, and how each
notebook went (seconds, cell errors, the executed copy).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scalelab.errors import ScaleLabError
from scalelab.exercises.grading import GradeRow, NotebookRecord
from scalelab.fileio import write_text

CSV_NAME = "gradebook.csv"
JSON_NAME = "gradebook.json"
COLUMNS = (
    "student",
    "lab",
    "exercise",
    "kind",
    "title",
    "status",
    "points",
    "max_points",
    "message",
    "answer_text",
    "instructor_points",
    "instructor_comment",
)


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:g}"


def to_csv(rows: Iterable[GradeRow]) -> str:
    """The rows as CSV text, in :data:`COLUMNS` order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        data = dataclasses.asdict(row)
        data.pop("figures", None)
        for key in ("points", "max_points", "instructor_points"):
            data[key] = _number(data[key])
        writer.writerow({k: data.get(k, "") for k in COLUMNS})
    return buffer.getvalue()


def totals(rows: Iterable[GradeRow]) -> dict[str, dict[str, Any]]:
    """Per student: points earned, points possible, rows awaiting review, and per lab the same."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        student = out.setdefault(
            row.student, {"points": 0.0, "max_points": 0.0, "pending_review": 0, "labs": {}}
        )
        lab = student["labs"].setdefault(
            row.lab, {"points": 0.0, "max_points": 0.0, "pending_review": 0}
        )
        for bucket in (student, lab):
            bucket["points"] += row.points or 0.0
            bucket["max_points"] += row.max_points
            bucket["pending_review"] += int(row.status == "needs review")
    return out


def write_gradebook(
    out: Path, rows: list[GradeRow], notebooks: list[NotebookRecord], smoke: bool
) -> tuple[Path, Path]:
    """Write ``gradebook.csv`` and ``gradebook.json`` into ``out``, keeping earlier marks."""
    carry_marks(out, rows)
    apply_marks(rows)
    csv_path = out / CSV_NAME
    json_path = out / JSON_NAME
    write_text(csv_path, to_csv(rows))
    payload = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": smoke,
        "students": totals(rows),
        "notebooks": [dataclasses.asdict(n) for n in notebooks],
        "rows": [_json_row(r) for r in rows],
    }
    write_text(json_path, json.dumps(payload, indent=2, default=_json_default) + "\n")
    return csv_path, json_path


def _json_row(row: GradeRow) -> dict[str, Any]:
    data = dataclasses.asdict(row)
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in data.items()}


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a gradebook CSV as the instructor left them."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [
            c
            for c in ("student", "exercise", "instructor_points")
            if c not in (reader.fieldnames or [])
        ]
        if missing:
            raise ScaleLabError(
                f"{path}: columns {missing} are missing; keep the header as written"
            )
        return list(reader)


def _mark(text: str, row: GradeRow, where: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ScaleLabError(f"{where}: instructor_points {text!r} is not a number") from None
    if not 0.0 <= value <= row.max_points:
        raise ScaleLabError(
            f"{where}: instructor_points {value:g} is outside 0..{row.max_points:g} "
            f"for {row.exercise}"
        )
    return value


def carry_marks(out: Path, rows: list[GradeRow]) -> None:
    """Take the marks of an earlier gradebook in ``out`` for rows whose answer is unchanged."""
    path = out / CSV_NAME
    if not path.is_file():
        return
    earlier = {(r["student"], r["exercise"]): r for r in read_csv_rows(path)}
    for row in rows:
        old = earlier.get((row.student, row.exercise))
        if old is None or old.get("answer_text", "") != row.answer_text:
            continue
        if row.kind != "reflection" and old.get("status") != row.status:
            continue
        row.instructor_points = _mark(old.get("instructor_points", ""), row, f"{path}")
        row.instructor_comment = old.get("instructor_comment", "")


def apply_marks(rows: list[GradeRow]) -> None:
    """An instructor's mark sets the points; a marked reflection is "reviewed"."""
    for row in rows:
        if row.instructor_points is None:
            continue
        row.points = row.instructor_points
        if row.status == "needs review":
            row.status = "reviewed"


def load_gradebook(out: Path) -> tuple[list[GradeRow], list[NotebookRecord], bool]:
    """The rows and notebook records of ``out/gradebook.json``."""
    path = out / JSON_NAME
    if not path.is_file():
        raise ScaleLabError(f"{out}: no {JSON_NAME}; grade into this folder first")
    data = json.loads(path.read_text())
    rows = [GradeRow(**r) for r in data.get("rows", [])]
    notebooks = [NotebookRecord(**n) for n in data.get("notebooks", [])]
    return rows, notebooks, bool(data.get("smoke"))


def merge_marks(out: Path) -> tuple[list[GradeRow], list[NotebookRecord], int]:
    """Read the instructor's marks from ``out/gradebook.csv`` into the gradebook; rewrite it all.

    Returns the rows, the notebook records and how many rows carry a mark.
    """
    from scalelab.exercises.feedback import write_all_feedback

    rows, notebooks, smoke = load_gradebook(out)
    edited = {(r["student"], r["exercise"]): r for r in read_csv_rows(out / CSV_NAME)}
    for index, row in enumerate(rows):
        mark = edited.get((row.student, row.exercise))
        if mark is None:
            continue
        where = f"{out / CSV_NAME}, row {index + 2}"
        row.instructor_points = _mark(mark.get("instructor_points", ""), row, where)
        row.instructor_comment = mark.get("instructor_comment", "").strip()
        if row.instructor_points is None and row.status == "reviewed":
            row.status, row.points = "needs review", None
    apply_marks(rows)
    write_text(out / CSV_NAME, to_csv(rows))
    data = json.loads((out / JSON_NAME).read_text())
    data["rows"] = [_json_row(r) for r in rows]
    data["students"] = totals(rows)
    write_text(out / JSON_NAME, json.dumps(data, indent=2, default=_json_default) + "\n")
    write_all_feedback(out, rows, notebooks, smoke)
    return rows, notebooks, sum(r.instructor_points is not None for r in rows)
