"""Figures people look at (matplotlib, an optional dependency: pip install
'rfp[plot]').  Each function returns the matplotlib Figure and, given
``path``, saves it.

* ``fit_curve``: data coloured by cluster, fitted functions against one
  covariate (and the truth when known) — the tragic-triad figure.
* ``loss_curves``: training objective R_k and held-out loss by step.
* ``love_plot``: standardized mean differences before/after weighting.
* ``estimates``: a comparison table's estimates with confidence intervals.
* ``cv_curves``: a tuning run's held-out curves, one per configuration.
"""
from __future__ import annotations

import numpy as np


def _plt():
    try:
        import matplotlib
        if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover
        raise ImportError("plots need matplotlib: pip install 'rfp[plot]'") from e
    return plt


def _done(fig, path):
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def fit_curve(models: dict, x, y, cluster, truth=None, covariate: str = "x", path=None):
    """One panel per fitted model: points coloured by cluster, the fit (and
    the truth, dashed) on a grid of the covariate.  ``models`` maps a title to
    anything with ``predict({covariate: grid}, as_numpy=True)``."""
    plt = _plt()
    x, y = np.asarray(x, float), np.asarray(y, float)
    codes = np.unique(np.asarray(cluster), return_inverse=True)[1]
    grid = np.linspace(x.min(), x.max(), 400)
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.4), sharey=True, squeeze=False)
    for ax, (name, m) in zip(axes[0], models.items()):
        ax.scatter(x, y, c=codes, cmap="tab20", s=6, alpha=0.7)
        if truth is not None:
            ax.plot(grid, truth(grid), "k--", lw=1, label="truth")
        ax.plot(grid, m.predict({covariate: grid}, as_numpy=True), "k", lw=2, label="fit")
        ax.set_title(name)
        ax.set_xlabel(covariate)
    axes[0][0].set_ylabel("y")
    axes[0][0].legend(loc="upper center")
    return _done(fig, path)


def loss_curves(model, path=None):
    """Training objective and held-out loss against the outer step."""
    plt = _plt()
    h = model.history
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(h.step, h.train, label="training objective R_k")
    if np.any(np.isfinite(h.validation)):
        ax.plot(h.step, h.validation, label="held-out loss")
        ax.axvline(model.best_step, color="grey", ls=":", label=f"best step {model.best_step}")
    ax.set_xlabel("outer step")
    ax.set_ylabel("loss (standardised)")
    ax.set_yscale("log")
    ax.legend()
    return _done(fig, path)


def love_plot(balance, path=None, threshold: float = 0.1):
    """|SMD| per covariate before and after weighting, from a balance table
    (pyarrow Table or dict with covariate, smd_before, smd_after)."""
    plt = _plt()
    b = balance.to_pydict() if hasattr(balance, "to_pydict") else balance
    names = list(b["covariate"])
    pos = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(5, 0.4 * len(names) + 1.2))
    ax.scatter(np.abs(b["smd_before"]), pos, marker="o", facecolors="none", edgecolors="C3", label="before")
    ax.scatter(np.abs(b["smd_after"]), pos, marker="o", color="C0", label="after")
    ax.axvline(threshold, color="grey", ls=":")
    ax.set_yticks(pos, names)
    ax.set_xlabel("|standardized mean difference|")
    ax.legend()
    return _done(fig, path)


def estimates(table, path=None, truth: float | None = None):
    """Point estimates with confidence intervals, one row per method of a
    comparison table (columns method, estimand, estimate, ci_low, ci_high)."""
    plt = _plt()
    t = table.to_pydict() if hasattr(table, "to_pydict") else table
    labels = [f"{m} ({e})" for m, e in zip(t["method"], t["estimand"])]
    est = np.asarray(t["estimate"], float)
    lo, hi = np.asarray(t["ci_low"], float), np.asarray(t["ci_high"], float)
    pos = np.arange(len(labels))[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(labels) + 1.2))
    ax.errorbar(est, pos, xerr=[est - lo, hi - est], fmt="o", color="k", capsize=3)
    if truth is not None:
        ax.axvline(truth, color="C3", ls="--", label="truth")
        ax.legend()
    ax.set_yticks(pos, labels)
    ax.set_xlabel("estimate with confidence interval")
    return _done(fig, path)


def cv_curves(cv, path=None):
    """Cross-validated held-out loss CV_g(t) of every configuration of a
    tuning run against the outer step; the chosen one bold with its step
    marked, the training mean (constant predictor) dashed."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    keys = [k for k in ("alpha", "inner_lr", "learning_rate", "inner_steps", "hidden")
            if len({str(c.get(k)) for c in cv.configs}) > 1] or ["alpha"]
    for g, c in enumerate(cv.configs):
        label = ", ".join(f"{k}={c.get(k)}" for k in keys)
        chosen = g == cv.chosen
        ax.plot(cv.steps[g], cv.curves[g], lw=2.5 if chosen else 1, alpha=1 if chosen else 0.6,
                label=label + (" (chosen)" if chosen else ""))
    ax.axhline(cv.mean_loss, color="k", ls="--", lw=1, label="training mean")
    ax.axvline(cv.chosen_step, color="grey", ls=":")
    ax.set_xlabel("outer step")
    ax.set_ylabel("held-out loss, mean over folds")
    ax.set_title(f"Cross-validation across clusters ({cv.folds} folds)")
    ax.legend(fontsize=7, ncol=2)
    return _done(fig, path)
