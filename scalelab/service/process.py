"""Start the task service as a child process and wait until it is healthy.

Used by the experiment runner and the tests. It imports neither Dask nor the app:
the service runs as ``python -m scalelab serve`` in its own process group
(:class:`scalelab.procs.Child`), so stopping it ends its Dask workers too.

Without a port, the child binds port 0 (the OS picks a free one, with no window
in which another process could take it) and the parent learns it from the line
the service prints once it listens (``scalelab serve: listening on URL ...``).
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import tomli_w

from scalelab.config import ServiceConfig
from scalelab.errors import RunError
from scalelab.procs import Child
from scalelab.service.server import TOKEN_ENV

LISTENING = re.compile(r"^scalelab serve: listening on (http://\S+) ", re.M)
"""The line ``scalelab serve`` prints once its socket is bound and the app has started."""


def _drop_none(value: Any) -> Any:
    """TOML has no null: remove ``None`` values, table by table."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value if v is not None]
    return value


def write_config_toml(config: ServiceConfig, path: str | Path) -> Path:
    """Write ``config`` as TOML that ``scalelab serve --config`` reads back unchanged."""
    p = Path(path)
    p.write_text(tomli_w.dumps(_drop_none(config.model_dump(mode="json"))))
    return p


class ServiceProcess:
    """A running ``scalelab serve`` child: its URL, health, and a bounded stop."""

    def __init__(
        self,
        child: Child,
        host: str,
        port: int,
        config: ServiceConfig,
        workdir: Path,
        admin_token: str | None = None,
    ) -> None:
        self.child = child
        self.host = host
        self.port = port
        self.config = config
        self.admin_token = admin_token
        self._workdir = workdir
        self.url = ""
        self._listening_on(port)

    def _listening_on(self, port: int) -> None:
        """Record the port the service listens on (0 until it says which)."""
        self.port = port
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{shown}:{port}"

    @property
    def log_path(self) -> Path | None:
        """Where the service's output goes."""
        return self.child.log_path

    def admin_headers(self) -> dict[str, str]:
        """Headers the admin API needs (empty without a token)."""
        return {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}

    def health(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """``GET /health`` as a dict (it carries ``status`` whether 200 or 503)."""
        response = httpx.get(f"{self.url}/health", timeout=timeout_s)
        body: dict[str, Any] = response.json()
        body["http_status"] = response.status_code
        return body

    def alive(self) -> bool:
        """True while the service process runs."""
        return self.child.alive()

    def stop(self, deadline_s: float = 10.0) -> int | None:
        """SIGTERM the service's process group; SIGKILL what is left after ``deadline_s``."""
        try:
            return self.child.stop(deadline_s)
        finally:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_service(
    config: ServiceConfig,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    log_path: str | Path | None = None,
    ready_timeout_s: float = 90.0,
    admin_token: str | None = None,
) -> ServiceProcess:
    """Start ``scalelab serve`` with ``config`` and return once ``GET /health`` answers 200.

    Without ``port`` the service binds a port of the OS's choosing and reports it
    (``service.port``, ``service.url``). Raises :class:`~scalelab.errors.RunError`
    with the end of the service's log when it exits early or is not healthy
    within ``ready_timeout_s``; the process is stopped in both cases.
    """
    workdir = Path(tempfile.mkdtemp(prefix="scalelab-service-"))
    config_path = write_config_toml(config, workdir / "service.toml")
    log = Path(log_path) if log_path else workdir / "service.log"
    log_start = log.stat().st_size if log.is_file() else 0  # an appended log: read what is new
    args = [sys.executable, "-m", "scalelab", "serve", "--config", str(config_path)]
    args += ["--host", host, "--port", str(port or 0)]
    env = {"PYTHONUNBUFFERED": "1"}
    if admin_token:
        env[TOKEN_ENV] = admin_token  # kept off the command line, so `ps` does not show it
    child = Child(args, name="service", log_path=log, env=env)
    service = ServiceProcess(child, host, port or 0, config, workdir, admin_token)
    deadline = time.monotonic() + ready_timeout_s
    try:
        _wait_listening(service, log, log_start, deadline, ready_timeout_s)
        _wait_healthy(service, deadline, ready_timeout_s)
    except BaseException:
        service.stop(5.0)
        raise
    return service


def _exited(service: ServiceProcess, code: int) -> RunError:
    return RunError(
        f"the service exited with status {code} before it was healthy; "
        f"its log ({service.log_path}) ends with:\n{service.child.log_tail(40)}"
    )


def _wait_listening(
    service: ServiceProcess, log: Path, offset: int, deadline: float, timeout_s: float
) -> None:
    """Read the port the service bound from its "listening on" line."""
    while True:
        code = service.child.poll()
        with open(log, "rb") as f:
            f.seek(offset)
            found = LISTENING.search(f.read().decode(errors="replace"))
        if found:
            service._listening_on(int(found.group(1).rsplit(":", 1)[1]))
            return
        if code is not None:
            raise _exited(service, code)
        if time.monotonic() > deadline:
            raise RunError(
                f"the service did not say where it listens within {timeout_s:g} s; "
                f"its log ({service.log_path}) ends with:\n{service.child.log_tail(40)}"
            )
        time.sleep(0.05)


def _wait_healthy(service: ServiceProcess, deadline: float, timeout_s: float) -> None:
    """Poll ``/health`` until 200; :class:`RunError` if the process dies or time runs out."""
    last = "no answer yet"
    with httpx.Client(timeout=2.0) as client:
        while True:
            code = service.child.poll()
            if code is not None:
                raise _exited(service, code)
            try:
                response = client.get(f"{service.url}/health")
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise RunError(
                    f"the service at {service.url} was not healthy within {timeout_s:g} s "
                    f"(last /health: {last}); its log ({service.log_path}) ends with:\n"
                    f"{service.child.log_tail(40)}"
                )
            time.sleep(0.2)
