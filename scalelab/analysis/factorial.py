"""2^k·r factorial designs, analysed as Jain teaches (The Art of Computer Systems
Performance Analysis, chapters 17 and 18).

k factors, each at two levels, every combination run r times. Coding each
factor's levels as −1 and +1, the response is modelled as

    y = q0 + Σ q_A·x_A + Σ q_AB·x_A·x_B + ... + e

and because the sign columns of a full factorial are orthogonal each effect is
estimated on its own: q_S is the mean, over the 2^k cells, of the cell's mean
response times the product of its signs for the factors in S. The total
variation SST = Σ(y − ȳ)² splits exactly into one sum of squares per effect,
SS_S = 2^k·r·q_S², and the experimental error SSE = Σ(y − ȳ_cell)²: the
*allocation of variation* says which factor (or interaction) explains what
share of everything the runs varied by. The error's share is what repeats are
for: with r ≥ 2, s_e² = SSE / (2^k (r − 1)) and each effect has the standard
deviation s_e / sqrt(2^k·r), which gives a t-interval per effect; an effect whose
interval includes zero is not distinguishable from noise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from scalelab.analysis.load import Experiment, Run
from scalelab.errors import ScaleLabError

ERROR = "error"
"""The name of the experimental error's line in an allocation of variation."""


@dataclass(frozen=True)
class Effect:
    """One effect of a 2^k·r design: a factor (``("size",)``) or an interaction.

    ``estimate`` is q in the response's unit: half the difference the factor
    makes between its low and high level. ``share`` is SS/SST, the part of the
    total variation this effect explains. ``ci_low``/``ci_high`` bound q at the
    design's confidence (NaN without repeats); ``significant`` when they exclude 0.
    """

    factors: tuple[str, ...]
    estimate: float
    sum_of_squares: float
    share: float
    ci_low: float
    ci_high: float

    @property
    def name(self) -> str:
        """``size`` for a main effect, ``policy:size`` for an interaction."""
        return ":".join(self.factors)

    @property
    def significant(self) -> bool:
        """True when the confidence interval of the effect excludes zero."""
        return bool(self.ci_low > 0 or self.ci_high < 0)


@dataclass(frozen=True)
class FactorialResult:
    """The analysis of a 2^k·r design: the mean, every effect, and the error.

    ``levels`` maps each factor to its (low, high) level, the −1 and +1 of the
    sign table. ``sst`` is the total variation, ``sse`` the part the model
    leaves to experimental error, ``s_e`` the error's standard deviation and
    ``dof`` its degrees of freedom, 2^k(r − 1).
    """

    response: str
    factors: tuple[str, ...]
    levels: dict[str, tuple[Any, Any]]
    replications: int
    mean: float
    effects: tuple[Effect, ...]
    sst: float
    sse: float
    s_e: float
    dof: int
    confidence: float
    cells: pd.DataFrame

    @property
    def error_share(self) -> float:
        """SSE/SST: the share of the variation no factor explains."""
        return self.sse / self.sst if self.sst > 0 else math.nan

    def effect(self, name: str) -> Effect:
        """The effect called ``name`` (``"size"``, ``"policy:size"``, in any factor order)."""
        wanted = set(name.split(":"))
        for effect in self.effects:
            if set(effect.factors) == wanted:
                return effect
        names = ", ".join(e.name for e in self.effects)
        raise ScaleLabError(f"no effect {name!r} in this design; its effects are {names}")

    def largest(self) -> Effect:
        """The effect that explains the largest share of the variation."""
        return max(self.effects, key=lambda e: e.sum_of_squares)

    def allocation(self) -> pd.DataFrame:
        """One row per effect and one for the error: sum of squares and share of SST."""
        rows = [
            {"effect": e.name, "sum_of_squares": e.sum_of_squares, "share": e.share}
            for e in self.effects
        ]
        rows.append({"effect": ERROR, "sum_of_squares": self.sse, "share": self.error_share})
        return pd.DataFrame(rows).sort_values("share", ascending=False, ignore_index=True)

    def table(self) -> pd.DataFrame:
        """One row per effect: estimate, confidence interval, share, significance."""
        return pd.DataFrame(
            [
                {
                    "effect": e.name,
                    "estimate": e.estimate,
                    "ci_low": e.ci_low,
                    "ci_high": e.ci_high,
                    "share": e.share,
                    "significant": e.significant,
                }
                for e in self.effects
            ]
        )


def _frame(data: pd.DataFrame | Experiment | Sequence[Run]) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Experiment):
        return data.table
    runs = list(data)
    if runs and all(isinstance(r, Run) for r in runs):
        rows = []
        for run in runs:
            row: dict[str, Any] = {"run_id": run.run_id, **run.params}
            row.update({k: v for k, v in run.summary.items() if not isinstance(v, dict)})
            rows.append(row)
        return pd.DataFrame(rows)
    raise ScaleLabError(
        "factorial_design: pass a DataFrame with one row per run, an Experiment, or a list of runs"
    )


def _column(frame: pd.DataFrame, name: str) -> str:
    """``name`` itself, or the one column whose last dotted part is ``name``."""
    if name in frame.columns:
        return name
    matches = [c for c in frame.columns if str(c).rsplit(".", 1)[-1] == name]
    if len(matches) == 1:
        return str(matches[0])
    raise ScaleLabError(
        f"factorial_design: no column {name!r}"
        + (f" (several end in it: {matches})" if matches else "")
        + f"; the columns are {', '.join(map(str, frame.columns))}"
    )


