"""Input checks of the endpoints: a 422 in FastAPI's error shape that names the parameter."""

from __future__ import annotations

import math
import re
from typing import Any

from fastapi.responses import JSONResponse

KEY_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,200}")
"""What a key of ``/task/key/{key}`` and ``/kv/{key}`` may be."""


def invalid(param: str, message: str, value: Any, where: str = "query") -> JSONResponse:
    """A 422 in FastAPI's validation-error shape, naming the parameter."""
    shown = value if isinstance(value, str | int | bool) or value is None else str(value)
    return JSONResponse(
        {
            "detail": [
                {
                    "type": "value_error",
                    "loc": [where, param],
                    "msg": f"{param}: {message}",
                    "input": shown,
                }
            ]
        },
        status_code=422,
    )


def bad_key(key: str) -> JSONResponse | None:
    """422 naming the key when it is not 1 to 200 of letters, digits, ``. _ : -``."""
    if KEY_PATTERN.fullmatch(key):
        return None
    return invalid(
        "key", "use 1 to 200 letters, digits, '.', '_', ':' or '-'", key[:200], where="path"
    )


def out_of_range(
    param: str, value: float, low: float, high: float, limit: str
) -> JSONResponse | None:
    """422 when ``value`` is not within ``[low, high]`` (or not finite), else None."""
    if not math.isfinite(value) or value < low or value > high:
        return invalid(
            param, f"must be between {low:g} and {high:g} ({limit}); got {value!r}", value
        )
    return None


def int_param(name: str, text: str, high: float) -> tuple[int | None, JSONResponse | None]:
    """A whole-number query parameter within ``[0, high]``, or the 422 that names it."""
    try:
        value = int(text)
    except ValueError:
        return None, invalid(name, "Input should be a valid integer", text)
    return value, out_of_range(name, value, 0, high, f"limits.max_{_LIMIT[name]}")


def float_param(name: str, text: str, high: float) -> tuple[float | None, JSONResponse | None]:
    """A number query parameter within ``[0, high]``, or the 422 that names it."""
    try:
        value = float(text)
    except ValueError:
        return None, invalid(name, "Input should be a valid number", text)
    return value, out_of_range(name, value, 0, high, f"limits.max_{_LIMIT[name]}")


_LIMIT = {"units": "cpu_units", "io_ms": "io_ms"}
