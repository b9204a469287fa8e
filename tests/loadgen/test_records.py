"""The request buffer: what one request event becomes, the parquet schema, the HDR log."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalelab import hdr
from scalelab.loadgen.records import (
    DROPPED_METHOD,
    INTENDED_KEY,
    SCHEMA,
    OpenLoopCounts,
    RequestLog,
    error_text,
    histogram_of,
    table_from_bytes,
    table_to_bytes,
    write_histograms,
    write_requests,
)

EXPECTED_COLUMNS = {
    "intended_start": pa.float64(),
    "start": pa.float64(),
    "latency_us": pa.int64(),
    "latency_intended_us": pa.int64(),
    "status": pa.int32(),
    "ok": pa.bool_(),
    "name": pa.string(),
    "method": pa.string(),
    "bytes": pa.int64(),
    "error": pa.string(),
    "worker": pa.string(),
    "batch_size": pa.int32(),
    "cache": pa.string(),
    "partition": pa.string(),
    "attempts": pa.int32(),
    "process": pa.int32(),
    "version": pa.int64(),
    "age_ms": pa.float64(),
    "stale_ms": pa.float64(),
    "request_id": pa.string(),
    "rows": pa.int64(),
}


class Answer:
    """A response as the request event carries it: a status code and headers."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.headers = headers or {}


class Boom(Exception):
    pass


def filled_log() -> RequestLog:
    log = RequestLog()
    # closed loop: no intended start in the context
    log.on_request("GET", "/ping", 2.5, 11, response=Answer(200), context={}, start_time=100.0)
    # open loop, sent 30 ms late, with every header
    headers = {
        "X-Worker": "tcp://w:1",
        "X-Batch-Size": "8",
        "X-Cache": "hit",
        "X-Partition": "p2",
        "X-Attempts": "3",
    }
    log.on_request(
        "GET",
        "/task/io",
        10.0,
        42,
        response=Answer(200, headers),
        context={INTENDED_KEY: 100.97},
        start_time=101.0,
    )
    # a failure without a response
    log.on_request(
        "POST", "/fail", 1.0, 0, response=None, context=None, exception=Boom("x"), start_time=102.0
    )
    # dropped by the open loop: a row, not a latency
    log.on_request(
        DROPPED_METHOD,
        "dropped",
        0.0,
        0,
        context={INTENDED_KEY: 103.0},
        exception=Boom("cap"),
        start_time=103.0,
    )
    return log


def test_one_row_per_request_with_the_contract_types() -> None:
    log = filled_log()
    table = log.table(process=3)
    assert {f.name: f.type for f in table.schema} == EXPECTED_COLUMNS
    assert table.schema.names == list(EXPECTED_COLUMNS)  # the documented order
    rows = table.to_pylist()
    assert len(rows) == 4
    closed, opened, failed, dropped = rows
    assert closed["intended_start"] == closed["start"] == 100.0
    assert closed["latency_us"] == closed["latency_intended_us"] == 2500
    assert closed["ok"] and closed["error"] == "" and closed["bytes"] == 11
    assert opened["latency_us"] == 10_000
    assert opened["latency_intended_us"] == pytest.approx(40_000, abs=2)
    assert (opened["worker"], opened["batch_size"], opened["cache"]) == ("tcp://w:1", 8, "hit")
    assert (opened["partition"], opened["attempts"]) == ("p2", 3)
    assert failed["status"] == 0 and not failed["ok"] and "Boom" in failed["error"]
    assert failed["method"] == "POST" and failed["worker"] == "" and failed["batch_size"] == 0
    assert dropped["name"] == "dropped" and not dropped["ok"]
    assert {r["process"] for r in rows} == {3}


def test_histograms_hold_sent_requests_from_both_starts() -> None:
    log = filled_log()
    hists = log.histograms()
    assert hists["intended"].get_total_count() == 3  # the dropped one is not a latency
    assert hists["actual"].get_total_count() == 3
    assert hists["intended"].get_max_value() >= 39_900  # the late request, from intended start
    assert hists["actual"].get_max_value() < 10_100
    assert log.first_start == 100.0
    assert log.last_end == pytest.approx(102.001)


def test_files_round_trip(tmp_path: Path) -> None:
    log = filled_log()
    write_requests(tmp_path / "requests.parquet", log.table())
    back = pq.read_table(tmp_path / "requests.parquet")
    assert back.schema.equals(SCHEMA)
    assert back.num_rows == 4
    write_histograms(tmp_path / "latency.hdr", log.histograms(), log.first_start, log.last_end)
    hists = hdr.read_log(tmp_path / "latency.hdr")
    assert {t: h.get_total_count() for t, h in hists.items()} == {"intended": 3, "actual": 3}


def test_empty_log_still_writes_valid_files(tmp_path: Path) -> None:
    log = RequestLog()
    write_requests(tmp_path / "requests.parquet", log.table())
    write_histograms(tmp_path / "latency.hdr", log.histograms(), None, None)
    assert pq.read_table(tmp_path / "requests.parquet").num_rows == 0
    assert hdr.read_log(tmp_path / "latency.hdr")["intended"].get_total_count() == 0


