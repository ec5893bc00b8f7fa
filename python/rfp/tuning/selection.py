"""Choosing among candidate models by paired evidence on held-out clusters.

Every candidate (the constant, a linear model, the network at some settings)
is scored on the same held-out clusters.  For candidates a and b, let D_c be
the sum over cluster c's rows of w_i [L_i(a) - L_i(b)] and s_c = sum_{i in c} w_i.
Their difference in held-out loss is the ratio mean

    Dbar = sum_c D_c / sum_c s_c,

and, clusters being the independent units, its standard error is the
cluster-robust one of a regression of the row differences on a constant,

    SE(Dbar) = sqrt(G / (G - 1) * sum_c (D_c - s_c Dbar)^2) / sum_c s_c,

(CR1 with G clusters; ``tests/python/test_selection.py`` checks it against
statsmodels).  The SE of the *difference* is what decides: two candidates'
losses can each have a large SE across clusters while their difference, on
the same clusters, is precise.

The rule (``simplest_within``): order the candidates from simple to flexible;
take the one with the lowest loss as the best; choose the simplest candidate
whose loss exceeds the best's by no more than ``margin`` paired SEs (the
one-standard-error rule of Hastie, Tibshirani & Friedman, ESL 7.10, with the
paired SE).  A flexible candidate is thus chosen only when it beats every
simpler one by more than the noise of the comparison.  ``tune`` (the
candidates of its table) and the effects' nuisance ladder use this one rule.
"""
from __future__ import annotations

import numpy as np

MARGIN = 0.0   # tune: paired SEs a flexible candidate must win by (validation/TUNING.md, v3)


def cluster_sums(row_loss, cluster, n_clusters=None, w=None) -> np.ndarray:
    """sum_{i in c} w_i L_i per cluster code c (0..G-1), from row losses."""
    row_loss = np.asarray(row_loss, dtype=float)
    if w is not None:
        row_loss = row_loss * np.asarray(w, dtype=float)
    return np.bincount(np.asarray(cluster), weights=row_loss, minlength=n_clusters or 0)


def paired_difference(sums_a, sums_b, size) -> tuple[float, float]:
    """(Dbar, SE(Dbar)) of candidate a minus candidate b from their
    per-cluster loss sums and the clusters' total weights ``size`` (s_c);
    clusters of size 0 are left out."""
    a, b, s = (np.asarray(v, dtype=float) for v in (sums_a, sums_b, size))
    keep = s > 0
    d, s = a[keep] - b[keep], s[keep]
    total = s.sum()
    mean = float(d.sum() / total)
    g = len(d)
    if g < 2 or not np.isfinite(mean):
        return mean, float("inf") if not np.isfinite(mean) else 0.0
    resid = d - s * mean
    return mean, float(np.sqrt(g / (g - 1) * np.sum(resid ** 2)) / total)


def simplest_within(sums: list, size, margin: float = MARGIN) -> tuple[int, list[dict]]:
    """The simplest candidate whose held-out loss is within ``margin``
    paired SEs of the best.

    ``sums`` lists each candidate's per-cluster loss sums (G,), from the
    simplest to the most flexible; ``size`` the clusters' total weights.
    Returns (index chosen, one row per candidate: loss, difference to the
    best and its paired SE)."""
    size = np.asarray(size, dtype=float)
    total = size.sum()
    loss = np.array([np.sum(np.asarray(s, dtype=float)) / total for s in sums])
    finite = np.isfinite(loss)
    if not finite.any():
        return 0, [{"loss": float(v), "diff": float("nan"), "se_diff": float("nan")}
                   for v in loss]
    best = int(np.argmin(np.where(finite, loss, np.inf)))
    table = []
    for s, value in zip(sums, loss):
        diff, se = paired_difference(s, sums[best], size)
        table.append({"loss": float(value), "diff": diff, "se_diff": se})
    for k, row in enumerate(table):
        if np.isfinite(row["diff"]) and row["diff"] <= margin * row["se_diff"]:
            return k, table
    return best, table
