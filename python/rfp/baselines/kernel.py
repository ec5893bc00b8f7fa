"""Locally adaptive smoother baseline (docs/DESIGN.md, "Comparisons"): Nadaraya–Watson
kernel regression with the bandwidth chosen by leave-cluster-out CV.

With z = (x - mean) / sd the standardized inputs (training moments, sd with
ddof = 0) and a Gaussian kernel,

    m̂(x) = Σ_i w_i(x) y_i / Σ_i w_i(x),    w_i(x) = exp(-|z - z_i|² / (2 h²)).

The bandwidth h minimises the cross-validated squared error over a grid,

    CV(h) = (1/n) Σ_i (y_i - m̂_{-c(i)}(x_i))²,

where m̂_{-c(i)} leaves out all of observation i's cluster (``leave_out =
"cluster"``, the default: the fit must predict clusters it has not seen, as
the method does) or only observation i (``"observation"``). The n × m kernel
matrix is built in row chunks of at most ``chunk_bytes``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

_CHUNK_BYTES = 32 * 2**20


@dataclass
class KernelFit:
    """A fitted smoother: training data on the standardized scale, the chosen
    bandwidth and the CV curve (``cv_loss[j]`` at ``bandwidths[j]``)."""
    z: np.ndarray
    y: np.ndarray
    x_mean: np.ndarray
    x_scale: np.ndarray
    bandwidth: float
    bandwidths: np.ndarray
    cv_loss: np.ndarray
    leave_out: str

    def predict(self, x, chunk_bytes: int = _CHUNK_BYTES) -> np.ndarray:
        """m̂(x) at the rows of ``x`` (same columns as in training)."""
        z_new = (_as_matrix(x, self.z.shape[1]) - self.x_mean) / self.x_scale
        return nadaraya_watson(self.z, self.y, z_new, self.bandwidth, chunk_bytes=chunk_bytes)


def fit(x, y, cluster=None, bandwidths=None, leave_out: str = "cluster",
        chunk_bytes: int = _CHUNK_BYTES) -> KernelFit:
    """Standardize ``x``, compute the CV curve over ``bandwidths`` (default: 30
    values log-spaced from 0.05 to 20 times Silverman's 1.06 n^(-1/(d+4)) on
    the standardized scale) and keep the minimiser."""
    if leave_out not in ("cluster", "observation"):
        raise ValueError(f"leave_out must be 'cluster' or 'observation', got {leave_out!r}")
    y = np.asarray(y, dtype=float).reshape(-1)
    x = _as_matrix(x)
    n, d = x.shape
    if y.shape[0] != n:
        raise ValueError(f"x has {n} rows but y has {y.shape[0]}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite (no NaN or inf)")
    if leave_out == "cluster":
        if cluster is None:
            raise ValueError("leave_out='cluster' needs cluster ids; pass cluster=... "
                             "or leave_out='observation'")
        groups = np.unique(np.asarray(cluster), return_inverse=True)[1].reshape(-1)
        if groups.shape[0] != n:
            raise ValueError(f"cluster has {groups.shape[0]} entries for {n} rows")
        if groups.max() < 1:
            raise ValueError("leave-cluster-out CV needs at least two clusters")
    else:
        if n < 2:
            raise ValueError("leave-one-out CV needs at least two observations")
        groups = np.arange(n)

    x_mean = x.mean(axis=0)
    x_scale = x.std(axis=0)
    x_scale = np.where(x_scale > 0, x_scale, 1.0)
    z = (x - x_mean) / x_scale
    if bandwidths is None:
        bandwidths = 1.06 * n ** (-1.0 / (d + 4)) * np.geomspace(0.05, 20.0, 30)
    bandwidths = np.sort(np.asarray(bandwidths, dtype=float).reshape(-1))
    if bandwidths.size == 0 or not (bandwidths > 0).all():
        raise ValueError("bandwidths must be a non-empty grid of positive numbers")

    loss = cv_curve(z, y, groups, bandwidths, chunk_bytes=chunk_bytes)
    best = int(np.argmin(loss))
    if bandwidths.size > 1 and best in (0, bandwidths.size - 1):
        side = "smallest" if best == 0 else "largest"
        warnings.warn(f"rfp: CV chose the {side} bandwidth on the grid ({bandwidths[best]:.3g}); "
                      f"widen the grid", stacklevel=2)
    return KernelFit(z, y, x_mean, x_scale, float(bandwidths[best]), bandwidths, loss, leave_out)


def predict(model: KernelFit, x, chunk_bytes: int = _CHUNK_BYTES) -> np.ndarray:
    """Predictions of a fitted smoother at the rows of ``x``."""
    return model.predict(x, chunk_bytes=chunk_bytes)


def nadaraya_watson(z_train, y_train, z_eval, bandwidth: float,
                    chunk_bytes: int = _CHUNK_BYTES) -> np.ndarray:
    """NW estimate at ``z_eval`` from standardized training data (no exclusion)."""
    z_train = _as_matrix(z_train)
    z_eval = _as_matrix(z_eval, z_train.shape[1])
    out = np.empty(z_eval.shape[0])
    for rows in _chunks(z_eval.shape[0], z_train.shape[0], chunk_bytes):
        sq = _sq_dist(z_eval[rows], z_train)
        out[rows] = _weighted_mean(sq, y_train, bandwidth)
    return out


def cv_curve(z, y, groups, bandwidths, chunk_bytes: int = _CHUNK_BYTES) -> np.ndarray:
    """Mean squared error of predicting each y_i from the observations in other
    groups (``groups`` = cluster codes for leave-cluster-out, 0..n-1 for
    leave-one-out), one value per bandwidth."""
    z = _as_matrix(z)
    y = np.asarray(y, dtype=float)
    groups = np.asarray(groups)
    bandwidths = np.asarray(bandwidths, dtype=float)
    sse = np.zeros(bandwidths.size)
    for rows in _chunks(z.shape[0], z.shape[0], chunk_bytes):
        sq = _sq_dist(z[rows], z)
        sq[groups[rows][:, None] == groups[None, :]] = np.inf   # leave the group out
        for j, h in enumerate(bandwidths):
            sse[j] += np.sum((y[rows] - _weighted_mean(sq, y, h)) ** 2)
    return sse / z.shape[0]


def leave_cluster_out(model: "KernelFit", cluster, chunk_bytes: int = _CHUNK_BYTES) -> np.ndarray:
    """m̂_{-c(i)}(x_i) at the training rows: each row predicted from the rows of
    other clusters, at the fitted bandwidth (``cluster``: one id per training row)."""
    groups = np.unique(np.asarray(cluster), return_inverse=True)[1].reshape(-1)
    z = model.z
    out = np.empty(z.shape[0])
    for rows in _chunks(z.shape[0], z.shape[0], chunk_bytes):
        sq = _sq_dist(z[rows], z)
        sq[groups[rows][:, None] == groups[None, :]] = np.inf
        out[rows] = _weighted_mean(sq, model.y, model.bandwidth)
    return out


def _weighted_mean(sq: np.ndarray, y: np.ndarray, h: float) -> np.ndarray:
    # subtracting each row's smallest distance leaves the ratio unchanged and
    # keeps the largest weight at 1, so small h cannot underflow to 0/0
    nearest = sq.min(axis=1, keepdims=True)
    w = np.exp(-(sq - nearest) / (2.0 * h * h))
    return (w @ y) / w.sum(axis=1)


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(sq, 0.0)


def _chunks(n_rows: int, n_cols: int, chunk_bytes: int):
    size = max(1, int(chunk_bytes // (8 * max(n_cols, 1) * 2)))
    for start in range(0, n_rows, size):
        yield slice(start, min(start + size, n_rows))


def _as_matrix(x, n_cols: int | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None] if (n_cols in (None, 1)) else x[None, :]
    if x.ndim != 2:
        raise ValueError(f"x must be 1- or 2-dimensional, got shape {x.shape}")
    if n_cols is not None and x.shape[1] != n_cols:
        raise ValueError(f"x has {x.shape[1]} column(s); the smoother was fit on {n_cols}")
    return x
