"""Tasks the router runs on the workers to lay partitions out and move them.

A (re)partitioning is a shuffle in three steps, each a Dask task on the worker
that holds its input, so rows travel between workers once and only when they
change worker:

1. :func:`split_frame`: one source (a file of the dataset, or a partition of
   the previous layout) is cut by the new partitioner into pieces, grouped by
   the worker each piece's partition will live on; it also counts the keys and
   rows that changed partition, and the bytes that must change worker;
2. :func:`pick_pieces`: the pieces of one source bound for one worker (the only
   data that crosses to that worker);
3. :func:`assemble`: a new partition from its pieces, sorted by the key when
   the router keeps divisions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from scalelab.data.partitioners import Partitioner, check_assignment
from scalelab.data.schema import NUMERIC_COLUMNS, ORDERS_COLUMNS


def frame_bytes(frame: pd.DataFrame) -> int:
    """Memory a frame takes (strings included)."""
    return int(frame.memory_usage(deep=True, index=False).sum())


def split_frame(
    frame: pd.DataFrame,
    partitioner: Partitioner,
    key: str,
    destinations: list[str],
    old_partition: int,
    here: str,
    name: str,
) -> dict[str, Any]:
    """Cut ``frame`` into pieces by ``partitioner``: ``{"pieces": {worker: {partition: rows}},
    "info": {...}}``; ``destinations[p]`` is the worker of new partition ``p``."""
    keys, inverse = np.unique(frame[key].to_numpy(), return_inverse=True)
    assigned = check_assignment(partitioner.partition_many(keys), len(destinations), name)
    per_row = assigned[inverse]
    pieces: dict[str, dict[int, pd.DataFrame]] = {}
    rows_to: dict[int, int] = {}
    bytes_away = 0
    for partition in np.unique(per_row).tolist():
        rows = frame.loc[per_row == partition]
        worker = destinations[partition]
        pieces.setdefault(worker, {})[partition] = rows
        rows_to[partition] = len(rows)
        if worker != here:
            bytes_away += frame_bytes(rows)
    moved = old_partition >= 0
    info = {
        "keys": len(keys),
        "keys_moved": int(np.count_nonzero(assigned != old_partition)) if moved else 0,
        "rows": len(frame),
        "rows_moved": int(np.count_nonzero(per_row != old_partition)) if moved else 0,
        "bytes_moved": bytes_away,
        "rows_to": rows_to,
    }
    return {"pieces": pieces, "info": info}


def pick_pieces(split: dict[str, Any], worker: str) -> dict[int, pd.DataFrame]:
    """The pieces of one split bound for ``worker``."""
    return dict(split["pieces"].get(worker, {}))


def pick_info(split: dict[str, Any]) -> dict[str, Any]:
    """What a split counted (small: sent to the service)."""
    return dict(split["info"])


def assemble(picks: list[dict[int, pd.DataFrame]], partition: int, key: str | None) -> pd.DataFrame:
    """Partition ``partition`` from the pieces every source sent; sorted by ``key`` if given."""
    parts = [p[partition] for p in picks if partition in p]
    if not parts:
        frame = pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in ORDERS_COLUMNS})
    else:
        frame = pd.concat(parts, ignore_index=True)
    if key is not None:
        frame = frame.sort_values([key, "order_id"], kind="stable")
    return frame.reset_index(drop=True)


def _dtype(column: str) -> str:
    return (
        "float64" if column == "amount" else ("str" if column in ("region", "payload") else "int64")
    )


def frame_meta(frame: pd.DataFrame, key: str) -> dict[str, Any]:
    """Rows, bytes, distinct keys and each numeric column's min and max (the zone map)."""
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    if len(frame):
        for column in NUMERIC_COLUMNS:
            values = frame[column]
            low[column], high[column] = values.min().item(), values.max().item()
    return {
        "rows": len(frame),
        "bytes": frame_bytes(frame),
        "keys": int(frame[key].nunique()),
        "low": low,
        "high": high,
    }


def copy_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a partition (a read replica on another worker)."""
    return frame.copy()


def transfers_since(
    cursors: dict[str, float], dask_worker: Any = None
) -> list[tuple[float, str, dict[str, int]]]:
    """Transfers this worker received since its cursor (its own clock): ``(stop, from, {key:
    bytes})``, from Dask's own log of incoming transfers (run with ``client.run``)."""
    if dask_worker is None:
        return []
    since = float(cursors.get(str(dask_worker.address), 0.0))
    return [
        (float(e["stop"]), str(e["who"]), {str(k): int(v or 0) for k, v in e["keys"].items()})
        for e in list(dask_worker.transfer_incoming_log)
        if float(e["stop"]) > since
    ]
