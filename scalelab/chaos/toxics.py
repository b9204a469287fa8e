"""Toxics of the fault proxy, with Toxiproxy's names, attributes and meaning.

A toxic acts on one direction of a proxied link: ``upstream`` (client to
server) or ``downstream`` (server to client), on a share ``toxicity`` of the
connections (drawn once per connection and toxic). Attributes as Toxiproxy's:

- ``latency``: ``latency`` ms added to each chunk, ``jitter`` ms up or down (uniform);
- ``bandwidth``: at most ``rate`` KB/s;
- ``slow_close``: the close is delayed by ``delay`` ms;
- ``timeout``: no data passes (it is dropped); the connection is closed after
  ``timeout`` ms, or never with 0 (data is dropped until the toxic is removed);
- ``reset_peer``: the connection is reset (TCP RST) after ``timeout`` ms;
- ``limit_data``: the connection is closed once ``bytes`` have passed;
- ``slicer``: data is cut into slices of ``average_size`` (+/- ``size_variation``)
  bytes, ``delay`` µs apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TOXIC_ATTRIBUTES: dict[str, dict[str, float]] = {
    "latency": {"latency": 0, "jitter": 0},
    "bandwidth": {"rate": 0},
    "slow_close": {"delay": 0},
    "timeout": {"timeout": 0},
    "reset_peer": {"timeout": 0},
    "limit_data": {"bytes": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},
}
"""Every toxic type with its attributes and their defaults."""

STREAMS = ("upstream", "downstream")


class ToxicError(ValueError):
    """A toxic that cannot be made; the message names the field."""


@dataclass
class Toxic:
    """One toxic on a proxy: its name, type, direction, toxicity and attributes."""

    name: str
    type: str
    stream: str = "downstream"
    toxicity: float = 1.0
    attributes: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Toxic:
        """A toxic from Toxiproxy's JSON (``type``, ``stream``, ``toxicity``, ``attributes``)."""
        kind = body.get("type")
        if kind not in TOXIC_ATTRIBUTES:
            raise ToxicError(f"type {kind!r}: use one of {', '.join(TOXIC_ATTRIBUTES)}")
        stream = body.get("stream") or "downstream"
        if stream not in STREAMS:
            raise ToxicError(f"stream {stream!r}: use upstream or downstream")
        toxicity = float(body.get("toxicity", 1.0))
        if not 0.0 <= toxicity <= 1.0:
            raise ToxicError(f"toxicity {toxicity}: give a share between 0 and 1")
        attributes = dict(TOXIC_ATTRIBUTES[kind])
        for key, value in (body.get("attributes") or {}).items():
            if key not in attributes:
                raise ToxicError(
                    f"attributes.{key}: {kind} takes {', '.join(attributes) or 'none'}"
                )
            try:
                attributes[key] = float(value)
            except (TypeError, ValueError):
                raise ToxicError(f"attributes.{key}: a number, not {value!r}") from None
            if attributes[key] < 0:
                raise ToxicError(f"attributes.{key}: must not be negative")
        name = str(body.get("name") or f"{kind}_{stream}")
        return cls(name, str(kind), stream, toxicity, attributes)

    def to_json(self) -> dict[str, Any]:
        """Toxiproxy's JSON form."""
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }
