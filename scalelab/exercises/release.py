"""Student versions of the lab notebooks, and the student bundle, written from the solutions.

One source per lab: ``instructor/notebooks/NN_topic.ipynb``. In code cells
tagged ``answer``, the lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION``
are replaced by a blank at the same indentation:

- a block of assignments becomes ``name = ...  # your answer here`` per name;
- any other block inside a function becomes ``raise NotImplementedError  # your code here``;
- any other top-level block becomes ``# your code here``.

Markdown cells tagged ``answer`` get the same markers replaced by
``*Your answer here.*``. Cells tagged ``solution`` are dropped whole. Every
output and execution count is stripped. Markers outside ``answer`` cells are an
error, so a solution can never be released by accident.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path
from typing import Any

from scalelab.exercises.base import ExerciseError
from scalelab.fileio import write_text

BEGIN = re.compile(r"^(\s*)#\s*BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*#\s*END SOLUTION\s*$")
MARKER = re.compile(r"(BEGIN|END) SOLUTION")
ANSWER_TAG = "answer"
SOLUTION_TAG = "solution"
_VOLATILE_CELL_METADATA = ("execution", "papermill", "collapsed", "scrolled", "ExecuteTime")


def _assigned_names(block: str) -> list[str] | None:
    """The names a block of plain assignments binds, or None when it is anything else."""
    try:
        tree = ast.parse(block)
    except SyntaxError:
        return None
    names: list[str] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            targets = stmt.targets
        elif isinstance(stmt, ast.AnnAssign):
            targets = [stmt.target]
        else:
            return None
        for target in targets:
            if not isinstance(target, ast.Name):
                return None
            if target.id not in names:
                names.append(target.id)
    return names or None


def blank_block(solution: list[str], indent: str) -> list[str]:
    """The lines a student sees in place of ``solution`` (indented like the BEGIN marker)."""
    names = _assigned_names(textwrap.dedent("\n".join(solution)))
    if names:
        return [f"{indent}{name} = ...  # your answer here" for name in names]
    if indent:
        return [f"{indent}raise NotImplementedError  # your code here"]
    return ["# your code here"]


def blank_source(source: str, where: str = "cell") -> str:
    """``source`` with every solution block replaced by its blank."""
    lines = source.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        begin = BEGIN.match(lines[i])
        if not begin:
            if END.match(lines[i]):
                raise ExerciseError(f"{where}: '# END SOLUTION' without a '# BEGIN SOLUTION'")
            out.append(lines[i])
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not END.match(lines[j]):
            if BEGIN.match(lines[j]):
                raise ExerciseError(f"{where}: nested '# BEGIN SOLUTION'; close the first block")
            j += 1
        if j == len(lines):
            raise ExerciseError(f"{where}: '# BEGIN SOLUTION' is never closed by '# END SOLUTION'")
        out.extend(blank_block(lines[i + 1 : j], begin.group(1)))
        i = j + 1
    return "\n".join(out)


def _blank_markdown(source: str, where: str) -> str:
    pattern = re.compile(
        r"^[ \t]*(<!--\s*)?BEGIN SOLUTION.*?END SOLUTION(\s*-->)?[ \t]*$", re.M | re.S
    )
    text = pattern.sub("*Your answer here.*", source)
    if MARKER.search(text):
        raise ExerciseError(f"{where}: unbalanced BEGIN/END SOLUTION markers")
    return text


def strip_outputs(nb: Any) -> Any:
    """Remove outputs, execution counts and run-specific metadata from ``nb`` (in place)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in _VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
    for key in ("papermill", "widgets"):
        nb.metadata.pop(key, None)
    return nb


def student_version(nb: Any, name: str = "notebook") -> Any:
    """A student copy of the solution notebook ``nb``: blanks in, solutions and outputs out."""
    import copy

    student = copy.deepcopy(nb)
    kept = []
    for index, cell in enumerate(student.cells):
        where = f"{name}, cell {index}"
        tags = cell.metadata.get("tags", [])
        if SOLUTION_TAG in tags:
            continue
        if ANSWER_TAG in tags:
            if cell.cell_type == "code":
                cell.source = blank_source(cell.source, where)
            else:
                cell.source = _blank_markdown(cell.source, where)
        elif MARKER.search(cell.source):
            raise ExerciseError(
                f"{where} has SOLUTION markers but is not tagged '{ANSWER_TAG}'; tag it "
                "so that release blanks it"
            )
        if MARKER.search(cell.source):
            raise ExerciseError(f"{where}: a SOLUTION marker is left after blanking; check them")
        kept.append(cell)
    student.cells = kept
    return strip_outputs(student)


