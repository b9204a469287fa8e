"""The dataset on disk: Parquet files partitioned by hash of a key, by range of a key, or by a
column, described by ``dataset.json``.

::

    <dataset>/
      dataset.json              the generator's parameters, the layout, every file with its
                                rows and each numeric column's min and max
      customers.parquet
      orders/part-00000.parquet ...             hash: <key> or range: <key>
      orders/region=eu/part-00000.parquet ...   column: region (Hive-style folders)

A dataset is written into a temporary folder and renamed into place, so a
reader never sees half of one. The service loads every file (on the workers)
and repartitions the rows by its own partitioner, whatever the layout on disk;
the layout is what a reader of the files (Dask, DuckDB, Spark) would prune by.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from scalelab.data.config import DatasetConfig, DatasetSpec
from scalelab.data.generate import generate_customers, generate_orders
from scalelab.data.hashing import mix64
from scalelab.data.schema import KEY_COLUMNS, NUMERIC_COLUMNS, ORDERS_COLUMNS
from scalelab.errors import ConfigError

FORMAT = 1
"""Version of ``dataset.json``."""

LayoutKind = Literal["hash", "range", "column"]
LAYOUTS: tuple[str, ...] = ("hash", "range", "column")


@dataclass(frozen=True)
class Layout:
    """How orders are split into files: ``kind`` of ``column`` into ``files`` files."""

    kind: LayoutKind = "hash"
    column: str = "customer_id"
    files: int = 8

    @classmethod
    def parse(cls, text: str, files: int = 8) -> Layout:
        """``hash:customer_id``, ``range:order_id`` or ``column:region`` (the column optional)."""
        kind, _, column = text.partition(":")
        if kind not in LAYOUTS:
            raise ConfigError(
                f"--partition-by {text!r}: use hash[:key], range[:key] or column[:name]"
            )
        column = column or ("region" if kind == "column" else "customer_id")
        allowed = ("region",) if kind == "column" else KEY_COLUMNS
        if column not in allowed:
            raise ConfigError(
                f"--partition-by {text!r}: {kind} partitions by one of {', '.join(allowed)}"
            )
        if files < 1:
            raise ConfigError(f"--files {files}: give at least 1")
        return cls(kind, column, files)  # type: ignore[arg-type]


@dataclass
class DatasetInfo:
    """What ``dataset.json`` says about a dataset folder."""

    path: Path
    spec: DatasetSpec
    layout: Layout
    rows: int
    customers: int
    ts_min: int
    ts_max: int
    files: list[dict[str, Any]] = field(default_factory=list)

    def orders_files(self) -> list[str]:
        """Paths of the orders files, relative to the folder."""
        return [f["path"] for f in self.files]

    def describe(self) -> dict[str, Any]:
        """The JSON ``GET /data/info`` answers with."""
        return {
            "path": str(self.path),
            "rows": self.rows,
            "customers": self.customers,
            "ts_min": self.ts_min,
            "ts_max": self.ts_max,
            "layout": {"kind": self.layout.kind, "column": self.layout.column},
            "files": len(self.files),
            "spec": self.spec.model_dump(),
            "columns": list(ORDERS_COLUMNS),
        }


def default_path(spec: DatasetSpec) -> Path:
    """``data/orders-<rows>r-<customers>c-<skew>-s<seed>-<digest>``: one folder per spec."""
    digest = hashlib.sha256(json.dumps(spec.model_dump(), sort_keys=True).encode()).hexdigest()
    name = f"orders-{spec.rows}r-{spec.customers}c-{spec.skew}-s{spec.seed}-{digest[:8]}"
    return Path("data") / name


def _stats(frame: pd.DataFrame) -> tuple[dict[str, Any], dict[str, Any]]:
    lo: dict[str, Any] = {}
    hi: dict[str, Any] = {}
    for column in NUMERIC_COLUMNS:
        values = frame[column]
        if len(values):
            lo[column], hi[column] = values.min().item(), values.max().item()
    return lo, hi


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def split_for_layout(orders: pd.DataFrame, layout: Layout) -> list[tuple[str, pd.DataFrame]]:
    """The orders cut into the layout's files: ``(relative path, rows)`` each."""
    if layout.kind == "column":
        return [
            (f"orders/{layout.column}={value}/part-00000.parquet", group.reset_index(drop=True))
            for value, group in orders.groupby(layout.column, sort=True)
        ]
    keys = orders[layout.column].to_numpy()
    n = layout.files
    if layout.kind == "hash":
        assign = (mix64(keys) % np.uint64(n)).astype(np.int64)
    else:
        order = np.sort(keys)
        bounds = order[np.linspace(0, len(order), n + 1).astype(int)[1:-1]] if len(order) else []
        assign = np.searchsorted(np.asarray(bounds), keys, side="right")
    out = []
    for i in range(n):
        part = orders.loc[assign == i]
        if layout.kind == "range":
            part = part.sort_values(layout.column, kind="stable")
        out.append((f"orders/part-{i:05d}.parquet", part.reset_index(drop=True)))
    return out


