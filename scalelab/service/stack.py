"""The stack of layers: built from the configuration, measured alike, swapped atomically.

``stack`` in the configuration orders the layers a data-plane request passes
through; the executor (the terminal layer) always ends it. :func:`build_stack`
resolves each entry to a class (a built-in by name, a user layer by
``module:Class``), validates its parameters against the class's ``Params``
model, and constructs it, reusing the instance of the previous stack when the
entry's class and parameters did not change (so a cache keeps its entries when
only a fault is switched on). Any problem raises
:class:`~scalelab.errors.PluginError` naming the entry, before anything changes.

:class:`Pipeline` holds the stack in force. A new stack replaces the old one at
once: requests already inside the old one finish on it, and the old stack's
layers that the new one does not reuse are closed once its last request has
left. Every layer is wrapped by :class:`_Measured`, which counts requests in
and out and the time spent inside the layer itself (excluding the time spent
in ``next``, the rest of the stack), and notes the layer in the request's
trail, which the response reports as ``X-Layers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from scalelab.config import BUILTIN_LAYERS, ServiceConfig
from scalelab.errors import PluginError
from scalelab.service.layer import Layer, LayerContext
from scalelab.service.metrics import ServiceMetrics
from scalelab.service.plugins import load_plugin, validate_params
from scalelab.service.request import Next, NotReady, Request, Response, error

log = logging.getLogger("scalelab.service")

DRAIN_TIMEOUT_S = 60.0
"""Longest a replaced stack's layers stay open for its requests in flight."""

EXECUTOR = "executor"
"""The name of the terminal layer, which always ends the stack."""

_ORIGIN_ATTR = "scalelab_layer"

EXTRA_TRY = "+try"
"""Noted in a request's trail by a layer that tries it once more (a retry, a hedge)."""


def attempts(trail: list[str]) -> int:
    """Tries of a request: 1 plus every retry and hedge, when it reached the executor at all;
    0 for an answer from a cache or from a layer that failed it fast. A router's fan-out
    to several partitions is one try."""
    if EXECUTOR not in trail:
        return 0
    return 1 + trail.count(EXTRA_TRY)


def layer_class(use: str, field: str) -> type[Layer]:
    """The class a stack entry uses: a built-in layer by name, or a user ``module:Class``."""
    from scalelab.service.layers import builtin_layer

    builtin = builtin_layer(use)
    if builtin is not None:
        return builtin
    if ":" not in use:
        raise PluginError(
            f"{field} = {use!r}: unknown layer; use a built-in "
            f"({', '.join(BUILTIN_LAYERS)}) or a user layer as 'module:Class'",
            field,
        )
    return load_plugin(use, Layer, field, required=("__call__",))


@dataclass(frozen=True)
class Entry:
    """One layer of a stack: its configured name, what identifies its set-up, the instance."""

    name: str
    identity: tuple[str, str]
    layer: Layer


def _field(config: ServiceConfig, name: str, index: int) -> str:
    if name == EXECUTOR:
        return "executor"
    if name in config.layers:
        return f"layers.{name}"
    if name in BUILTIN_LAYERS:
        return name
    return f"stack.{index}"


@dataclass(frozen=True)
class Planned:
    """A stack entry resolved but not built: its class and validated parameters."""

    name: str
    field: str
    use: str
    cls: type[Layer]
    params: BaseModel

    @property
    def identity(self) -> tuple[str, str]:
        """What must stay equal for a built layer to be reused by a new stack."""
        return (self.use, json.dumps(self.params.model_dump(mode="json"), sort_keys=True))


def plan_stack(config: ServiceConfig) -> list[Planned]:
    """Resolve every entry of ``config``'s stack (the executor last) without building it.

    Raises :class:`PluginError` naming the entry's field when its class cannot be
    loaded, does not fit, stands in the wrong place, or its parameters are wrong.
    """
    from scalelab.service.executors import executor_class, executor_params

    planned: list[Planned] = []
    for index, name in enumerate([*config.stack, EXECUTOR]):
        field = _field(config, name, index)
        if name == EXECUTOR:
            use, raw = EXECUTOR, config.executor.model_dump()
            kind = config.executor.kind
            executor_params(executor_class(kind), kind, config.executor.params)
        else:
            use, raw = config.layer_params(name)
        cls = layer_class(use, field)
        terminal = bool(getattr(cls, "terminal", False))
        if terminal != (name == EXECUTOR):
            where = "ends the stack" if terminal else "cannot end the stack"
            raise PluginError(
                f"{field} = {use!r}: {cls.__qualname__} {where}; the executor is the "
                "only terminal layer: put other layers before it",
                field,
            )
        params = validate_params(cls, raw, field)
        check = getattr(cls, "check", None)
        if check is not None:
            check(params, field)
        planned.append(Planned(name, field, use, cls, params))
    return planned


