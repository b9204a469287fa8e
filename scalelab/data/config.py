"""Configuration of the partitioning lab: the dataset, and the router that partitions it.

``[router]`` is the section of the ``router`` layer: how many partitions, which
partitioner maps keys to them, where they are placed, which engine holds them,
and what happens to a hot one. ``[router.dataset]`` says which dataset it loads
(and how to generate it when it is not there yet). A change of either at run
time (``PUT /admin/config``) builds a new router, which repartitions the data
from the old one while the old one keeps serving.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scalelab.data.schema import KEY_COLUMNS, ORDERS_COLUMNS

BUILTIN_PARTITIONERS: tuple[str, ...] = ("hash", "range", "consistent")
"""Partitioners the router knows by name; a user's is named ``module:Class``."""

SKEWS: tuple[str, ...] = ("uniform", "zipf", "hotspot")
"""Key distributions (of :mod:`scalelab.loadgen.keys`) the generator draws customers from."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatasetSpec(_Section):
    """What the generator writes: sizes, the skew of customers over orders, the seed."""

    rows: int = Field(default=1_000_000, ge=10, le=100_000_000, description="Orders.")
    customers: int = Field(default=10_000, ge=1, le=10_000_000, description="Customers.")
    skew: Literal["uniform", "zipf", "hotspot"] = Field(
        default="uniform", description="How orders are spread over customers."
    )
    alpha: float = Field(default=1.0, ge=0.0, le=5.0, description="zipf: the exponent.")
    hot_keys: float = Field(default=0.1, gt=0.0, le=1.0, description="hotspot: hot share of keys.")
    hot_share: float = Field(default=0.9, ge=0.0, le=1.0, description="hotspot: their share.")
    seed: int = Field(default=0, ge=0, description="The same seed writes the same data.")
    payload_bytes: int = Field(default=64, ge=0, le=4_096, description="Width of `payload`.")
    days: int = Field(default=365, ge=1, le=36_500, description="Span of `ts` from 2026-01-01.")


class DatasetConfig(DatasetSpec):
    """The dataset the router loads: a folder written by ``scalelab data generate``.

    An empty ``path`` names a folder under ``data/`` after the parameters, so
    each set of parameters has its own. With ``generate`` a missing dataset is
    written first (once; later runs reuse it).
    """

    path: str = Field(
        default="", description="Dataset folder; empty: data/orders-<parameters> (relative: cwd)."
    )
    generate: bool = Field(default=True, description="Write the dataset when it is not there.")

    def spec(self) -> DatasetSpec:
        """The generation parameters alone."""
        return DatasetSpec.model_validate(self.model_dump(exclude={"path", "generate"}))


class HotConfig(_Section):
    """What the router does with a hot partition (one far above the mean load).

    Every ``check_s`` the router compares each partition's requests over the
    last interval with the mean; above ``threshold`` times the mean (and with at
    least ``min_requests`` in the interval) it acts on the hottest partition:
    ``split`` divides its keys among ``ways`` partitions (a key hotter than the
    mean stays hot: its partition holds it whole), ``replicate`` adds copies on
    ``ways - 1`` more workers and spreads its reads over them (writes go to all).
    """

    mode: Literal["off", "split", "replicate"] = Field(default="off")
    threshold: float = Field(default=1.5, gt=1.0, le=1_000.0, description="Max over mean load.")
    ways: int = Field(default=4, ge=2, le=64, description="Parts of a split, or copies.")
    check_s: float = Field(default=2.0, gt=0.0, le=3_600.0, description="Seconds between checks.")
    min_requests: int = Field(default=100, ge=1, description="Requests a check needs to judge.")
    max_actions: int = Field(default=1, ge=1, le=64, description="Partitions acted on at most.")


_DDL = re.compile(r"^\s*CREATE\s+(UNIQUE\s+)?INDEX\s", re.IGNORECASE)


class RouterConfig(_Section):
    """The ``router`` layer: partitions, partitioner, placement, engine, indexes, hot partitions."""

    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    key: Literal["customer_id", "order_id"] = Field(
        default="customer_id", description="The column keys are partitioned by."
    )
    partitions: int = Field(default=8, ge=1, le=4_096, description="Partitions of the data.")
    partitioner: str = Field(
        default="hash",
        description="'hash' (modulo), 'range', 'consistent' (a hash ring), or a Partitioner "
        "as 'module:Class'.",
    )
    partitioner_params: dict[str, Any] = Field(
        default_factory=dict, description="Parameters of the partitioner, checked by its Params."
    )
    engine: Literal["memory", "sqlite"] = Field(
        default="memory",
        description="'memory': pandas partitions held by Dask on the workers; 'sqlite': an "
        "SQLite database per partition on its worker.",
    )
    divisions: bool = Field(
        default=True,
        description="Whether the router knows where keys are (the partitioner, each "
        "partition's min/max, partitions sorted by key); false: every query scans everything.",
    )
    placement: Literal["pinned", "free"] = Field(
        default="pinned",
        description="'pinned': a partition's queries run on its worker (workers=); 'free': "
        "the Dask scheduler chooses, moving data when it likes.",
    )
    index: list[str] = Field(
        default_factory=lambda: ["customer_id"],
        description="sqlite: columns of orders given an index each.",
    )
    index_ddl: list[str] = Field(
        default_factory=list, description="sqlite: CREATE INDEX statements of your own."
    )
    hot: HotConfig = Field(default_factory=HotConfig)

    @field_validator("partitioner")
    @classmethod
    def _partitioner(cls, v: str) -> str:
        if v not in BUILTIN_PARTITIONERS and ":" not in v:
            raise ValueError(
                f"partitioner must be one of {', '.join(BUILTIN_PARTITIONERS)} or 'module:Class'"
            )
        return v

    @field_validator("index")
    @classmethod
    def _index(cls, v: list[str]) -> list[str]:
        for column in v:
            if column not in ORDERS_COLUMNS:
                raise ValueError(
                    f"index: unknown column {column!r}; use columns of orders: "
                    + ", ".join(ORDERS_COLUMNS)
                )
        return v

    @field_validator("index_ddl")
    @classmethod
    def _ddl(cls, v: list[str]) -> list[str]:
        for i, statement in enumerate(v):
            if not _DDL.match(statement) or ";" in statement.strip().rstrip(";"):
                raise ValueError(
                    f"index_ddl.{i}: give one 'CREATE [UNIQUE] INDEX name ON orders(...)' "
                    f"statement per entry; got {statement!r}"
                )
        return v

    @model_validator(mode="after")
    def _engine_placement(self) -> RouterConfig:
        if self.engine == "sqlite" and self.placement == "free":
            raise ValueError(
                "placement = 'free' needs engine = 'memory': an SQLite database lives on the "
                "worker that built it, so its queries are always pinned there"
            )
        if self.key not in KEY_COLUMNS:  # pragma: no cover - Literal already checks it
            raise ValueError(f"key must be one of {KEY_COLUMNS}")
        return self