def _two_levels(values: pd.Series, factor: str, given: Sequence[Any] | None) -> tuple[Any, Any]:
    found = list(dict.fromkeys(values.tolist()))
    if given is not None:
        if len(given) != 2 or set(map(str, found)) != set(map(str, given)):
            raise ScaleLabError(
                f"factorial_design: levels of {factor!r} are {found}, not the given {list(given)}"
            )
        return given[0], given[1]
    if len(found) != 2:
        raise ScaleLabError(
            f"factorial_design: factor {factor!r} takes {len(found)} values ({found}); "
            "a 2^k design needs exactly two levels per factor"
        )
    try:
        low, high = sorted(found)
    except TypeError:
        low, high = sorted(found, key=str)
    return low, high


def factorial_design(
    data: pd.DataFrame | Experiment | Sequence[Run],
    factors: Sequence[str],
    response: str,
    *,
    levels: Mapping[str, Sequence[Any]] | None = None,
    confidence: float = 0.90,
) -> FactorialResult:
    """Analyse a full 2^k·r factorial design: effects, allocation of variation, intervals.

    ``data`` holds one row per run (an experiment's ``table``, ``caching_table``
    of it, or any frame); ``factors`` are k columns with two values each (a
    dotted parameter such as ``service.cache.size`` may be named by its last
    part, ``size``); ``response`` the column measured. Every one of the 2^k
    combinations must appear the same number of times r (the repeats).
    ``levels`` fixes which value of a factor is its low (−1) and high (+1)
    level; by default the smaller (or alphabetically first) value is low.
    Confidence intervals use Student's t with 2^k(r − 1) degrees of freedom
    (90 % by default, as in Jain's examples) and need r ≥ 2.
    """
    if not 0.0 < confidence < 1.0:
        raise ScaleLabError(f"confidence={confidence}: give a fraction such as 0.90")
    if not factors:
        raise ScaleLabError("factorial_design: name at least one factor")
    frame = _frame(data)
    factor_cols = [_column(frame, f) for f in factors]
    if len(set(factor_cols)) != len(factor_cols):
        raise ScaleLabError(f"factorial_design: factors {list(factors)} name the same column twice")
    response_col = _column(frame, response)
    y_all = pd.to_numeric(frame[response_col], errors="coerce")
    if y_all.isna().any():
        bad = frame.loc[y_all.isna()].index.tolist()
        raise ScaleLabError(
            f"factorial_design: {response!r} is missing or not a number in rows {bad}; "
            "a failed run has no figures: rerun it or leave the whole design out"
        )
    k = len(factors)
    given = dict(levels or {})
    lv: dict[str, tuple[Any, Any]] = {}
    signs = np.empty((len(frame), k))
    for j, (name, col) in enumerate(zip(factors, factor_cols, strict=True)):
        low, high = _two_levels(frame[col], name, given.get(name))
        lv[name] = (low, high)
        signs[:, j] = np.where(frame[col].astype(str) == str(high), 1.0, -1.0)
    cell_keys = [tuple(row) for row in signs.astype(int).tolist()]
    y = y_all.to_numpy(dtype=float)
    cells: dict[tuple[int, ...], list[float]] = {}
    for key, value in zip(cell_keys, y, strict=True):
        cells.setdefault(key, []).append(float(value))
    all_cells = list(itertools.product((-1, 1), repeat=k))
    missing = [c for c in all_cells if c not in cells]
    if missing:
        names = [
            ", ".join(f"{f}={lv[f][(s + 1) // 2]!r}" for f, s in zip(factors, c, strict=True))
            for c in missing
        ]
        raise ScaleLabError(
            f"factorial_design: a full 2^{k} design needs every combination; missing: "
            + "; ".join(names)
        )
    counts = {len(v) for v in cells.values()}
    if len(counts) != 1:
        raise ScaleLabError(
            "factorial_design: every combination needs the same number of repeats; "
            f"found {sorted(counts)}"
        )
    r = counts.pop()
    cell_signs = np.array(all_cells, dtype=float)
    cell_means = np.array([np.mean(cells[c]) for c in all_cells])
    n_cells = 2**k
    q0 = float(cell_means.mean())
    sse = float(sum(((np.asarray(cells[c]) - np.mean(cells[c])) ** 2).sum() for c in all_cells))
    sst = float(((y - y.mean()) ** 2).sum())
    dof = n_cells * (r - 1)
    s_e = math.sqrt(sse / dof) if dof > 0 else math.nan
    s_q = s_e / math.sqrt(n_cells * r) if dof > 0 else math.nan
    t = float(stats.t.ppf(0.5 + confidence / 2.0, dof)) if dof > 0 else math.nan
    effects = []
    for size in range(1, k + 1):
        for subset in itertools.combinations(range(k), size):
            column = np.prod(cell_signs[:, list(subset)], axis=1)
            q = float((column * cell_means).sum() / n_cells)
            ss = n_cells * r * q * q
            effects.append(
                Effect(
                    factors=tuple(factors[i] for i in subset),
                    estimate=q,
                    sum_of_squares=ss,
                    share=ss / sst if sst > 0 else math.nan,
                    ci_low=q - t * s_q,
                    ci_high=q + t * s_q,
                )
            )
    cell_frame = pd.DataFrame(
        [
            {
                **{f: lv[f][(s + 1) // 2] for f, s in zip(factors, c, strict=True)},
                "mean": float(np.mean(cells[c])),
                "repeats": len(cells[c]),
            }
            for c in all_cells
        ]
    )
    return FactorialResult(
        response=response,
        factors=tuple(factors),
        levels=lv,
        replications=r,
        mean=q0,
        effects=tuple(effects),
        sst=sst,
        sse=sse,
        s_e=s_e,
        dof=dof,
        confidence=confidence,
        cells=cell_frame,
    )
