"""Nuisance models chosen by the data (issue 12, "Nuisances chosen by the data").

Closed-form linear nuisances
    A linear model trained with alpha = 1 (or without inner steps) minimises
    the pooled loss Σ w_i L(y_i, a + x_i'b): for the squared loss that is
    weighted least squares, for the logistic loss the weighted logit. Both are
    solved directly here (``linear_fit``: lstsq; Newton with backtracking),
    on all training rows: no step budget, learning rate or held-out clusters.
    ``is_closed_form(settings)`` says when the method's settings describe such
    a fit; ``tests/python/test_nuisance.py`` checks the solution equals the
    gradient-descent fit at convergence.  With alpha < 1 and inner steps, a
    linear model under the squared loss is still solved directly: its R_k
    is a quadratic (``quadratic.py``).

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
    choice by nuisance loss do); it is not nested.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from .selection import simplest_within

LADDER = ("constant", "ridge", "linear", "method")
LADDER_MARGIN = 1.0   # the effects' ladder: the one-SE rule (validation/RESULTS.md)
RIDGE_SHARE = 0.25    # ridge rung's penalty per row: about half the logit's curvature
NUISANCE_CHOICES = ("select", "method", "linear", "constant")


@dataclass
class ClosedFormFit:
    """A constant or linear nuisance solved in closed form (``linear_fit``)."""
    kind: str                     # "constant" or "linear"
    loss: str                     # "squared" or "logistic"
    intercept: float
    coef: np.ndarray
    converged: bool
    iterations: int = 0
    history: dict = field(default_factory=dict, repr=False)

    stopped_early = True          # read by effects.fit_converged: nothing to stop

    def predict_arrays(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float).reshape(np.shape(x)[0], -1)
        eta = self.intercept + (x @ self.coef if self.coef.size else 0.0)
        eta = np.broadcast_to(np.asarray(eta, dtype=float), (x.shape[0],)).copy()
        return expit(eta) if self.loss == "logistic" else eta


def is_closed_form(settings: dict) -> bool:
    """True when the method's settings fit a plain linear model: model
    "linear" with alpha = 1 or no inner steps, and no forward penalty."""
    if settings.get("model") != "linear":
        return False
    alpha = float(settings.get("alpha", 0.5))
    steps = int(settings.get("inner_steps", 1))
    return (alpha == 1.0 or steps == 0) and float(settings.get("penalty", 0.0)) == 0.0


def constant_fit(y, w=None, loss="squared") -> ClosedFormFit:
    """The weighted mean (squared loss) or the logit of the weighted share (logistic)."""
    y = np.asarray(y, dtype=float)
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    mean = float(w @ y / w.sum())
    if loss == "logistic":
        p = min(max(mean, 1e-12), 1 - 1e-12)
        return ClosedFormFit("constant", loss, float(np.log(p / (1 - p))), np.zeros(0), True)
    return ClosedFormFit("constant", loss, mean, np.zeros(0), True)


def linear_fit(x, y, w=None, loss="squared", tol=1e-10, max_iter=100) -> ClosedFormFit:
    """argmin_{a,b} Σ w_i L(y_i, a + x_i'b): weighted least squares (lstsq,
    minimum-norm under collinearity) or the weighted logit by Newton's method
    with backtracking, stopped when the largest gradient entry is below
    ``tol`` times Σ w (not converged under separation, where no minimiser
    exists: the fit is then the last iterate)."""
    x = np.asarray(x, dtype=float).reshape(len(y), -1)
    y = np.asarray(y, dtype=float)
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    z = np.column_stack([np.ones(len(y)), x])
    if loss == "squared":
        root = np.sqrt(w)
        beta = np.linalg.lstsq(z * root[:, None], y * root, rcond=None)[0]
        return ClosedFormFit("linear", loss, float(beta[0]), beta[1:], True)
    start = constant_fit(y, w, "logistic")
    beta = np.zeros(z.shape[1])
    beta[0] = start.intercept

    def objective(b):
        eta = z @ b
        return float(w @ (np.logaddexp(0.0, eta) - y * eta))

    value, converged, it = objective(beta), False, 0
    for it in range(1, max_iter + 1):
        p = expit(z @ beta)
        grad = z.T @ (w * (p - y))
        if np.max(np.abs(grad)) <= tol * w.sum():
            converged = True
            break
        hess = (z * (w * p * (1 - p))[:, None]).T @ z
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        t = 1.0
        while t > 1e-12:
            new = objective(beta - t * step)
            if new <= value:
                break
            t /= 2
        else:
            break
        beta, value = beta - t * step, new
    return ClosedFormFit("linear", loss, float(beta[0]), beta[1:], converged, it)


def ridge_fit(x, d, w=None, share: float = RIDGE_SHARE) -> ClosedFormFit:
    """The ridge-penalised logit (``effects.ridge_logit``, penalty ``share``
    times the number of rows on standardised controls, intercept free) as a
    closed-form fit on the original scale of x. Case weights: not taken
    (the ladder skips this rung when they are given)."""
    from .effects import ridge_logit
    x = np.asarray(x, dtype=float).reshape(len(d), -1)
    _, info = ridge_logit(x, d, penalty=share * len(d))
    coef = info["coef"]
    slopes = coef[1:] / info["scale"]
    intercept = float(coef[0] - np.sum(slopes * info["center"]))
    return ClosedFormFit("ridge", "logistic", intercept, slopes, bool(info["converged"]),
                         int(info["iterations"]))


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
    codes = np.unique(cluster, return_inverse=True)[1].reshape(-1)
    return np.bincount(codes, weights=row)


def ladder_choice(per_cluster: dict, size, margin: float = LADDER_MARGIN) -> tuple[str, dict]:
    """The simplest rung (order of ``per_cluster``: name -> per-cluster loss
    sums) within ``margin`` paired SEs of the best (``selection``), and a
    table rung -> loss, difference to the best and its paired SE."""
    names = list(per_cluster)
    pick, rows = simplest_within([per_cluster[k] for k in names], size, margin)
    return names[pick], dict(zip(names, rows))
