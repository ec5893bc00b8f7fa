"""Checks shared by the balancing estimators' array inputs."""
from __future__ import annotations

import numpy as np


def _matrix(a, what: str) -> np.ndarray:
    x = np.asarray(a, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-d array (rows = units), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} contains NaN or inf")
    return x


def _binary(a, what: str, n: int) -> np.ndarray:
    t = np.asarray(a).reshape(-1)
    if t.shape[0] != n:
        raise ValueError(f"{what} has length {t.shape[0]}, expected {n}")
    if not np.all(np.isin(t, [0, 1])):
        raise ValueError(f"{what} must be binary (0/1 or boolean); values seen: "
                         f"{np.unique(t)[:10].tolist()}")
    return t.astype(bool)


def _names(names, p: int) -> list:
    if names is None:
        return [f"x{k + 1}" for k in range(p)]
    names = [str(v) for v in names]
    if len(names) != p:
        raise ValueError(f"{len(names)} covariate names for {p} covariates")
    return names


def _column_sd(x: np.ndarray) -> np.ndarray:
    """Sample SD (ddof = 1) of each column, 1 where a column is constant."""
    if x.shape[0] < 2:
        return np.ones(x.shape[1])
    s = x.std(axis=0, ddof=1)
    return np.where(s > 0, s, 1.0)


def _outside_range(xc: np.ndarray, m: np.ndarray, names: list) -> list:
    """Univariate witnesses of infeasible balance: targets outside [min, max]."""
    out = []
    lo, hi = xc.min(axis=0), xc.max(axis=0)
    for k, name in enumerate(names):
        if m[k] < lo[k]:
            out.append(f"target mean of '{name}' ({m[k]:.6g}) is below the smallest control value ({lo[k]:.6g})")
        elif m[k] > hi[k]:
            out.append(f"target mean of '{name}' ({m[k]:.6g}) is above the largest control value ({hi[k]:.6g})")
    return out


def _check_fallback(fallback, slack) -> None:
    """The fallback and slack settings of entropy and cluster balancing."""
    if fallback not in ("approximate", "none"):
        raise ValueError(f"fallback must be 'approximate' or 'none', got {fallback!r}")
    if not (np.isfinite(slack) and slack >= 0):
        raise ValueError(f"slack must be a nonnegative number of SDs, got {slack!r}")
