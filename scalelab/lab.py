"""``scalelab lab``: JupyterLab on the lab notebooks, with its URL printed, until Ctrl-C.

The server runs as a :class:`~scalelab.procs.Child` (its own process group, so
its kernels' parent goes with it) on loopback with a token generated here, so
the printed URL is known before the server is up. Ctrl-C or SIGTERM stops it
cleanly: SIGTERM lets Jupyter shut its kernels down, and the group is killed
after a deadline.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
import urllib.error
import urllib.request
import webbrowser
from pathlib import Path

from scalelab.errors import RunError, ScaleLabError
from scalelab.procs import Child, terminate_on_sigterm

START_TIMEOUT_S = 60.0


def lab_command(notebooks: Path, port: int, token: str) -> list[str]:
    """The command line that starts JupyterLab on ``notebooks``."""
    return [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={notebooks}",
        # Containers often run as root, which Jupyter refuses unless told.
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]


def _responds(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_lab(notebooks: str | Path, port: int, log_path: Path) -> tuple[Child, str]:
    """Start JupyterLab and wait until it serves; return the child and the URL with its token."""
    folder = Path(notebooks)
    if not folder.is_dir():
        raise ScaleLabError(
            f"notebooks folder {folder} not found; run from the checkout or pass --notebooks DIR"
        )
    token = secrets.token_hex(24)
    url = f"http://127.0.0.1:{port}/lab?token={token}"
    child = Child(lab_command(folder.resolve(), port, token), "jupyterlab", log_path=log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while not _responds(url):
            if not child.alive():
                raise RunError(
                    f"JupyterLab exited at start (is port {port} in use? pass --port):\n"
                    + child.log_tail()
                )
            if time.monotonic() > deadline:
                raise RunError(
                    f"JupyterLab did not answer in {START_TIMEOUT_S:.0f} s:\n{child.log_tail()}"
                )
            time.sleep(0.2)
    except BaseException:
        child.stop()
        raise
    return child, url


def lab_from_args(args: argparse.Namespace) -> int:
    """Run ``scalelab lab``: serve ``args.notebooks`` on ``args.port`` until interrupted."""
    log_path = Path(tempfile.mkdtemp(prefix="scalelab-lab-")) / "jupyterlab.log"
    with terminate_on_sigterm():
        child, url = start_lab(args.notebooks, args.port, log_path)
        try:
            print(f"JupyterLab on {Path(args.notebooks).resolve()}:\n  {url}", flush=True)
            print(f"(server log: {log_path}; Ctrl-C stops it)", flush=True)
            if not args.no_browser:
                webbrowser.open(url)
            while child.alive():
                time.sleep(0.5)
            print(f"JupyterLab stopped by itself:\n{child.log_tail()}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("stopping JupyterLab...", flush=True)
            return 0
        finally:
            child.stop(deadline_s=10.0)
