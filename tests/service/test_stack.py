"""The stack of layers without a cluster: configuration, order, measurement, errors, swaps.

The terminal layer here runs a user executor that computes in the service itself
(:class:`LocalExecutor`): the subject is the stack, not Dask (the HTTP tests run
the same stacks on a real cluster).
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from scalelab.config import ServiceConfig
from scalelab.errors import PluginError
from scalelab.service.cache_origin import KeyStore
from scalelab.service.executors import Executor, TaskResult
from scalelab.service.layer import Layer, LayerContext
from scalelab.service.metrics import ServiceMetrics
from scalelab.service.request import Next, Request, Response
from scalelab.service.stack import Pipeline, build_stack, plan_stack
from scalelab.service.state import ConfigRejected, ServiceState

HERE = __name__


class LocalExecutor(Executor):
    """Runs the workload in the service process (no Dask), for stack tests only."""

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> TaskResult:
        await asyncio.sleep(0.05)  # the work takes 50 ms without holding the event loop
        return TaskResult(fn(*args), "here", 1)


class Sleep(Layer):
    """Sleeps before and after calling the rest of the stack; records what it saw."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        before_ms: float = 0.0
        tag: str = ""

    closed = 0

    async def __call__(self, request: Request, next: Next) -> Response:
        await asyncio.sleep(self.params.before_ms / 1000.0)
        self.count("slept")
        response = await next(request)
        if self.params.tag:
            response.headers["X-Tag"] = self.params.tag
        return response

    async def close(self) -> None:
        type(self).closed += 1


class Twice(Layer):
    """Calls the rest of the stack twice (a retry or a hedge does this)."""

    async def __call__(self, request: Request, next: Next) -> Response:
        first, second = await asyncio.gather(next(request), next(request.replace(attempt=2)))
        return second if second.ok else first


class Broken(Layer):
    async def __call__(self, request: Request, next: Next) -> Response:
        raise ValueError("broken on purpose")


class NotALayer:
    pass


def slow_add(a: int, b: int) -> int:
    return a + b


def context(config: ServiceConfig) -> LayerContext:
    metrics = ServiceMetrics()
    holder = {"config": config}
    return LayerContext(metrics, KeyStore(), config=lambda: holder["config"], client=object)


def config(stack: list[str], **layers: dict[str, Any]) -> ServiceConfig:
    return ServiceConfig.model_validate(
        {
            "stack": stack,
            "layers": layers,
            "executor": {"kind": f"{HERE}:LocalExecutor"},
        }
    )


def sample(ctx: LayerContext, name: str, **labels: str) -> float:
    return float(ctx.metrics.registry.get_sample_value(name, labels) or 0.0)


def serve(stack: Any, request: Request) -> Response:
    return asyncio.run(stack.serve(request))


def test_layers_run_in_order_and_the_response_names_them() -> None:
    cfg = config(
        ["admission", "outer", "inner"],
        outer={"use": f"{HERE}:Sleep", "tag": "outer"},
        inner={"use": f"{HERE}:Sleep", "tag": "inner"},
    )

    async def go() -> Response:
        stack = await build_stack(cfg, context(cfg))
        assert stack.names == ["admission", "outer", "inner", "executor"]
        request = Request("/task/cpu", work=(slow_add, (2, 3)))
        return await stack.serve(request)

    response = asyncio.run(go())
    assert response.status == 200 and response.value == 5
    assert response.headers["X-Layers"] == "admission,outer,inner,executor"
    assert response.headers["X-Tag"] == "outer"  # the outer layer changed the response last
    assert response.headers["X-Worker"] == "here"


