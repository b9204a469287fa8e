"""Child processes are ended with their whole process group, whatever happens."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from scalelab.procs import Child, group_members, stop_all, wait_until

# A parent that starts a grandchild in the same group and ignores SIGTERM.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("ready", flush=True)
time.sleep(60)
"""


def _ready(child: Child) -> bool:
    return "ready" in child.log_tail()


def test_stop_ends_the_whole_group(tmp_path: Path) -> None:
    child = Child([sys.executable, "-c", STUBBORN], "stubborn", log_path=tmp_path / "log")
    assert wait_until(lambda: _ready(child), 10)
    assert wait_until(lambda: len(group_members(child.pid)) >= 2, 5)
    started = time.monotonic()
    child.stop(deadline_s=0.5)
    assert time.monotonic() - started < 5
    assert group_members(child.pid) == []
    assert not child.alive()


def test_group_of_a_dead_leader_is_cleaned(tmp_path: Path) -> None:
    code = (
        "import subprocess, sys; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); print('ready')"
    )
    child = Child([sys.executable, "-c", code], "orphaner", log_path=tmp_path / "log")
    child.wait(10)
    assert wait_until(lambda: len(group_members(child.pid)) == 1, 5)
    child.stop(deadline_s=0.5)
    assert group_members(child.pid) == []


def test_stop_all_ends_every_live_child() -> None:
    kids = [Child([sys.executable, "-c", "import time; time.sleep(60)"], f"k{i}") for i in range(2)]
    stop_all(deadline_s=1)
    assert all(not k.alive() for k in kids)
    assert all(group_members(k.pid) == [] for k in kids)


def _open_files() -> set[str]:
    """What this process's file descriptors point at."""
    fds = Path("/proc/self/fd")
    out = set()
    for fd in fds.iterdir():
        try:
            out.add(os.readlink(fd))
        except OSError:
            continue
    return out


def test_a_child_that_cannot_start_leaves_no_open_log(tmp_path: Path) -> None:
    log = tmp_path / "never.log"
    with pytest.raises(FileNotFoundError) as failure:
        Child([str(tmp_path / "no-such-program")], "missing", log_path=log)
    # The half-built Child is still reachable from the traceback: its log must be closed.
    assert failure.value is not None
    assert str(log) not in _open_files()
