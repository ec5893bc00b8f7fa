"""Cluster-robust variance (docs/DESIGN.md, "Effects" and
"Comparisons": CR1 by cluster, t on G - 1 degrees of freedom).

Two estimators of the variance share one convention, the G/(G - 1) cluster
correction:

* ``cr1_vcov``: the sandwich for OLS on a (possibly demeaned) design,

      V = c · (X'X)^{-1} [Σ_g X_g' e_g e_g' X_g] (X'X)^{-1},
      c = G/(G - 1) · (n - 1)/(n - K).

* ``cluster_if_vcov``: the variance of an estimator that is asymptotically
  linear, θ̂ - θ ≈ (1/n) Σ_i ψ_i, from the per-cluster sums of its influence
  function ψ (DML and AIPW reuse it).

How K counts fixed effects (``fixest_dof_k``) follows fixest's default
``ssc(adj = TRUE, fixef.K = "nested", cluster.adj = TRUE)``.

For few clusters: ``small_clusters`` (CR2 and the warning below 30 clusters)
and ``wild_bootstrap``."""
from __future__ import annotations

import numpy as np


def cluster_sums(values: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """Σ_{i∈g} values_i for each cluster g; ``values`` is (n,) or (n, p),
    ``cluster`` holds integer codes 0..G-1. Returns (G,) or (G, p)."""
    values = np.asarray(values, dtype=float)
    codes = np.asarray(cluster)
    n_groups = int(codes.max()) + 1
    if values.ndim == 1:
        return np.bincount(codes, weights=values, minlength=n_groups)
    return np.column_stack(
        [np.bincount(codes, weights=values[:, j], minlength=n_groups)
         for j in range(values.shape[1])]
    ).reshape(n_groups, values.shape[1])


def encode(cluster) -> tuple[np.ndarray, int]:
    """Any cluster labels -> integer codes 0..G-1 and G."""
    _, codes = np.unique(np.asarray(cluster), return_inverse=True)
    codes = codes.reshape(-1)
    return codes, int(codes.max()) + 1


def cr1_vcov(x: np.ndarray, resid: np.ndarray, cluster, k: int | None = None) -> np.ndarray:
    """CR1 cluster-robust variance of OLS coefficients.

    ``x`` is the (n, p) design the coefficients were estimated on (after
    absorbing fixed effects by the within transformation, if any), ``resid``
    the OLS residuals, ``cluster`` one label per row, and ``k`` the number of
    parameters K in the small-sample factor (n - 1)/(n - K); it defaults to p
    (right when no fixed effects were absorbed). With fixed effects pass
    ``fixest_dof_k(...)``. Returns the (p, p) matrix

        G/(G-1) · (n-1)/(n-K) · (X'X)^{-1} (Σ_g s_g s_g') (X'X)^{-1},
        s_g = Σ_{i∈g} x_i e_i.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    resid = np.asarray(resid, dtype=float).reshape(-1)
    n, p = x.shape
    codes, n_clusters = encode(cluster)
    if n_clusters < 2:
        raise ValueError("cluster-robust variance needs at least two clusters")
    k = p if k is None else int(k)
    if n - k <= 0:
        raise ValueError(f"no residual degrees of freedom: n = {n}, K = {k}")
    scores = cluster_sums(x * resid[:, None], codes)          # (G, p)
    meat = scores.T @ scores
    bread = np.linalg.inv(x.T @ x)
    factor = n_clusters / (n_clusters - 1) * (n - 1) / (n - k)
    v = factor * bread @ meat @ bread
    return (v + v.T) / 2


def is_nested(fe_codes: np.ndarray, cluster_codes: np.ndarray) -> bool:
    """True when every level of the fixed effect lies inside one cluster."""
    fe_codes = np.asarray(fe_codes)
    cluster_codes = np.asarray(cluster_codes)
    pairs = np.unique(np.stack([fe_codes, cluster_codes]), axis=1)
    return pairs.shape[1] == np.unique(fe_codes).size


def fixest_dof_k(n_regressors: int, fe_codes, cluster) -> int:
    """K for the CR1 factor (n - 1)/(n - K), counted as fixest's default
    ``ssc(fixef.K = "nested")`` does (fixest's VCOV.R, without
    ``fixef.force_exact``):

    * all fixed effects count Σ_j L_j - (J - 1) parameters (L_j levels of the
      j-th of J fixed effects, one reference level per extra fixed effect);
    * a fixed effect nested in the cluster variable (each of its levels inside
      a single cluster) is dropped from K, i.e. K falls by L_j - 1;
    * if every fixed effect is nested, K = regressors + 1 (the intercept).

    R's ``lm(y ~ d + factor(fe))`` with ``sandwich::vcovCL(type = "HC1")``
    instead always uses K = rank of the dummy design (regressors + Σ L_j -
    (J - 1) when the fixed effects are connected). The two agree when no fixed
    effect is nested in the cluster and differ when one is (e.g. cluster fixed
    effects clustered by cluster): there lm + vcovCL gives larger SEs.
    """
    fe_codes = [np.asarray(f) for f in fe_codes]
    if not fe_codes:
        return int(n_regressors)
    cluster = np.asarray(cluster)
    sizes = np.array([np.unique(f).size for f in fe_codes])
    nested = np.array([is_nested(f, cluster) for f in fe_codes])
    if nested.all():
        return int(n_regressors) + 1
    k = n_regressors + sizes.sum() - (len(sizes) - 1)
    k -= (sizes[nested] - 1).sum()
    return int(max(k, n_regressors + 1))


def cluster_if_vcov(psi: np.ndarray, cluster) -> np.ndarray:
    """Cluster-robust variance of θ̂ from its influence function.

    For θ̂ - θ ≈ (1/n) Σ_i ψ_i (ψ of shape (n,) or (n, p)), with S_g = Σ_{i∈g} ψ_i
    the per-cluster sums and S̄ their mean over the G clusters,

        Var(θ̂) = G/(G-1) · Σ_g (S_g - S̄)(S_g - S̄)' / n².

    ψ evaluated at θ̂ usually sums to zero, so S̄ = 0 and this is the familiar
    G/(G-1) · Σ_g S_g S_g' / n². Returns a scalar for 1-d ψ, else (p, p).
    """
    psi = np.asarray(psi, dtype=float)
    one_d = psi.ndim == 1
    if one_d:
        psi = psi[:, None]
    n = psi.shape[0]
    codes, n_clusters = encode(cluster)
    if codes.shape[0] != n:
        raise ValueError(f"psi has {n} rows but cluster has {codes.shape[0]}")
    if n_clusters < 2:
        raise ValueError("cluster-robust variance needs at least two clusters")
    sums = cluster_sums(psi, codes)
    sums = sums - sums.mean(axis=0)
    v = n_clusters / (n_clusters - 1) * (sums.T @ sums) / n**2
    return float(v[0, 0]) if one_d else v


def cluster_if_se(psi: np.ndarray, cluster) -> np.ndarray | float:
    """Standard error(s) from ``cluster_if_vcov``."""
    v = cluster_if_vcov(psi, cluster)
    return float(np.sqrt(v)) if np.ndim(v) == 0 else np.sqrt(np.diag(v))
