"""Run a command that must not outlive our parent: ``python -m scalelab.chaos.guard CMD``.

A server started for a service (its own redis-server) is ended with the
service's process group in the normal course; but a service killed outright
(SIGKILL) runs no clean-up. The guard runs the command as its child, and ends
it when the guard's parent has gone, or when the guard is told to stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    """Run ``argv``; end it (SIGTERM, then SIGKILL) when our parent dies or we are signalled."""
    parent = os.getppid()
    child = subprocess.Popen(argv)
    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopping.append(signum))
    while child.poll() is None and not stopping and os.getppid() == parent:
        time.sleep(0.2)
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(3.0)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return child.returncode or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
