"""The plugin loader imports ``module:Class`` and names the field, path and interface on error."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from scalelab.errors import PluginError
from scalelab.service.executors import DirectExecutor, Executor, executor_class
from scalelab.service.plugins import describe_interface, load_plugin

PLUGIN_SOURCE = textwrap.dedent(
    """
    from scalelab.service.executors import DirectExecutor, Executor

    class MyExecutor(DirectExecutor):
        pass

    class DuckExecutor:
        def __init__(self, client, config, metrics):
            pass
        async def run(self, fn, args):
            return None
        async def close(self):
            return None

    class SyncRun:
        def run(self, fn, args):
            return None
        async def close(self):
            return None

    class NoClose:
        async def run(self, fn, args):
            return None

    not_a_class = 3
    """
)


@pytest.fixture
def plugin_module(tmp_path: Path) -> Iterator[str]:
    """A user module on sys.path holding good and bad executor classes."""
    name = f"user_plugins_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(PLUGIN_SOURCE)
    sys.path.insert(0, str(tmp_path))
    try:
        yield name
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def test_subclass_loads(plugin_module: str) -> None:
    cls = load_plugin(f"{plugin_module}:MyExecutor", Executor, "executor.kind")
    assert issubclass(cls, DirectExecutor)


def test_class_with_the_same_methods_loads(plugin_module: str) -> None:
    cls = load_plugin(f"{plugin_module}:DuckExecutor", Executor, "executor.kind")
    assert cls.__name__ == "DuckExecutor"


def test_registered_names_and_paths_resolve(plugin_module: str) -> None:
    assert executor_class("direct") is DirectExecutor
    assert executor_class(f"{plugin_module}:MyExecutor").__name__ == "MyExecutor"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("no_colon_here", "expected an import path 'module:Class'"),
        ("surely_not_a_module_xyz:Thing", "cannot import module 'surely_not_a_module_xyz'"),
        ("{mod}:Missing", "has no attribute 'Missing'"),
        ("{mod}:not_a_class", "is a int, not a class"),
        ("{mod}:SyncRun", "'run' must be 'async def'"),
        ("{mod}:NoClose", "missing method 'close'"),
    ],
)
def test_bad_plugins_name_field_path_and_interface(
    plugin_module: str, path: str, expected: str
) -> None:
    path = path.format(mod=plugin_module)
    with pytest.raises(PluginError) as info:
        load_plugin(path, Executor, "executor.kind")
    message = str(info.value)
    assert message.startswith(f"executor.kind = {path!r}")
    assert expected in message
    if "import" not in expected:
        assert "scalelab.service.executors.Executor" in message


def test_interface_description_lists_async_methods() -> None:
    assert describe_interface(Executor) == (
        "scalelab.service.executors.Executor (async run, async close)"
    )