async def build_stack(
    config: ServiceConfig, context: LayerContext, previous: Stack | None = None
) -> Stack:
    """The stack ``config`` describes; instances of ``previous`` are reused where unchanged.

    Raises :class:`PluginError` naming the entry when a class cannot be loaded,
    its parameters are wrong, or it fails to start; layers constructed so far
    are closed again.
    """
    reusable = {(e.name, e.identity): e.layer for e in previous.entries} if previous else {}
    entries: list[Entry] = []
    created: list[Layer] = []
    try:
        for item in plan_stack(config):
            layer = reusable.get((item.name, item.identity))
            if layer is None:
                layer = _construct(item.cls, item.params, context, item.field)
                created.append(layer)
                layer.name = item.name
                await _start(layer, item.field)
            entries.append(Entry(item.name, item.identity, layer))
    except BaseException:
        await close_layers(created)
        raise
    return Stack(entries, context.metrics)


def _construct(cls: type[Layer], params: BaseModel, context: LayerContext, field: str) -> Layer:
    try:
        return cls(params, context)
    except (PluginError, NotReady):
        raise
    except Exception as exc:
        raise PluginError(
            f"{field}: {cls.__qualname__}(params, context) failed: {type(exc).__name__}: {exc}",
            field,
        ) from None


async def _start(layer: Layer, field: str) -> None:
    start = getattr(layer, "start", None)
    if start is None:
        return
    try:
        await start()
    except (PluginError, NotReady):
        raise
    except Exception as exc:
        raise PluginError(
            f"{field}: {type(layer).__qualname__} failed to start: {type(exc).__name__}: {exc}",
            field,
        ) from None


class _NextTimer:
    """``next`` as one layer sees it for one request: the time spent in it is summed.

    Overlapping calls (a hedge runs two at once) count their union, so the time
    inside the layer itself is never below zero.
    """

    __slots__ = ("_inner", "_active", "_since", "spent")

    def __init__(self, inner: Next | None) -> None:
        self._inner = inner
        self._active = 0
        self._since = 0.0
        self.spent = 0.0

    async def __call__(self, request: Request) -> Response:
        inner = self._inner
        if inner is None:
            raise RuntimeError("the terminal layer called next: nothing comes after it")
        if self._active == 0:
            self._since = time.perf_counter()
        self._active += 1
        try:
            return await inner(request)
        finally:
            self._active -= 1
            if self._active == 0:
                self.spent += time.perf_counter() - self._since


