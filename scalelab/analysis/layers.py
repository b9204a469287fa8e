"""What each layer of the service's stack did during a run, from the service's own counters.

Every layer is measured the same way (see ``scalelab.service.stack``), so one
function reads them all, built-in or a student's: requests in, answers out by
status class, time spent inside the layer itself (excluding the rest of the
stack it called), and its own outcomes (``shed``, ``hit``, ``delayed``...).
Counters are read from ``metrics.parquet``: their last value (they start at 0
with the service, which starts with the run), or their increase over a window
given as Unix times (a labelled counter that had not appeared yet counts as 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scalelab.analysis.load import Run

LAYER_PREFIX = "scalelab_layer_"


def _labels(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in str(text).split(","):
        key, sep, value = part.partition("=")
        if sep:
            out[key] = value
    return out


def _increases(run: Run, window: tuple[float, float] | None) -> list[tuple[str, str, str, float]]:
    m = run.metrics
    if m.empty:
        return []
    sel = m.loc[(m["source"] == "service") & m["metric"].str.startswith(LAYER_PREFIX)]
    rows = []
    for (metric, labels), group in sel.groupby(["metric", "labels"], sort=True):
        ordered = group.sort_values("t")
        times = ordered["t"].to_numpy(dtype=float)
        values = ordered["value"].to_numpy(dtype=float)
        parsed = _labels(str(labels))
        layer = parsed.pop("layer", "")
        label = next(iter(parsed.values()), "")
        if window is None:
            increase = float(values[-1])  # the service, and its counters, started with the run
        else:
            increase = _value_at(times, values, window[1]) - _value_at(times, values, window[0])
        rows.append((str(metric), layer, label, increase))
    return rows


def _value_at(times: np.ndarray, values: np.ndarray, t: float) -> float:
    """A counter's value at ``t``: its last scrape then, 0 before it existed (a counter with
    labels appears at its first increment)."""
    i = int(np.searchsorted(times, t, side="right")) - 1
    return float(values[i]) if i >= 0 else 0.0


def layer_counters(run: Run, window: tuple[float, float] | None = None) -> pd.DataFrame:
    """Every layer counter's increase over the run: ``metric``, ``layer``, ``label``, ``value``.

    ``label`` is the counter's other label (``code`` or ``outcome``), empty when
    it has none. ``window`` (Unix times) limits the increase to the scrapes in it.
    """
    rows = _increases(run, window)
    frame = pd.DataFrame(rows, columns=["metric", "layer", "label", "value"])
    return frame.astype({"value": "float64"})


def layer_table(run: Run, window: tuple[float, float] | None = None) -> pd.DataFrame:
    """One row per layer: ``requests``, ``answers_<class>``, ``us_inside_per_request``, and a
    column per outcome (``outcome_hit``...), the layers most requests reached first."""
    table: dict[str, dict[str, float]] = {}
    for metric, layer, label, value in _increases(run, window):
        entry = table.setdefault(layer, {})
        name = metric.removeprefix(LAYER_PREFIX).removesuffix("_total")
        if name == "requests":
            entry["requests"] = value
        elif name == "seconds":
            entry["seconds_inside"] = value
        elif name == "responses":
            entry[f"answers_{label}"] = entry.get(f"answers_{label}", 0.0) + value
        elif name == "outcomes":
            entry[f"outcome_{label}"] = value
    if not table:
        return pd.DataFrame({"layer": pd.Series(dtype=object)})
    frame = pd.DataFrame.from_dict(table, orient="index").fillna(0.0)
    frame.index.name = "layer"
    frame = frame.reset_index()
    if "requests" not in frame:
        frame["requests"] = 0.0
    seconds = frame.pop("seconds_inside") if "seconds_inside" in frame else 0.0
    frame["us_inside_per_request"] = (seconds * 1e6 / frame["requests"]).where(
        frame["requests"] > 0
    )
    frame = frame.sort_values("requests", ascending=False, kind="stable")
    return frame.reset_index(drop=True)
