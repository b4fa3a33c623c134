"""The classic baselines every forecast is compared with, as M4 defines them: naive (the last
value, again), seasonal naive (the value one season back) and Naive2 (naive on the
seasonally adjusted series, with classical multiplicative decomposition when a 90%
autocorrelation test finds seasonality)."""

from __future__ import annotations

import numpy as np

BASELINES = ("naive", "seasonal-naive", "naive2")


def naive(history: np.ndarray, horizon: int) -> np.ndarray:
    return np.full(horizon, history[-1], dtype=float)


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Each value of the last season, repeated (naive where the history is shorter)."""
    if season <= 1 or len(history) < season:
        return naive(history, horizon)
    last = history[-season:]
    return np.array([last[k % season] for k in range(horizon)], dtype=float)


def autocorrelation(x: np.ndarray, lag: int) -> float:
    centred = x - x.mean()
    total = float(np.sum(centred ** 2))
    return float(np.sum(centred[lag:] * centred[:-lag]) / total) if total > 0 else 0.0


def is_seasonal(history: np.ndarray, season: int) -> bool:
    """M4's 90% test: |r_m| > 1.645 · sqrt((1 + 2 Σ_{k<m} r_k²) / n), for series of at least
    three seasons."""
    if season <= 1 or len(history) < 3 * season:
        return False
    r = [autocorrelation(history, k) for k in range(1, season + 1)]
    limit = 1.645 * np.sqrt((1 + 2 * sum(v ** 2 for v in r[:-1])) / len(history))
    return abs(r[-1]) > limit


def seasonal_indices(history: np.ndarray, season: int) -> np.ndarray:
    """Classical multiplicative decomposition: the series over its centred moving average
    (2×m for an even season), averaged at each position of the season and normalised to mean
    1; (season,), for the positions counted from the series' start."""
    n = len(history)
    if season % 2 == 0:
        weights = np.r_[0.5, np.ones(season - 1), 0.5] / season
    else:
        weights = np.ones(season) / season
    half = len(weights) // 2
    trend = np.full(n, np.nan)
    trend[half:n - half] = np.convolve(history, weights, mode="valid")
    ratio = history / trend
    indices = np.array([np.nanmean(ratio[k::season]) for k in range(season)])
    return indices / indices.mean()


def naive2(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Naive on the seasonally adjusted series, the season put back (plain naive when the
    test finds no seasonality, or a value is not positive)."""
    if not is_seasonal(history, season) or (history <= 0).any():
        return naive(history, horizon)
    indices = seasonal_indices(history, season)
    n = len(history)
    adjusted_last = history[-1] / indices[(n - 1) % season]
    return np.array([adjusted_last * indices[(n + k) % season] for k in range(horizon)])


def baseline_forecast(kind: str, history: np.ndarray, horizon: int, season: int
                      ) -> np.ndarray:
    if kind == "naive":
        return naive(history, horizon)
    if kind == "seasonal-naive":
        return seasonal_naive(history, horizon, season)
    return naive2(history, horizon, season)