def write_dataset(spec: DatasetSpec, path: str | Path, layout: Layout | None = None) -> DatasetInfo:
    """Generate the tables of ``spec`` and write them as a dataset folder at ``path``.

    Written into a temporary folder beside ``path`` and renamed into place; an
    existing folder is replaced only once the new one is complete.
    """
    layout = layout or Layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{time.monotonic_ns()}"
    try:
        orders = generate_orders(spec)
        customers = generate_customers(spec)
        files = []
        for rel, frame in split_for_layout(orders, layout):
            _write_parquet(frame, tmp / rel)
            lo, hi = _stats(frame)
            files.append({"path": rel, "rows": len(frame), "min": lo, "max": hi})
        _write_parquet(customers, tmp / "customers.parquet")
        ts = orders["ts"]
        meta = {
            "format": FORMAT,
            "spec": spec.model_dump(),
            "layout": {"kind": layout.kind, "column": layout.column, "files": layout.files},
            "rows": len(orders),
            "customers": len(customers),
            "ts_min": int(ts.min()) if len(ts) else 0,
            "ts_max": int(ts.max()) if len(ts) else 0,
            "files": files,
            "written_at": time.time(),
        }
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=1))
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}-{time.monotonic_ns()}"
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.replace(tmp, target)
            except OSError:  # another process wrote the same dataset meanwhile: keep theirs
                if not (target / "dataset.json").is_file():
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return read_info(target)


def read_info(path: str | Path) -> DatasetInfo:
    """The dataset described by ``path/dataset.json``; :class:`ConfigError` naming it otherwise."""
    p = Path(path)
    meta_path = p / "dataset.json"
    if not meta_path.is_file():
        raise ConfigError(
            f"{p}: no dataset here (no dataset.json); write one with "
            f"`scalelab data generate --out {p}` or set router.dataset.generate = true"
        )
    try:
        meta = json.loads(meta_path.read_text())
        layout = meta["layout"]
        return DatasetInfo(
            path=p.resolve(),
            spec=DatasetSpec.model_validate(meta["spec"]),
            layout=Layout(layout["kind"], layout["column"], int(layout.get("files", 0))),
            rows=int(meta["rows"]),
            customers=int(meta["customers"]),
            ts_min=int(meta["ts_min"]),
            ts_max=int(meta["ts_max"]),
            files=list(meta["files"]),
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{meta_path}: not a dataset description ({exc}); rewrite it") from None


def ensure_dataset(config: DatasetConfig) -> DatasetInfo:
    """The dataset ``config`` names, generated first when it is absent and ``generate`` is on.

    A folder that holds a dataset of other parameters is an error naming both,
    never overwritten.
    """
    spec = config.spec()
    path = Path(config.path) if config.path else default_path(spec)
    if not (path / "dataset.json").is_file():
        if not config.generate:
            raise ConfigError(
                f"router.dataset.path = {str(path)!r}: no dataset there; generate it "
                f"(`scalelab data generate --out {path}`) or set router.dataset.generate = true"
            )
        with contextlib.suppress(FileExistsError):
            write_dataset(spec, path)
    info = read_info(path)
    if config.generate and info.spec != spec:
        differ = [k for k, v in spec.model_dump().items() if getattr(info.spec, k) != v]
        raise ConfigError(
            f"router.dataset: {path} holds a dataset of other parameters "
            f"({', '.join(f'{k}={getattr(info.spec, k)!r}' for k in differ)}); give another "
            "path, leave path empty (a folder per set of parameters), or set generate = false "
            "to load it as it is"
        )
    return info


def read_orders_file(dataset: str, relative: str) -> pd.DataFrame:
    """One orders file of a dataset as a frame (run on a worker)."""
    frame = pq.read_table(Path(dataset) / relative).to_pandas()
    if "region" not in frame.columns:  # Hive layout: the folder name holds it
        for part in Path(relative).parts:
            name, sep, value = part.partition("=")
            if sep and name == "region":
                frame["region"] = pd.array([value] * len(frame), dtype="str")
    return frame[list(ORDERS_COLUMNS)]


def read_customers(dataset: str) -> pd.DataFrame:
    """The customers table of a dataset."""
    return pq.read_table(Path(dataset) / "customers.parquet").to_pandas()
