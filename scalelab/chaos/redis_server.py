"""A redis-server owned by the service (``chaos.redis_server``), so that an outage can be staged.

It has no persistence and listens on a free loopback port. :meth:`stop`
ends it (every connection drops, as when a Redis host dies) and :meth:`start`
brings it back on the same port, empty. It runs under :mod:`.guard`, so it
never outlives the service.
"""

from __future__ import annotations

import shutil
import socket
import sys
import time

from scalelab.errors import RunError
from scalelab.ports import free_port
from scalelab.procs import Child


def redis_binary() -> str:
    """The redis-server executable; :class:`RunError` saying how to install it when absent."""
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if shutil.which(p)),
        None,
    )
    if found is None:
        raise RunError(
            "chaos.redis_server: redis-server is not installed; install it "
            "(apt-get install redis-server) or leave chaos.redis_server false"
        )
    return found


class RedisServer:
    """One redis-server on a fixed loopback port, stopped and started at will."""

    def __init__(self, port: int | None = None) -> None:
        self.binary = redis_binary()
        self.port = port or free_port()
        self.child: Child | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """True while the server process runs."""
        return self.child is not None and self.child.alive()

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server (no persistence) and wait until it accepts connections."""
        if self.running:
            return
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
        self.child = Child([sys.executable, "-m", "scalelab.chaos.guard", *args], "redis-server")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RunError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """End the server and its guard."""
        if self.child is not None:
            self.child.stop(3.0)
            self.child = None