def test_every_layer_is_measured_alike_and_its_time_excludes_next() -> None:
    cfg = config(["slow"], slow={"use": f"{HERE}:Sleep", "before_ms": 30})
    ctx = context(cfg)

    async def go() -> None:
        stack = await build_stack(cfg, ctx)
        for _ in range(3):
            await stack.serve(Request("/task/cpu", work=(slow_add, (1, 1))))

    asyncio.run(go())
    for layer in ("slow", "executor"):
        assert sample(ctx, "scalelab_layer_requests_total", layer=layer) == 3
        assert sample(ctx, "scalelab_layer_responses_total", layer=layer, code="2xx") == 3
    assert sample(ctx, "scalelab_layer_outcomes_total", layer="slow", outcome="slept") == 3
    own = sample(ctx, "scalelab_layer_seconds_total", layer="slow") / 3
    terminal = sample(ctx, "scalelab_layer_seconds_total", layer="executor") / 3
    assert 0.025 < own < 0.045  # its 30 ms sleep, not the executor's 50 ms behind it
    assert terminal >= 0.045


def test_overlapping_calls_of_next_are_counted_once() -> None:
    cfg = config(["twice"], twice={"use": f"{HERE}:Twice"})
    ctx = context(cfg)

    async def go() -> Response:
        stack = await build_stack(cfg, ctx)
        return await stack.serve(Request("/task/cpu", work=(slow_add, (1, 2))))

    assert asyncio.run(go()).value == 3
    assert sample(ctx, "scalelab_layer_requests_total", layer="executor") == 2
    assert sample(ctx, "scalelab_layer_seconds_total", layer="twice") < 0.02


def test_a_failing_layer_is_named_and_the_executor_failure_is_a_task_failure() -> None:
    cfg = config(["broken"], broken={"use": f"{HERE}:Broken"})
    ctx = context(cfg)

    async def go() -> list[Response]:
        stack = await build_stack(cfg, ctx)
        good = await build_stack(config([]), ctx)
        return [
            await stack.serve(Request("/task/cpu")),
            await good.serve(Request("/task/cpu", work=(int, ("not a number",)))),
        ]

    layer_failed, task_failed = asyncio.run(go())
    assert layer_failed.status == 500 and "layer 'broken' failed" in layer_failed.body["detail"]
    assert task_failed.status == 500
    assert task_failed.body["detail"].startswith("task failed on the cluster: ValueError")
    assert sample(ctx, "scalelab_layer_responses_total", layer="broken", code="error") == 1


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"stack": ["nope"]}, "stack", "stack.0 = 'nope' is not a layer"),
        ({"stack": ["executor"]}, "stack", "the terminal layer"),
        ({"stack": ["faults", "faults"]}, "stack", "appears twice"),
        ({"layers": {"admission": {"use": "faults"}}}, "layers", "other than the built-in"),
        ({"layers": {"x": {"use": "bogus"}}}, "layers.x.use", "give a built-in layer"),
    ],
)
def test_a_bad_stack_is_refused_naming_the_field(
    change: dict[str, Any], field: str, text: str
) -> None:
    with pytest.raises(ValidationError) as info:
        ServiceConfig.model_validate(change)
    message = str(info.value)
    assert text in message and field.split(".")[0] in message


@pytest.mark.parametrize(
    ("layer", "field", "text"),
    [
        ({"use": f"{HERE}:Sleep", "befor_ms": 1}, "layers.x.befor_ms", "unknown parameter"),
        ({"use": f"{HERE}:Sleep", "before_ms": "soon"}, "layers.x.before_ms", "valid number"),
        ({"use": f"{HERE}:NotALayer"}, "layers.x", "'__call__' must be 'async def'"),
        ({"use": "no_such_module_q:Layer"}, "layers.x", "cannot import module"),
        ({"use": "scalelab.service.layers.execute:ExecutorLayer"}, "layers.x", "ends the stack"),
    ],
)
def test_a_bad_layer_is_refused_before_anything_is_built(
    layer: dict[str, Any], field: str, text: str
) -> None:
    cfg = config(["x"], x=layer)
    with pytest.raises(PluginError) as info:
        plan_stack(cfg)
    assert info.value.field == field
    assert text in str(info.value)
    state = ServiceState(ServiceConfig())
    with pytest.raises(ConfigRejected) as rejected:
        state.validate_change({"stack": ["x"], "layers": {"x": layer}})
    assert rejected.value.errors[0]["field"] == field


