"""Prometheus series a run's scraper recorded, read back: histograms as bucket bounds and counts.

``metrics.parquet`` holds every scraped sample in long form (``t``, ``source``,
``metric``, ``labels``, ``value``), labels as ``name=value`` pairs joined by
commas. A Prometheus histogram is a set of cumulative counters, one per upper
bound ``le`` (the last ``+Inf``); :func:`histogram_buckets` returns them as of
the run's last scrape, which is what a dashboard querying that instance sees.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from scalelab.analysis.load import Run
from scalelab.errors import ScaleLabError

REQUEST_DURATION = "scalelab_request_duration_seconds"


def parse_labels(text: str) -> dict[str, str]:
    """``"endpoint=/task/io,le=0.5"`` as ``{"endpoint": "/task/io", "le": "0.5"}``."""
    labels: dict[str, str] = {}
    for part in str(text or "").split(","):
        name, sep, value = part.partition("=")
        if sep:
            labels[name.strip()] = value.strip().strip('"')
    return labels


def histogram_buckets(
    run: Run,
    metric: str = REQUEST_DURATION,
    source: str = "service",
    match: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Upper bounds ``le`` (ascending, the last ``inf``) and cumulative counts at the last scrape.

    Series of the histogram that differ in other labels (for example one per
    endpoint) are added together unless ``match`` picks some by their labels.
    """
    m = run.metrics
    rows = m[(m["metric"] == f"{metric}_bucket") & (m["source"] == source)]
    if rows.empty:
        raise ScaleLabError(
            f"{run.path}: no {metric}_bucket series from {source!r} in metrics.parquet"
        )
    last = rows[rows["t"] == rows["t"].max()]
    counts: dict[float, float] = {}
    for labels_text, value in zip(last["labels"], last["value"], strict=True):
        labels = parse_labels(labels_text)
        if match and any(labels.get(k) != v for k, v in match.items()):
            continue
        le = labels.get("le")
        if le is None:
            continue
        bound = math.inf if le in ("+Inf", "Inf", "inf") else float(le)
        counts[bound] = counts.get(bound, 0.0) + float(value)
    if not counts:
        raise ScaleLabError(f"{run.path}: no {metric} buckets match {dict(match or {})}")
    bounds = np.array(sorted(counts))
    return bounds, np.array([counts[b] for b in bounds])
