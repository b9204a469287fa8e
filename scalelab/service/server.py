"""``scalelab serve``: run the task service on uvicorn with its Dask cluster.

Command-line flags override the configuration file. Binding an address other
than loopback needs an admin token (``--admin-token`` or the environment
variable ``SCALELAB_ADMIN_TOKEN``), because the admin API can change the
service. ``--port 0`` binds a port the OS picks; the line printed once the
service listens (``scalelab serve: listening on URL ...``) says which, and is
how :func:`scalelab.service.process.start_service` learns it. SIGTERM and
SIGINT stop the server; the app's lifespan then closes the client and cluster
within a deadline, and anything this process started that is still alive after
it is killed.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys
from typing import Any

from scalelab.config import ServiceConfig, load_config, parse_config
from scalelab.errors import ConfigError

TOKEN_ENV = "SCALELAB_ADMIN_TOKEN"
"""Environment variable that may hold the admin token."""

CLOSE_DEADLINE_S = 10.0
"""How long shutdown may take to close the client and cluster before killing them."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_config(args: argparse.Namespace) -> ServiceConfig:
    """The configuration file (or defaults) with the command-line flags laid over it."""
    config = load_config(getattr(args, "config", None))
    data: dict[str, Any] = config.model_dump()
    cluster = data["cluster"]
    if getattr(args, "scheduler", None):
        cluster["scheduler"] = args.scheduler
    if getattr(args, "workers", None) is not None:
        cluster["workers"] = args.workers
    if getattr(args, "threads", None) is not None:
        cluster["threads_per_worker"] = args.threads
    return parse_config(data, "scalelab serve (config file and flags)")


def resolve_token(host: str, token: str | None) -> str | None:
    """The admin token to require; refuse a non-loopback bind without one."""
    token = token or os.environ.get(TOKEN_ENV) or None
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"--host {host}: listening beyond loopback exposes the admin API; "
            f"pass --admin-token TOKEN (or set {TOKEN_ENV}), or use --host 127.0.0.1"
        )
    return token


def serve_from_args(args: argparse.Namespace) -> int:
    """Run ``scalelab serve`` until SIGTERM or SIGINT; return the exit status."""
    import uvicorn

    from scalelab.service.app import create_app
    from scalelab.service.cluster import kill_descendants
    from scalelab.service.logs import REQUEST_LOGGER, json_logger
    from scalelab.service.stack import plan_stack

    host: str = args.host
    port: int = args.port
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: must be between 0 and 65535")
    config = resolve_config(args)
    token = resolve_token(host, getattr(args, "admin_token", None))
    plan_stack(config)  # a bad layer or plugin fails before the cluster starts

    app = create_app(
        config, admin_token=token, close_deadline_s=CLOSE_DEADLINE_S, kill_leftovers=True
    )
    uv_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        # Load generators keep connections open between requests; closing idle ones
        # after uvicorn's default 5 s races with their reuse and shows up as errors.
        timeout_keep_alive=75,
    )
    json_logger(REQUEST_LOGGER)  # after uvicorn's own logging set-up, which closes handlers
    # Claim the port before the cluster starts: the cluster's own servers take
    # ports the OS picks, and one of them could otherwise be this one.
    try:
        sock = uv_config.bind_socket()
    except SystemExit:  # uvicorn has logged why (address in use, bad host)
        raise ConfigError(
            f"--host {host} --port {port}: cannot listen there; choose a free port"
        ) from None
    server = _AnnouncingServer(uv_config, app.state.service)
    stopped_by: list[int] = []
    # uvicorn re-raises the stopping signal once it has shut down; a no-op handler
    # turns that into a normal return, so the last clean-up below always runs.
    previous = {
        sig: signal.signal(sig, lambda signum, frame: stopped_by.append(signum))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        kill_descendants()
    return 0 if server.started else 1


class _AnnouncingServer:
    """A uvicorn server that prints where it listens once the socket is bound."""

    def __new__(cls, config: Any, state: Any) -> Any:
        import uvicorn

        class Server(uvicorn.Server):
            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets)
                if self.started:
                    _announce(self, state)

        return Server(config)


def _announce(server: Any, state: Any) -> None:
    """Print the one line that says the service is up, and where its cluster is."""
    host = server.config.host
    port = server.config.port
    for srv in getattr(server, "servers", []):
        for sock in getattr(srv, "sockets", []) or []:
            port = sock.getsockname()[1]
            break
    client = state.client
    scheduler = getattr(getattr(client, "scheduler", None), "address", None) or "?"
    dashboard = None
    if state.cluster is not None:
        dashboard = state.cluster.dashboard_link
    elif client is not None:
        dashboard = client.dashboard_link
    shown = f"[{host}]" if ":" in host else host
    print(
        f"scalelab serve: listening on http://{shown}:{port} "
        f"(scheduler {scheduler}, dashboard {dashboard or 'none'})",
        file=sys.stdout,
        flush=True,
    )
