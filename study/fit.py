"""Least-squares fit of a saturating power law L(C) = a * C^-b + c (numpy only; scipy is not needed).

For a fixed offset c the model is linear in log space: log(L - c) = log a - b log C, so a and b come from a
linear regression. The offset is found by minimizing the squared error of L itself (not of its log) over a
grid of c in [0, min(L)), refined around the best grid point several times. With exactly 3 points the
three parameters interpolate them; the report says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_POINTS = 3


@dataclass(frozen=True)
class PowerLawFit:
    """a, b, c of L(C) = a * C^-b + c, with the fit's root-mean-square error and number of points."""

    a: float
    b: float
    c: float
    rmse: float
    n: int

    def __call__(self, compute: np.ndarray | float) -> np.ndarray:
        x = np.asarray(compute, dtype=np.float64)
        return self.a * np.power(x, -self.b) + self.c


def _fit_fixed_c(logx: np.ndarray, y: np.ndarray, offset: float) -> tuple[float, float, float]:
    """(a, b, sse) of the log-space regression at offset c = `offset`."""
    z = np.log(y - offset)  # [n]
    design = np.stack([np.ones_like(logx), -logx], axis=1)  # [n, 2]
    (log_a, b), *_ = np.linalg.lstsq(design, z, rcond=None)
    pred = np.exp(log_a - b * logx) + offset  # [n]
    return float(np.exp(log_a)), float(b), float(np.sum((pred - y) ** 2))


def fit_power_law(compute: np.ndarray, loss: np.ndarray, grid: int = 400, rounds: int = 6) -> PowerLawFit:
    """Fit L(C) = a * C^-b + c to points (compute[i], loss[i]); needs >= 3 points with C > 0 and L > 0."""
    x = np.asarray(compute, dtype=np.float64).ravel()  # [n]
    y = np.asarray(loss, dtype=np.float64).ravel()  # [n]
    if x.shape != y.shape:
        raise ValueError(f"compute and loss differ in length ({x.size} vs {y.size})")
    if x.size < MIN_POINTS:
        raise ValueError(f"a fit of a, b and c needs at least {MIN_POINTS} points; got {x.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(x > 0) and np.all(y > 0)):
        raise ValueError("compute and loss must be finite and positive")
    logx = np.log(x)
    top = float(np.min(y)) * (1.0 - 1e-9)
    lo, hi = 0.0, top
    best = (math.inf, 0.0, 0.0, 0.0)
    for _ in range(rounds):
        for offset in np.linspace(lo, hi, grid):
            if offset >= top:
                continue
            a, b, sse = _fit_fixed_c(logx, y, float(offset))
            if sse < best[0]:
                best = (sse, a, b, float(offset))
        step = (hi - lo) / (grid - 1)
        lo, hi = max(0.0, best[3] - 2 * step), min(top, best[3] + 2 * step)
    sse, a, b, c = best
    return PowerLawFit(a, b, c, math.sqrt(sse / x.size), int(x.size))


def crossings(f: PowerLawFit, g: PowerLawFit, c_min: float, c_max: float, points: int = 2000) -> list[float]:
    """Compute values in [c_min, c_max] where the two fitted curves cross (sign changes of f - g, bisected)."""
    grid = np.logspace(math.log10(c_min), math.log10(c_max), points)  # [points]
    diff = f(grid) - g(grid)  # [points]
    found = []
    for i in np.nonzero(np.sign(diff[:-1]) * np.sign(diff[1:]) < 0)[0]:
        lo, hi = math.log(grid[i]), math.log(grid[i + 1])
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if np.sign(f(math.exp(mid)) - g(math.exp(mid))) == np.sign(diff[i]):
                lo = mid
            else:
                hi = mid
        found.append(math.exp(0.5 * (lo + hi)))
    return found
