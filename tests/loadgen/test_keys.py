"""Key distributions: seeded, pure, and shaped as they say."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from scalelab.errors import ScaleLabError
from scalelab.loadgen.keys import (
    Hotspot,
    Scan,
    Shifting,
    Uniform,
    Zipf,
    distribution_from_spec,
    make_distribution,
    zipf_weights,
)

N = 20_000


@pytest.mark.parametrize("name", ["uniform", "zipf", "hotspot", "scan", "shifting"])
def test_same_seed_same_keys_other_seed_other_keys(name: str) -> None:
    a = make_distribution(name, 100, seed=7)
    b = make_distribution(name, 100, seed=7)
    c = make_distribution(name, 100, seed=8)
    first = a.sample(200)
    assert first == b.sample(200)
    assert first != c.sample(200)
    assert all(0 <= i < 100 for i in first)
    assert abs(sum(a.popularity()) - 1.0) < 1e-9


def test_zipf_frequencies_follow_the_weights() -> None:
    z = Zipf(50, seed=1, alpha=1.2)
    counts = Counter(z.sample(N))
    weights = zipf_weights(50, 1.2)
    assert counts[0] / N == pytest.approx(weights[0], abs=0.015)
    assert counts[1] / N == pytest.approx(weights[1], abs=0.015)
    assert counts[0] > counts[1] > counts[4]
    assert weights[0] / weights[1] == pytest.approx(2**1.2)


def test_zipf_alpha_zero_is_uniform() -> None:
    assert zipf_weights(4, 0.0) == [0.25] * 4


def test_hotspot_sends_its_share_to_its_keys() -> None:
    h = Hotspot(1000, seed=2, hot_keys=0.05, hot_share=0.8)
    keys = h.sample(N)
    share = sum(1 for k in keys if k < 50) / N
    assert share == pytest.approx(0.8, abs=0.02)
    assert len(set(keys)) > 500  # the cold keys are visited too


def test_scan_cycles_through_every_key_in_turn() -> None:
    s = Scan(5, seed=3)
    keys = s.sample(12)
    assert sorted(keys[:5]) == [0, 1, 2, 3, 4]
    assert all((b - a) % 5 == 1 for a, b in zip(keys, keys[1:], strict=False))


def test_shifting_hot_set_moves_over_time() -> None:
    s = Shifting(100, seed=4, alpha=1.5, shift_every_s=10.0, shift_keys=30)
    early = Counter(s.sample(2000, t=1.0)).most_common(1)[0][0]
    late = Counter(s.sample(2000, t=12.0)).most_common(1)[0][0]
    assert (early, late) == (0, 30)
    assert s.popularity(12.0)[30] == max(s.popularity(12.0))


def test_uniform_keys_are_named() -> None:
    u = Uniform(3, seed=0)
    assert {u.key() for _ in range(200)} == {"k0", "k1", "k2"}


def test_from_spec_reads_scenario_knobs_with_either_spelling() -> None:
    d = distribution_from_spec({"keys": 10, "dist": "hotspot", "hot-keys": 0.2, "hot_share": 1.0})
    assert isinstance(d, Hotspot) and d.hot == 2
    assert set(d.sample(100)) <= {0, 1}
    assert isinstance(distribution_from_spec({}), Zipf)


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"dist": "pareto"}, "--dist"),
        ({"keys": 0}, "--keys"),
        ({"alpha": -1}, "--alpha"),
        ({"dist": "hotspot", "hot_share": 2}, "--hot-share"),
        ({"keys": "many"}, "knobs"),
    ],
)
def test_bad_knobs_name_the_argument(knobs: dict[str, object], message: str) -> None:
    with pytest.raises(ScaleLabError, match=message):
        distribution_from_spec(knobs)


def test_keys_module_imports_no_locust_numpy_or_pandas() -> None:
    code = (
        "import sys, scalelab.loadgen.keys as k; k.Zipf(10).sample(5); "
        "print([m for m in ('locust', 'gevent', 'numpy', 'pandas', 'distributed') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
