"""Fixtures for the exercises tests: answers and check logs kept in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _answers_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Reflections are recorded under tmp_path, never in the checkout."""
    monkeypatch.setenv("SCALELAB_ANSWERS", str(tmp_path / "answers.jsonl"))
    monkeypatch.delenv("SCALELAB_CHECK_LOG", raising=False)
    monkeypatch.setenv("SCALELAB_LIVE", "0")
    yield
