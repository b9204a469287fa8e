"""Queries answered per partition and merged equal the same query on the whole table, in both
engines; the SQLite plans say when an index is used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalelab.data.config import DatasetSpec, RouterConfig
from scalelab.data.generate import generate_customers, generate_orders
from scalelab.data.hashing import mix64
from scalelab.data.queries import GroupBy, Insert, Join, Lookup, Range, merge, run_frame_query
from scalelab.data.sqlite_db import Database, check_ddl, index_statements

from .truth import assert_same
from .truth import truth as whole_table

SPEC = DatasetSpec(rows=4_000, customers=150, skew="zipf", seed=2)
ORDERS = generate_orders(SPEC)
CUSTOMERS = generate_customers(SPEC)
TS = ORDERS["ts"]
PARTS = 3
_assign = (mix64(ORDERS["customer_id"].to_numpy()) % np.uint64(PARTS)).astype(int)
UNSORTED = [ORDERS.loc[_assign == p].reset_index(drop=True) for p in range(PARTS)]
SORTED = [f.sort_values(["customer_id", "order_id"]).reset_index(drop=True) for f in UNSORTED]

QUERIES = [
    Lookup("customer_id", 0, limit=5),
    Lookup("order_id", 1234),
    Range("ts", int(TS.iloc[100]), int(TS.iloc[400]), limit=7),
    Range("customer_id", 10, 20, limit=3),
    Range("amount", 10.0, 12.5),
    GroupBy("region", "mean"),
    GroupBy("customer_id", "count", "amount", int(TS.iloc[50]), int(TS.iloc[900])),
    GroupBy("region", "max", "ts"),
    Join("segment"),
    Join("country", int(TS.iloc[0]), int(TS.iloc[2000]), customer=3),
]


def truth(query):
    return whole_table(query, ORDERS, CUSTOMERS)


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: type(q).__name__)
def test_memory_partitions_sorted_or_not_answer_as_the_whole_table(query) -> None:
    for frames, sorted_by in ((SORTED, "customer_id"), (UNSORTED, None)):
        parts = [run_frame_query(f, query, sorted_by, CUSTOMERS) for f in frames]
        assert_same(merge(query, [p.value for p in parts]), truth(query))


def test_a_sorted_partition_scans_only_the_rows_it_finds() -> None:
    query = Lookup("customer_id", 0)
    found = run_frame_query(SORTED[_assign[ORDERS["customer_id"] == 0][0]], query, "customer_id")
    assert found.rows_scanned == found.value["count"] > 0
    frame = UNSORTED[0]
    assert run_frame_query(frame, query, None).rows_scanned == len(frame)


@pytest.fixture(scope="module")
def databases() -> dict[str, list[Database]]:
    plain = [Database(f"plain{i}", f, CUSTOMERS, []) for i, f in enumerate(UNSORTED)]
    ddl = index_statements(["customer_id", "ts"], ["CREATE INDEX ix_region ON orders(region)"])
    indexed = [Database(f"ix{i}", f, CUSTOMERS, ddl) for i, f in enumerate(UNSORTED)]
    return {"plain": plain, "indexed": indexed}


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: type(q).__name__)
def test_sqlite_partitions_answer_as_the_whole_table(databases, query) -> None:
    for dbs in databases.values():
        assert_same(merge(query, [db.query(query, False).value for db in dbs]), truth(query))


def test_the_plan_shows_the_index_and_rows_scanned_follow_it(databases) -> None:
    lookup = Lookup("customer_id", 0)
    plain = databases["plain"][0].query(lookup, explain=True)
    indexed = databases["indexed"][0].query(lookup, explain=True)
    assert any(line.startswith("SCAN orders") for line in plain.plan)
    assert not plain.uses_index and plain.full_scan
    assert plain.rows_scanned == len(UNSORTED[0])
    assert any("USING INDEX ix_customer_id" in line for line in indexed.plan)
    assert indexed.uses_index and not indexed.full_scan
    assert indexed.rows_scanned == indexed.value["count"]
    assert databases["indexed"][0].query(Range("ts", 0, 1), True).uses_index
    assert not databases["indexed"][0].query(Lookup("order_id", 5), True).uses_index


def test_inserted_rows_are_found_and_counted(databases) -> None:
    db = Database("w", UNSORTED[1], CUSTOMERS, index_statements(["customer_id"], []))
    before = db.query(Lookup("customer_id", 7), False).value["count"]
    rows = tuple((10**12 + i, 7, "eu", 1, 1.5, "x") for i in range(3))
    assert db.query(Insert(rows), False).value == {"inserted": 3}
    after = db.query(Lookup("customer_id", 7), False).value
    assert after["count"] == before + 3
    exported = db.export()
    assert len(exported) == len(UNSORTED[1]) + 3
    assert exported["region"].dtype == pd.StringDtype(na_value=np.nan)


def test_bad_index_ddl_is_refused_naming_the_statement() -> None:
    with pytest.raises(ValueError, match=r"0: .*no such column: colour"):
        check_ddl(["CREATE INDEX ix ON orders(colour)"])
    with pytest.raises(ValueError, match="index_ddl.0"):
        RouterConfig(index_ddl=["DROP TABLE orders"])
    with pytest.raises(ValueError, match="index: unknown column 'colour'"):
        RouterConfig(index=["colour"])
    with pytest.raises(ValueError, match="placement = 'free' needs engine = 'memory'"):
        RouterConfig(engine="sqlite", placement="free")
