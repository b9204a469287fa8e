"""Workloads: pure, deterministic functions that the service runs on Dask workers.

- :func:`cpu_work` burns ``units`` units of pure-Python integer arithmetic. One
  unit is :data:`ITERATIONS_PER_UNIT` steps of a linear congruential generator,
  tens of microseconds (about 25 µs on a 2-core laptop-class machine); the
  result depends only on ``units``, so a cached answer can always be checked
  against a fresh one.
- :func:`io_work` sleeps ``ms`` milliseconds, standing for a call to a slow
  backend. It holds a worker thread while it sleeps, as blocking I/O does.
- :func:`keyed_work` computes the value of a key at one of its versions (what
  the cache of ``GET /task/key/{key}`` holds), at a cost of CPU units and I/O
  ms; the value depends only on the key and the version (:func:`keyed_value`).

:func:`run_task` and :func:`run_batch` are what executors submit: they call a
workload and report which Dask worker ran it, so responses can carry
``X-Worker``. A batch of I/O calls waits once for its longest delay, as one
batched request to a backend would, rather than sleeping each delay in turn.
"""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Literal

from scalelab.chaos.task_faults import apply_task_fault

ITERATIONS_PER_UNIT = 100
"""Generator steps in one CPU unit."""

_MODULUS_MASK = 0x7FFFFFFF

Distribution = Literal["fixed", "exponential", "bimodal"]
"""Delay distributions :func:`draw_delay_ms` knows."""

Call = tuple[Callable[..., Any], tuple[Any, ...]]
"""A workload function with its positional arguments."""

Outcome = tuple[bool, Any]
"""``(True, value)`` for a result, ``(False, exception)`` for a failure."""


def cpu_work(units: int) -> int:
    """Run ``units`` units of CPU work and return a checksum that depends only on ``units``."""
    x = (units * 2654435761 + 1) & _MODULUS_MASK
    for _ in range(units * ITERATIONS_PER_UNIT):
        x = (x * 1103515245 + 12345) & _MODULUS_MASK
    return x


def io_work(ms: float) -> float:
    """Block for ``ms`` milliseconds (simulated I/O) and return the delay used."""
    if ms > 0:
        time.sleep(ms / 1000.0)
    return ms


class OriginError(RuntimeError):
    """A failure of the keyed workload's backend, injected by ``origin.error_rate``."""


def keyed_value(key: str, version: int) -> int:
    """The value of ``key`` at ``version``: a 31-bit checksum of the two, nothing else."""
    return zlib.crc32(f"{key}\x00{version}".encode()) & _MODULUS_MASK


def keyed_work(
    key: str, version: int, units: int = 0, io_ms: float = 0.0, fail: bool = False
) -> int:
    """Compute ``key`` at ``version`` with ``units`` of CPU work and ``io_ms`` of I/O.

    ``fail`` makes the backend fail after its I/O (as a timed-out database
    would), raising :class:`OriginError`.
    """
    if units:
        cpu_work(units)
    if io_ms > 0:
        time.sleep(io_ms / 1000.0)
    if fail:
        raise OriginError(f"origin failed computing key {key!r} (origin.error_rate)")
    return keyed_value(key, version)


def io_work_many(delays_ms: Sequence[float]) -> list[float]:
    """Batched form of :func:`io_work`: the I/O calls overlap, so wait once for the longest."""
    longest = max(delays_ms, default=0.0)
    if longest > 0:
        time.sleep(longest / 1000.0)
    return list(delays_ms)


BATCH_FORMS: dict[Callable[..., Any], Callable[[list[Any]], list[Any]]] = {
    io_work: io_work_many,
}
"""Workloads that run a whole batch at once, given the list of their single arguments."""


def draw_delay_ms(
    dist: Distribution,
    ms: float,
    *,
    slow_ms: float = 0.0,
    slow_frac: float = 0.0,
    seed: int | None = None,
    rng: random.Random | None = None,
) -> float:
    """Draw an I/O delay: ``fixed`` is ``ms``; ``exponential`` has mean ``ms``;
    ``bimodal`` is ``slow_ms`` with probability ``slow_frac``, else ``ms``.

    With ``seed`` the draw is a deterministic function of the seed (ground truth
    for measurement tests); otherwise it comes from ``rng`` (or the module's
    generator).
    """
    if dist == "fixed":
        return ms
    gen = random.Random(seed) if seed is not None else (rng or random)
    if dist == "exponential":
        return gen.expovariate(1.0 / ms) if ms > 0 else 0.0
    if dist == "bimodal":
        return slow_ms if gen.random() < slow_frac else ms
    raise ValueError(f"dist must be one of fixed, exponential, bimodal (got {dist!r})")


def worker_address() -> str:
    """Address of the Dask worker running the current task, or ``local`` outside Dask."""
    from distributed import get_worker

    try:
        return str(get_worker().address)
    except ValueError:
        return "local"


def run_task(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, Any]:
    """Run one workload call on a worker; return ``(worker address, result)``.

    A task fault on this worker (:mod:`scalelab.chaos.task_faults`) applies first.
    """
    apply_task_fault()
    return worker_address(), fn(*args)


def run_batch(calls: Sequence[Call]) -> tuple[str, list[Outcome]]:
    """Run a batch of workload calls in one task; return the worker and one outcome per call.

    Calls of a workload with a batch form (:data:`BATCH_FORMS`) run together;
    the rest run one after the other. A failing call fails only its own outcome;
    a task fault on this worker applies once to the whole batch, first.
    """
    from scalelab.service.logs import Traced, untraced

    apply_task_fault()
    outcomes: list[Outcome | None] = [None] * len(calls)
    grouped: dict[Callable[..., Any], list[int]] = {}
    for i, (fn, args) in enumerate(calls):
        if untraced(fn) in BATCH_FORMS and len(args) == 1:
            grouped.setdefault(untraced(fn), []).append(i)
            continue
        try:
            outcomes[i] = (True, fn(*args))
        except Exception as exc:  # the caller of this one call receives it
            outcomes[i] = (False, exc)
    for fn, indices in grouped.items():
        started = time.perf_counter()
        ok = False
        try:
            values = BATCH_FORMS[fn]([calls[i][1][0] for i in indices])
            for i, value in zip(indices, values, strict=True):
                outcomes[i] = (True, value)
            ok = True
        except Exception as exc:
            for i in indices:
                outcomes[i] = (False, exc)
        ms = (time.perf_counter() - started) * 1000.0
        for i in indices:  # calls run together log the batch's time
            traced = calls[i][0]
            if isinstance(traced, Traced):
                traced.log(ms, ok, batch=len(indices))
    return worker_address(), [
        o if o is not None else (False, RuntimeError("no result")) for o in outcomes
    ]
