"""Nuisance models chosen by the data: the ladder.

The ladder
    constant → (for a binary target: a ridge-penalised logit) →
    linear/logistic → the method's model (settings as given).
    Every rung is cross-fitted on the same cluster folds; the out-of-fold
    loss (squared error, or deviance for a binary target) is summed per
    cluster, and the simplest rung whose loss is within ``LADDER_MARGIN``
    (one) standard error of the paired per-cluster difference of the best
    rung's is chosen (``selection.simplest_within``, the rule ``tune`` uses;
    the one-SE rule of Hastie, Tibshirani & Friedman, ESL 7.10). The ridge
    rung (``ridge_fit``: penalty ``RIDGE_SHARE`` times the rows, on
    standardised controls, about halving the logit's slopes) sits between
    a constant propensity and the plain logit, so that weak overlap that
    the logit estimates noisily is not flattened to a constant. So
    a randomized treatment, whose propensity is a constant, gets a constant
    or nearly constant ê unless a richer model predicts held-out clusters
    clearly better. The rungs share folds, and the selection uses their
    out-of-fold predictions (as stacking and the DoubleML guide's learner
    choice by nuisance loss do); it is not nested."""
from __future__ import annotations

import numpy as np

from rfp.tuning.selection import simplest_within

LADDER = ("constant", "ridge", "linear", "method")
LADDER_MARGIN = 1.0   # the effects' ladder: the one-SE rule (validation/RESULTS.md)
NUISANCE_CHOICES = ("select", "method", "linear", "constant")


def fold_losses(target, pred, cluster, loss, w=None) -> np.ndarray:
    """Out-of-fold loss summed per cluster (squared error, or deviance with
    predictions bounded away from 0 and 1 by 1e-6), each row's loss times its
    case weight ``w`` when given (clusters in sorted order of their labels)."""
    if loss == "logistic":
        p = np.clip(pred, 1e-6, 1 - 1e-6)
        row = -2 * (target * np.log(p) + (1 - target) * np.log(1 - p))
    else:
        row = (target - pred) ** 2
    if w is not None:
        row = row * np.asarray(w, dtype=float)
    return cluster_totals(row, cluster)


def cluster_totals(values, cluster) -> np.ndarray:
    """Σ values per cluster, clusters in sorted order of their labels (the
    order of ``fold_losses``); ``values`` None counts rows."""
    codes = np.unique(cluster, return_inverse=True)[1].reshape(-1)
    return np.bincount(codes, weights=None if values is None else np.asarray(values, dtype=float))


def ladder_choice(per_cluster: dict, size, margin: float = LADDER_MARGIN) -> tuple[str, dict]:
    """The simplest rung (order of ``per_cluster``: name -> per-cluster loss
    sums) within ``margin`` paired SEs of the best (``selection``), and a
    table rung -> loss, difference to the best and its paired SE."""
    names = list(per_cluster)
    pick, rows = simplest_within([per_cluster[k] for k in names], size, margin)
    return names[pick], dict(zip(names, rows))
