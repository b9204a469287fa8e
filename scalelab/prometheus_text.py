"""Prometheus text exposition, read with ``prometheus_client``'s own parser.

One reader for everything that looks at a ``/metrics`` page (the fault
schedule's first-request clock, the scraper, the tests, the benchmarks), so
that escaped label values, timestamps, exemplars and metric names that share a
prefix are read as the format says rather than as a line split guesses.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def samples(text: str) -> Iterator[Sample]:
    """Every sample of a page, in order (``*_total``, ``*_bucket``, ``*_created`` ... by name)."""
    for family in text_string_to_metric_families(text):
        yield from family.samples


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``; 0 when none.

    ``metric_value(page, "scalelab_requests_total", endpoint="/ping")`` adds the
    ``/ping`` requests of every status; with no labels it adds every series.
    """
    total = 0.0
    for sample in samples(text):
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            total += float(sample.value)
    return total
