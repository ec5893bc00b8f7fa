"""The estimators' scores from cross-fitted nuisances: the partially linear
model's residual-on-residual (eq. 3-4) and AIPW's (eq. 5-6), with their
cluster-robust SEs and the overlap checks."""
from __future__ import annotations

import warnings

import numpy as np

from rfp.diagnostics import effective_sample_size
from rfp.effects.result import Effect
from rfp.inference.cluster_robust import cluster_if_se, cr1_vcov
from rfp.inference.t_test import t_test

WARN_SHARE = 0.9


class FunctionalFormWarning(UserWarning):
    """The nuisance model explains nearly all treatment variance (docs/DESIGN.md)."""


def kish_ess(w) -> float:
    """Kish's effective sample size of |w| (``diagnostics.effective_sample_size``);
    NaN when a weight is not finite (an estimate from non-finite nuisances)."""
    w = np.abs(np.asarray(w, dtype=float))
    return effective_sample_size(w) if np.all(np.isfinite(w)) else float("nan")


def plm_from_residuals(y, d, g, m, cluster, level=0.95, warn_share=WARN_SHARE,
                       treatment="d", method="dml", w=None) -> Effect:
    """τ̂ = Σ w V U / Σ w V² with CR1 (K = 1) by cluster and t on G − 1 df
    (case weights ``w``, default 1: the weighted residual-on-residual
    regression, whose cluster scores are Σ_{i∈g} w_i V_i e_i)."""
    u = y - g
    v = d - m
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    vv = float(w @ (v * v))
    if vv <= 0:
        raise ValueError(f"the residual D − m̂(X) of treatment '{treatment}' is zero: "
                         f"there is no variation left to estimate τ from")
    tau = float(w @ (v * u)) / vv
    e = u - tau * v
    codes = np.unique(cluster, return_inverse=True)[1].reshape(-1)
    n_clusters = int(codes.max()) + 1
    root = np.sqrt(w)
    se = float(np.sqrt(cr1_vcov((root * v)[:, None], root * e, codes, k=1)[0, 0]))
    test = t_test(tau, se, df=n_clusters - 1, level=level)
    share = 1.0 - float(np.var(v)) / float(np.var(d))
    if warn_share is not None and share > warn_share:
        warnings.warn(
            f"rfp: the nuisance model explains {share:.1%} of the variance of treatment "
            f"'{treatment}' (variance_share = {share:.3f} > {warn_share}). By Frisch-Waugh-Lovell "
            f"τ rests only on D − E[D|X]; what is left of it is small and likely functional-form-"
            f"induced (treatment is (nearly) a function of the controls, e.g. of cluster-level "
            f"controls; 'Regularizing the Forward Pass', eq. 2-3). Check overlap, and whether "
            f"the controls determine treatment, before trusting this estimate.",
            FunctionalFormWarning, stacklevel=3)
    diagnostics = {"variance_share": share, "ess": kish_ess(w * v * v),
                   "outcome_r2": 1.0 - float(np.var(u)) / float(np.var(y)),
                   "largest_cluster_share": largest_cluster_share(w * v * e, codes)}
    return Effect(method, "PLM", tau, se, float(test.ci_low), float(test.ci_high), len(y),
                  n_clusters, n_clusters - 1, level, diagnostics,
                  {"g": g, "m": m, "residual_y": u, "residual_d": v})


def crump_threshold(e) -> float:
    """Crump, Hotz, Imbens & Mitnik (2009) optimal trimming threshold α:
    with h(e) = 1/(e(1 − e)), no trimming (α = 0) if max h ≤ 2 mean h; else
    the α with 1/(α(1 − α)) = 2 mean[h | h ≤ 1/(α(1 − α))], found as the
    smallest γ = 1/(α(1 − α)) among the sorted h with γ ≥ 2·mean(h ≤ γ)."""
    e = np.clip(np.asarray(e, dtype=float), 1e-12, 1 - 1e-12)
    h = np.sort(1.0 / (e * (1.0 - e)))
    if h[-1] <= 2.0 * h.mean():
        return 0.0
    below = np.cumsum(h) / np.arange(1, h.size + 1)
    ok = np.flatnonzero(h >= 2.0 * below)
    gamma = float(h[ok[0]]) if ok.size else float(h[-1])
    return float(0.5 - np.sqrt(max(0.25 - 1.0 / gamma, 0.0)))


def largest_cluster_share(psi, cluster) -> float:
    """max_g S_g² / Σ_g S_g², S_g = Σ_{i∈g} ψ_i: the share of the
    cluster-robust variance carried by its largest cluster."""
    codes = np.unique(cluster, return_inverse=True)[1].reshape(-1)
    sums = np.bincount(codes, weights=psi) ** 2
    return float(sums.max() / sums.sum()) if sums.sum() > 0 else float("nan")


# thresholds of ``overlap_checks``
# (largest_cluster_share: in randomized trials with 40 clusters, validation/RESULTS.md,
# the largest cluster's share exceeded 0.25 in 12-20% of samples, 0.4 in 0-6%)
OVERLAP_LIMITS = {"clipped_share": 0.05, "largest_cluster_share": 0.4,
                  "variance_share_below": -0.05, "propensity_outside": (0.05, 0.95)}


class OverlapWarning(UserWarning):
    """An AIPW/DML diagnostic signals weak overlap or a poor nuisance model."""


