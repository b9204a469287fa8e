"""The embedded-database engine: one SQLite database per partition, living on its worker.

A partition's database is built on the worker that holds the partition
(:func:`build_database`), kept in that worker process's memory, and named by a
:class:`DbHandle`; queries (:func:`run_db_query`) and writes
(:func:`insert_rows`) are tasks pinned to that worker. The databases hold
``orders`` (the partition's rows) and ``customers`` (the whole small table, for
joins); ``router.index`` and ``router.index_ddl`` say which indexes ``orders``
gets, so the same queries can be compared with and without them.

SQLite's planner uses a B-tree index for equality, ranges, ``GROUP BY`` and
joins, and ``EXPLAIN QUERY PLAN`` says which: ``SEARCH orders USING INDEX
ix_customer_id (customer_id=?)`` against ``SCAN orders``. Rows scanned are read
from the plan: every row of ``orders`` for a ``SCAN``, the rows found for a
``SEARCH``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from scalelab.data.queries import (
    GroupBy,
    Insert,
    Join,
    Lookup,
    PartResult,
    Query,
    Range,
)
from scalelab.data.schema import CUSTOMERS_COLUMNS, ORDERS_COLUMNS

ORDERS_DDL = (
    "CREATE TABLE orders (order_id INTEGER NOT NULL, customer_id INTEGER NOT NULL, "
    "region TEXT NOT NULL, ts INTEGER NOT NULL, amount REAL NOT NULL, payload TEXT NOT NULL)"
)
CUSTOMERS_DDL = (
    "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT, segment TEXT, "
    "country TEXT)"
)


def index_statements(columns: list[str], ddl: list[str]) -> list[str]:
    """The DDL for an index on each of ``columns``, then the statements of ``ddl``."""
    return [f"CREATE INDEX ix_{c} ON orders({c})" for c in columns] + list(ddl)


def check_ddl(statements: list[str]) -> None:
    """Run index DDL on an empty schema; raise ``ValueError`` naming the statement that fails."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(ORDERS_DDL)
        conn.execute(CUSTOMERS_DDL)
        for i, statement in enumerate(statements):
            try:
                conn.execute(statement)
            except sqlite3.Error as exc:
                raise ValueError(f"{i}: {statement!r}: {exc}") from None
    finally:
        conn.close()


@dataclass(frozen=True)
class DbHandle:
    """Names a database in its worker's memory."""

    name: str
    worker: str
    rows: int


