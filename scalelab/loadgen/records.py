"""The per-request buffer behind ``requests.parquet`` and ``latency.hdr``.

:class:`RequestLog` receives exactly the arguments of Locust's ``request``
event and keeps one entry per request in plain column lists (cheap to append,
no dict per row), from which it builds the two HdrHistograms (latency from the
intended and from the actual start). It knows nothing of Locust or gevent, so
it is tested on its own. The columns and their types are those of docs/results-format.md.
"""

from __future__ import annotations

import io
import sys
import time
from collections import Counter
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
        ("version", pa.int64()),
        ("age_ms", pa.float64()),
        ("stale_ms", pa.float64()),
        ("request_id", pa.string()),
        ("rows", pa.int64()),
    ]
)

INTENDED_KEY = "intended_start"  # request context key carrying the open loop's scheduled start

DROPPED_METHOD = "DROPPED"
"""The ``method`` of a request the open loop never sent (its cap on requests in flight
was reached). It is the one marker of such rows, in the request event, in
``requests.parquet`` and in every figure: a row with it is counted as dropped, never
as a request sent, an error or a latency."""


def is_sent(method: str) -> bool:
    """True unless ``method`` marks a request the open loop never sent."""
    return method != DROPPED_METHOD


def error_text(exception: Any) -> str:
    """Locust's text for a failure (as in its failures table), without object addresses."""
    text = exception if isinstance(exception, str) else repr(exception)
    marker = text.find("object at 0x")
    if marker >= 0:
        end = text.find(">", marker)
        if end >= 0:
            text = text[: marker + len("object at 0x") - 2] + text[end:]
    return text


_HEADER_NAMES = (
    "x-worker",
    "x-batch-size",
    "x-cache",
    "x-partition",
    "x-attempts",
    "x-version",
    "x-age-ms",
    "x-stale-ms",
    "x-request-id",
    "x-rows-scanned",
)


def _lowercase_dict_headers(headers: Any) -> list[str]:
    """The headers from geventhttpclient's ``Headers``: a dict keyed by lowercased name
    whose entries are ``(name, value)`` pairs (or lists of them). A plain dict lookup
    skips its Python-level ``get`` and is what keeps the recorder cheap."""
    out = []
    for key in _HEADER_NAMES:
        entry = dict.get(headers, key)
        if entry is None:
            out.append("")
        elif isinstance(entry, tuple):
            out.append(entry[1])
        else:
            out.append(entry[0][1] if entry else "")
    return out


def _mapping_headers(headers: Any) -> list[str]:
    """The headers from any case-insensitive mapping (requests, httpx, plain dicts)."""
    out = []
    for key in _MAPPING_NAMES:
        value = headers.get(key)
        if value is None:
            value = headers.get(key.lower())
        if isinstance(value, (list, tuple)):
            value = value[0] if value else ""
        out.append("" if value is None else str(value))
    return out


_MAPPING_NAMES = tuple("-".join(p.capitalize() for p in n.split("-")) for n in _HEADER_NAMES)

_header_readers: dict[type, Any] = {}


def _reader_for(headers: Any) -> Any:
    cls = type(headers)
    reader = _header_readers.get(cls)
    if reader is None:
        lowered = isinstance(headers, dict) and hasattr(cls, "iterlower")
        reader = _lowercase_dict_headers if lowered else _mapping_headers
        _header_readers[cls] = reader
    return reader


def _int(text: str) -> int:
    try:
        return int(text) if text else 0
    except ValueError:
        return 0


def _int_or_none(text: str) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _float_or_none(text: str) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