def overlap_checks(effect: Effect, warn: bool = True) -> Effect:
    """Adds overlap_warnings (a list of sentences) to ``effect.diagnostics``
    and warns (``OverlapWarning``) when any of them holds: more than 5% of
    propensities clipped, one cluster carrying over 40% of the clustered
    variance, ê outside [0.05, 0.95], or variance_share below −0.05 (the
    out-of-fold first stage predicts treatment worse than its mean)."""
    dg, lim, out = effect.diagnostics, OVERLAP_LIMITS, []
    if dg.get("clipped_share", 0.0) > lim["clipped_share"]:
        out.append(f"{dg['clipped_share']:.0%} of propensities were clipped to "
                   f"[{dg['clip']}, {1 - dg['clip']}]")
    lo, hi = lim["propensity_outside"]
    if "propensity_min" in dg and (dg["propensity_min"] < lo or dg["propensity_max"] > hi):
        out.append(f"propensities range over [{dg['propensity_min']:.3g}, "
                   f"{dg['propensity_max']:.3g}] (beyond [{lo}, {hi}]: little overlap or an "
                   f"over-flexible propensity model; consider trim='crump')")
    if dg.get("largest_cluster_share", 0.0) > lim["largest_cluster_share"]:
        out.append(f"one cluster carries {dg['largest_cluster_share']:.0%} of the "
                   f"cluster-robust variance")
    if dg.get("variance_share", 0.0) < lim["variance_share_below"]:
        out.append(f"variance_share = {dg['variance_share']:.3f}: the out-of-fold treatment "
                   f"model predicts worse than a constant")
    dg["overlap_warnings"] = out
    if out and warn:
        warnings.warn(f"rfp {effect.method} ({effect.estimand}): " + "; ".join(out),
                      OverlapWarning, stacklevel=3)
    return effect


def aipw_from_nuisances(y, d, e_hat, mu0, mu1, cluster, estimand="ATE", clip=0.01,
                        level=0.95, method="aipw", trim=None, w=None) -> Effect:
    """The AIPW estimate and its cluster-robust influence-function SE;
    ``trim`` (None, "crump" or α) restricts the average to rows with ê in
    [α, 1 − α] (``aipw``). Case weights ``w``: the weighted mean of the score,
    τ̂ = Σ w φ / Σ w (ATT: Σ w s / Σ w D), ψ_i = w_i (φ_i − τ̂) / mean(w)."""
    if estimand not in ("ATE", "ATT"):
        raise ValueError(f"estimand must be 'ATE' or 'ATT', got {estimand!r}")
    if not 0 <= clip < 0.5:
        raise ValueError(f"clip must lie in [0, 0.5), got {clip}")
    alpha = 0.0
    if trim is not None:
        if isinstance(trim, str):
            if trim != "crump":
                raise ValueError(f"trim must be None, 'crump' or a number in (0, 0.5), got {trim!r}")
            alpha = crump_threshold(e_hat)
        else:
            alpha = float(trim)
            if not 0 < alpha < 0.5:
                raise ValueError(f"trim must be None, 'crump' or a number in (0, 0.5), got {trim!r}")
        keep = (e_hat >= alpha) & (e_hat <= 1 - alpha)
        if keep.sum() == 0 or np.unique(d[keep]).size < 2:
            raise ValueError(f"trimming at alpha = {alpha:.3g} leaves no treated or no untreated rows")
        out = aipw_from_nuisances(y[keep], d[keep], e_hat[keep], mu0[keep], mu1[keep],
                                  np.asarray(cluster)[keep], estimand, clip, level, method,
                                  w=None if w is None else np.asarray(w)[keep])
        # per-row nuisances stay full length; scores are 0 on trimmed rows
        for name in ("psi", "phi"):
            if name in out.nuisance:
                full = np.zeros(len(y))
                full[keep] = out.nuisance[name]
                out.nuisance[name] = full
        out.nuisance.update(e=e_hat, mu0=mu0, mu1=mu1, kept=keep.astype(float))
        if (~keep).any():
            out.estimand = f"{estimand} (trimmed)"
        out.diagnostics.update(trim_alpha=alpha, n_trimmed=int((~keep).sum()),
                               trimmed_estimand=f"{estimand} among rows with propensity in "
                                                f"[{alpha:.3g}, {1 - alpha:.3g}]")
        return out
    n_clipped = int(np.sum((e_hat < clip) | (e_hat > 1 - clip)))
    e = np.clip(e_hat, clip, 1 - clip)
    r0 = y - mu0
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    if estimand == "ATE":
        phi = mu1 - mu0 + d * (y - mu1) / e - (1 - d) * r0 / (1 - e)
        tau = float(w @ phi / w.sum())
        psi = w * (phi - tau) / w.mean()
        control_w = w / (1 - e)
        scores = {"phi": phi}
    else:
        if not float(w @ d) > 0:
            raise ValueError("the treated rows all have case weight 0: the ATT is not defined")
        score = d * r0 - (1 - d) * e / (1 - e) * r0
        tau = float(w @ score / (w @ d))
        psi = w * (score - d * tau) / (w @ d / len(d))
        control_w = w * e / (1 - e)
        scores = {}
    se = cluster_if_se(psi, cluster)
    codes = np.unique(cluster, return_inverse=True)[1].reshape(-1)
    n_clusters = int(codes.max()) + 1
    test = t_test(tau, se, df=n_clusters - 1, level=level)
    diagnostics = {
        "n_clipped": n_clipped, "clip": clip, "clipped_share": n_clipped / len(y),
        "propensity_min": float(e_hat.min()), "propensity_max": float(e_hat.max()),
        "largest_cluster_share": largest_cluster_share(psi, cluster),
        "ess": kish_ess(control_w[d == 0]),
        "variance_share": 1.0 - float(np.var(d - e_hat)) / float(np.var(d)),
    }
    return Effect(method, estimand, tau, se, float(test.ci_low), float(test.ci_high), len(y),
                  n_clusters, n_clusters - 1, level, diagnostics,
                  {"e": e_hat, "mu0": mu0, "mu1": mu1, "psi": psi, **scores})
