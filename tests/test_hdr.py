"""HDR log round trip and exact merging."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from scalelab import hdr


def _hist(values: list[int]) -> object:
    h = hdr.new_histogram()
    for v in values:
        h.record_value(hdr.clamp_us(v))
    return h


def test_log_round_trip_keeps_tags_and_counts(tmp_path: Path) -> None:
    rng = random.Random(1)
    a = [int(rng.expovariate(1 / 5000)) + 1 for _ in range(5000)]
    b = [1000] * 300
    path = tmp_path / "latency.hdr"
    hdr.write_log(path, {"intended": _hist(a), "actual": _hist(b)}, 100.0, 110.0)
    back = hdr.read_log(path)
    assert set(back) == {"intended", "actual"}
    assert back["intended"].get_total_count() == 5000
    assert back["actual"].get_total_count() == 300
    a.sort()
    p99 = hdr.percentiles_ms(back["intended"], [99])[99]
    exact = a[int(0.99 * len(a)) - 1] / 1000
    assert p99 == pytest.approx(exact, rel=2e-3)


def test_merge_is_exact_and_encode_decode() -> None:
    x, y = _hist([1000] * 90), _hist([100_000] * 10)
    merged = hdr.merge([hdr.decode(hdr.encode(x)), y])
    assert merged.get_total_count() == 100
    pct = hdr.percentiles_ms(merged, [50, 95])
    assert pct[50] == pytest.approx(1.0, rel=1e-3)
    assert pct[95] == pytest.approx(100.0, rel=1e-3)


def test_missing_log_and_empty_histogram(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no HDR log"):
        hdr.read_log(tmp_path / "none.hdr")
    empty = hdr.percentiles_ms(hdr.new_histogram(), [50])
    assert empty[50] != empty[50]  # NaN
    assert hdr.clamp_us(0) == hdr.LOWEST_US
    assert hdr.clamp_us(1e12) == hdr.HIGHEST_US
