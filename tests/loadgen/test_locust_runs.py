"""Real Locust runs against a real HTTP server: counts, headers, open loop, several processes."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from scalelab import hdr
from scalelab.ports import free_port
from scalelab.procs import Child, wait_until

HERE = Path(__file__).parent
REPO = HERE.parent.parent
BASELINE = REPO / "scenarios" / "baseline.py"
MIX = HERE / "locustfile_mix.py"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The test HTTP server on a free loopback port."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    child = Child([sys.executable, str(HERE / "app_server.py"), str(port)], "test-server", log)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/ping", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_until(up, 20), child.log_tail()
        yield url
    finally:
        child.stop(5)


def run_locust(
    out: Path, locustfile: Path, host: str, users: int, seconds: int, extra: list[str]
) -> dict[str, Any]:
    """Run Locust as the orchestrator does; return its count and our files."""
    args = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", host,
        "-u", str(users), "-r", str(max(users, 1) * 10), "-t", f"{seconds}s",
        "--stop-timeout", "5", "--exit-code-on-error", "0",
        "--csv", str(out / "locust" / "stats"), "--html", str(out / "locust" / "report.html"),
        "--logfile", str(out / "locust" / "locust.log"), "--results-dir", str(out), *extra,
    ]  # fmt: skip
    child = Child(args, "locust", out / "locust" / "stdout.log", cwd=REPO)
    try:
        code = child.wait(seconds + 40)
    finally:
        child.stop(5)
    assert code == 0, child.log_tail(40)
    with open(out / "locust" / "stats_stats.csv") as f:
        aggregated = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return {
        "locust_requests": int(aggregated["Request Count"]),
        "locust_failures": int(aggregated["Failure Count"]),
        "table": pq.read_table(out / "requests.parquet"),
        "hists": hdr.read_log(out / "latency.hdr"),
        "loadgen": json.loads((out / "loadgen.json").read_text()),
        "log": (out / "locust" / "locust.log").read_text(),
    }


def test_closed_loop_records_exactly_what_locust_counts(server: str, tmp_path: Path) -> None:
    r = run_locust(tmp_path, MIX, server, 3, 3, ["--load-mode", "closed"])
    t = r["table"].to_pydict()
    n = len(t["start"])
    assert n > 100
    assert n == r["locust_requests"]
    assert t["ok"].count(False) == r["locust_failures"] > 0
    assert r["hists"]["intended"].get_total_count() == n
    assert r["hists"]["actual"].get_total_count() == n
    assert r["loadgen"]["requests"] == n and r["loadgen"]["load_mode"] == "closed"
    assert t["intended_start"] == t["start"]
    assert t["latency_intended_us"] == t["latency_us"]
    rows = r["table"].to_pylist()
    fails = [row for row in rows if row["name"] == "/fail"]
    assert fails and all(row["status"] == 500 and not row["ok"] and row["error"] for row in fails)
    with_headers = [row for row in rows if row["name"] == "/headers"]
    assert with_headers
    for row in with_headers:
        assert row["ok"] and row["status"] == 200 and row["bytes"] == 10
        assert (row["worker"], row["batch_size"], row["cache"]) == (
            "tcp://127.0.0.1:4242",
            7,
            "hit",
        )
        assert (row["partition"], row["attempts"]) == ("p3", 2)
    assert {row["worker"] for row in rows if row["name"] == "/ping"} == {""}
    assert set(t["process"]) == {0}


def test_two_processes_merge_exactly(server: str, tmp_path: Path) -> None:
    r = run_locust(tmp_path, MIX, server, 4, 3, ["--load-mode", "closed", "--processes", "2"])
    t = r["table"].to_pydict()
    n = len(t["start"])
    assert n > 100
    assert n == r["locust_requests"]
    assert t["ok"].count(False) == r["locust_failures"] > 0
    assert set(t["process"]) == {0, 1}
    assert r["hists"]["intended"].get_total_count() == n
    assert r["loadgen"]["processes"] == 2
    per = {p["process"]: p["requests"] for p in r["loadgen"]["per_process"]}
    assert per[0] + per[1] == n and per[0] > 0 and per[1] > 0
    assert t["start"] == sorted(t["start"])


def achieved_rate(starts: list[float]) -> float:
    """Requests per second over the middle of the run (the edges are partial)."""
    starts = sorted(starts)
    lo, hi = starts[0] + 0.5, starts[-1] - 0.5
    inside = [s for s in starts if lo <= s < hi]
    return len(inside) / (hi - lo)


@pytest.mark.serial  # a rate held to 1 %: run alone
def test_open_loop_holds_its_rate_on_fast_and_slow_endpoints(server: str, tmp_path: Path) -> None:
    rate = 120.0
    fast = run_locust(
        tmp_path / "fast", BASELINE, server, 1, 4,
        ["--load-mode", "open", "--rate", str(rate), "--arrival", "constant",
         "--max-concurrency", "200", "--endpoint", "ping"],
    )  # fmt: skip
    slow = run_locust(
        tmp_path / "slow", BASELINE, server, 1, 4,
        ["--load-mode", "open", "--rate", str(rate), "--arrival", "constant",
         "--max-concurrency", "200", "--endpoint", "io", "--io-ms", "400"],
    )  # fmt: skip
    for r in (fast, slow):
        t = r["table"].to_pydict()
        n = len(t["start"])
        assert n == r["locust_requests"] and n > 150
        assert r["loadgen"]["open_loop"]["dropped"] == 0
        assert r["loadgen"]["open_loop"]["sent"] == n
        assert achieved_rate(t["start"]) == pytest.approx(rate, rel=0.05)
        assert achieved_rate(t["intended_start"]) == pytest.approx(rate, rel=0.01)
        assert all(i <= s for i, s in zip(t["intended_start"], t["start"], strict=True))
        assert all(a <= b for a, b in zip(t["latency_us"], t["latency_intended_us"], strict=True))
    slow_t = slow["table"].to_pydict()
    # a closed loop with one user would manage 2.5 requests/s here; the open loop keeps
    # about rate x latency = 48 requests in flight
    assert slow["loadgen"]["open_loop"]["max_in_flight"] >= 30
    assert min(slow_t["latency_us"]) >= 400_000
    assert slow["hists"]["actual"].get_value_at_percentile(50) >= 400_000


@pytest.mark.serial  # a rate held to 1 %: run alone
def test_open_loop_drops_at_the_cap_and_reports_it(server: str, tmp_path: Path) -> None:
    r = run_locust(
        tmp_path, BASELINE, server, 1, 3,
        ["--load-mode", "open", "--rate", "50", "--arrival", "poisson", "--seed", "3",
         "--max-concurrency", "5", "--endpoint", "io", "--io-ms", "500"],
    )  # fmt: skip
    t = r["table"].to_pydict()
    n = len(t["start"])
    dropped = r["loadgen"]["open_loop"]["dropped"]
    assert dropped > 0
    assert n == r["locust_requests"] == r["loadgen"]["open_loop"]["scheduled"]
    assert t["name"].count("dropped") == dropped
    assert t["ok"].count(False) == r["locust_failures"] >= dropped
    assert r["hists"]["intended"].get_total_count() == n - dropped
    assert r["loadgen"]["open_loop"]["max_in_flight"] <= 5


def test_step_shape_runs_by_name_and_ends_at_run_time(server: str, tmp_path: Path) -> None:
    began = time.monotonic()
    r = run_locust(
        tmp_path, MIX, server, 4, 3,
        ["--load-mode", "closed", "--shape", "step", "--step-users", "2", "--step-time", "1",
         "--wait-mode", "constant", "--wait-value", "0.05"],
    )  # fmt: skip
    assert time.monotonic() - began < 25
    assert "Shape test completed" in r["log"]
    assert r["table"].num_rows == r["locust_requests"] > 0


def test_a_bad_argument_fails_with_its_name(server: str, tmp_path: Path) -> None:
    args = [
        sys.executable, "-m", "locust", "-f", str(BASELINE), "--headless", "--host", server,
        "-u", "1", "-t", "2s", "--load-mode", "open", "--rate", "-3",
    ]  # fmt: skip
    child = Child(args, "locust-bad", tmp_path / "out.log", cwd=REPO)
    try:
        code = child.wait(30)
    finally:
        child.stop(5)
    assert code != 0
    assert "--rate" in child.log_tail(60)
