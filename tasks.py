#!/usr/bin/env python3
"""Set up scalelab in ./.venv and run its main job or its tests.

    python3 tasks.py quickstart   # set up, run scenarios/quickstart.toml, print a summary
    python3 tasks.py test         # set up, lint, type-check and run the whole test suite

Needs only Python 3.11+ with venv and pip. The virtual environment is created
once and reinstalled when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".scalelab-installed"


def _run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    result = subprocess.run([str(a) for a in args], cwd=ROOT)
    if result.returncode != 0:
        sys.exit(result.returncode)


def setup() -> None:
    """Create .venv and install scalelab with its test tools, when not done already."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may run under an older python3
        sys.exit(f"scalelab needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest and (BIN / "scalelab").exists():
        return
    if not (BIN / "python").exists():
        print(f"+ creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(digest)


def quickstart(extra: list[str]) -> None:
    """Run the quickstart experiment: direct against batched executor."""
    _run(BIN / "scalelab", "run", "scenarios/quickstart.toml", *extra)


def test(extra: list[str]) -> None:
    """Lint, format check, type check, then the whole pytest suite (or the tests in ``extra``)."""
    _run(BIN / "ruff", "check", "scalelab", "tests", "scenarios", "benchmarks", "tasks.py")
    _run(
        BIN / "ruff",
        "format",
        "--check",
        "scalelab",
        "tests",
        "scenarios",
        "benchmarks",
        "tasks.py",
    )
    _run(BIN / "mypy", "scalelab")
    if extra:  # the caller chose the tests and the options
        _run(BIN / "python", "-m", "pytest", *extra)
        return
    # Most tests wait on processes (a service, a cluster, Locust) more than they compute, so
    # two run side by side (an idle worker takes tests queued for the other); those whose
    # assertions rest on timing run afterwards, alone, collected from their files only.
    _run(BIN / "python", "-m", "pytest", "-n", "2", "--dist", "worksteal", "-m", "not serial")
    timed = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("test_*.py")
        if "mark.serial" in path.read_text(encoding="utf-8")
    )
    _run(BIN / "python", "-m", "pytest", "-p", "no:xdist", "-m", "serial", *timed)


def main() -> None:
    commands = {"quickstart": quickstart, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in (*commands, "setup"):
        sys.exit(f"usage: python3 tasks.py {{{'|'.join(commands)}|setup}} [args...]")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    setup()
    if sys.argv[1] in commands:
        commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