class Database:
    """One partition's SQLite database and what it knows about its own plans."""

    def __init__(self, name: str, orders: pd.DataFrame, customers: pd.DataFrame, ddl: list[str]):
        self.name = name
        self.lock = threading.Lock()
        self.conn = sqlite3.connect(":memory:", check_same_thread=False)
        self.conn.execute(ORDERS_DDL)
        self.conn.execute(CUSTOMERS_DDL)
        self._insert(orders)
        self.conn.executemany(
            "INSERT INTO customers VALUES (?,?,?,?)",
            customers[list(CUSTOMERS_COLUMNS)].itertuples(index=False, name=None),
        )
        for statement in ddl:
            self.conn.execute(statement)
        self.conn.execute("ANALYZE")
        self.conn.commit()
        self.rows = len(orders)
        self.plans: dict[str, tuple[list[str], bool, bool]] = {}

    def _insert(self, orders: pd.DataFrame) -> None:
        self.conn.executemany(
            "INSERT INTO orders VALUES (?,?,?,?,?,?)",
            orders[list(ORDERS_COLUMNS)].itertuples(index=False, name=None),
        )

    def plan(self, sql: str, params: tuple[Any, ...]) -> tuple[list[str], bool, bool]:
        """``EXPLAIN QUERY PLAN`` of ``sql``: its lines, whether ``orders`` is read through an
        index, and whether it is scanned whole without one (cached per statement)."""
        known = self.plans.get(sql)
        if known is None:
            rows = self.conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
            lines = [str(r[3]) for r in rows]
            on_orders = [line for line in lines if " orders" in f" {line}"]
            uses = any("INDEX" in line for line in on_orders)
            full = any(line.startswith("SCAN orders") and "INDEX" not in line for line in lines)
            known = (lines, uses, full)
            self.plans[sql] = known
        return known

    def query(self, query: Query, explain: bool) -> PartResult:
        """Answer ``query`` from this database."""
        started = time.perf_counter()
        with self.lock:
            if isinstance(query, Insert):
                self._insert(pd.DataFrame(list(query.rows), columns=list(ORDERS_COLUMNS)))
                self.conn.commit()
                self.rows += len(query.rows)
                value: Any = {"inserted": len(query.rows)}
                return PartResult(value, 0, time.perf_counter() - started)
            sql, params, value, matched = self._read(query)
            lines, uses, full = self.plan(sql, params)
        scanned = (
            self.rows if lines and any(x.startswith("SCAN orders") for x in lines) else matched
        )
        return PartResult(
            value,
            int(scanned),
            time.perf_counter() - started,
            lines if explain else [],
            uses,
            full,
        )

    def _read(self, query: Query) -> tuple[str, tuple[Any, ...], Any, int]:
        """Run a read; return its main statement (for the plan), the answer and rows matched."""
        c = self.conn
        if isinstance(query, Lookup):
            where = f"WHERE {query.column} = ?"
            count = c.execute(f"SELECT count(*) FROM orders {where}", (query.value,)).fetchone()[0]
            sql = f"SELECT * FROM orders {where} ORDER BY order_id LIMIT ?"
            params: tuple[Any, ...] = (query.value, query.limit)
            rows = _records(c.execute(sql, params))
            return sql, params, {"count": count, "rows": rows}, count
        if isinstance(query, Range):
            where = f"WHERE {query.column} BETWEEN ? AND ?"
            bounds = (query.low, query.high)
            count, total = c.execute(
                f"SELECT count(*), coalesce(sum(amount), 0) FROM orders {where}", bounds
            ).fetchone()
            sql = f"SELECT * FROM orders {where} ORDER BY {query.column}, order_id LIMIT ?"
            params = (*bounds, query.limit)
            rows = _records(c.execute(sql, params))
            value = {"count": count, "amount_sum": float(total), "rows": rows}
            return sql, params, value, count
        if isinstance(query, GroupBy):
            where, params = _ts_where("orders", query.ts_low, query.ts_high)
            col = query.column
            sql = (
                f"SELECT {query.by}, count({col}), sum({col}), min({col}), max({col}) "
                f"FROM orders {where} GROUP BY {query.by}"
            )
            groups = {r[0]: [float(x) for x in r[1:]] for r in c.execute(sql, params)}
            return sql, params, groups, int(sum(g[0] for g in groups.values()))
        if isinstance(query, Join):
            where, params = _ts_where("orders", query.ts_low, query.ts_high)
            if query.customer is not None:
                where += (" AND " if where else "WHERE ") + "orders.customer_id = ?"
                params = (*params, query.customer)
            by = f"customers.{query.by}"
            sql = (
                f"SELECT {by}, count(*), sum(orders.amount), min(orders.amount), "
                f"max(orders.amount) FROM orders JOIN customers "
                f"ON orders.customer_id = customers.customer_id {where} GROUP BY {by}"
            )
            groups = {r[0]: [float(x) for x in r[1:]] for r in c.execute(sql, params)}
            return sql, params, groups, int(sum(g[0] for g in groups.values()))
        raise ValueError(f"unknown query {query!r}")

    def export(self) -> pd.DataFrame:
        """Every row of ``orders`` as a frame (to repartition it)."""
        with self.lock:
            frame = pd.read_sql_query("SELECT * FROM orders", self.conn)
        for column in ("region", "payload"):
            frame[column] = frame[column].astype("str")
        return frame

    def close(self) -> None:
        """Free the database."""
        with self.lock:
            self.conn.close()


def _records(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _ts_where(table: str, low: int | None, high: int | None) -> tuple[str, tuple[Any, ...]]:
    parts, params = [], []
    if low is not None:
        parts.append(f"{table}.ts >= ?")
        params.append(low)
    if high is not None:
        parts.append(f"{table}.ts <= ?")
        params.append(high)
    return ("WHERE " + " AND ".join(parts) if parts else ""), tuple(params)


_DATABASES: dict[str, Database] = {}
_REGISTRY_LOCK = threading.Lock()


def _worker() -> str:
    from scalelab.service.workloads import worker_address

    return worker_address()


def build_database(
    orders: pd.DataFrame, customers: pd.DataFrame, name: str, ddl: list[str]
) -> DbHandle:
    """Build the database ``name`` from a partition, in this worker's memory."""
    database = Database(name, orders, customers, ddl)
    with _REGISTRY_LOCK:
        old = _DATABASES.pop(name, None)
        _DATABASES[name] = database
    if old is not None:
        old.close()
    return DbHandle(name, _worker(), database.rows)


def _database(handle: DbHandle) -> Database:
    database = _DATABASES.get(handle.name)
    if database is None:
        raise LookupError(
            f"database {handle.name} is not on worker {_worker()} (it was built on "
            f"{handle.worker}); SQLite partitions are queried on their own worker"
        )
    return database


def run_db_query(handle: DbHandle, query: Query, explain: bool = False) -> PartResult:
    """Answer ``query`` from the database ``handle`` names (on this worker)."""
    return _database(handle).query(query, explain)


def export_database(handle: DbHandle) -> pd.DataFrame:
    """The rows of a database's ``orders`` (writes included), to repartition them."""
    return _database(handle).export()


def drop_databases(names: list[str]) -> int:
    """Free the named databases held by this worker; return how many there were."""
    dropped = 0
    with _REGISTRY_LOCK:
        found = [_DATABASES.pop(n) for n in names if n in _DATABASES]
    for database in found:
        database.close()
        dropped += 1
    return dropped


def database_count() -> int:
    """Databases this worker holds."""
    return len(_DATABASES)
