"""Feedback for each student: one self-contained HTML page of their results, no script in it.

The page lists each lab with its points, then every exercise: its status, the
points, and the message the check gave (never a solution); a component's live
figures; a reflection's text with the instructor's mark or "awaiting review";
and the errors the notebook's cells raised, with the executed copy's path.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scalelab.exercises.gradebook import totals
from scalelab.exercises.grading import GradeRow, NotebookRecord
from scalelab.fileio import write_text

FEEDBACK_DIR = "feedback"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 62rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0 1rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35rem 0.5rem; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; }
.status { font-weight: 600; white-space: nowrap; }
.pass, .reviewed { color: #1a7f37; } .fail, .error { color: #b42318; }
.needs-review { color: #9a6700; } .not-answered, .not-run, .missing { color: #666; }
.total { font-size: 1.1rem; } .small { color: #555; font-size: 0.9rem; }
blockquote { margin: 0.3rem 0; padding: 0.3rem 0.8rem; border-left: 3px solid #ccc;
             background: #fafafa; }
pre { background: #f6f6f6; padding: 0.5rem; overflow-x: auto; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _points(row: GradeRow) -> str:
    if row.points is None:
        return f"– / {row.max_points:g}"
    return f"{row.points:g} / {row.max_points:g}"


def _figures(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    columns = list(rows[0])
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)

    def cell(v: Any) -> str:
        return _e(f"{v:.4g}" if isinstance(v, float) else v)

    body = "".join(
        "<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f'<table class="small"><tr>{head}</tr>{body}</table>'


def render(student: str, rows: list[GradeRow], notebooks: list[NotebookRecord], smoke: bool) -> str:
    """The feedback page of ``student``."""
    total = totals(rows).get(student, {"points": 0.0, "max_points": 0.0, "pending_review": 0})
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<link rel="icon" href="data:,">',
        f"<title>Feedback: {_e(student)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Feedback for {_e(student)}</h1>",
        f'<p class="total">{total["points"]:g} of {total["max_points"]:g} points'
        + (
            f' <span class="small">({total["pending_review"]} answer(s) awaiting your '
            "instructor's review)</span>"
            if total["pending_review"]
            else ""
        )
        + "</p>",
    ]
    if smoke:
        parts.append('<p class="small">Graded with SMOKE experiments (seconds long).</p>')
    for lab in sorted({r.lab for r in rows}):
        lab_rows = [r for r in rows if r.lab == lab]
        earned = sum(r.points or 0.0 for r in lab_rows)
        possible = sum(r.max_points for r in lab_rows)
        parts.append(f"<h2>{_e(lab)}: {earned:g} / {possible:g}</h2>")
        record = next((n for n in notebooks if n.student == student and n.lab == lab), None)
        if record is not None and record.notebook:
            parts.append(
                f'<p class="small">Notebook {_e(record.notebook)}, executed by the grader in '
                f"{record.seconds:.0f} s"
                + (f"; executed copy: {_e(record.executed)}" if record.executed else "")
                + ".</p>"
            )
        elif record is not None and record.status == "missing":
            parts.append('<p class="small">No notebook was submitted for this lab.</p>')
        parts.append(
            "<table><tr><th>exercise</th><th>status</th><th>points</th><th>feedback</th></tr>"
        )
        for row in lab_rows:
            css = row.status.replace(" ", "-")
            detail = f"<div>{_e(row.message)}</div>"
            if row.answer_text:
                detail += f"<blockquote>{_e(row.answer_text)}</blockquote>"
            if row.instructor_comment:
                detail += f"<div><em>Instructor:</em> {_e(row.instructor_comment)}</div>"
            detail += _figures(row.figures)
            parts.append(
                f"<tr><td><strong>{_e(row.exercise)}</strong><br>"
                f'<span class="small">{_e(row.title)}</span></td>'
                f'<td class="status {_e(css)}">{_e(row.status)}</td>'
                f"<td>{_e(_points(row))}</td><td>{detail}</td></tr>"
            )
        parts.append("</table>")
        if record is not None and record.errors:
            parts.append("<p>Errors in the notebook's cells:</p><pre>")
            parts.append(_e("\n".join(record.errors)))
            parts.append("</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_feedback(
    out: Path, student: str, rows: list[GradeRow], notebooks: list[NotebookRecord], smoke: bool
) -> Path:
    """Write ``out/feedback/<student>.html``."""
    path = out / FEEDBACK_DIR / f"{student}.html"
    mine = [r for r in rows if r.student == student]
    write_text(path, render(student, mine, notebooks, smoke))
    return path


def write_all_feedback(
    out: Path, rows: Iterable[GradeRow], notebooks: list[NotebookRecord], smoke: bool
) -> list[Path]:
    """One feedback page per student in ``rows``."""
    rows = list(rows)
    students = list(dict.fromkeys(r.student for r in rows))
    return [write_feedback(out, s, rows, notebooks, smoke) for s in students]
