"""The "ingress" fault point: a server stall, an added delay, injected errors.

Every data-plane request passes :meth:`Faults.at_ingress` after admission. An
experiment switches faults on at run time: ``POST /admin/stall?seconds=S``
holds every arriving request until the stall ends (the known stall that
coordinated-omission tests measure against), and ``PUT /admin/config`` with a
``faults`` section sets a delay or an error rate.
"""

from __future__ import annotations

import asyncio
import random
import time

from scalelab.config import FaultsConfig


class Faults:
    """Fault state of one service: the current ``faults`` config and any stall."""

    def __init__(self, config: FaultsConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.stall_until = 0.0
        self._rng = rng or random.Random()

    def stall(self, seconds: float) -> float:
        """Hold requests arriving in the next ``seconds``; return the stall's end (monotonic)."""
        self.stall_until = time.monotonic() + seconds
        return self.stall_until

    def stalled_for(self) -> float:
        """Seconds left in the current stall (0 when none)."""
        return max(0.0, self.stall_until - time.monotonic())

    async def at_ingress(self) -> bool:
        """Apply the faults to one request; return True when it must fail with an error."""
        if self.stall_until:
            while (left := self.stall_until - time.monotonic()) > 0:
                await asyncio.sleep(left)
        cfg = self.config
        if cfg.ingress_delay_ms > 0:
            await asyncio.sleep(cfg.ingress_delay_ms / 1000.0)
        return cfg.error_rate > 0 and self._rng.random() < cfg.error_rate