_CODES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class _Measured:
    """One layer wrapped so that it is measured like every other, and named in the trail."""

    __slots__ = ("name", "layer", "inner", "_in", "_seconds", "_out", "_error")

    def __init__(self, name: str, layer: Layer, inner: Next | None, metrics: ServiceMetrics):
        self.name = name
        self.layer = layer
        self.inner = inner
        self._in = metrics.layer_requests.labels(name).inc
        self._seconds = metrics.layer_seconds.labels(name).inc
        self._out = [metrics.layer_responses.labels(name, code).inc for code in _CODES]
        self._error = metrics.layer_responses.labels(name, "error").inc

    async def __call__(self, request: Request) -> Response:
        self._in()
        request.trail.append(self.name)
        timer = _NextTimer(self.inner)
        started = time.perf_counter()
        try:
            response = await self.layer(request, timer)
        except BaseException as exc:
            self._seconds(max(0.0, time.perf_counter() - started - timer.spent))
            self._error()
            if not hasattr(exc, _ORIGIN_ATTR):
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(exc, _ORIGIN_ATTR, self.name)
            raise
        self._seconds(max(0.0, time.perf_counter() - started - timer.spent))
        self._out[min(max(response.status // 100 - 1, 0), 4)]()
        return response


def failure_response(exc: BaseException) -> Response:
    """The answer for an exception that left the stack: 503 when not ready, else 500."""
    if isinstance(exc, NotReady):
        return error(503, f"the service is not ready: {exc}")
    origin = getattr(exc, _ORIGIN_ATTR, EXECUTOR)
    if origin == EXECUTOR:
        return error(500, f"task failed on the cluster: {type(exc).__name__}: {exc}")
    return error(500, f"layer {origin!r} failed: {type(exc).__name__}: {exc}")


class Stack:
    """The layers of one configuration, composed into one call, with its requests in flight."""

    def __init__(self, entries: list[Entry], metrics: ServiceMetrics) -> None:
        self.entries = entries
        self.in_flight = 0
        self.retired = False
        self.drained = asyncio.Event()
        handler: Next | None = None
        for entry in reversed(entries):
            handler = _Measured(entry.name, entry.layer, handler, metrics)
        assert handler is not None
        self._handler: Next = handler

    @property
    def names(self) -> list[str]:
        """The layers' names, outermost first (the executor last)."""
        return [e.name for e in self.entries]

    def layer(self, name: str) -> Layer | None:
        """The layer called ``name``, if the stack has one."""
        return next((e.layer for e in self.entries if e.name == name), None)

    async def serve(self, request: Request) -> Response:
        """Pass ``request`` through every layer; exceptions become 500 (or 503) answers."""
        try:
            response = await self._handler(request)
        except Exception as exc:
            response = failure_response(exc)
        trail = request.trail
        response.headers["X-Layers"] = ",".join(dict.fromkeys(n for n in trail if n != EXTRA_TRY))
        response.headers.setdefault("X-Attempts", str(attempts(trail)))
        return response

    def describe(self) -> list[dict[str, Any]]:
        """Each layer's name, class and parameters (``GET /admin/stack``)."""
        return [e.layer.describe() for e in self.entries]


class Pipeline:
    """The stack in force, swapped whole; counts the data-plane requests inside it."""

    def __init__(self) -> None:
        self.stack: Stack | None = None
        self.in_flight = 0
        self._closing: set[asyncio.Task[None]] = set()

    async def handle(self, request: Request) -> Response:
        """Serve ``request`` with the stack in force when it arrives."""
        stack = self.stack
        if stack is None:
            return error(503, "the service is not ready: its cluster is starting")
        self.in_flight += 1
        stack.in_flight += 1
        try:
            return await stack.serve(request)
        finally:
            self.in_flight -= 1
            stack.in_flight -= 1
            if stack.retired and stack.in_flight == 0:
                stack.drained.set()

    def swap(self, new: Stack) -> Stack | None:
        """Put ``new`` in force at once; close what the old stack alone held once it drains."""
        old, self.stack = self.stack, new
        if old is not None:
            keep = {id(e.layer) for e in new.entries}
            self._retire(old, [e.layer for e in old.entries if id(e.layer) not in keep])
        return old

    def _retire(self, old: Stack, layers: list[Layer]) -> None:
        old.retired = True
        if old.in_flight == 0:
            old.drained.set()

        async def close_when_drained() -> None:
            try:
                await asyncio.wait_for(old.drained.wait(), DRAIN_TIMEOUT_S)
            except TimeoutError:
                log.warning(
                    "a replaced stack still had %d requests after %.0f s; closing it",
                    old.in_flight,
                    DRAIN_TIMEOUT_S,
                )
            await close_layers(layers)

        task = asyncio.ensure_future(close_when_drained())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self, deadline_s: float = 10.0) -> None:
        """Close every layer: the stack in force and any still draining."""
        stack, self.stack = self.stack, None
        if self._closing:
            with contextlib.suppress(Exception):
                await asyncio.wait(set(self._closing), timeout=deadline_s / 2)
        if stack is not None:
            await close_layers([e.layer for e in stack.entries], deadline_s / 2)


async def close_layers(layers: list[Layer], deadline_s: float = 10.0) -> None:
    """Close each layer within the deadline; a failure to close is logged, never raised."""
    for layer in layers:
        try:
            await asyncio.wait_for(layer.close(), deadline_s)
        except Exception as exc:
            log.warning("closing layer %s failed: %r", layer.name, exc)
