"""Fixtures shared by every test package; package-specific ones live beside their tests."""

from __future__ import annotations

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
