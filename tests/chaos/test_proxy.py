"""The fault proxy as a real process between a client and a real TCP server: each toxic as
Toxiproxy means it, the link cut and restored, and nothing left once the proxy is killed."""

from __future__ import annotations

import signal
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from scalelab.chaos.proxy_process import ProxyProcess
from scalelab.procs import wait_until

pytestmark = pytest.mark.integration


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture(scope="module")
def echo() -> Iterator[int]:
    """A threaded echo server on a free port."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def proxy(echo: int) -> Iterator[tuple[ProxyProcess, int]]:
    """The proxy process with a link ``echo`` to the echo server; yields it and the port."""
    started = ProxyProcess.start()
    made = httpx.post(
        f"{started.url}/proxies", json={"name": "echo", "upstream": f"127.0.0.1:{echo}"}
    ).json()
    yield started, int(made["listen"].rsplit(":", 1)[1])
    started.stop()


def toxic(proxy: ProxyProcess, **body: object) -> None:
    response = httpx.post(f"{proxy.url}/proxies/echo/toxics", json=body)
    assert response.status_code == 200, response.text


def clear(proxy: ProxyProcess) -> None:
    assert httpx.post(f"{proxy.url}/reset").status_code == 204


def round_trip(port: int, payload: bytes = b"ping", timeout: float = 5.0) -> float:
    """Seconds for ``payload`` to come back through the proxy."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        started = time.monotonic()
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            got += chunk
        assert got == payload
        return time.monotonic() - started


def test_latency_is_added_on_each_direction(proxy: tuple[ProxyProcess, int]) -> None:
    process, port = proxy
    base = round_trip(port)
    toxic(process, type="latency", stream="downstream", attributes={"latency": 100})
    toxic(process, name="up", type="latency", stream="upstream", attributes={"latency": 50})
    try:
        slow = round_trip(port)
    finally:
        clear(process)
    assert 0.150 <= slow < 0.150 + base + 0.1
    assert round_trip(port) < 0.1


def test_bandwidth_limits_the_rate(proxy: tuple[ProxyProcess, int]) -> None:
    process, port = proxy
    toxic(process, type="bandwidth", stream="downstream", attributes={"rate": 100})  # KB/s
    try:
        took = round_trip(port, b"x" * 20_000)
    finally:
        clear(process)
    assert took >= 0.19  # 20 kB at 100 kB/s


def test_limit_data_closes_the_connection_after_its_bytes(proxy: tuple[ProxyProcess, int]) -> None:
    process, port = proxy
    toxic(process, type="limit_data", stream="downstream", attributes={"bytes": 10})
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"0123456789abcdef")
            got = b""
            while chunk := sock.recv(100):
                got += chunk
        assert got == b"0123456789"
    finally:
        clear(process)


def test_reset_peer_resets_and_timeout_drops_then_closes(proxy: tuple[ProxyProcess, int]) -> None:
    process, port = proxy
    toxic(process, type="reset_peer", attributes={"timeout": 0})
    try:
        with pytest.raises((ConnectionResetError, ConnectionError)):
            round_trip(port)
    finally:
        clear(process)
    toxic(process, type="timeout", stream="upstream", attributes={"timeout": 200})
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            started = time.monotonic()
            sock.sendall(b"lost")
            assert sock.recv(100) == b""  # nothing came back; then it was closed
            assert 0.18 <= time.monotonic() - started < 2.0
    finally:
        clear(process)


def test_toxicity_zero_spares_every_connection(proxy: tuple[ProxyProcess, int]) -> None:
    process, port = proxy
    toxic(process, type="latency", toxicity=0.0, attributes={"latency": 500})
    try:
        assert round_trip(port) < 0.3
    finally:
        clear(process)


def test_a_link_cut_refuses_connections_until_it_is_back(proxy: tuple[ProxyProcess, int]) -> None:
    process, port = proxy
    assert httpx.post(f"{process.url}/proxies/echo", json={"enabled": False}).status_code == 200
    with pytest.raises(OSError):
        round_trip(port, timeout=1.0)
    assert httpx.post(f"{process.url}/proxies/echo", json={"enabled": True}).status_code == 200
    assert round_trip(port) < 0.3


def test_bad_toxics_are_refused_naming_the_field(proxy: tuple[ProxyProcess, int]) -> None:
    process, _ = proxy
    bad = httpx.post(f"{process.url}/proxies/echo/toxics", json={"type": "meteor"})
    assert bad.status_code == 400 and "latency" in bad.json()["error"]
    bad = httpx.post(
        f"{process.url}/proxies/echo/toxics", json={"type": "latency", "attributes": {"x": 1}}
    )
    assert bad.status_code == 400 and "attributes.x" in bad.json()["error"]


def test_a_killed_proxy_leaves_nothing_behind(echo: int) -> None:
    process = ProxyProcess.start()
    made = httpx.post(
        f"{process.url}/proxies", json={"name": "e", "upstream": f"127.0.0.1:{echo}"}
    ).json()
    port = int(made["listen"].rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    pid = process.child.pid
    process.child.proc.send_signal(signal.SIGKILL)
    try:
        assert wait_until(lambda: process.child.poll() is not None, 5.0)
        try:  # its connections went with it: closed, or reset by the kernel
            gone = sock.recv(10) == b""
        except ConnectionResetError:
            gone = True
        assert gone
        assert not [p for p in psutil.process_iter() if p.pid == pid and p.status() != "zombie"]
    finally:
        sock.close()
        process.stop()
    assert not psutil.pid_exists(pid)
