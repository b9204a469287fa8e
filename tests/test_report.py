"""The HTML report is self-contained, covers runs and experiments, and bad paths are named."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from rundirs import make_requests, write_experiment, write_run

from scalelab.analysis import load_experiment, load_run
from scalelab.cli import main
from scalelab.errors import ScaleLabError
from scalelab.report import _usl_html, report_from_args, summary_table_text, write_report


def _assert_self_contained(text: str) -> None:
    assert text.startswith("<!DOCTYPE html>")
    assert "data:image/png;base64," in text
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text)
    assert "<script" not in text and "<link" not in text


def _no_temp_files(directory: Path) -> None:
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def experiment_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    runs = [
        (
            {"service.executor.kind": kind},
            make_requests(rate=200, duration_s=3, mean_ms=m, seed=s, error_rate=0.02),
        )
        for kind, m in (("direct", 5.0), ("batched", 2.0))
        for s in (1, 2)
    ]
    write_experiment(root, runs, name="quick")
    return root


def test_run_report_is_self_contained(tmp_path: Path) -> None:
    req = make_requests(rate=200, duration_s=3, seed=5, error_rate=0.05)
    truth = write_run(tmp_path / "000-r0", req, params={"load.users": 8})
    out = write_report(truth.path)
    assert out == truth.path / "report.html"
    text = out.read_text()
    _assert_self_contained(text)
    assert text.count("data:image/png;base64,") == 2  # percentiles, and the timeline
    run = load_run(truth.path)
    for needle in ("000-r0", "concurrent users", f"{run.summary['p99_ms']:.2f}", "Little", "500"):
        assert needle in text
    assert "<h2>Errors</h2>" in text
    for raw in ("throughput_rps", "p99_ms", "p999_ms", "mean_ms", "error_rate"):
        assert raw not in text, f"a raw column name in the report: {raw}"
    _no_temp_files(truth.path)


def test_report_links_what_the_run_directory_holds(tmp_path: Path) -> None:
    truth = write_run(tmp_path / "exp" / "000-r0", make_requests(rate=50, duration_s=2, seed=2))
    (truth.path / "locust").mkdir()
    (truth.path / "locust" / "report.html").write_text("<html></html>")
    (truth.path / "dask-report.html").write_text("<html></html>")
    text = write_report(truth.path).read_text()
    assert 'href="locust/report.html"' in text and 'href="dask-report.html"' in text
    assert "service.log" not in text  # not there, so not linked
    elsewhere = write_report(truth.path, tmp_path / "out" / "r.html").read_text()
    assert 'href="../exp/000-r0/dask-report.html"' in elsewhere  # relative to the report


def test_experiment_report_compares_runs(experiment_root: Path, tmp_path: Path) -> None:
    out = write_report(experiment_root / "quick")  # results/<experiment>: takes latest
    exp = load_experiment(experiment_root / "quick")
    assert out == exp.path / "report.html"
    text = out.read_text()
    _assert_self_contained(text)
    for run in exp.runs:
        assert run.run_id in text
    assert "Comparison" in text and "merges the HDR histograms" in text
    assert text.count("data:image/png;base64,") >= 4
    other = write_report(exp.path / ".." / "latest", tmp_path / "elsewhere" / "r.html")
    assert other == tmp_path / "elsewhere" / "r.html" and other.is_file()
    _no_temp_files(exp.path)


def test_failed_run_without_measurements_still_reports(tmp_path: Path) -> None:
    truth = write_run(
        tmp_path / "run", make_requests(rate=10, duration_s=1), status="failed", files=()
    )
    text = write_report(truth.path).read_text()
    assert "failed" in text and "the service stopped answering" in text
    assert "data:image/png" not in text  # nothing measured, nothing drawn


def test_summary_table_text_is_fixed_width(experiment_root: Path) -> None:
    exp = load_experiment(experiment_root / "quick")
    text = summary_table_text(exp)
    lines = text.splitlines()
    assert len(lines) == 1 + len(exp.runs)
    assert len({len(line) for line in lines}) == 1
    header = lines[0].split()
    for col in ("run", "status", "kind", "requests", "p50", "p99", "p99.9", "max", "errors"):
        assert col in header
    assert f"{exp.runs[0].summary['p99_ms']:.2f}" in lines[1]
    assert summary_table_text(exp.runs[0]).count("\n") == 1


def test_report_from_args_prints_table_and_path(
    experiment_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = load_experiment(experiment_root / "quick")
    code = report_from_args(argparse.Namespace(path=str(exp.path), output=None))
    out = capsys.readouterr().out
    assert code == 0
    assert exp.runs[0].run_id in out
    assert f"report: {exp.path / 'report.html'}" in out


def test_bad_paths_are_named_with_what_was_expected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScaleLabError, match=r"empty: neither a run nor an experiment.*run\.json"):
        report_from_args(argparse.Namespace(path=str(tmp_path / "empty"), output=None))
    with pytest.raises(ScaleLabError, match="missing: no such file or directory"):
        write_report(tmp_path / "missing")
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "neither a run nor an experiment" in capsys.readouterr().err


def _set_spec(run_dir: Path, **sections: dict[str, object]) -> None:
    """Lay ``sections`` over a synthetic run's spec.toml (as the runner would have resolved it)."""
    import tomllib

    import tomli_w

    spec = tomllib.loads((run_dir / "spec.toml").read_text())
    for name, values in sections.items():
        spec.setdefault(name, {}).update(values)
    (run_dir / "spec.toml").write_text(tomli_w.dumps(spec))


