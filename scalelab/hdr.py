"""HdrHistogram helpers shared by the recorder (writes) and the analysis (reads).

Latency is recorded in microseconds with 3 significant digits, from 1 µs to one
hour. ``latency.hdr`` is an HdrHistogram interval log with one tagged line per
histogram (``Tag=intended,...`` and ``Tag=actual,...``), the text format every
HdrHistogram implementation reads. This module imports neither Dask nor pandas.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from pathlib import Path

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from scalelab.fileio import write_text

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
DIGITS = 3
TAGS = ("intended", "actual")


def new_histogram() -> HdrHistogram:
    """An empty latency histogram in microseconds."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def clamp_us(value: float) -> int:
    """A latency in µs clamped into the histogram's trackable range."""
    return int(min(max(value, LOWEST_US), HIGHEST_US))


def encode(hist: HdrHistogram) -> str:
    """The histogram as compressed base64 text (for logs and messages)."""
    payload = hist.encode()
    return payload.decode() if isinstance(payload, bytes) else str(payload)


def decode(payload: str | bytes) -> HdrHistogram:
    """A histogram from :func:`encode`'s text."""
    data = payload.encode() if isinstance(payload, str) else payload
    return HdrHistogram.decode(data)


def merge(hists: Iterable[HdrHistogram]) -> HdrHistogram:
    """One histogram holding every value of ``hists`` (exact; never an average)."""
    total = new_histogram()
    for h in hists:
        if h.get_total_count():
            total.add(h)
    return total


def write_log(
    path: str | Path, hists: Mapping[str, HdrHistogram], start_s: float, end_s: float
) -> None:
    """Write tagged histograms as an HdrHistogram interval log, atomically."""
    out = io.StringIO()
    out.write("#[Histogram log format version 1.3]\n")
    out.write(f"#[StartTime: {start_s:.3f} (seconds since epoch)]\n")
    out.write(f"#[BaseTime: {start_s:.3f} (seconds since epoch)]\n")
    out.write('"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n')
    length = max(end_s - start_s, 0.0)
    for tag, hist in hists.items():
        max_ms = hist.get_max_value() / 1000.0 if hist.get_total_count() else 0.0
        out.write(f"Tag={tag},0.000,{length:.3f},{max_ms:.3f},{encode(hist)}\n")
    write_text(path, out.getvalue())


def read_log(path: str | Path) -> dict[str, HdrHistogram]:
    """Read a log written by :func:`write_log`: one merged histogram per tag."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no HDR log here")
    result: dict[str, HdrHistogram] = {}
    reader = HistogramLogReader(str(p), new_histogram())
    try:
        while True:
            hist = reader.get_next_interval_histogram()
            if hist is None:
                break
            tag = hist.get_tag() or "intended"
            if tag in result:
                result[tag].add(hist)
            else:
                result[tag] = merge([hist])
    finally:
        reader.close()
    return result


def percentiles_ms(hist: HdrHistogram, points: Iterable[float]) -> dict[float, float]:
    """Latency at each percentile point (0-100) in milliseconds; NaN when empty."""
    count = hist.get_total_count()
    return {
        q: (hist.get_value_at_percentile(q) / 1000.0 if count else float("nan")) for q in points
    }
