"""The scrape configuration scalelab writes, the [monitoring] section, and their errors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from scalelab.errors import ScaleLabError, SpecError
from scalelab.experiment.spec import load_spec
from scalelab.monitoring.prometheus import (
    BINARY_ENV,
    JOBS,
    open_data,
    prometheus_binary,
    require_binary,
    scrape_config,
    write_config,
    write_targets,
)
from scalelab.monitoring.run import check_monitoring

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"


def test_one_job_per_kind_of_target_each_from_its_file() -> None:
    config = scrape_config(interval_s=0.5)
    assert config["global"]["scrape_interval"] == "500ms"
    assert config["global"]["scrape_timeout"] == "400ms"  # within the interval
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert list(jobs) == ["scalelab-service", "dask-scheduler", "dask-worker"] == list(JOBS)
    for name, job in jobs.items():
        (sd,) = job["file_sd_configs"]
        assert sd["files"] == [f"targets/{name}.json"]  # relative: the run directory can move


def test_written_files_are_what_prometheus_reads(tmp_path: Path) -> None:
    config = write_config(tmp_path, interval_s=1.0)
    assert yaml.safe_load(config.read_text()) == scrape_config(1.0)
    for job in JOBS:
        assert json.loads((tmp_path / "targets" / f"{job}.json").read_text()) == []
    labels = {"experiment": "e", "run": "000-r0"}
    write_targets(tmp_path, "scalelab-service", {"service": "http://127.0.0.1:8000"}, labels)
    path = write_targets(
        tmp_path,
        "dask-worker",
        {"tcp://127.0.0.1:4001": "http://127.0.0.1:9001/metrics"},
        labels,
    )
    assert json.loads(path.read_text()) == [
        {
            "targets": ["127.0.0.1:9001"],
            "labels": {"experiment": "e", "run": "000-r0", "worker": "tcp://127.0.0.1:4001"},
        }
    ]
    service = json.loads((tmp_path / "targets" / "scalelab-service.json").read_text())
    assert service == [{"targets": ["127.0.0.1:8000"], "labels": labels}]
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (it comes with the prometheus package)")
    checked = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_monitoring_section_is_validated_like_the_others() -> None:
    with pytest.raises(SpecError, match=r"monitoring\.prometheus_on: unknown key"):
        load_spec(QUICKSTART, ["monitoring.prometheus_on=true"])
    with pytest.raises(SpecError, match=r"monitoring\.scrape_interval_s"):
        load_spec(QUICKSTART, ["monitoring.scrape_interval_s=0"])
    with pytest.raises(SpecError, match=r"monitoring\.sample_interval_s"):
        load_spec(QUICKSTART, ["monitoring.sample_interval_s=0.01"])
    spec = load_spec(QUICKSTART)
    assert not spec.monitoring.prometheus and not spec.monitoring.dask_report  # both cost: off
    swept = load_spec(QUICKSTART, ["sweep.monitoring.dask_report=[false, true]"])
    assert swept.sweep["monitoring.dask_report"] == [False, True]


def test_a_missing_prometheus_is_named_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(BINARY_ENV, str(tmp_path / "no-such-prometheus"))
    assert prometheus_binary() is None
    with pytest.raises(ScaleLabError, match=r"apt-get install prometheus.*SCALELAB_PROMETHEUS"):
        require_binary()
    on = load_spec(QUICKSTART, ["monitoring.prometheus=true"])
    with pytest.raises(SpecError, match=r"monitoring\.prometheus = true needs the prometheus"):
        check_monitoring([on])
    check_monitoring([load_spec(QUICKSTART)])  # nothing asked, nothing needed


def test_open_data_names_what_it_expected(tmp_path: Path) -> None:
    with pytest.raises(ScaleLabError, match=r"no Prometheus data here.*prometheus = true"):
        open_data(tmp_path)
