"""From a layer's :class:`~scalelab.service.request.Response` to an HTTP response."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi.responses import Response as HTTPResponse

from scalelab.service.request import Response

JSON = "application/json"


def render(response: Response, body: Callable[[Any], Any] | None = None) -> HTTPResponse:
    """The HTTP response: the layer's ``body`` if it set one, else ``body(value)``.

    ``body`` may return bytes (already JSON) or anything JSON can encode.
    """
    content = response.body
    if content is None:
        content = body(response.value) if body is not None else response.value
    if not isinstance(content, bytes):
        content = json.dumps(content, separators=(",", ":")).encode()
    return HTTPResponse(
        content, status_code=response.status, media_type=JSON, headers=response.headers
    )
