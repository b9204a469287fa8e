"""The Universal Scalability Law (Gunther) fitted to a concurrency sweep.

X(N) = λN / (1 + σ(N − 1) + κN(N − 1)): λ is the throughput of one unit of
concurrency, σ the share of work that serialises (contention), κ the cost of
keeping units coherent with each other (crosstalk). With κ > 0 throughput peaks
at N* = sqrt((1 − σ)/κ) and then falls: adding concurrency past the knee hurts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit

from scalelab.errors import ScaleLabError


def usl_throughput(n: np.ndarray | float, lambda_: float, sigma: float, kappa: float) -> np.ndarray:
    """X(N) of the USL for concurrency ``n``."""
    n_arr = np.asarray(n, dtype=float)
    return lambda_ * n_arr / (1.0 + sigma * (n_arr - 1.0) + kappa * n_arr * (n_arr - 1.0))


@dataclass(frozen=True)
class USLFit:
    """A fitted USL: coefficients, the peak, and the fit's quality (R² on throughput)."""

    sigma: float
    kappa: float
    lambda_: float
    peak_concurrency: float
    peak_throughput: float
    r_squared: float

    def predict(self, n: np.ndarray | float | Sequence[float]) -> np.ndarray:
        """Throughput the fit predicts at concurrency ``n``."""
        return usl_throughput(np.asarray(n, dtype=float), self.lambda_, self.sigma, self.kappa)


def fit_usl(
    concurrency: Sequence[float] | np.ndarray, throughput: Sequence[float] | np.ndarray
) -> USLFit:
    """Fit σ, κ and λ to measured (concurrency, throughput) points by bounded least squares.

    Needs at least three distinct concurrency levels (three unknowns). σ is held
    in [0, 1], κ >= 0 and λ > 0, so the fit cannot return a physically
    meaningless curve. Repeats at one level may be given as separate points.
    """
    n = np.asarray(concurrency, dtype=float)
    x = np.asarray(throughput, dtype=float)
    if n.shape != x.shape or n.ndim != 1:
        raise ScaleLabError(
            f"fit_usl: concurrency ({n.shape}) and throughput ({x.shape}) "
            "must be 1-D and the same length"
        )
    keep = np.isfinite(n) & np.isfinite(x) & (n > 0)
    n, x = n[keep], x[keep]
    if len(np.unique(n)) < 3:
        raise ScaleLabError(
            "fit_usl: need throughput at three or more distinct concurrency levels "
            f"(got {sorted(set(n.tolist()))}); sweep more levels"
        )
    lam0 = float(np.max(x[n == n.min()] / n.min()))
    best: tuple[float, np.ndarray] | None = None
    for s0, k0 in ((0.05, 1e-4), (0.3, 1e-3), (0.01, 1e-2)):
        try:
            popt, _ = curve_fit(
                usl_throughput,
                n,
                x,
                p0=[lam0, s0, k0],
                bounds=([1e-12, 0.0, 0.0], [np.inf, 1.0, np.inf]),
                maxfev=20000,
            )
        except RuntimeError:
            continue
        sse = float(np.sum((usl_throughput(n, *popt) - x) ** 2))
        if best is None or sse < best[0]:
            best = (sse, popt)
    if best is None:
        raise ScaleLabError("fit_usl: the least-squares fit did not converge on these points")
    sse, (lam, sigma, kappa) = best
    sst = float(np.sum((x - x.mean()) ** 2))
    r2 = 1.0 - sse / sst if sst > 0 else float("nan")
    if kappa > 0:
        peak_n = math.sqrt(max(1.0 - sigma, 0.0) / kappa)
        peak_x = float(usl_throughput(peak_n, lam, sigma, kappa))
    else:
        peak_n = math.inf
        peak_x = lam / sigma if sigma > 0 else math.inf
    return USLFit(
        sigma=float(sigma),
        kappa=float(kappa),
        lambda_=float(lam),
        peak_concurrency=peak_n,
        peak_throughput=peak_x,
        r_squared=r2,
    )
