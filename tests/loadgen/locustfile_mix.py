"""A test scenario: a fixed cycle of /ping, /headers, /ping and /fail (a quarter fail)."""

from __future__ import annotations

import itertools
from typing import Any

from scalelab.loadgen import ScaleLabUser

_cycle = itertools.cycle(["/ping", "/headers", "/ping", "/fail"])


class Mix(ScaleLabUser):
    """Closed or open loop over the cycle of paths."""

    def call(self, ctx: dict[str, Any]) -> None:
        """One request, the next path of the cycle."""
        path = next(_cycle)
        self.client.get(path, name=path, context=ctx)
