"""Fixtures for the exercises tests: no grading channel, seed or live step leaks in from outside."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Checks here run as in an instructor's checkout: hidden parts on, nothing sent to a grader."""
    for name in ("SCALELAB_ANSWER_CHANNEL", "SCALELAB_EXERCISE_SEED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SCALELAB_LIVE", "0")
    yield