class RequestLog:
    """Column buffers for the requests of one process, and their latency histograms.

    The hot path (:meth:`on_request`) only appends to lists; the histograms are
    built from the latency columns when asked for (exactly the same histograms as
    recording each value on arrival, at a fraction of the cost per request).
    """

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
        self.version: list[int | None] = []
        self.age_ms: list[float | None] = []
        self.stale_ms: list[float | None] = []
        self.request_id: list[str] = []
        self.rows: list[int | None] = []
        self.dropped_rows: set[int] = set()

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
            self.latency_intended_us.append(latency_us)
        else:
            self.latency_intended_us.append(latency_us + int((start_time - intended) * 1e6))
        if not is_sent(request_type):  # never sent: a row, not a latency
            self.dropped_rows.add(len(self.start))
        self.intended.append(intended)
        self.start.append(start_time)
        self.latency_us.append(latency_us)
        self.name.append(name)
        self.method.append(request_type)
        self.nbytes.append(response_length or 0)
        if exception is None:
            self.ok.append(True)
            self.error.append("")
        else:
            self.ok.append(False)
            self.error.append(error_text(exception))
        headers = None
        if response is None:
            self.status.append(0)
        else:
            self.status.append(getattr(response, "status_code", 0) or 0)
            headers = getattr(response, "headers", None)
        if headers:
            worker, batch, cache, partition, attempts, version, age, stale, rid, rows = _reader_for(
                headers
            )(headers)
            self.worker.append(worker)
            self.batch_size.append(_int(batch) if batch else 0)
            self.cache.append(cache)
            self.partition.append(partition)
            self.attempts.append(_int(attempts) if attempts else 0)
            self.version.append(_int_or_none(version) if version else None)
            self.age_ms.append(_float_or_none(age) if age else None)
            self.stale_ms.append(_float_or_none(stale) if stale else None)
            self.request_id.append(rid)
            self.rows.append(_int_or_none(rows) if rows else None)
        else:
            self.worker.append("")
            self.batch_size.append(0)
            self.cache.append("")
            self.partition.append("")
            self.attempts.append(0)
            self.version.append(None)
            self.age_ms.append(None)
            self.stale_ms.append(None)
            self.request_id.append("")
            self.rows.append(None)

    def _sent(self, column: list[Any]) -> list[Any]:
        """``column`` without the rows of dropped requests."""
        if not self.dropped_rows:
            return column
        dropped = self.dropped_rows
        return [v for k, v in enumerate(column) if k not in dropped]

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
            pa.array(self.version, pa.int64()),
            pa.array(self.age_ms, pa.float64()),
            pa.array(self.stale_ms, pa.float64()),
            pa.array(self.request_id, pa.string()),
            pa.array(self.rows, pa.int64()),
        ]
        return pa.Table.from_arrays(arrays, schema=SCHEMA)

    def histograms(self) -> dict[str, Any]:
        """The ``intended`` and ``actual`` latency histograms (µs) of the requests sent."""
        return {
            "intended": histogram_of(self._sent(self.latency_intended_us)),
            "actual": histogram_of(self._sent(self.latency_us)),
        }

    @property
    def first_start(self) -> float | None:
        """The earliest intended start of a request sent, or ``None``."""
        intended = self._sent(self.intended)
        return min(intended) if intended else None

    @property
    def last_end(self) -> float | None:
        """When the last response arrived, or ``None``."""
        starts, lat = self._sent(self.start), self._sent(self.latency_us)
        if not starts:
            return None
        return max(s + us / 1e6 for s, us in zip(starts, lat, strict=True))


def histogram_of(values_us: list[int]) -> Any:
    """An HdrHistogram (µs, 3 digits) of ``values_us``, each clamped into its range.

    Values are counted first and mapped to the lowest value of their HDR bucket,
    so the (slow, pure Python) ``record_value`` runs once per bucket rather than
    once per request; the histogram is the same as recording every value.
    """
    hist = hdr.new_histogram()
    # A bucket with sub-bucket resolution 2**s holds values of bit length s + magnitude.
    magnitude = int(hist.sub_bucket_count - 1).bit_length() + int(hist.unit_magnitude)
    buckets: Counter[int] = Counter()
    low, high = hdr.LOWEST_US, hdr.HIGHEST_US
    for value, count in Counter(values_us).items():
        v = low if value < low else high if value > high else value
        shift = v.bit_length() - magnitude
        if shift > 0:
            v = (v >> shift) << shift
        buckets[v] += count
    for value, count in buckets.items():
        hist.record_value(value, count)
    return hist


def keep_pandas_out() -> None:
    """Stop pyarrow from importing pandas into this process (used inside Locust).

    pyarrow looks for pandas the first time it converts a Python list and imports
    it when installed: half a second of a Locust run, and a package the load
    generator promises not to load. This lets that first look find none; pyarrow
    remembers the answer for its implicit checks, while an explicit pandas
    conversion would still import it.
    """
    if "pandas" in sys.modules:
        return
    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(blocker)


class _NoPandas:
    """An import hook under which ``import pandas`` fails."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


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
