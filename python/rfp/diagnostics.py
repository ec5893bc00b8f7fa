"""Balance diagnostics for weighted comparisons of treated and control units.

* ``balance_table``: per covariate, group means before and after weighting and
  standardized mean differences (SMD).
* ``effective_sample_size``: Kish's ESS = (Σ w)² / Σ w².
* ``weight_summary``: ESS and sizes per group, as a plain dict (what R receives).

Conventions (ATT, as in Hainmueller 2012 and cobalt's default for the ATT):

    SMD_before_k = (mean_T(x_k) − mean_C(x_k)) / s_k
    SMD_after_k  = (wmean_T(x_k) − wmean_C(x_k)) / s_k

with the *same* denominator before and after, computed from the unweighted
sample, so that a change in SMD is a change in means only:

    sd="treated" (default):  s_k = SD of x_k among treated units (ddof = 1)
    sd="pooled":             s_k = sqrt((SD_T² + SD_C²) / 2)      (ddof = 1 each)

A covariate with s_k = 0 gets SMD = 0 when the means agree and ±inf otherwise.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa


def effective_sample_size(weights) -> float:
    """Kish's effective sample size (Σ w)² / Σ w² of nonnegative weights."""
    w = np.asarray(weights, dtype=float).reshape(-1)
    if w.size == 0:
        return 0.0
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and nonnegative to compute an effective sample size")
    top = float(np.max(w))
    if not top > 0:
        return 0.0
    w = w / top                 # scale-free: no underflow at 1e-300, no overflow at 1e300
    ss = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / ss if ss > 0 else 0.0


def _weighted_mean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    total = w.sum()
    if total <= 0:
        return np.full(x.shape[1], np.nan)
    return (w @ x) / total


def _smd(diff: np.ndarray, s: np.ndarray) -> np.ndarray:
    out = np.zeros_like(diff)
    pos = s > 0
    out[pos] = diff[pos] / s[pos]
    out[~pos & (diff != 0)] = np.sign(diff[~pos & (diff != 0)]) * np.inf
    return out


def balance_table(X, treated, weights=None, names=None, sd: str = "treated") -> pa.Table:
    """Balance of each covariate before and after weighting.

    X: (n, p) covariates; treated: (n,) 0/1 or bool; weights: (n,) nonnegative
    unit weights (treated units usually 1, as for the ATT), default all 1.
    Weighted means are Σ w x / Σ w within each group. ``sd`` picks the SMD
    denominator (module docstring). Returns a pyarrow Table with columns
    covariate, treated_mean, treated_mean_weighted, control_mean,
    control_mean_weighted, sd, smd_before, smd_after (``.to_pydict()`` gives
    plain lists).
    """
    x = np.asarray(X, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    n, p = x.shape
    t = np.asarray(treated).reshape(-1)
    if t.shape[0] != n:
        raise ValueError(f"treated has length {t.shape[0]} but X has {n} rows")
    if not np.all(np.isin(t, [0, 1])):
        raise ValueError(f"treated must be 0/1 or boolean; values seen: {np.unique(t)[:10].tolist()}")
    t = t.astype(bool)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float).reshape(-1)
    if w.shape[0] != n:
        raise ValueError(f"weights has length {w.shape[0]} but X has {n} rows")
    if names is None:
        names = [f"x{k + 1}" for k in range(p)]
    names = [str(v) for v in names]
    if len(names) != p:
        raise ValueError(f"{len(names)} names for {p} covariates")
    if t.sum() < 2 or (~t).sum() < 1:
        raise ValueError("balance_table needs at least two treated units and one control unit")

    xt, xc = x[t], x[~t]
    sd_t = xt.std(axis=0, ddof=1)
    if sd == "treated":
        s = sd_t
    elif sd == "pooled":
        sd_c = xc.std(axis=0, ddof=1) if xc.shape[0] > 1 else np.zeros(p)
        s = np.sqrt((sd_t ** 2 + sd_c ** 2) / 2.0)
    else:
        raise ValueError(f"sd must be 'treated' or 'pooled', got {sd!r}")

    mt, mc = xt.mean(axis=0), xc.mean(axis=0)
    mt_w, mc_w = _weighted_mean(xt, w[t]), _weighted_mean(xc, w[~t])
    return pa.table({
        "covariate": names,
        "treated_mean": mt,
        "treated_mean_weighted": mt_w,
        "control_mean": mc,
        "control_mean_weighted": mc_w,
        "sd": s,
        "smd_before": _smd(mt - mc, s),
        "smd_after": _smd(mt_w - mc_w, s),
    })


def weight_summary(weights, treated) -> dict:
    """Group sizes and Kish effective sample sizes of unit weights, as a dict."""
    w = np.asarray(weights, dtype=float).reshape(-1)
    t = np.asarray(treated).reshape(-1).astype(bool)
    wc = w[~t]
    return {
        "n_treated": int(t.sum()),
        "n_control": int((~t).sum()),
        "ess_treated": effective_sample_size(w[t]),
        "ess_control": effective_sample_size(wc),
        "max_control_weight_share": float(wc.max() / wc.sum()) if wc.size and wc.sum() > 0 else float("nan"),
    }


def residual_icc(y, x, cluster) -> float:
    """The intraclass correlation of the residual y − μ̂(x) (OLS on (1, x)),
    by one-way ANOVA (``anova_icc``): the icc of cluster balancing's
    random-intercept model ȳ_c = μ(x_c) + u_c + ē_c is that of the outcome
    after its covariates, not of the raw outcome (a covariate that varies
    between clusters inflates the raw one)."""
    x = np.asarray(x, dtype=float).reshape(len(y), -1)
    z = np.column_stack([np.ones(len(y)), x])
    r = y - z @ np.linalg.lstsq(z, y, rcond=None)[0]
    return anova_icc(r, cluster)


def anova_icc(y, cluster) -> float:
    """One-way ANOVA estimate of the intraclass correlation, clipped to [0, 1]."""
    codes = np.unique(cluster, return_inverse=True)[1].reshape(-1)
    g = int(codes.max()) + 1
    n = len(y)
    if g < 2 or n <= g:
        return 0.0
    nc = np.bincount(codes, minlength=g).astype(float)
    means = np.bincount(codes, weights=y, minlength=g) / nc
    msb = float(np.sum(nc * (means - y.mean()) ** 2)) / (g - 1)
    msw = float(np.sum((y - means[codes]) ** 2)) / (n - g)
    n0 = (n - float(np.sum(nc ** 2)) / n) / (g - 1)
    sb = max((msb - msw) / n0, 0.0)
    return float(min(sb / (sb + msw), 1.0)) if sb + msw > 0 else 0.0
