"""Structured logs: one JSON line per data-plane request, and one per task it ran on Dask.

Every data-plane request has a request id: the ``X-Request-Id`` the client sent
(scalelab's Locust scenarios send one with every request), or one the service
makes; the response echoes it. The service writes one line per request
(logger ``scalelab.requests``), and the id travels with the request's work to
the Dask worker (:class:`Traced` wraps the workload call, whatever the
executor), which writes one line per call (logger ``scalelab.task``). Both go to
standard error as JSON, so a run's ``service.log`` holds the lines of the
service and of the workers of its LocalCluster; ``scalelab logs RUN_DIR
--request ID`` finds a request's lines again.

A line is a JSON object with at least ``t`` (Unix time), ``event``
(``request`` or ``task``) and ``request_id``. ``[logging] requests`` and
``[logging] tasks`` switch the two kinds of line off.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

REQUEST_LOGGER = "scalelab.requests"
TASK_LOGGER = "scalelab.task"


class JsonLines(logging.Formatter):
    """Formats a record whose message is a dict as one JSON line (others as ``message``)."""

    def format(self, record: logging.LogRecord) -> str:
        data = record.msg if isinstance(record.msg, dict) else {"message": record.getMessage()}
        return json.dumps(data, separators=(",", ":"), default=str)


FLUSH_S = 0.25
"""Longest a line waits in the buffer before it is written."""

FLUSH_LINES = 512
"""Lines that make the buffer be written at once."""


class BufferedLines(logging.Handler):
    """Writes formatted lines to a stream in batches: at ``FLUSH_LINES`` lines, every
    ``FLUSH_S`` from a background thread, and when logging shuts down at exit.

    One write per batch instead of one per request: a line per request costs the
    service a few microseconds instead of a system call each.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__()
        self.stream = stream
        self.lines: list[str] = []
        self._stopped = threading.Event()
        self._flusher = threading.Thread(target=self._every, name="scalelab-log", daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the line; write the batch when it is full."""
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.write(line)

    def write(self, line: str) -> None:
        """Keep one formatted line (the cheap path of a line per request)."""
        self.lines.append(line)
        if len(self.lines) >= FLUSH_LINES or self._stopped.is_set():
            self.flush()  # after close() (logging reconfigured), every line at once

    def flush(self) -> None:
        """Write what is buffered."""
        with self.lock or threading.Lock():
            lines, self.lines = self.lines, []
            if not lines:
                return
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # the stream was closed under us: nothing to keep
                pass

    def _every(self) -> None:
        while not self._stopped.wait(FLUSH_S):
            self.flush()

    def close(self) -> None:
        """Write what is left and stop the flusher."""
        self._stopped.set()
        self.flush()
        super().close()


def json_logger(name: str, stream: Any = None) -> logging.Logger:
    """The logger ``name``, writing JSON lines to ``stream`` (stderr) and nowhere else."""
    logger = logging.getLogger(name)
    if not any(isinstance(h, BufferedLines) for h in logger.handlers):
        handler = BufferedLines(stream or sys.stderr)
        handler.setFormatter(JsonLines())
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def json_writer(name: str) -> Callable[[dict[str, Any]], None]:
    """A function writing one dict as a JSON line to logger ``name``'s buffered handler,
    without the cost of a log record (nothing, when the logger has no such handler)."""
    handler = next(
        (h for h in logging.getLogger(name).handlers if isinstance(h, BufferedLines)), None
    )
    if handler is None:
        logger = logging.getLogger(name)
        return logger.info
    write = handler.write
    dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode

    def line(data: dict[str, Any]) -> None:
        write(dumps(data))

    return line


def request_line(
    request_id: str,
    endpoint: str,
    method: str,
    status: int,
    seconds: float,
    headers: dict[str, str],
) -> dict[str, Any]:
    """The log line of one answered request, with what its response headers said."""
    line: dict[str, Any] = {
        "t": time.time(),
        "event": "request",
        "request_id": request_id,
        "endpoint": endpoint,
        "method": method,
        "status": status,
        "ms": round(seconds * 1000.0, 3),
    }
    for header, field in _HEADER_FIELDS:
        value = headers.get(header)
        if value:
            line[field] = value
    return line


_HEADER_FIELDS = (
    ("x-layers", "layers"),
    ("x-worker", "worker"),
    ("x-batch-size", "batch_size"),
    ("x-cache", "cache"),
    ("x-attempts", "attempts"),
    ("x-partition", "partition"),
)


class Traced:
    """A workload call that carries its request's id to the worker and logs there.

    Picklable and tiny: the executor sends it instead of the bare function, so
    every executor (a student's too) carries the id without knowing of it.
    """

    __slots__ = ("fn", "request_id")

    def __init__(self, fn: Callable[..., Any], request_id: str) -> None:
        self.fn = fn
        self.request_id = request_id

    def __call__(self, *args: Any) -> Any:
        started = time.perf_counter()
        ok = False
        try:
            value = self.fn(*args)
            ok = True
            return value
        finally:
            self.log((time.perf_counter() - started) * 1000.0, ok)

    def log(self, ms: float, ok: bool, batch: int = 1) -> None:
        """Write this call's line on the worker (a batch logs each of its calls)."""
        logger = logging.getLogger(TASK_LOGGER)
        if not logger.handlers:
            return  # no task log on this worker
        from scalelab.service.workloads import worker_address

        logger.info(
            {
                "t": time.time(),
                "event": "task",
                "request_id": self.request_id,
                "fn": getattr(self.fn, "__name__", repr(self.fn)),
                "worker": worker_address(),
                "ms": round(ms, 3),
                "ok": ok,
                "batch": batch,
            }
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (Traced, (self.fn, self.request_id))


def untraced(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The workload function behind a :class:`Traced` call (``fn`` itself otherwise)."""
    return fn.fn if isinstance(fn, Traced) else fn


def task_log_plugin() -> Any:
    """A Dask worker plugin that gives each worker the JSON task log on its standard error."""
    from distributed import WorkerPlugin

    class TaskLog(WorkerPlugin):
        name = "scalelab-task-log"
        idempotent = True

        def setup(self, worker: Any) -> None:
            json_logger(TASK_LOGGER)

    return TaskLog()
