"""Child processes that are always ended: each in its own process group, stopped with a deadline.

Every process a run starts (the service with its cluster, Locust, a scheduler)
goes through :class:`Child`. Stopping sends SIGTERM (or SIGINT) to the whole
group, waits, then SIGKILLs the group, so grandchildren such as Dask worker
processes never outlive the run. :func:`stop_all` is also registered with
``atexit`` as a last line of defence.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

_live: set[Child] = set()
_lock = threading.Lock()


class Child:
    """A child process started in its own session (and so its own process group)."""

    def __init__(
        self,
        args: Sequence[str],
        name: str,
        log_path: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> None:
        self.args = list(args)
        self.name = name
        self.log_path = Path(log_path) if log_path else None
        self._log: IO[bytes] | None = None
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        try:
            self.proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=self._log if self._log else subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=str(cwd) if cwd else None,
                start_new_session=True,
            )
        except BaseException:  # no child to stop: the log is closed here, not in stop()
            if self._log:
                self._log.close()
                self._log = None
            raise
        with _lock:
            _live.add(self)

    @property
    def pid(self) -> int:
        """The child's pid, which is also its process group id."""
        return self.proc.pid

    def poll(self) -> int | None:
        """Return the exit code, or ``None`` while the child runs."""
        return self.proc.poll()

    def alive(self) -> bool:
        """True while the child process itself is running."""
        return self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to exit and return its exit code."""
        return self.proc.wait(timeout)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the child's log, for error messages."""
        if not self.log_path or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self, deadline_s: float = 10.0, first: int = signal.SIGTERM) -> int | None:
        """End the child and its whole group: ``first`` signal, then SIGKILL after the deadline."""
        if self.alive():
            self._signal_group(first)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(deadline_s)
        # Even when the leader exited, stragglers in its group get the same end.
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        wait_until(lambda: not group_members(self.proc.pid), 5.0, 0.05)
        if self._log:
            self._log.close()
            self._log = None
        with _lock:
            _live.discard(self)
        return self.proc.returncode


def group_members(pgid: int) -> list[int]:
    """Pids of live (non-zombie) processes in process group ``pgid``, for leak checks."""
    found: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        # fields: state, ppid, pgrp, ...; a zombie has already ended.
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def stop_all(deadline_s: float = 5.0) -> None:
    """Stop every child still alive (used at exit and on interruption)."""
    with _lock:
        children = list(_live)
    for child in children:
        child.stop(deadline_s)


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt so cleanup code runs."""

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def wait_until(predicate: object, timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll ``predicate()`` until it is true or the timeout passes."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if callable(predicate) and predicate():
            return True
        time.sleep(interval_s)
    return False


atexit.register(stop_all)
