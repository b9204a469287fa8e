"""What a run records about where it ran: package versions, git commit and host."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("scalelab", "dask", "distributed", "locust", "pandas")


def versions() -> dict[str, str | None]:
    """Versions of Python and the packages a result depends on (without importing them)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The checked-out commit of the source tree, or ``None`` outside a git checkout."""
    where = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def host() -> dict[str, Any]:
    """Hostname, CPU count and total memory of this machine."""
    memory: int | None
    try:
        import psutil

        memory = int(psutil.virtual_memory().total)
    except Exception:  # psutil missing or unsupported platform
        memory = None
    return {
        "hostname": socket.gethostname(),
        "cpus": os.cpu_count(),
        "memory_bytes": memory,
        "platform": platform.platform(),
    }
