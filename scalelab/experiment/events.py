"""The event log of a run: phases (service_start, load_start, ...), faults and notes, with times."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from scalelab.fileio import atomic_path


class EventLog:
    """Events appended as they happen; written as ``events.parquet`` whatever the run's end."""

    def __init__(self) -> None:
        self._rows: list[tuple[float, str, str, str, float | None]] = []
        self._lock = threading.Lock()

    def add(
        self,
        kind: str,
        name: str,
        *,
        at: float | None = None,
        until: float | None = None,
        **detail: Any,
    ) -> float:
        """Record an event (now, or at the Unix time ``at``), lasting ``until``; return its time."""
        t = time.time() if at is None else at
        text = json.dumps(detail, default=str, sort_keys=True)
        with self._lock:
            self._rows.append((t, kind, name, text, until))
        return t

    def set_until(self, t: float, until: float) -> None:
        """The fault that started at ``t`` ended at ``until``."""
        with self._lock:
            for i, row in enumerate(self._rows):
                if row[0] == t and row[1] == "fault":
                    self._rows[i] = (*row[:4], until)

    def phase(self, name: str, **detail: Any) -> float:
        """Record a phase such as ``service_ready`` or ``load_stop``."""
        return self.add("phase", name, **detail)

    def fault(
        self, name: str, *, at: float | None = None, until: float | None = None, **detail: Any
    ) -> float:
        """Record a fault action: ``stall``, ``set``, ``revert``, a fault kind, or ``end``."""
        return self.add("fault", name, at=at, until=until, **detail)

    def time_of(self, name: str) -> float | None:
        """The time of the first event called ``name``, if any."""
        with self._lock:
            return next((r[0] for r in self._rows if r[2] == name), None)

    def names(self) -> list[str]:
        """Event names in order."""
        with self._lock:
            return [r[2] for r in self._rows]

    def write(self, path: str | Path) -> Path:
        """Write ``events.parquet`` (t, kind, name, detail, until) atomically, in time order."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        with self._lock:
            rows = sorted(self._rows, key=lambda r: r[0])
        table = pa.table(
            {
                "t": pa.array([r[0] for r in rows], type=pa.float64()),
                "kind": pa.array([r[1] for r in rows], type=pa.string()),
                "name": pa.array([r[2] for r in rows], type=pa.string()),
                "detail": pa.array([r[3] for r in rows], type=pa.string()),
                "until": pa.array([r[4] for r in rows], type=pa.float64()),
            }
        )
        target = Path(path)
        with atomic_path(target) as tmp:
            pq.write_table(table, tmp)
        return target
