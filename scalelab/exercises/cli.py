"""``scalelab exercises list | check NOTEBOOK [--smoke] | release [--source] [--output]``."""

from __future__ import annotations

import argparse


def _list() -> int:
    from scalelab.exercises.registry import all_exercises

    exercises = all_exercises()
    id_w = max(len(e.id) for e in exercises)
    kind_w = max(len(e.kind) for e in exercises)
    print(f"{'id'.ljust(id_w)}  {'kind'.ljust(kind_w)}  lab    prompt")
    for e in exercises:
        print(f"{e.id.ljust(id_w)}  {e.kind.ljust(kind_w)}  {e.lab}  {e.title}")
    return 0


def _check(notebook: str, smoke: bool) -> int:
    from scalelab.exercises.grading import format_score, run_notebook

    score = run_notebook(notebook, smoke=smoke)
    print(format_score(score))
    return 0 if score.rows and score.passed == len(score.rows) else 1


def _release(source: str, output: str) -> int:
    from scalelab.exercises.release import release

    for path in release(source, output):
        print(f"wrote {path}")
    return 0


def exercises_from_args(args: argparse.Namespace) -> int:
    """Run the ``scalelab exercises`` subcommand parsed into ``args``.

    ``check`` exits 0 when every exercise passed and 1 otherwise, so a script
    can tell complete submissions apart.
    """
    command = args.exercises_command
    if command == "list":
        return _list()
    if command == "check":
        return _check(args.notebook, args.smoke)
    if command == "release":
        return _release(args.source, args.output)
    raise ValueError(f"unknown exercises command {command!r}")
