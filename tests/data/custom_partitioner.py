"""Partitioners a student might write, loaded by ``module:Class`` in the tests."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from scalelab.data.partitioners import Partitioner


class Blocks(Partitioner):
    """Runs of ``block`` consecutive keys, dealt out in turn."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        block: int = 10

    def partition(self, key: int) -> int:
        return (key // self.params.block) % self.partitions


class OutOfRange(Partitioner):
    """A wrong partitioner: every key to a partition that does not exist."""

    def partition(self, key: int) -> int:
        return self.partitions
