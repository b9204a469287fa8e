"""``scalelab exercises list | grade | merge-marks | release``.

``grade`` exits 0 when every submission was graded (whatever the students
scored) and 1 when the grader itself failed somewhere (a hidden part that
raised, a kernel that could not start); bad arguments exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``exercises`` subcommand and its own subcommands."""
    ex = sub.add_parser("exercises", help="list, grade and release the course exercises")
    ex_sub = ex.add_subparsers(dest="exercises_command", required=True)
    ex_sub.add_parser("list", help="list every exercise: id, kind, points, lab, title")
    grade = ex_sub.add_parser(
        "grade",
        help="execute every submitted notebook and write a gradebook and feedback",
        description="SUBMISSIONS holds one folder per student, each with that student's "
        "notebooks (NN_topic.ipynb). Writes DIR/gradebook.csv, DIR/gradebook.json and "
        "DIR/feedback/<student>.html.",
    )
    grade.add_argument("submissions", metavar="SUBMISSIONS")
    grade.add_argument("--out", required=True, metavar="DIR", help="where the gradebook goes")
    grade.add_argument("--smoke", action="store_true", help="inject SMOKE = True (tiny runs)")
    grade.add_argument("--lab", action="append", metavar="labNN", help="grade only these labs")
    grade.add_argument("--instructor", metavar="DIR", help="the instructor tree (holding labs/)")
    grade.add_argument("--scenarios", metavar="DIR", help="the course's specs (scenarios/)")
    grade.add_argument(
        "--timeout", type=float, default=1800.0, metavar="S", help="seconds allowed per cell"
    )
    merge = ex_sub.add_parser(
        "merge-marks", help="apply the instructor_points of DIR/gradebook.csv to the gradebook"
    )
    merge.add_argument("out", metavar="DIR")
    rel = ex_sub.add_parser(
        "release",
        help="write student notebooks (no --to: into notebooks/) or a whole student bundle",
    )
    rel.add_argument("--source", default="instructor/notebooks", metavar="DIR")
    rel.add_argument("--to", metavar="DIR", help="write the student bundle here")
    rel.add_argument("--scenarios", default="scenarios", metavar="DIR")
    rel.add_argument("--output", default="notebooks", metavar="DIR", help=argparse.SUPPRESS)
    return ex


def _list() -> int:
    from scalelab.exercises.registry import all_exercises

    exercises = all_exercises()
    id_w = max(len(e.id) for e in exercises)
    kind_w = max(len(e.kind) for e in exercises)
    print(f"{'id'.ljust(id_w)}  {'kind'.ljust(kind_w)}  points  title")
    for e in exercises:
        print(f"{e.id.ljust(id_w)}  {e.kind.ljust(kind_w)}  {e.points:>6g}  {e.title}")
    return 0


def _grade(args: argparse.Namespace) -> int:
    import os

    from scalelab.exercises.feedback import write_all_feedback
    from scalelab.exercises.gradebook import write_gradebook
    from scalelab.exercises.grading import Grader, check_ready, find_submissions
    from scalelab.exercises.instructor import INSTRUCTOR_ENV

    if args.instructor:
        os.environ[INSTRUCTOR_ENV] = str(Path(args.instructor).resolve())
    check_ready()
    find_submissions(Path(args.submissions))  # bad input is named before anything is written
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grader = Grader(
        out,
        smoke=args.smoke,
        scenarios=Path(args.scenarios) if args.scenarios else None,
        cell_timeout=args.timeout,
    )
    labs = [lab if lab.startswith("lab") else f"lab{lab}" for lab in args.lab or []]
    rows, notebooks = grader.grade(Path(args.submissions), labs or None)
    csv_path, json_path = write_gradebook(out, rows, notebooks, args.smoke)
    pages = write_all_feedback(out, rows, notebooks, args.smoke)
    print(f"gradebook: {csv_path} and {json_path}")
    print(f"feedback: {len(pages)} page(s) in {out / 'feedback'}")
    pending = sum(r.status == "needs review" for r in rows)
    if pending:
        print(
            f"{pending} answer(s) need review: fill instructor_points in {csv_path}, then "
            f"scalelab exercises merge-marks {out}"
        )
    if grader.grading_errors:
        print("grading errors (the grader's, not the students'):", file=sys.stderr)
        for error in grader.grading_errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    return 0


def _merge(args: argparse.Namespace) -> int:
    from scalelab.exercises.gradebook import merge_marks

    rows, _, marked = merge_marks(Path(args.out))
    pending = sum(r.status == "needs review" for r in rows)
    print(f"merged {marked} mark(s); {pending} answer(s) still need review")
    return 0


def _release(args: argparse.Namespace) -> int:
    from scalelab.exercises.release import release, write_bundle

    if args.to:
        written = write_bundle(args.to, args.source, args.scenarios)
        print(f"wrote the student bundle in {args.to} ({len(written)} files)")
        return 0
    for path in release(args.source, args.output):
        print(f"wrote {path}")
    return 0


def exercises_from_args(args: argparse.Namespace) -> int:
    """Run the ``scalelab exercises`` subcommand parsed into ``args``."""
    command = args.exercises_command
    if command == "list":
        return _list()
    if command == "grade":
        return _grade(args)
    if command == "merge-marks":
        return _merge(args)
    if command == "release":
        return _release(args)
    raise ValueError(f"unknown exercises command {command!r}")
