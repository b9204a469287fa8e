"""The per-request buffer behind ``requests.parquet`` and ``latency.hdr``.

:class:`RequestLog` receives exactly the arguments of Locust's ``request``
event and keeps one entry per request in plain column lists (cheap to append,
no dict per row) and two HdrHistograms (latency from the intended and from the
actual start). It knows nothing of Locust or gevent, so it is tested on its own.
The columns and their types are those of docs/results-format.md.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from scalelab import hdr
from scalelab.fileio import atomic_path

SCHEMA = pa.schema(
    [
        ("intended_start", pa.float64()),
        ("start", pa.float64()),
        ("latency_us", pa.int64()),
        ("latency_intended_us", pa.int64()),
        ("status", pa.int32()),
        ("ok", pa.bool_()),
        ("name", pa.string()),
        ("method", pa.string()),
        ("bytes", pa.int64()),
        ("error", pa.string()),
        ("worker", pa.string()),
        ("batch_size", pa.int32()),
        ("cache", pa.string()),
        ("partition", pa.string()),
        ("attempts", pa.int32()),
        ("process", pa.int32()),
    ]
)

INTENDED_KEY = "intended_start"  # request context key carrying the open loop's scheduled start
DROPPED_KEY = "dropped"  # request context key marking a request the open loop never sent


def error_text(exception: Any) -> str:
    """Locust's text for a failure (as in its failures table), without object addresses."""
    text = exception if isinstance(exception, str) else repr(exception)
    marker = text.find("object at 0x")
    if marker >= 0:
        end = text.find(">", marker)
        if end >= 0:
            text = text[: marker + len("object at 0x") - 2] + text[end:]
    return text


def _header(headers: Any, name: str) -> str:
    value = headers.get(name)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    return str(value)


def _int(text: str) -> int:
    try:
        return int(text) if text else 0
    except ValueError:
        return 0


class RequestLog:
    """Column buffers and latency histograms for the requests of one process."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget everything recorded (a new test, or Locust's statistics were reset)."""
        self.intended: list[float] = []
        self.start: list[float] = []
        self.latency_us: list[int] = []
        self.latency_intended_us: list[int] = []
        self.status: list[int] = []
        self.ok: list[bool] = []
        self.name: list[str] = []
        self.method: list[str] = []
        self.nbytes: list[int] = []
        self.error: list[str] = []
        self.worker: list[str] = []
        self.batch_size: list[int] = []
        self.cache: list[str] = []
        self.partition: list[str] = []
        self.attempts: list[int] = []
        self.hist_intended = hdr.new_histogram()
        self.hist_actual = hdr.new_histogram()
        self.first_start: float | None = None
        self.last_end: float | None = None

    def __len__(self) -> int:
        return len(self.start)

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float | None,
        response_length: int | None,
        response: Any = None,
        context: Mapping[str, Any] | None = None,
        exception: Any = None,
        start_time: float | None = None,
        **_: Any,
    ) -> None:
        """Record one request: the signature of Locust's ``request`` event (times in ms)."""
        latency_us = int((response_time or 0.0) * 1000.0)
        if start_time is None:
            start_time = time.time() - latency_us / 1e6
        intended = context.get(INTENDED_KEY) if context else None
        if intended is None or intended > start_time:
            intended = start_time
        latency_intended_us = latency_us + int((start_time - intended) * 1e6)
        self.intended.append(intended)
        self.start.append(start_time)
        self.latency_us.append(latency_us)
        self.latency_intended_us.append(latency_intended_us)
        self.name.append(name)
        self.method.append(request_type)
        self.nbytes.append(response_length or 0)
        if exception is None:
            self.ok.append(True)
            self.error.append("")
        else:
            self.ok.append(False)
            self.error.append(error_text(exception))
        if response is None:
            headers = None
            self.status.append(0)
        else:
            headers = getattr(response, "headers", None)
            self.status.append(getattr(response, "status_code", 0) or 0)
        if headers:
            self.worker.append(_header(headers, "X-Worker"))
            self.batch_size.append(_int(_header(headers, "X-Batch-Size")))
            self.cache.append(_header(headers, "X-Cache"))
            self.partition.append(_header(headers, "X-Partition"))
            self.attempts.append(_int(_header(headers, "X-Attempts")))
        else:
            self.worker.append("")
            self.batch_size.append(0)
            self.cache.append("")
            self.partition.append("")
            self.attempts.append(0)
        if context and context.get(DROPPED_KEY):
            return  # never sent: in the table (as a failure), not in the latency histograms
        end = start_time + latency_us / 1e6
        if self.first_start is None or intended < self.first_start:
            self.first_start = intended
        if self.last_end is None or end > self.last_end:
            self.last_end = end
        self.hist_intended.record_value(hdr.clamp_us(latency_intended_us))
        self.hist_actual.record_value(hdr.clamp_us(latency_us))

    def table(self, process: int = 0) -> pa.Table:
        """The recorded requests as an Arrow table with :data:`SCHEMA`."""
        n = len(self)
        arrays = [
            pa.array(self.intended, pa.float64()),
            pa.array(self.start, pa.float64()),
            pa.array(self.latency_us, pa.int64()),
            pa.array(self.latency_intended_us, pa.int64()),
            pa.array(self.status, pa.int32()),
            pa.array(self.ok, pa.bool_()),
            pa.array(self.name, pa.string()),
            pa.array(self.method, pa.string()),
            pa.array(self.nbytes, pa.int64()),
            pa.array(self.error, pa.string()),
            pa.array(self.worker, pa.string()),
            pa.array(self.batch_size, pa.int32()),
            pa.array(self.cache, pa.string()),
            pa.array(self.partition, pa.string()),
            pa.array(self.attempts, pa.int32()),
            pa.array([process] * n, pa.int32()),
        ]
        return pa.Table.from_arrays(arrays, schema=SCHEMA)

    def histograms(self) -> dict[str, Any]:
        """The two latency histograms by their ``latency.hdr`` tag."""
        return {"intended": self.hist_intended, "actual": self.hist_actual}


