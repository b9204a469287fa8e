"""The recorder: every request Locust counts, written to the run directory at test stop.

Importing this module (which ``import scalelab.loadgen`` does inside Locust)
registers :data:`RECORDER` on Locust's events. It listens to the same
``request`` event as Locust's own statistics, so it counts exactly what they
count, and it writes ``requests.parquet``, ``latency.hdr`` and ``loadgen.json``
into ``--results-dir``.

With several Locust processes (``--processes N``, or a master with workers)
each worker records its own requests; at test stop it sends its rows (Arrow
IPC, in chunks) and its encoded histograms to the master, which merges the
histograms (exactly, never averaging), concatenates the rows and writes one set
of files. Locust's master fires ``test_stop`` before it tells workers to quit,
and stops listening to them half a second after that, so the master asks every
worker to flush (stopping its users if they still run) and waits, inside
``test_stop``, until each has reported or a deadline passes.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import gevent
from locust import events as locust_events
from locust import stats as locust_stats
from locust.runners import (
    STATE_CLEANUP,
    STATE_RUNNING,
    STATE_SPAWNING,
    STATE_STOPPING,
    MasterRunner,
    WorkerRunner,
)

from scalelab import hdr
from scalelab.fileio import write_json
from scalelab.loadgen import args as load_args
from scalelab.loadgen import records
from scalelab.loadgen.args import LoadOptions
from scalelab.loadgen.records import OpenLoopCounts, RequestLog

logger = logging.getLogger("scalelab.loadgen")

CHUNK_BYTES = 1 << 20  # rows travel to the master in pieces of at most 1 MiB
REPORT_GRACE_S = 10.0  # how long the master waits for workers beyond --stop-timeout
MSG_HELLO = "scalelab_hello"
MSG_CHUNK = "scalelab_chunk"
MSG_DONE = "scalelab_done"
MSG_FLUSH = "scalelab_flush"
DRIVERS_ATTR = "scalelab_drivers"  # set on the master's parsed options, forwarded to workers
PROCESSES_ATTR = "scalelab_processes"


class Recorder:
    """Records requests in this Locust process and writes (or sends) them at test stop."""

    def __init__(self) -> None:
        self.log = RequestLog()
        self.open_counts = OpenLoopCounts()
        self.environment: Any = None
        self.role = "local"
        self.options = LoadOptions()
        self._listening = False
        self._written_rows: int | None = None
        # worker side
        self._sent = False
        # master side
        self._hello: set[str] = set()
        self._chunks: dict[str, list[bytes]] = {}
        self._reports: dict[str, dict[str, Any]] = {}

    # -- registration ------------------------------------------------------------------------

    def install(self, events: Any) -> None:
        """Add the recorder's listeners to Locust's event hooks."""
        events.init_command_line_parser.add_listener(self._on_parser)
        events.init.add_listener(self._on_init)
        events.test_start.add_listener(self._on_test_start)
        events.test_stop.add_listener(self._on_test_stop)
        events.spawning_complete.add_listener(self._on_spawning_complete)
        events.reset_stats.add_listener(self._on_reset_stats)
        events.quitting.add_listener(self._on_quitting)

    def _on_parser(self, parser: Any, **_: Any) -> None:
        load_args.add_arguments(parser)

    def _on_init(self, environment: Any, runner: Any = None, **_: Any) -> None:
        # Locust times --run-time with a gevent timer, which counts from the loop's cached
        # clock; after a slow start (imports on a busy machine) that clock is seconds old and
        # the run ends early, by up to its whole length. Bring the clock up to date first.
        gevent.get_hub().loop.update_now()
        self.environment = environment
        self.options = LoadOptions.from_namespace(environment.parsed_options)
        if isinstance(runner, MasterRunner):
            self.role = "master"
            runner.register_message(MSG_HELLO, self._on_hello)
            runner.register_message(MSG_CHUNK, self._on_chunk)
            runner.register_message(MSG_DONE, self._on_done)
        elif isinstance(runner, WorkerRunner):
            self.role = "worker"
            runner.register_message(MSG_FLUSH, self._on_flush, concurrent=True)
        else:
            self.role = "local"
        if self.role != "worker" and not self.options.open_loop and self.options.shape != "none":
            from scalelab.loadgen.shapes import shape_by_name

            shape = shape_by_name(self.options.shape)()
            shape.runner = runner
            environment.shape_class = shape
            logger.info("scalelab: load shape %r", self.options.shape)

    # -- one test ----------------------------------------------------------------------------

    def _on_test_start(self, environment: Any, **_: Any) -> None:
        self.options = LoadOptions.from_namespace(environment.parsed_options)
        self.log.clear()
        self.open_counts.clear()
        self._written_rows = None
        self._sent = False
        self._set_listening(bool(self.options.results_dir) and self.role != "master")
        runner = environment.runner
        if self.role == "master":
            self._hello.clear()
            self._chunks.clear()
            self._reports.clear()
            setattr(environment.parsed_options, DRIVERS_ATTR, int(runner.target_user_count or 1))
            setattr(environment.parsed_options, PROCESSES_ATTR, max(1, int(runner.worker_count)))
        elif self.role == "worker":
            runner.send_message(MSG_HELLO, {"process": self.process_index()})
        elif environment.parsed_options is not None:
            setattr(environment.parsed_options, DRIVERS_ATTR, int(runner.target_user_count or 1))
            setattr(environment.parsed_options, PROCESSES_ATTR, 1)

    def _set_listening(self, on: bool) -> None:
        hook = self.environment.events.request
        if on and not self._listening:
            hook.add_listener(self.log.on_request)
        elif not on and self._listening:
            hook.remove_listener(self.log.on_request)
        self._listening = on

    def _on_spawning_complete(self, **_: Any) -> None:
        if self.environment is not None and self.environment.reset_stats:
            self.log.clear()

    def _on_reset_stats(self, **_: Any) -> None:
        self.log.clear()

    def _on_test_stop(self, environment: Any, **_: Any) -> None:
        if not self.options.results_dir:
            return
        if self.role == "worker":
            self._send_to_master()
        elif self.role == "master":
            self._collect_from_workers()
            self._write_merged()
        else:
            self._write_local()

    def _on_quitting(self, environment: Any, **_: Any) -> None:
        if self.role == "worker":
            return
        if getattr(environment.parsed_options, "csv_prefix", None):
            # Locust rewrites its CSV once a second and not at exit: give its writer one
            # more turn, so that its stats file ends with the final counts (which ours equal).
            gevent.sleep(locust_stats.CSV_STATS_INTERVAL_SEC + 0.25)
        if not self.options.results_dir:
            return
        if self.role == "local" and self._written_rows != len(self.log):
            self._write_local()
        elif self._written_rows is None:
            self._write_merged()

    # -- identity ----------------------------------------------------------------------------

    def process_index(self) -> int:
        """This process's index among Locust's load processes (0 for a single process)."""
        runner = self.environment.runner if self.environment is not None else None
        index = getattr(runner, "worker_index", 0) if runner is not None else 0
        return max(int(index), 0)

    # -- single process ----------------------------------------------------------------------

    def _write_local(self) -> None:
        if not self.options.results_dir:
            return
        self._write(
            self.options.results_dir,
            self.log.table(self.process_index()),
            self.log.histograms(),
            self.log.first_start,
            self.log.last_end,
            [self._counts_entry()],
        )
        self._written_rows = len(self.log)

    def _counts_entry(self) -> dict[str, Any]:
        return {
            "process": self.process_index(),
            "requests": len(self.log),
            "errors": self.log.ok.count(False),
            **self.open_counts.as_dict(),
        }

    def _write(
        self,
        directory: str,
        table: Any,
        hists: dict[str, Any],
        first_start: float | None,
        last_end: float | None,
        per_process: list[dict[str, Any]],
    ) -> None:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        records.write_requests(out / "requests.parquet", table)
        records.write_histograms(out / "latency.hdr", hists, first_start, last_end)
        opts = self.options
        per_process = sorted(per_process, key=lambda p: p["process"])
        write_json(
            out / "loadgen.json",
            {
                "load_mode": opts.load_mode,
                "rate": opts.rate if opts.open_loop else None,
                "arrival": opts.arrival if opts.open_loop else None,
                "max_concurrency": opts.max_concurrency if opts.open_loop else None,
                "late_ms": opts.late_ms,
                "seed": opts.seed,
                "shape": opts.shape,
                "processes": len(per_process),
                "requests": table.num_rows,
                "errors": sum(int(p["errors"]) for p in per_process),
                "open_loop": OpenLoopCounts.total(per_process),
                "first_intended_start": first_start,
                "last_end": last_end,
                "per_process": per_process,
                "written_at": time.time(),
            },
        )
        logger.info("scalelab: wrote %d requests to %s", table.num_rows, out)

    # -- worker side -------------------------------------------------------------------------

    def _send_to_master(self) -> None:
        if self._sent:
            return
        self._sent = True
        runner = self.environment.runner
        if self.options.results_dir:
            payload = records.table_to_bytes(self.log.table(self.process_index()))
        else:
            payload = b""
        parts = [payload[i : i + CHUNK_BYTES] for i in range(0, len(payload), CHUNK_BYTES)]
        for part in parts:
            runner.send_message(MSG_CHUNK, {"data": part})
        runner.send_message(
            MSG_DONE,
            {
                "parts": len(parts),
                "hists": {tag: hdr.encode(h) for tag, h in self.log.histograms().items()},
                "first_start": self.log.first_start,
                "last_end": self.log.last_end,
                "counts": self._counts_entry(),
            },
        )
        logger.info("scalelab: sent %d requests to the master", len(self.log))

    def _on_flush(self, environment: Any, msg: Any, **_: Any) -> None:
        if self._sent:
            return
        runner = environment.runner
        if runner.state in (STATE_RUNNING, STATE_SPAWNING):
            runner.stop()  # fires test_stop, which sends
        deadline = time.monotonic() + float(environment.stop_timeout or 0) + REPORT_GRACE_S
        while runner.state in (STATE_CLEANUP, STATE_STOPPING) and time.monotonic() < deadline:
            gevent.sleep(0.05)  # a stop in progress: its test_stop sends
        if not self._sent:
            self._send_to_master()

    # -- master side -------------------------------------------------------------------------

    def _on_hello(self, environment: Any, msg: Any, **_: Any) -> None:
        self._hello.add(msg.node_id)

    def _on_chunk(self, environment: Any, msg: Any, **_: Any) -> None:
        self._chunks.setdefault(msg.node_id, []).append(bytes(msg.data["data"]))

    def _on_done(self, environment: Any, msg: Any, **_: Any) -> None:
        data = dict(msg.data)
        chunks = self._chunks.pop(msg.node_id, [])
        if len(chunks) != int(data["parts"]):
            logger.error(
                "scalelab: %s sent %d of %d parts; its rows are lost",
                msg.node_id,
                len(chunks),
                data["parts"],
            )
            chunks = []
        data["rows"] = b"".join(chunks)
        self._reports[msg.node_id] = data

    def _collect_from_workers(self) -> None:
        runner = self.environment.runner
        expected = set(self._hello) | {c.id for c in runner.clients.all}
        if expected - set(self._reports):
            runner.send_message(MSG_FLUSH, {})
        deadline = time.monotonic() + float(self.environment.stop_timeout or 0) + REPORT_GRACE_S
        while time.monotonic() < deadline:
            missing = set(self._hello) - set(self._reports)
            missing |= {c.id for c in runner.clients.all} - set(self._reports)
            if not missing:
                return
            gevent.sleep(0.05)
        logger.error(
            "scalelab: no records from %d worker(s) after waiting: %s",
            len(missing),
            ", ".join(sorted(missing)),
        )

    def _write_merged(self) -> None:
        if not self.options.results_dir:
            return
        import pyarrow as pa

        reports = list(self._reports.values())
        tables = [records.table_from_bytes(r["rows"]) for r in reports if r.get("rows")]
        table = pa.concat_tables(tables) if tables else records.empty_table()
        if table.num_rows:
            table = table.sort_by([("start", "ascending")])
        hists = {tag: hdr.merge(hdr.decode(r["hists"][tag]) for r in reports) for tag in hdr.TAGS}
        starts = [r["first_start"] for r in reports if r.get("first_start") is not None]
        ends = [r["last_end"] for r in reports if r.get("last_end") is not None]
        self._write(
            self.options.results_dir,
            table,
            hists,
            min(starts) if starts else None,
            max(ends) if ends else None,
            [r["counts"] for r in reports],
        )
        self._written_rows = table.num_rows


RECORDER = Recorder()
_installed = False


def install(events: Any = None) -> Recorder:
    """Register :data:`RECORDER` on Locust's events once per process and return it."""
    global _installed
    if not _installed:
        records.keep_pandas_out()
        RECORDER.install(events if events is not None else locust_events)
        _installed = True
    return RECORDER


install()
