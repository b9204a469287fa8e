"""``admission``: load shedding. Over ``admission.max_in_flight`` requests, answer 503 at once.

A shed request gets ``Retry-After`` and never touches Dask, so an overloaded
service keeps answering quickly and its memory stays bounded. The count of
requests admitted is shared by every stack, so a configuration change never
admits more than the limit while the old stack drains.
"""

from __future__ import annotations

from typing import Any

from scalelab.config import AdmissionConfig
from scalelab.service.layer import Layer, LayerContext
from scalelab.service.request import Next, Request, Response, error


class _Gate:
    """Requests admitted and not yet answered."""

    __slots__ = ("inside",)

    def __init__(self) -> None:
        self.inside = 0


class Admission(Layer):
    """Sheds requests over ``max_in_flight`` with 503 and ``Retry-After``."""

    Params = AdmissionConfig

    def __init__(self, params: Any, context: LayerContext) -> None:
        super().__init__(params, context)
        self.gate: _Gate = context.shared.setdefault("admission.gate", _Gate())
        self._retry_after = {"Retry-After": str(params.retry_after_s)}
        self._detail = (
            f"over capacity: more than admission.max_in_flight={params.max_in_flight} "
            "requests in flight; retry later"
        )

    async def __call__(self, request: Request, next: Next) -> Response:
        """Admit the request, or shed it when the limit is reached."""
        gate = self.gate
        if gate.inside >= self.params.max_in_flight:
            self.context.metrics.rejected.inc()
            self.count("shed")
            return error(503, self._detail, self._retry_after)
        gate.inside += 1
        try:
            return await next(request)
        finally:
            gate.inside -= 1