def empty_table() -> pa.Table:
    """A table with :data:`SCHEMA` and no rows."""
    return SCHEMA.empty_table()


def table_to_bytes(table: pa.Table) -> bytes:
    """Arrow IPC stream bytes of ``table`` (to send from a worker to the master)."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def table_from_bytes(data: bytes) -> pa.Table:
    """The table sent by :func:`table_to_bytes`."""
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def write_requests(path: str | Path, table: pa.Table) -> None:
    """Write ``requests.parquet`` whole or not at all."""
    with atomic_path(path) as tmp:
        pq.write_table(table.cast(SCHEMA), tmp)


def write_histograms(
    path: str | Path, hists: Mapping[str, Any], start_s: float | None, end_s: float | None
) -> None:
    """Write ``latency.hdr`` with the ``intended`` and ``actual`` tags."""
    start = start_s if start_s is not None else 0.0
    end = end_s if end_s is not None else start
    hdr.write_log(path, {tag: hists[tag] for tag in hdr.TAGS}, start, end)


class OpenLoopCounts:
    """What the open loop scheduled, sent, sent late and dropped in this process."""

    FIELDS = ("scheduled", "sent", "late", "dropped", "max_in_flight")

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Start counting anew (a new test)."""
        self.scheduled = 0
        self.sent = 0
        self.late = 0
        self.dropped = 0
        self.max_in_flight = 0

    def as_dict(self) -> dict[str, int]:
        """The counts by name."""
        return {name: int(getattr(self, name)) for name in self.FIELDS}

    @classmethod
    def total(cls, parts: list[dict[str, int]]) -> dict[str, int]:
        """Counts of several processes added up (``max_in_flight``: the largest)."""
        out = {name: 0 for name in cls.FIELDS}
        for part in parts:
            for name in cls.FIELDS:
                value = int(part.get(name, 0))
                out[name] = max(out[name], value) if name == "max_in_flight" else out[name] + value
        return out
