"""The public API and the import boundaries the architecture depends on."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import scalelab
from scalelab.cli import build_parser

PUBLIC_MODULES = ("scalelab", "scalelab.loadgen", "scalelab.analysis")
API_PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _documented(module: str) -> list[str]:
    """The names docs/api.md lists under ``## `module` ``, in order."""
    sections = re.split(r"^## `([\w.]+)`\s*$", API_PAGE.read_text(), flags=re.M)
    tables = dict(zip(sections[1::2], sections[2::2], strict=True))
    assert module in tables, f"docs/api.md has no section for {module}"
    return re.findall(r"^\| `(\w+)` \| \S", tables[module], flags=re.M)


EXPORTS = r"""
import importlib, inspect, json, sys


def defined_here(value):
    if not (inspect.isclass(value) or inspect.isroutine(value)):
        return False
    return str(getattr(value, "__module__", "")).startswith("scalelab")


out = {}
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    values = {e: getattr(module, e) for e in exported}  # resolves, lazily where lazy
    out[name] = {
        "exported": exported,
        "undocumented": [
            e for e, v in values.items()
            if (inspect.isclass(v) or inspect.isroutine(v)) and not (v.__doc__ or "").strip()
        ],
        "public": sorted(
            n for n, v in vars(module).items() if not n.startswith("_") and defined_here(v)
        ),
        "lazy": sorted(getattr(module, "_EXPORTS", None) or []) or None,
    }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def exports() -> dict[str, dict[str, Any]]:
    """Each public module's exports, resolved in a subprocess: ``scalelab.loadgen``'s
    user class imports Locust, which must never be imported into the test process."""
    out = subprocess.run(
        [sys.executable, "-c", EXPORTS, *PUBLIC_MODULES],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_exported_name_resolves_is_documented_and_none_is_missing(
    name: str, exports: dict[str, dict[str, Any]]
) -> None:
    """As httpx's test of its exports: ``__all__`` is exactly the module's public names,
    each resolves, has a docstring (classes and functions) and a row in docs/api.md."""
    found = exports[name]
    exported = found["exported"]
    assert len(set(exported)) == len(exported), "a name is exported twice"
    assert not found["undocumented"], f"no docstring: {found['undocumented']}"
    assert _documented(name) == exported, f"docs/api.md's {name} table is not its __all__"
    # Nothing public is missing: every class or function of scalelab's in the module's
    # namespace (the lazy modules' names once resolved) is exported.
    missing = set(found["public"]) - set(exported)
    assert not missing, f"{name} holds public names it does not export: {sorted(missing)}"
    if found["lazy"] is not None:
        assert set(found["lazy"]) == set(exported) - {"__version__"}


def test_the_policies_a_student_replaces_are_public() -> None:
    for name in ("RetryPolicy", "Backoff", "CircuitBreaker", "HedgeDelay", "ConcurrencyLimit"):
        assert getattr(scalelab, name).__module__ == "scalelab.service.resilience"


def test_importing_scalelab_is_lazy() -> None:
    code = (
        "import sys, scalelab, scalelab.config, scalelab.hdr; "
        "print(sorted(m for m in ('dask', 'distributed', 'locust', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_parses_every_subcommand() -> None:
    parser = build_parser()
    assert parser.parse_args(["serve", "--port", "9000"]).port == 9000
    args = parser.parse_args(["run", "x.toml", "--set", "a=1", "--set", "b=2"])
    assert args.overrides == ["a=1", "b=2"]
    assert parser.parse_args(["exercises", "list"]).exercises_command == "list"
    fault = parser.parse_args(["fault", "start", "worker_kill", "worker=0", "--for", "2"])
    assert (fault.kind, fault.params, fault.duration) == ("worker_kill", ["worker=0"], 2.0)
    assert parser.parse_args(["prometheus", "results/x/latest/000-r0"]).port is None
