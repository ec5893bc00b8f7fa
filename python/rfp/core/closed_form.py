"""Closed-form fits: the constant, the linear model and the ridge-penalised
logit, solved directly (one Newton solver, ``newton_logit``). The mean and
linear candidates of ``tune`` and the rungs of the effects' ladder.

    A linear model trained with alpha = 1 (or without inner steps) minimises
    the pooled loss Σ w_i L(y_i, a + x_i'b): for the squared loss that is
    weighted least squares, for the logistic loss the weighted logit. Both are
    solved directly here (``linear_fit``: lstsq; Newton with backtracking),
    on all training rows: no step budget, learning rate or held-out clusters.
    ``is_closed_form(settings)`` says when the method's settings describe such
    a fit; ``tests/python/test_nuisance.py`` checks the solution equals the
    gradient-descent fit at convergence.  With alpha < 1 and inner steps, a
    linear model under the squared loss is still solved directly: its R_k
    is a quadratic (``quadratic.py``)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

RIDGE_SHARE = 0.25    # ridge rung's penalty per row: about half the logit's curvature


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
    start = constant_fit(y, w, "logistic").intercept
    beta, converged, it, _ = newton_logit(z, y, w, np.zeros(z.shape[1]), start, tol * w.sum(),
                                          max_iter)
    return ClosedFormFit("linear", loss, float(beta[0]), beta[1:], converged, it)


def newton_logit(z, y, w, penalty, intercept, tol, max_iter):
    """The one Newton solver of the package's logits: (a, b) minimising
    Σ w_i [log(1 + exp(η_i)) − y_i η_i] + ½ Σ_j penalty_j c_j², η = z c, from
    c = (intercept, 0, ..., 0), by Newton steps with backtracking that never
    increase the objective.  Stops when the largest gradient entry is at most
    ``tol`` (converged) or when no step lowers the objective (under
    separation no minimiser exists: the last iterate).  Returns (c,
    converged, iterations, largest gradient entry)."""
    coef = np.zeros(z.shape[1])
    coef[0] = intercept

    def objective(c):
        eta = z @ c
        return float(w @ (np.logaddexp(0.0, eta) - y * eta) + 0.5 * np.sum(penalty * c * c))

    value, converged, grad_max, it = objective(coef), False, np.inf, 0
    for it in range(1, max_iter + 1):
        p = expit(z @ coef)
        grad = z.T @ (w * (p - y)) + penalty * coef
        grad_max = float(np.max(np.abs(grad)))
        if grad_max <= tol:
            converged = True
            break
        hess = (z * (w * p * (1 - p))[:, None]).T @ z + np.diag(penalty)
        step = np.linalg.lstsq(hess, grad, rcond=None)[0]   # minimum-norm under collinearity
        t = 1.0
        while t > 1e-12:
            new = objective(coef - t * step)
            if new <= value + 1e-12 * max(1.0, abs(value)):
                break
            t /= 2
        else:
            break
        coef, value = coef - t * step, new
    return coef, converged, it, grad_max


def ridge_logit(x, d, penalty: float = 1.0, tol: float = 1e-10,
                max_iter: int = 100):
    """Ridge-penalised logistic regression (``newton_logit``).

    Columns of ``x`` are standardised (mean 0, SD 1 over these rows; a
    constant column is only centred), and (a, b) minimise

        Σ_i [log(1 + exp(η_i)) − d_i η_i] + penalty/2 · ‖b‖²,   η = a + z b,

    the intercept a unpenalised. Returns (predict, info): ``predict(x_new)``
    gives logistic(η) for new rows, ``info`` holds coef (a, b on the
    standardised scale), center, scale, iterations, converged (the largest
    absolute gradient entry below ``tol`` times the number of rows) and
    gradient (that entry)."""
    x = np.asarray(x, dtype=float)
    d = np.asarray(d, dtype=float)
    center = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = np.column_stack([np.ones(len(d)), (x - center) / scale])
    pen = np.full(z.shape[1], float(penalty))
    pen[0] = 0.0
    p_bar = min(max(d.mean(), 1e-6), 1 - 1e-6)
    coef, converged, it, grad_max = newton_logit(z, d, np.ones(len(d)), pen,
                                                 np.log(p_bar / (1 - p_bar)), tol * len(d),
                                                 max_iter)
    info = {"coef": coef, "center": center, "scale": scale, "iterations": it,
            "converged": converged, "gradient": grad_max}

    def predict(x_new):
        x_new = np.asarray(x_new, dtype=float)
        return expit(coef[0] + ((x_new - center) / scale) @ coef[1:])

    return predict, info


def ridge_fit(x, d, w=None, share: float = RIDGE_SHARE) -> ClosedFormFit:
    """The ridge-penalised logit (``ridge_logit``, penalty ``share``
    times the number of rows on standardised controls, intercept free) as a
    closed-form fit on the original scale of x. Case weights: not taken
    (the ladder skips this rung when they are given)."""
    x = np.asarray(x, dtype=float).reshape(len(d), -1)
    _, info = ridge_logit(x, d, penalty=share * len(d))
    coef = info["coef"]
    slopes = coef[1:] / info["scale"]
    intercept = float(coef[0] - np.sum(slopes * info["center"]))
    return ClosedFormFit("ridge", "logistic", intercept, slopes, bool(info["converged"]),
                         int(info["iterations"]))
