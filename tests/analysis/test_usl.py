"""The Universal Scalability Law fit recovers known coefficients."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scalelab.analysis import fit_usl, usl_throughput
from scalelab.errors import ScaleLabError


def test_fit_recovers_sigma_kappa_and_the_peak() -> None:
    lam, sigma, kappa = 120.0, 0.05, 0.002
    n = np.array([1, 2, 4, 8, 12, 16, 24, 32, 48, 64], dtype=float)
    rng = np.random.default_rng(0)
    n_rep = np.repeat(n, 3)
    x = usl_throughput(n_rep, lam, sigma, kappa) * rng.normal(1.0, 0.01, len(n_rep))
    fit = fit_usl(n_rep, x)
    assert fit.sigma == pytest.approx(sigma, abs=0.01)
    assert fit.kappa == pytest.approx(kappa, rel=0.2)
    assert fit.lambda_ == pytest.approx(lam, rel=0.03)
    true_peak = math.sqrt((1 - sigma) / kappa)
    assert fit.peak_concurrency == pytest.approx(true_peak, rel=0.1)
    assert fit.peak_throughput == pytest.approx(
        float(usl_throughput(true_peak, lam, sigma, kappa)), rel=0.03
    )
    assert fit.r_squared > 0.98
    assert fit.predict([1, 64]) == pytest.approx(
        usl_throughput(np.array([1, 64]), lam, sigma, kappa), rel=0.05
    )


def test_pure_contention_has_no_peak() -> None:
    n = np.array([1, 2, 4, 8, 16, 32], dtype=float)
    fit = fit_usl(n, usl_throughput(n, 50.0, 0.1, 0.0))
    assert fit.kappa == pytest.approx(0.0, abs=1e-5)
    assert fit.sigma == pytest.approx(0.1, abs=1e-3)
    assert fit.peak_concurrency > 1000 or math.isinf(fit.peak_concurrency)


def test_too_few_levels_is_an_error() -> None:
    with pytest.raises(ScaleLabError, match="three or more distinct concurrency levels"):
        fit_usl([1, 1, 2], [10, 11, 19])
    with pytest.raises(ScaleLabError, match="same length"):
        fit_usl([1, 2, 3], [10, 20])
