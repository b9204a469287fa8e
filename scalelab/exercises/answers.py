"""Answers and contexts as JSON, so the grader can judge them in its own process.

Under grading, each ``check``/``predict`` in the student's kernel writes what
it was given — never a verdict — to the answer channel
(:mod:`scalelab.exercises.channel`). Numbers, strings, tuples, lists and
mappings go as they are; runs and experiments as their directories (the grader
reads the files itself); result objects such as ``compare()``'s as their
fields; a class as its module's source at that moment (so later edits of the
file do not change what was checked); a function as a cloudpickle.

Loading a function runs no code, but calling it runs the student's code in the
grader's process, as hidden tests always do: grade untrusted classes inside a
container (docs/course.md, "Trust").
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

MAX_SOURCE = 200_000


class Unreadable:
    """An answer the grader could not rebuild; judged as a malformed answer."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"<unreadable answer: {self.what}>"


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A class as the student's kernel had it: its module's name, file and source, its name."""

    module: str
    qualname: str
    file: str
    source: str

    @property
    def digest(self) -> str:
        """A short digest of the source, naming this version of the module."""
        return hashlib.sha256(self.source.encode()).hexdigest()[:12]

    def write(self, folder: Path) -> Path:
        """Write the module's source as ``folder/<module>.py`` (for the live service to import)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (self.module.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.source)
        return path

    def load(self) -> Any:
        """Import the source under a private module name and return the class."""
        name = f"scalelab_submission_{self.digest}_{self.module.replace('.', '_')}"
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_loader(name, loader=None)
            assert spec is not None
            module = importlib.util.module_from_spec(spec)
            module.__file__ = f"<submitted {self.module}.py>"
            sys.modules[name] = module
            try:
                exec(compile(self.source, f"{self.module}.py", "exec"), module.__dict__)
            except BaseException:
                sys.modules.pop(name, None)
                raise
        obj: Any = module
        for part in self.qualname.split("."):
            obj = getattr(obj, part)
        obj.__scalelab_snapshot__ = self
        return obj


def _is_run_like(value: Any) -> bool:
    """A run or an experiment (of scalelab.analysis or the runner), without importing them."""
    cls = type(value).__name__
    return cls in ("Run", "Experiment", "RunResult", "ExperimentResult") and hasattr(value, "path")


def _class_snapshot(cls: type) -> dict[str, Any]:
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    if cls.__module__ == "__main__" or not file or not Path(file).is_file():
        return {"__class__": {"unimportable": f"{cls.__module__}:{cls.__qualname__}"}}
    source = Path(file).read_text()[:MAX_SOURCE]
    return {
        "__class__": {
            "module": cls.__module__,
            "qualname": cls.__qualname__,
            "file": str(Path(file).resolve()),
            "source": source,
        }
    }


def dump(value: Any) -> Any:
    """``value`` as JSON-able data (see the module's docstring for what becomes what)."""
    if value is None or isinstance(value, bool | str):
        return value
    if value is Ellipsis or value is NotImplemented:
        return {"__blank__": "..." if value is Ellipsis else "NotImplemented"}
    if isinstance(value, enum.Enum):
        return dump(value.value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        return v if math.isfinite(v) else {"__float__": repr(v)}
    if isinstance(value, Path):
        return {"__path__": str(value.resolve())}
    if isinstance(value, np.ndarray):
        return {"__array__": [dump(v) for v in value.tolist()]}
    if _is_run_like(value):
        from scalelab.exercises.context import run_paths

        return {"__runs__": [str(p.resolve()) for p in run_paths(value)]}
    if isinstance(value, type):
        return _class_snapshot(value)
    if inspect.isfunction(value) or inspect.ismethod(value):
        try:
            import cloudpickle

            data = base64.b64encode(cloudpickle.dumps(value)).decode()
        except Exception as exc:  # noqa: BLE001 - the grader says what it could not read
            return {"__unreadable__": f"function {value.__name__}: {exc}"}
        return {"__function__": {"name": value.__name__, "pickle": data}}
    if isinstance(value, tuple):
        return {"__tuple__": [dump(v) for v in value]}
    if isinstance(value, list):
        if value and all(_is_run_like(v) for v in value):
            return dump_runs(value)
        return [dump(v) for v in value]
    if isinstance(value, Mapping):
        return {"__dict__": [[dump(k), dump(v)] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        simple = {k: v for k, v in fields.items() if _simple(v)}
        return {"__object__": type(value).__name__, "fields": dump(simple)}
    return {"__unreadable__": f"{type(value).__name__}: {repr(value)[:200]}"}


def dump_runs(value: Any) -> dict[str, Any]:
    """Runs (or anything holding them) as their directories."""
    from scalelab.exercises.context import run_paths

    return {"__runs__": [str(p.resolve()) for p in run_paths(value)]}


def _simple(value: Any) -> bool:
    if value is None or isinstance(value, bool | str | int | float | np.number | enum.Enum):
        return True
    if isinstance(value, tuple | list):
        return all(_simple(v) for v in value)
    return False


def load(data: Any) -> Any:
    """The value :func:`dump` wrote, rebuilt: runs as directory paths, classes as snapshots."""
    if isinstance(data, list):
        return [load(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "__blank__" in data:
        return Ellipsis if data["__blank__"] == "..." else NotImplemented
    if "__float__" in data:
        return float(data["__float__"])
    if "__path__" in data:
        return Path(data["__path__"])
    if "__array__" in data:
        return np.asarray([load(v) for v in data["__array__"]])
    if "__runs__" in data:
        return [Path(p) for p in data["__runs__"]]
    if "__tuple__" in data:
        return tuple(load(v) for v in data["__tuple__"])
    if "__dict__" in data:
        return {load(k): load(v) for k, v in data["__dict__"]}
    if "__object__" in data:
        fields = load(data.get("fields")) or {}
        return SimpleNamespace(__type__=data["__object__"], **fields)
    if "__class__" in data:
        info = data["__class__"]
        if "unimportable" in info:
            return Unreadable(
                f"class {info['unimportable']} was defined in a notebook cell; write it to a "
                "file beside the notebook (%%writefile), import it from there, and check that"
            )
        return Snapshot(info["module"], info["qualname"], info["file"], info["source"])
    if "__function__" in data:
        import cloudpickle

        try:
            return cloudpickle.loads(base64.b64decode(data["__function__"]["pickle"]))
        except Exception as exc:  # noqa: BLE001
            return Unreadable(f"function {data['__function__'].get('name')}: {exc}")
    if "__unreadable__" in data:
        return Unreadable(str(data["__unreadable__"]))
    return {k: load(v) for k, v in data.items()}
