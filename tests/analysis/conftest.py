"""Shared synthetic experiments for the analysis tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from rundirs import make_requests, write_experiment

from scalelab.analysis import Experiment, load_experiment


@pytest.fixture(scope="module")
def two_kinds(tmp_path_factory: pytest.TempPathFactory) -> Experiment:
    """Two parameter values, two repeats each: direct (exp. 5 ms) and batched (exp. 2 ms)."""
    root: Path = tmp_path_factory.mktemp("results")
    runs = [
        ({"service.executor.kind": "direct"}, make_requests(seed=1, mean_ms=5.0)),
        ({"service.executor.kind": "direct"}, make_requests(seed=2, mean_ms=5.0)),
        ({"service.executor.kind": "batched"}, make_requests(seed=3, mean_ms=2.0)),
        ({"service.executor.kind": "batched"}, make_requests(seed=4, mean_ms=2.0)),
    ]
    write_experiment(root, runs, name="quick")
    return load_experiment(root / "quick")
