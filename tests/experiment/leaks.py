"""Finding processes a run may have left behind: descendants, and command lines naming a run."""

from __future__ import annotations

import os
from collections.abc import Iterable

import psutil


def descendants(pid: int) -> list[psutil.Process]:
    """Every live descendant of ``pid`` (children, their children, ...)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def cmdline(proc: psutil.Process) -> str:
    """A process's command line as one string ('' when it is gone)."""
    try:
        return " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


def still_running(procs: Iterable[psutil.Process]) -> list[str]:
    """Those of ``procs`` still running (zombies awaiting their parent do not count)."""
    left = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{proc.pid}: {cmdline(proc)[:200]}")
        except psutil.NoSuchProcess:
            continue
    return left


def mentioning(*needles: str) -> list[str]:
    """Processes (other than this one) whose command line contains any of ``needles``."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        text = cmdline(proc)
        if text and any(n in text for n in needles):
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
            except psutil.NoSuchProcess:
                continue
            found.append(f"{proc.pid}: {text[:200]}")
    return found
