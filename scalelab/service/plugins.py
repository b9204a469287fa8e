"""Load a user class named ``module:Class`` and check that it fits an extension point.

Every pluggable stage of the service (layers, executors, eviction policies,
partitioners...) is a small base class.
A configuration field names either a built-in by name or a user class by import
path; :func:`load_plugin` turns the path into the class, or raises
:class:`~scalelab.errors.PluginError` naming the field, the path and the
interface the class must provide.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ConfigDict, ValidationError

from scalelab.errors import PluginError

T = TypeVar("T")


class _NoParams(BaseModel):
    """The parameters of a plugin class that declares no ``Params``: none at all."""

    model_config = ConfigDict(extra="forbid")


def interface_methods(base: type, required: tuple[str, ...] = ()) -> dict[str, bool]:
    """Public methods ``base`` declares (and the ``required`` special ones, such as
    ``__call__``), each mapped to whether it is ``async``."""
    methods: dict[str, bool] = {}
    for name, member in vars(base).items():
        if (name.startswith("_") and name not in required) or not inspect.isfunction(member):
            continue
        methods[name] = inspect.iscoroutinefunction(member)
    return methods


def describe_interface(base: type, required: tuple[str, ...] = ()) -> str:
    """``pkg.Base (async run, async close)``: how messages name an interface."""
    parts = [
        f"{'async ' if is_async else ''}{name}"
        for name, is_async in interface_methods(base, required).items()
    ]
    return f"{base.__module__}.{base.__qualname__} ({', '.join(parts)})"


def load_plugin(path: str, base: type[T], field: str, required: tuple[str, ...] = ()) -> type[T]:
    """Import the class at ``path`` (``module:Class``) and check it implements ``base``.

    A subclass of ``base`` fits. So does any class that defines every public
    method of ``base`` (and the special methods named in ``required``), with
    ``async def`` where ``base`` has it.
    """
    expected = describe_interface(base, required)
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise PluginError(
            f"{field} = {path!r}: expected an import path 'module:Class' "
            f"naming a class that implements {expected}",
            field,
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise PluginError(
            f"{field} = {path!r}: cannot import module {module_name!r} "
            f"({type(exc).__name__}: {exc}); check the name and that it is on PYTHONPATH",
            field,
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(
                f"{field} = {path!r}: module {module_name!r} has no attribute {attr!r}; "
                f"name a class that implements {expected}",
                field,
            ) from None
    if not inspect.isclass(obj):
        raise PluginError(
            f"{field} = {path!r}: {attr!r} is a {type(obj).__name__}, not a class; "
            f"name a class that implements {expected}",
            field,
        )
    if issubclass(obj, base):
        return cast(type[T], obj)
    problems = []
    for name, is_async in interface_methods(base, required).items():
        member = getattr(obj, name, None)
        if not callable(member):
            problems.append(f"missing method {name!r}")
        elif is_async and not inspect.iscoroutinefunction(member):
            problems.append(f"{name!r} must be 'async def'")
    if problems:
        raise PluginError(
            f"{field} = {path!r}: class {obj.__qualname__} does not implement {expected}: "
            f"{'; '.join(problems)}. Subclass {base.__qualname__} or add the methods",
            field,
        )
    return cast(type[T], obj)


def validate_params(cls: type, raw: dict[str, Any], field: str) -> BaseModel:
    """``raw`` checked against ``cls.Params``; a :class:`PluginError` names each bad field."""
    model = getattr(cls, "Params", _NoParams)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise PluginError(
            f"{field}: {cls.__qualname__}.Params must be a pydantic BaseModel "
            "(or leave it out: the class then takes no parameters)",
            field,
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        fields = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            what = (
                "unknown parameter; remove it or check its spelling"
                if err["type"] == "extra_forbidden"
                else err["msg"]
            )
            fields.append(f"{field}.{where}")
            problems.append(f"{field}.{where}: {what}")
        raise PluginError(
            "; ".join(problems) + f" (parameters of {cls.__module__}:{cls.__qualname__})",
            fields[0] if fields else field,
        ) from None
