"""Fixtures shared by every test package; package-specific ones live beside their tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from scalelab import procs


@pytest.fixture
def no_child_leaks() -> Iterator[None]:
    """Fail the test if a :class:`scalelab.procs.Child` it started is still registered as live."""
    with procs._lock:
        before = set(procs._live)
    yield
    with procs._lock:
        left = [c for c in procs._live - before if c.alive()]
    for child in left:
        child.stop(2.0)
    assert not left, f"children left running: {[c.name for c in left]}"


# --- Redis ---------------------------------------------------------------------------------

REDIS_BINARY_PATHS = ("/usr/bin/redis-server", "/usr/local/bin/redis-server")


def redis_binary() -> str | None:
    """The redis-server executable, or None when it is not installed."""
    import shutil

    found = shutil.which("redis-server")
    if found:
        return found
    return next((p for p in REDIS_BINARY_PATHS if os.access(p, os.X_OK)), None)


class RedisServer:
    """A real redis-server on a free loopback port, with no persistence; stop() ends it."""

    def __init__(self, port: int | None = None) -> None:
        from scalelab.ports import free_port

        self.binary = redis_binary()
        if self.binary is None:
            pytest.skip(
                "redis-server is not installed (apt-get install redis-server); "
                "only the Redis tests are skipped"
            )
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.child: procs.Child | None = None

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        import time

        import redis

        args = [str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
        self.child = procs.Child(args, name="redis-server")
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1.0)
        try:
            while True:
                try:
                    if client.ping():
                        return self
                except redis.RedisError:
                    pass
                if not self.child.alive() or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"redis-server on port {self.port} did not start")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """End the server (and forget it)."""
        if self.child is not None:
            self.child.stop(5.0)
            self.child = None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session (skips the test when the binary is missing)."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server_factory() -> type[RedisServer]:
    """Make more servers (``factory().start()``) that a test may stop and start again."""
    return RedisServer