def test_table_travels_as_bytes_and_clear_forgets() -> None:
    log = filled_log()
    table = log.table(1)
    assert table_from_bytes(table_to_bytes(table)).equals(table)
    log.clear()
    assert len(log) == 0 and log.histograms()["intended"].get_total_count() == 0


def test_error_text_drops_object_addresses() -> None:
    class Thing:
        pass

    text = error_text(RuntimeError(Thing()))
    assert "0x" not in text.split("object at")[-1]
    assert error_text("plain") == "plain"


def test_open_loop_counts_add_up() -> None:
    parts = [
        {"scheduled": 10, "sent": 9, "late": 2, "dropped": 1, "max_in_flight": 4},
        {"scheduled": 5, "sent": 5, "late": 0, "dropped": 0, "max_in_flight": 7},
    ]
    assert OpenLoopCounts.total(parts) == {
        "scheduled": 15,
        "sent": 14,
        "late": 2,
        "dropped": 1,
        "max_in_flight": 7,
    }


def test_pure_modules_import_neither_locust_nor_dask_nor_pandas() -> None:
    code = (
        "import sys, scalelab.loadgen, scalelab.loadgen.records, scalelab.loadgen.arrivals, "
        "scalelab.loadgen.profiles\n"
        "bad = [m for m in ('locust', 'gevent', 'dask', 'distributed', 'pandas')\n"
        "       if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.integration
def test_inside_locust_no_dask_or_pandas_is_imported() -> None:
    code = (
        "import locust, sys\n"
        "import scalelab.loadgen.users, scalelab.loadgen.shapes\n"
        "from scalelab.loadgen.records import RequestLog\n"
        "log = RequestLog()\n"
        "log.on_request('GET', '/x', 1.0, 3, start_time=1.0)\n"
        "assert log.table().num_rows == 1\n"
        "from scalelab.loadgen import records\n"
        "import tempfile, pathlib\n"
        "d = pathlib.Path(tempfile.mkdtemp())\n"
        "records.write_requests(d / 'r.parquet', records.table_from_bytes("
        "records.table_to_bytes(log.table())).sort_by([('start', 'ascending')]))\n"
        "records.write_histograms(d / 'l.hdr', log.histograms(), 1.0, 2.0)\n"
        "bad = [m for m in ('dask', 'distributed', 'pandas') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "assert 'scalelab.loadgen.recorder' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_bucketed_histogram_equals_recording_every_value() -> None:
    rng = random.Random(5)
    values = [int(rng.lognormvariate(8, 2.5)) for _ in range(20_000)] + [0, 1, 2047, 2048, 10**12]
    direct = hdr.new_histogram()
    for v in values:
        direct.record_value(hdr.clamp_us(v))
    built = histogram_of(values)
    assert built.get_total_count() == direct.get_total_count() == len(values)
    assert list(built.counts) == list(direct.counts)
    assert hdr.encode(built) == hdr.encode(direct)
    for q in (0, 10, 50, 90, 99, 99.9, 100):
        assert built.get_value_at_percentile(q) == direct.get_value_at_percentile(q)
    assert built.get_max_value() == direct.get_max_value()
    assert built.get_min_value() == direct.get_min_value()


def test_keyed_headers_fill_the_nullable_columns() -> None:
    log = RequestLog()
    headers = {"X-Cache": "stale", "X-Version": "4", "X-Age-Ms": "12.5", "X-Stale-Ms": "3.25"}
    log.on_request("GET", "/task/key", 1.0, 10, response=Answer(200, headers), start_time=1.0)
    log.on_request("GET", "/ping", 1.0, 10, response=Answer(200), start_time=2.0)
    keyed, plain = log.table().to_pylist()
    assert (keyed["cache"], keyed["version"], keyed["age_ms"], keyed["stale_ms"]) == (
        "stale",
        4,
        12.5,
        3.25,
    )
    assert plain["version"] is None and plain["age_ms"] is None and plain["stale_ms"] is None


def test_the_echoed_request_id_is_kept() -> None:
    log = RequestLog()
    answer = Answer(200, {"X-Request-Id": "p0u1-7", "X-Worker": "tcp://w:1"})
    log.on_request("GET", "/task/cpu", 1.0, 10, response=answer, start_time=1.0)
    log.on_request("GET", "/ping", 1.0, 10, response=None, start_time=2.0, exception=Boom("x"))
    sent, failed = log.table().to_pylist()
    assert sent["request_id"] == "p0u1-7" and failed["request_id"] == ""


def test_partition_and_rows_scanned_headers_fill_their_columns() -> None:
    log = RequestLog()
    headers = {"X-Partition": "0,3", "X-Rows-Scanned": "1250", "X-Worker": "tcp://a:1"}
    log.on_request("GET", "/data/range", 1.0, 10, response=Answer(200, headers), start_time=1.0)
    log.on_request("GET", "/ping", 1.0, 10, response=Answer(200), start_time=2.0)
    data, plain = log.table().to_pylist()
    assert (data["partition"], data["rows"], data["worker"]) == ("0,3", 1250, "tcp://a:1")
    assert plain["partition"] == "" and plain["rows"] is None