def test_user_executor_takes_checked_parameters() -> None:
    source = textwrap.dedent(
        """
        from pydantic import BaseModel, ConfigDict, ValidationError
        from scalelab.service.executors import Executor, TaskResult

        class Scaled(Executor):
            class Params(BaseModel):
                model_config = ConfigDict(extra="forbid")
                factor: int = 1

            async def run(self, fn, args):
                return TaskResult(fn(*args) * self.params.factor, "here", 1)
        """
    )
    with plugin_module(source) as name:
        cfg = ServiceConfig.model_validate(
            {"executor": {"kind": f"{name}:Scaled", "params": {"factor": 10}}}
        )

        async def go() -> Response:
            stack = await build_stack(cfg, context(cfg))
            return await stack.serve(Request("/task/cpu", work=(slow_add, (1, 2))))

        assert asyncio.run(go()).value == 30
        bad = ServiceConfig.model_validate(
            {"executor": {"kind": f"{name}:Scaled", "params": {"factr": 10}}}
        )
        with pytest.raises(PluginError) as info:
            plan_stack(bad)
        assert info.value.field == "executor.params.factr"
    with pytest.raises(PluginError, match="take"):
        plan_stack(ServiceConfig.model_validate({"executor": {"params": {"x": 1}}}))


def test_a_rebuild_keeps_unchanged_layers_and_swaps_atomically() -> None:
    """Requests in flight finish on the stack they started on; the next ones take the new
    stack; layers only the old stack held are closed once it drained."""
    first = config(["keep", "go"], keep={"use": f"{HERE}:Sleep"}, go={"use": f"{HERE}:Sleep"})
    second = config(
        ["keep", "go"],
        keep={"use": f"{HERE}:Sleep"},
        go={"use": f"{HERE}:Sleep", "tag": "new"},
    )
    ctx = context(first)
    pipeline = Pipeline()
    Sleep.closed = 0

    async def go() -> tuple[list[Response], list[Response]]:
        old = await build_stack(first, ctx)
        pipeline.swap(old)
        in_flight = [
            asyncio.ensure_future(pipeline.handle(Request("/x", work=(slow_add, (i, 0)))))
            for i in range(5)
        ]
        await asyncio.sleep(0.01)
        new = await build_stack(second, ctx, previous=old)
        assert new.layer("keep") is old.layer("keep")  # unchanged: the same instance
        assert new.layer("go") is not old.layer("go")
        pipeline.swap(new)
        assert Sleep.closed == 0 and pipeline.in_flight == 5  # the old stack still drains
        after = [await pipeline.handle(Request("/x", work=(slow_add, (9, 0))))]
        before = list(await asyncio.gather(*in_flight))
        await asyncio.sleep(0.01)
        return before, after

    before, after = asyncio.run(go())
    assert [r.value for r in before] == list(range(5))
    assert all("X-Tag" not in r.headers for r in before)  # finished on the old stack
    assert after[0].headers["X-Tag"] == "new"
    assert Sleep.closed == 1  # only the old "go" layer; "keep" lives on
    assert pipeline.in_flight == 0


class plugin_module:
    """A user module on sys.path for the block (as a module beside a notebook would be)."""

    counter = 0

    def __init__(self, source: str) -> None:
        type(self).counter += 1
        self.name = f"user_stack_plugin_{type(self).counter}_{id(self)}"
        self.source = source

    def __enter__(self) -> str:
        import tempfile

        self.dir = tempfile.mkdtemp()
        Path(self.dir, f"{self.name}.py").write_text(self.source)
        sys.path.insert(0, self.dir)
        return self.name

    def __exit__(self, *exc: object) -> None:
        sys.path.remove(self.dir)
        sys.modules.pop(self.name, None)