def test_a_concurrency_sweep_gets_a_usl_fit(tmp_path: Path) -> None:
    # throughput that rises then flattens, as a closed loop of more users would give
    runs = [
        ({"load.users": u}, make_requests(rate=r, duration_s=2, seed=u, poisson=False))
        for u, r in ((1, 100), (2, 190), (4, 330), (8, 420))
    ]
    exp, truths = write_experiment(tmp_path, runs, name="usl")
    for truth in truths:
        _set_spec(truth.path, load={"mode": "closed"})
    text = _usl_html(load_experiment(exp))
    assert "Universal Scalability Law" in text and "σ = " in text and "κ = " in text
    assert "data:image/png;base64," in text  # the fit drawn over the runs
    for truth in truths:  # an open loop is not a concurrency sweep: no fit
        _set_spec(truth.path, load={"mode": "open"})
    assert _usl_html(load_experiment(exp)) == ""


def test_an_mmc_run_gets_its_prediction(tmp_path: Path) -> None:
    req = make_requests(rate=150, duration_s=4, mean_ms=12.0, seed=7)
    truth = write_run(tmp_path / "000-r0", req)
    _set_spec(
        truth.path,
        load={"mode": "open", "arrival": "poisson", "rate": 150.0},
        scenario={"endpoint": "io", "io_dist": "exponential", "io_ms": 10.0},
        service={"cluster": {"workers": 2, "threads_per_worker": 1}},
    )
    text = write_report(truth.path).read_text()
    assert "M/M/2 (Poisson arrivals, exponential service of mean 10 ms" in text
    assert "utilisation 75%" in text  # λ = 150/s, μ = 100/s per server, c = 2
    _set_spec(truth.path, scenario={"io_dist": "fixed"})  # not exponential: no M/M/c
    assert "M/M/" not in write_report(truth.path).read_text()


def test_a_wide_runs_table_scrolls_inside_the_page(tmp_path: Path) -> None:
    from browser import chromium_binary, inspect_page

    params = {
        "service.executor.kind": "a_rather_long_executor_name_module:AndItsClassName",
        "service.cache.policy": "another_long_policy_module:WithAClass",
        "scenario.endpoint": "an-endpoint-with-a-long-name",
        "service.admission.max_in_flight": 100_000,
        "load.users": 64,
    }
    runs = [
        ({**params, "load.users": u}, make_requests(rate=50, duration_s=2, seed=u))
        for u in (32, 64)
    ]
    exp, truths = write_experiment(tmp_path, runs, name="wide")
    for truth in truths:  # the tables are the point here: no timelines to draw
        (truth.path / "requests.parquet").unlink()
    out = write_report(exp)
    assert out.read_text().count('<div class="scroll"><table>') >= 2
    if chromium_binary() is None:
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
    page = inspect_page(out.resolve().as_uri(), tmp_path / "wide.png", width=1024)
    assert page.problems == []  # the page is never wider than the window
