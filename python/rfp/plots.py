"""Figures people look at (matplotlib, an optional dependency: pip install
'rfp[plot]').  Each function returns the matplotlib Figure and, given
``path``, saves it.

* ``fit_curve``: data coloured by cluster, fitted functions against one
  covariate (and the truth when known) — the tragic-triad figure.
* ``loss_curves``: training objective R_k and held-out loss by step, in two
  panels (different quantities).
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


def fit_curve(models: dict, x, y, cluster, truth=None, covariate: str = "x", path=None,
              title: str | None = None):
    """One panel per fitted model: points coloured by cluster, the fit (and
    the truth, dashed) on a grid of the covariate.  ``models`` maps a title to
    anything with ``predict({covariate: grid}, as_numpy=True)``."""
    plt = _plt()
    x, y = np.asarray(x, float), np.asarray(y, float)
    codes = np.unique(np.asarray(cluster), return_inverse=True)[1].reshape(-1)
    n_clusters = int(codes.max()) + 1
    grid = np.linspace(x.min(), x.max(), 400)
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.8), sharey=True,
                             squeeze=False)
    for ax, (name, m) in zip(axes[0], models.items()):
        ax.scatter(x, y, c=codes, cmap="tab20", s=6, alpha=0.7,
                   label=f"data, coloured by cluster ({n_clusters})")
        if truth is not None:
            ax.plot(grid, truth(grid), "k--", lw=1, label="truth")
        ax.plot(grid, m.predict({covariate: grid}, as_numpy=True), "k", lw=2, label="fit")
        ax.set_title(name)
        ax.set_xlabel(covariate)
    axes[0][0].set_ylabel("y")
    axes[0][0].legend(loc="upper center", fontsize="small")
    fig.suptitle(title or f"Fitted functions along {covariate}")
    return _done(fig, path)


def loss_curves(model, path=None, title: str | None = None):
    """The training objective R_k (training clusters) and the pooled loss on
    the held-out clusters against the outer step: two panels, since they are
    different quantities (both on the standardised scale); the best step
    marked in each."""
    plt = _plt()
    h = model.history
    step = np.asarray(h.step, float)
    train, held = np.asarray(h.train, float), np.asarray(h.validation, float)
    has_held_out = bool(np.any(np.isfinite(held)))
    fig, axes = plt.subplots(2 if has_held_out else 1, 1, figsize=(5.5, 5.2 if has_held_out else 3),
                             sharex=True, squeeze=False)
    panels = [(axes[0][0], train, "training objective R_k (training clusters)", "k")]
    if has_held_out:
        panels.append((axes[1][0], held, "pooled loss L (held-out clusters)", "C3"))
    for ax, values, label, colour in panels:
        ax.plot(step, values, color=colour, label=label)
        ax.axvline(model.best_step, color="grey", ls=":", label=f"best step ({model.best_step})")
        ax.set_title(label, fontsize="medium")
        ax.set_ylabel("loss (standardised)")
        finite = values[np.isfinite(values)]
        if finite.size and np.all(finite > 0):
            ax.set_yscale("log")
        ax.legend(fontsize="small")
    panels[-1][0].set_xlabel("outer step")
    fig.suptitle(title or "rfp training: two different quantities")
    return _done(fig, path)


def love_plot(balance, path=None, threshold: float = 0.1, title: str = "Balance"):
    """|SMD| per covariate before and after weighting, from a balance table
    (pyarrow Table or dict with covariate, smd_before, smd_after)."""
    plt = _plt()
    b = balance.to_pydict() if hasattr(balance, "to_pydict") else balance
    names = list(b["covariate"])
    pos = np.arange(len(names))[::-1]
    before, after = np.abs(b["smd_before"]), np.abs(b["smd_after"])
    fig, ax = plt.subplots(figsize=(5.5, 0.4 * len(names) + 1.8))
    ax.hlines(pos, np.minimum(before, after), np.maximum(before, after), color="0.75")
    ax.scatter(before, pos, marker="o", facecolors="none", edgecolors="k",
               label="before weighting")
    ax.scatter(after, pos, marker="o", color="firebrick", label="after weighting")
    ax.axvline(threshold, color="grey", ls="--", label=f"|SMD| = {threshold:g}")
    ax.set_yticks(pos, names)
    ax.set_xlim(left=0)
    ax.set_xlabel("|standardised mean difference|")
    ax.set_title(title)
    ax.legend(fontsize="small", loc="lower right")
    return _done(fig, path)


def estimates(table, path=None, truth=None, level: float = 0.95, title: str = "Effect estimates"):
    """Point estimates with confidence intervals, one row per method of a
    comparison table (columns method, estimand, estimate, ci_low, ci_high),
    coloured by estimand.  ``truth``: one number, a dict by estimand, or the
    table's own ``truth`` column when it has one."""
    plt = _plt()
    t = table.to_pydict() if hasattr(table, "to_pydict") else table
    labels = [f"{m} ({e})" for m, e in zip(t["method"], t["estimand"])]
    est = np.asarray(t["estimate"], float)
    lo, hi = np.asarray(t["ci_low"], float), np.asarray(t["ci_high"], float)
    pos = np.arange(len(labels))[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(labels) + 1.8))
    ax.axvline(0, color="0.85", lw=1)
    colours = {e: f"C{i}" for i, e in enumerate(dict.fromkeys(t["estimand"]))}
    for estimand, colour in colours.items():
        rows = np.array([e == estimand for e in t["estimand"]])
        ax.errorbar(est[rows], pos[rows], xerr=[est[rows] - lo[rows], hi[rows] - est[rows]],
                    fmt="o", color=colour, capsize=3, label=estimand)
    if isinstance(truth, dict):
        marks = np.array([truth.get(e, np.nan) for e in t["estimand"]], float)
    elif truth is None and "truth" in t:
        marks = np.array([np.nan if v is None else v for v in t["truth"]], float)
    elif truth is not None:
        marks = np.full(len(labels), float(truth))
    else:
        marks = None
    if marks is not None and np.any(np.isfinite(marks)):
        ax.scatter(marks, pos, marker="|", s=200, color="firebrick", label="truth", zorder=3)
    ax.set_yticks(pos, labels)
    ax.set_xlabel("estimate")
    ax.set_title(f"{title}\n{100 * level:g}% intervals, t with G - 1 degrees of freedom",
                 fontsize="medium")
    ax.legend(title="estimand", fontsize="small")
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
