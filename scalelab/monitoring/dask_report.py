"""Dask's own performance report of a run's measured window, saved as ``dask-report.html``.

``distributed.performance_report`` is a context manager around the calling
client's work; the report itself is built by the scheduler
(``Scheduler.performance_report(start, last_count, code)``) from scheduler-wide
state: the task stream of every client, the workers' statistical profiles, the
bandwidth between them, the system monitor and the scheduler's logs. The
service's client is in another process, so the runner opens a client of its
own to the same scheduler, makes the same three calls the context manager
makes, and chooses the window itself: from the start of the measured time
(known only once Locust has written its records) to the end of the load.

That works the same for the embedded LocalCluster and for an external
scheduler, and needs nothing from the service. The task stream is recorded
from :meth:`DaskReport.start` on (the scheduler keeps the last 100,000 tasks).
The report is written with Bokeh's JavaScript inline (about 2 MB), so it opens
offline like the rest of the run directory.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalelab.fileio import write_text

if TYPE_CHECKING:
    from distributed import Client

CONNECT_TIMEOUT_S = 15.0
REPORT_TIMEOUT_S = 60.0


def _monitor_count(dask_scheduler: Any) -> int:
    """Samples the scheduler's system monitor has taken (runs on the scheduler)."""
    return int(dask_scheduler.monitor.count)


class DaskReport:
    """A client of the run's scheduler that records the task stream and writes the report."""

    def __init__(self, scheduler_address: str) -> None:
        self.scheduler_address = scheduler_address
        self.client: Client | None = None
        self.started: float | None = None
        self._last_count = 0

    def start(self) -> DaskReport:
        """Connect, start the scheduler's task stream recording, note the system monitor."""
        from distributed import Client

        self.client = Client(
            self.scheduler_address,
            timeout=f"{CONNECT_TIMEOUT_S}s",
            set_as_default=False,
            name="scalelab-dask-report",
        )
        self._last_count = int(self.client.run_on_scheduler(_monitor_count))
        self.client.get_task_stream(start=0, stop=0)  # registers the scheduler's TaskStreamPlugin
        self.started = time.time()
        return self

    def write(self, path: str | Path, start: float | None = None, code: str = "") -> Path:
        """Write the report of ``start`` (Unix time; default :meth:`start`'s) up to now."""
        if self.client is None or self.started is None:
            raise RuntimeError("DaskReport.write before start()")
        client = self.client
        scheduler: Any = client.scheduler
        since = max(start, self.started) if start is not None else self.started
        html: str = client.sync(
            scheduler.performance_report,
            start=since,
            last_count=self._last_count,
            code=code,
            mode="inline",
            callback_timeout=REPORT_TIMEOUT_S,
        )
        target = Path(path)
        write_text(target, html)
        return target

    def close(self) -> None:
        """Close the client (bounded); the scheduler and its workers are left alone."""
        client, self.client = self.client, None
        if client is not None:
            # a client that cannot close cleanly must not stop the run's end
            with contextlib.suppress(Exception):
                client.close(timeout=5)
