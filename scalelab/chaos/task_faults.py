"""Faults inside tasks on chosen workers: extra latency and exceptions (a "slow worker").

:class:`TaskFaults` is a Dask ``WorkerPlugin`` registered on every worker
under :data:`PLUGIN_NAME`; a worker named in ``workers`` (by address) takes it
up, the others ignore it. Every task the service runs (``run_task``,
``run_batch``, an actor call) first calls :func:`apply_task_fault`, which on a
targeted worker sleeps ``delay_ms`` plus a draw of ``dist`` (``fixed``: nothing
more; ``exponential`` with mean ``mean_ms``; ``bimodal``: ``slow_ms`` with
probability ``slow_frac``) and then raises :class:`InjectedTaskError` with
probability ``error_rate``. Draws come from a generator seeded by ``seed`` and
the worker's address, one draw of each per task, so a run can be predicted
exactly. The sleep holds the worker's thread, as a slow disk or a noisy
neighbour would. Unregistering the plugin ends the fault.
"""

from __future__ import annotations

import random
import time
import zlib
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

PLUGIN_NAME = "scalelab-task-faults"
"""The name the plugin is registered under (one task fault at a time)."""


class InjectedTaskError(RuntimeError):
    """A task failed on purpose (a task fault's ``error_rate``)."""


class TaskFaults(WorkerPlugin):
    """Extra latency and errors for the tasks of the workers in ``workers``."""

    name = PLUGIN_NAME
    idempotent = False

    def __init__(
        self,
        workers: list[str],
        delay_ms: float = 0.0,
        dist: str = "fixed",
        mean_ms: float = 0.0,
        slow_ms: float = 0.0,
        slow_frac: float = 0.0,
        error_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.workers = list(workers)
        self.delay_ms = delay_ms
        self.dist = dist
        self.mean_ms = mean_ms
        self.slow_ms = slow_ms
        self.slow_frac = slow_frac
        self.error_rate = error_rate
        self.seed = seed
        self.active = False
        self.address = ""
        self.tasks = 0
        self.rng = random.Random(seed)
        self.errors = random.Random(seed + 1)

    def setup(self, worker: Any) -> None:
        """Take the fault up on a targeted worker; seed its draws by its address."""
        self.address = str(worker.address)
        self.active = self.address in self.workers
        salt = zlib.crc32(self.address.encode())
        self.rng = random.Random(self.seed * 1_000_003 + salt)
        self.errors = random.Random(self.seed * 1_000_033 + salt)

    def teardown(self, worker: Any) -> None:
        """Nothing held: the fault ends with the plugin."""
        self.active = False

    def draw_delay_ms(self) -> float:
        """This task's extra latency."""
        extra = self.delay_ms
        if self.dist == "exponential" and self.mean_ms > 0:
            extra += self.rng.expovariate(1.0 / self.mean_ms)
        elif self.dist == "bimodal":
            extra += self.slow_ms if self.rng.random() < self.slow_frac else 0.0
        return extra

    def apply(self) -> None:
        """Delay this task, then fail it at ``error_rate``."""
        self.tasks += 1
        delay = self.draw_delay_ms()
        fail = self.error_rate > 0 and self.errors.random() < self.error_rate
        if delay > 0:
            time.sleep(delay / 1000.0)
        if fail:
            raise InjectedTaskError(
                f"injected task fault on {self.address} (error_rate={self.error_rate:g})"
            )


def apply_task_fault() -> None:
    """Apply the task fault of the worker running this task, if it has one (cheap otherwise)."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return
    plugin = worker.plugins.get(PLUGIN_NAME)
    if isinstance(plugin, TaskFaults) and plugin.active:
        plugin.apply()