def release_notebook(source: str | Path, output: str | Path) -> Path:
    """Write the student version of the solution notebook ``source`` to ``output``."""
    import nbformat

    src = Path(source)
    nb = nbformat.read(src, as_version=4)
    student = student_version(nb, src.name)
    out = Path(output)
    write_text(out, nbformat.writes(student) + "\n")
    return out


def release(source_dir: str | Path, output_dir: str | Path) -> list[Path]:
    """Write a student version in ``output_dir`` of every notebook in ``source_dir``."""
    src = Path(source_dir)
    if not src.is_dir():
        raise ExerciseError(
            f"{src}: solution notebooks folder not found; pass --source DIR "
            "(instructor/notebooks by default)"
        )
    notebooks = sorted(src.glob("*.ipynb"))
    if not notebooks:
        raise ExerciseError(f"{src}: no .ipynb files to release")
    out = Path(output_dir)
    if out.resolve() == src.resolve():
        raise ExerciseError(f"{out} is the source folder; the solutions would be lost")
    return [release_notebook(nb, out / nb.name) for nb in notebooks]


BUNDLE_README = """# {title}

The student bundle of the course: the lab notebooks, the experiment specs
they run, and this list of exercises. Install scalelab (`pip install
scalelab`), then open the notebooks:

```bash
jupyter lab notebooks/
```

Each exercise ends in a `check(...)` (or a `predict(...)` before a run and a
`check(...)` after it). In this copy a check tells you when an answer is
malformed (the wrong kind of value, a run of the wrong experiment...) and
otherwise records it: your instructor's grader executes your notebook itself,
with numbers of its own, and judges every answer against the runs it watched
your notebook make. Hand in the notebooks, nothing else.

| exercise | kind | points | what it asks |
| --- | --- | --- | --- |
{rows}
"""


def _solution_lines(source_dir: Path) -> list[str]:
    """Every line of every solution block of the solution notebooks (long enough to be telling)."""
    import nbformat

    lines: list[str] = []
    for path in sorted(source_dir.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            inside = False
            for line in cell.source.splitlines():
                if MARKER.search(line):
                    inside = "BEGIN" in line
                    continue
                text = line.strip()
                if inside and len(text) >= 12 and not text.startswith("#"):
                    lines.append(text)
    return lines


def write_bundle(
    to: str | Path, source_dir: str | Path, scenarios: str | Path, title: str = "scalelab labs"
) -> list[Path]:
    """The student bundle in ``to``: released notebooks, the specs, a README listing the exercises.

    Refuses a destination inside the instructor's tree, and checks that no line
    of any solution block survived into what it wrote.
    """
    from scalelab.exercises.registry import all_exercises

    dest = Path(to).resolve()
    src = Path(source_dir).resolve()
    if dest == src.parent or dest.is_relative_to(src) or dest.is_relative_to(src.parent):
        raise ExerciseError(
            f"--to {to}: the bundle must not go inside the instructor's tree ({src.parent})"
        )
    written = release(src, dest / "notebooks")
    spec_dir = Path(scenarios)
    if not spec_dir.is_dir():
        raise ExerciseError(f"{spec_dir}: scenarios folder not found; pass --scenarios DIR")
    for path in sorted(spec_dir.iterdir()):
        if path.suffix in (".toml", ".py") and path.is_file():
            target = dest / "scenarios" / path.name
            write_text(target, path.read_text())
            written.append(target)
    rows = "\n".join(f"| `{e.id}` | {e.kind} | {e.points:g} | {e.title} |" for e in all_exercises())
    readme = dest / "README.md"
    write_text(readme, BUNDLE_README.format(title=title, rows=rows))
    written.append(readme)
    solutions = _solution_lines(src)
    for path in written:
        text = path.read_text()
        leaked = next((line for line in solutions if line in text), None)
        if leaked is not None:
            raise ExerciseError(f"{path} would carry a solution line: {leaked!r}")
    return written
