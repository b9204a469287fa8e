"""The dataset: seeded tables, their skew, and the three layouts on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalelab.cli import main
from scalelab.data.config import DatasetConfig, DatasetSpec
from scalelab.data.generate import customer_weights, generate_customers, generate_orders
from scalelab.data.hashing import mix64
from scalelab.data.layout import (
    Layout,
    ensure_dataset,
    read_customers,
    read_info,
    read_orders_file,
    write_dataset,
)
from scalelab.data.schema import ORDERS_COLUMNS, REGIONS, TS_START
from scalelab.errors import ConfigError

SMALL = DatasetSpec(rows=3_000, customers=200, seed=3)


def test_the_same_seed_gives_the_same_tables_and_another_seed_does_not() -> None:
    a, b = generate_orders(SMALL), generate_orders(SMALL)
    pd.testing.assert_frame_equal(a, b)
    other = generate_orders(SMALL.model_copy(update={"seed": 4}))
    assert not a["customer_id"].equals(other["customer_id"])
    assert list(a.columns) == list(ORDERS_COLUMNS)
    assert a["order_id"].tolist() == list(range(SMALL.rows))
    assert a["ts"].is_monotonic_increasing and a["ts"].min() >= TS_START
    assert set(a["region"]) <= set(REGIONS)
    assert a["payload"].str.len().eq(SMALL.payload_bytes).all()
    customers = generate_customers(SMALL)
    assert customers["customer_id"].tolist() == list(range(SMALL.customers))


def test_zipf_skew_puts_orders_on_customers_as_the_key_distribution_says() -> None:
    spec = DatasetSpec(rows=60_000, customers=100, skew="zipf", alpha=1.0, seed=1)
    counts = generate_orders(spec)["customer_id"].value_counts(normalize=True)
    weights = customer_weights(spec)
    assert counts.idxmax() == 0  # Zipf's rank 1 is customer 0
    assert counts[0] == pytest.approx(weights[0], abs=0.01)
    assert counts[99] == pytest.approx(weights[99], abs=0.003)
    hot = DatasetSpec(rows=20_000, customers=100, skew="hotspot", hot_keys=0.1, hot_share=0.9)
    share = (generate_orders(hot)["customer_id"] < 10).mean()
    assert share == pytest.approx(0.9, abs=0.02)


def _all_orders(info_path: Path) -> pd.DataFrame:
    info = read_info(info_path)
    return pd.concat([read_orders_file(str(info.path), f) for f in info.orders_files()])


@pytest.mark.parametrize(
    ("layout", "files"),
    [(Layout("hash", "customer_id", 4), 4), (Layout("range", "order_id", 3), 3)],
)
def test_hash_and_range_layouts_put_each_row_in_its_file(
    tmp_path: Path, layout: Layout, files: int
) -> None:
    info = write_dataset(SMALL, tmp_path / "ds", layout)
    assert len(info.files) == files and info.rows == SMALL.rows
    whole = _all_orders(tmp_path / "ds")
    assert sorted(whole["order_id"]) == list(range(SMALL.rows))
    previous_max = -1
    for i, entry in enumerate(info.files):
        part = read_orders_file(str(info.path), entry["path"])
        assert entry["rows"] == len(part)
        assert entry["min"]["ts"] == part["ts"].min() and entry["max"]["ts"] == part["ts"].max()
        keys = part[layout.column].to_numpy()
        if layout.kind == "hash":
            assert ((mix64(keys) % np.uint64(files)) == i).all()
        else:
            assert keys.min() > previous_max  # ranges in order, not overlapping
            previous_max = keys.max()


def test_column_layout_writes_hive_folders_and_reads_the_column_back(tmp_path: Path) -> None:
    info = write_dataset(SMALL, tmp_path / "ds", Layout("column", "region"))
    assert sorted(Path(f["path"]).parent.name for f in info.files) == sorted(
        f"region={r}" for r in REGIONS
    )
    for entry in info.files:
        part = read_orders_file(str(info.path), entry["path"])
        assert part["region"].nunique() == 1
        assert f"region={part['region'].iloc[0]}" in entry["path"]
    assert len(read_customers(str(info.path))) == SMALL.customers


def test_ensure_dataset_writes_once_and_refuses_a_folder_of_other_parameters(
    tmp_path: Path,
) -> None:
    config = DatasetConfig(path=str(tmp_path / "ds"), rows=500, customers=20)
    first = ensure_dataset(config)
    stamp = json.loads((tmp_path / "ds" / "dataset.json").read_text())["written_at"]
    again = ensure_dataset(config)
    assert again.rows == first.rows == 500
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text())["written_at"] == stamp
    with pytest.raises(ConfigError, match=r"rows=500"):
        ensure_dataset(config.model_copy(update={"rows": 600}))
    with pytest.raises(ConfigError, match="router.dataset.generate"):
        ensure_dataset(DatasetConfig(path=str(tmp_path / "none"), generate=False))


def test_the_cli_writes_a_dataset_and_names_a_bad_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    code = main(
        ["data", "generate", "--rows", "400", "--customers", "10", "--skew", "zipf",
         "--partition-by", "range:customer_id", "--files", "2", "--out", str(out)]
    )  # fmt: skip
    assert code == 0 and "wrote 400 orders" in capsys.readouterr().out
    info = read_info(out)
    assert info.layout == Layout("range", "customer_id", 2) and info.spec.skew == "zipf"
    assert main(["data", "generate", "--partition-by", "diagonal", "--out", str(out)]) == 2
    assert "--partition-by 'diagonal'" in capsys.readouterr().err
    assert main(["data", "generate", "--rows", "1", "--out", str(out)]) == 2
    assert "rows" in capsys.readouterr().err
