"""``scalelab lab``: JupyterLab starts, serves its page with the printed token, and stops clean."""

from __future__ import annotations

import os
import re
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from scalelab.cli import main
from scalelab.ports import free_port
from scalelab.procs import Child, wait_until


@pytest.mark.integration
def test_lab_serves_and_stops_leaving_nothing(tmp_path: Path, no_child_leaks: None) -> None:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    port = free_port()
    log = tmp_path / "lab.log"
    lab = Child(
        [
            sys.executable,
            "-m",
            "scalelab",
            "lab",
            "--port",
            str(port),
            "--no-browser",
            "--notebooks",
            str(notebooks),
        ],
        "scalelab-lab",
        log_path=log,
    )
    try:
        pattern = re.compile(rf"http://127\.0\.0\.1:{port}/lab\?token=\w+")
        assert wait_until(lambda: pattern.search(log.read_text()) or not lab.alive(), 90)
        assert lab.alive(), lab.log_tail()
        url = pattern.search(log.read_text()).group(0)  # type: ignore[union-attr]
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
        # A wrong token is refused: the token printed is the one that matters.
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token=wrong", timeout=10)
        server = psutil.Process(lab.pid).children(recursive=True)
        assert server, "JupyterLab runs as a child of scalelab lab"
        os.kill(lab.pid, signal.SIGINT)  # Ctrl-C
        assert lab.wait(30) == 0
        assert wait_until(
            lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in server),
            15,
        )
        assert "stopping JupyterLab" in log.read_text()
    finally:
        lab.stop(5)


def test_lab_on_a_missing_folder_names_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["lab", "--no-browser", "--notebooks", str(tmp_path / "missing")])
    assert code == 2
    assert "--notebooks" in capsys.readouterr().err
