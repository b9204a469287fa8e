"""2^k·r factorial analysis against Jain's worked example and designs with a known truth."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from scalelab.analysis import factorial_design
from scalelab.errors import ScaleLabError

# Jain, The Art of Computer Systems Performance Analysis, Example 18.1: MIPS of a
# workstation against memory size (4 or 16 MB) and cache size (1 or 2 kB), 3 repeats.
JAIN = {(4, 1): (15, 18, 12), (16, 1): (45, 48, 51), (4, 2): (25, 28, 19), (16, 2): (75, 75, 81)}


def _jain_frame() -> pd.DataFrame:
    rows = [{"service.memory": m, "cache": c, "mips": y} for (m, c), ys in JAIN.items() for y in ys]
    return pd.DataFrame(rows)


def test_jain_example_effects_allocation_and_intervals() -> None:
    result = factorial_design(_jain_frame(), ["memory", "cache"], "mips")
    assert result.mean == pytest.approx(41.0)
    assert result.replications == 3 and result.dof == 8
    assert result.effect("memory").estimate == pytest.approx(21.5)
    assert result.effect("cache").estimate == pytest.approx(9.5)
    assert result.effect("cache:memory").estimate == pytest.approx(5.0)
    shares = dict(zip(result.allocation()["effect"], result.allocation()["share"], strict=True))
    assert shares["memory"] == pytest.approx(0.7888, abs=1e-4)
    assert shares["cache"] == pytest.approx(0.1540, abs=1e-4)
    assert shares["memory:cache"] == pytest.approx(0.0427, abs=1e-4)
    assert shares["error"] == pytest.approx(0.0145, abs=1e-4)
    assert sum(shares.values()) == pytest.approx(1.0)
    memory = result.effect("memory")
    assert (memory.ci_low, memory.ci_high) == pytest.approx((19.58, 23.42), abs=0.01)
    assert result.largest().name == "memory"
    assert all(e.significant for e in result.effects)


def test_three_factors_recover_a_known_model_and_flag_a_null_effect() -> None:
    rng = np.random.default_rng(3)
    rows = []
    for a, b, c in itertools.product((-1, 1), repeat=3):
        for _ in range(4):
            y = 10 + 3 * a + 1 * b + 0 * c + 0.5 * a * b + rng.normal(0, 0.2)
            rows.append({"a": a, "b": b, "c": c, "y": y})
    result = factorial_design(pd.DataFrame(rows), ["a", "b", "c"], "y", confidence=0.95)
    assert len(result.effects) == 7
    assert result.effect("a").estimate == pytest.approx(3.0, abs=0.1)
    assert result.effect("a:b").estimate == pytest.approx(0.5, abs=0.1)
    assert not result.effect("c").significant
    assert result.effect("a").share > 0.85


def test_string_levels_and_explicit_order() -> None:
    frame = pd.DataFrame(
        {"policy": ["lru", "fifo"] * 4, "size": [50, 50, 200, 200] * 2, "hit": np.arange(8.0)}
    )
    default = factorial_design(frame, ["policy", "size"], "hit")
    assert default.levels["policy"] == ("fifo", "lru")
    flipped = factorial_design(frame, ["policy", "size"], "hit", levels={"policy": ("lru", "fifo")})
    assert flipped.effect("policy").estimate == pytest.approx(-default.effect("policy").estimate)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"a": [1, 2, 3], "y": [1.0, 2.0, 3.0]}), "exactly two levels"),
        (pd.DataFrame({"a": [1, 2, 1, 2], "b": [1, 1, 1, 2], "y": [1.0] * 4}), "missing"),
        (pd.DataFrame({"a": [1, 2, 1], "y": [1.0, 2.0, 3.0]}), "same number of repeats"),
        (pd.DataFrame({"a": [1, 2], "y": [1.0, None]}), "not a number"),
    ],
)
def test_unusable_designs_are_named(frame: pd.DataFrame, message: str) -> None:
    factors = [c for c in frame.columns if c != "y"]
    with pytest.raises(ScaleLabError, match=message):
        factorial_design(frame, factors, "y")


def test_without_repeats_there_is_no_interval() -> None:
    frame = pd.DataFrame({"a": [1, 2], "y": [1.0, 3.0]})
    result = factorial_design(frame, ["a"], "y")
    assert result.effect("a").estimate == pytest.approx(1.0)
    assert np.isnan(result.effect("a").ci_low)
    assert not result.effect("a").significant


def test_plot_labels_its_axes() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from scalelab import plots

    result = factorial_design(_jain_frame(), ["memory", "cache"], "mips")
    left, right = plots.factorial_effects(result, unit="MIPS")
    assert "%" in left.get_xlabel() and left.get_ylabel()
    assert "MIPS" in right.get_xlabel() and right.get_ylabel()
    import matplotlib.pyplot as plt

    plt.close("all")
