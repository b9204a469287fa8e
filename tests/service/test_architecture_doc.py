"""docs/architecture.md's own layer, run exactly as printed: in a service configured by the
doc's TOML, and in a run put together by the doc's ``--set`` line."""

from __future__ import annotations

import re
import shlex
import time
import tomllib
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scalelab import analysis, run_experiment
from scalelab.config import ServiceConfig
from scalelab.service.process import start_service

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"


def blocks(language: str) -> list[str]:
    """The doc's fenced blocks of ``language`` in the section 'A layer of your own'."""
    text = DOC.read_text()
    section = text.split("## A layer of your own", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The doc's module saved as delay_layer.py where the service (a child process) finds it."""
    (python,) = blocks("python")
    (tmp_path / "delay_layer.py").write_text(python)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_the_documented_layer_runs_in_the_service_as_configured(on_path: Path) -> None:
    (toml,) = blocks("toml")
    config = ServiceConfig.model_validate(
        {**tomllib.loads(toml), "cluster": {"workers": 1, "threads_per_worker": 1}}
    )
    assert config.stack == ["admission", "faults", "delay", "cache"]
    with start_service(config) as service, httpx.Client(base_url=service.url, timeout=30) as c:
        started = time.perf_counter()
        cpu = [c.get("/task/cpu", params={"units": 1}) for _ in range(3)]
        cpu_s = (time.perf_counter() - started) / 3
        ping = c.get("/ping")
        assert all(r.status_code == 200 for r in [*cpu, ping])
        assert {r.headers["x-delayed-ms"] for r in cpu} == {"20"}
        assert cpu_s >= 0.020
        assert "x-delayed-ms" not in ping.headers
        assert ping.headers["x-layers"] == "admission,faults,delay,cache,executor"
        text = c.get("/metrics").text
        outcomes = samples(text, "scalelab_layer_outcomes_total")
        assert outcomes[(("layer", "delay"), ("outcome", "delayed"))] == 3
        assert samples(text, "scalelab_layer_requests_total")[(("layer", "delay"),)] == 4
        inside = samples(text, "scalelab_layer_seconds_total")[(("layer", "delay"),)]
        assert 0.055 <= inside < 0.5  # three 20 ms sleeps, not the work behind them
        # A misspelt parameter is refused, naming it; nothing changes.
        bad = c.put("/admin/config", json={"layers": {"delay": {"delay_msec": 1}}})
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "layers.delay.delay_msec"
        # Changed at run time like any field.
        ok = c.put("/admin/config", json={"layers": {"delay": {"delay_ms": 1}}})
        assert ok.status_code == 200
        assert c.get("/task/cpu", params={"units": 1}).headers["x-delayed-ms"] == "1"


def test_the_documented_set_line_puts_the_layer_in_a_run(on_path: Path, tmp_path: Path) -> None:
    (bash,) = blocks("bash")
    words = shlex.split(bash.replace("\\\n", " "))
    overrides = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    assert words[:3] == ["scalelab", "run", "scenarios/quickstart.toml"] and overrides
    overrides += [
        "duration_s=3",
        "load.users=4",
        'sweep={"service.executor.kind" = ["direct"]}',
        "service.cluster.workers=1",
        "cooldown_s=0",
    ]
    result = run_experiment(
        ROOT / "scenarios" / "quickstart.toml",
        overrides=overrides,
        out=tmp_path / "results",
        progress=False,
        report=False,
    )
    (run,) = result.runs
    assert run.status == "ok", run.error
    table = analysis.layer_table(analysis.load_run(run.path)).set_index("layer")
    name = "delay_layer:FixedDelay"
    assert {"admission", "faults", name, "cache", "executor"} <= set(table.index)
    assert table.loc[name, "outcome_delayed"] > 0  # every request was a /task/cpu one
    # Each request counted in on arrival and as delayed after its sleep: a scrape may fall
    # between the two for the requests in flight (at most the 4 users).
    assert 0 <= table.loc[name, "requests"] - table.loc[name, "outcome_delayed"] <= 4
    assert table.loc[name, "us_inside_per_request"] >= 4_000  # its 5 ms default delay
