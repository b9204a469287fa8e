"""Turn pydantic validation errors into messages that name the field and the fix."""

from __future__ import annotations

from pydantic import ValidationError


def describe_validation_error(exc: ValidationError, source: str, prefix: str = "") -> str:
    """Return one line per problem: ``source: field.path: what is wrong (got ...)``."""
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if prefix:
            loc = f"{prefix}.{loc}" if loc else prefix
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling"
        got = err.get("input")
        got_text = "" if err["type"] in ("missing", "extra_forbidden") else f" (got {got!r})"
        lines.append(f"  {loc or '<root>'}: {msg}{got_text}")
    return "\n".join(lines)
