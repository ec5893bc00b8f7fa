"""The linear candidates of ``tune``'s table, solved directly on each fold.

A linear model f(theta, x) = a + x'b under the squared loss has a quadratic
R_k (eq. 18-20) for any alpha, k and eta (``quadratic.py``), so each fold's
minimiser is one linear solve: no learning rate, steps or compilation.  Under
the logistic loss the linear model at alpha = 1 is the weighted logit
(``closed_form.linear_fit``, Newton's method); at alpha < 1 it has no direct
solution and is trained by gradient descent with the network's rows.

``linear_rows`` scores these candidates on the same cluster folds as the
network (every cluster held out once), as per-cluster sums of
w_i L_i on held-out rows: what ``selection.simplest_within`` compares.
``solve`` solves the chosen one on all clusters (``tune.tune_arrays``).
"""
from __future__ import annotations

import numpy as np

from rfp.core import quadratic
from rfp.core.closed_form import constant_fit, linear_fit
from rfp.tuning.selection import cluster_sums


def linear_key(config: dict) -> tuple:
    """What identifies a linear candidate: its alpha, k and eta (k and eta
    do not matter at alpha = 1)."""
    if float(config["alpha"]) == 1.0:
        return (1.0,)
    return (float(config["alpha"]), int(config["inner_steps"]), float(config["inner_lr"]))


def linear_configs(configs: list, base: dict) -> list[dict]:
    """The linear candidates: alpha = 1, and for the squared loss every
    (alpha, inner_steps, inner_lr) of the grid with alpha < 1."""
    rows = [{**base, "model": "linear", "alpha": 1.0}]
    if base["loss"] != "squared" or base.get("first_order") or float(base.get("penalty", 0)):
        return rows
    seen = {linear_key(rows[0])}
    for c in configs:
        key = linear_key(c)
        if key not in seen:
            seen.add(key)
            rows.append({**base, "model": "linear", "alpha": key[0], "inner_steps": key[1],
                         "inner_lr": key[2]})
    return rows


def solve(x, y, codes, w, config) -> dict:
    """The linear model's parameters ({"w": (p, 1), "b": (1,)}) minimising
    R_k of ``config`` on the rows given (x, y already scaled)."""
    if config["loss"] == "logistic":
        fitted = linear_fit(x, y, w, "logistic")
        return {"b": np.array([fitted.intercept]), "w": np.asarray(fitted.coef)[:, None]}
    return quadratic.minimise(x, y, codes, w, float(config["alpha"]),
                              int(config["inner_steps"]), float(config["inner_lr"]))


def losses(eta, y, loss: str) -> np.ndarray:
    """L_i of a prediction (logit) eta: squared error, or the logistic loss."""
    if loss == "logistic":
        return np.logaddexp(0.0, eta) - y * eta
    return (y - eta) ** 2


def row_losses(params, x, y, loss: str) -> np.ndarray:
    """L_i of a linear model on rows."""
    return losses(params["b"][0] + x @ params["w"][:, 0], y, loss)


def linear_rows(x, y, codes, w, fold, folds: int, configs: list) -> list[np.ndarray]:
    """Per linear candidate, the per-cluster sums of w_i L_i on held-out
    rows, each cluster scored by the model fitted on the other folds."""
    g = int(codes.max()) + 1
    fold_of_row = fold[codes]
    out = []
    for c in configs:
        sums = np.zeros(g)
        for f in range(folds):
            train, test = fold_of_row != f, fold_of_row == f
            params = solve(x[train], y[train], codes[train], w[train], c)
            sums += cluster_sums(row_losses(params, x[test], y[test], c["loss"]), codes[test], g,
                                 w[test])
        out.append(sums)
    return out


def constant_params(y, w, loss: str, p: int) -> dict:
    """The constant predictor as a linear model with zero slopes: the
    weighted mean (its log-odds for the logistic loss)."""
    return {"b": np.array([constant_fit(y, w, loss).intercept]), "w": np.zeros((p, 1))}
