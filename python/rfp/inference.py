"""Cluster-robust variance and t-based inference (DESIGN.md, "Effects" and
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

For few clusters, ``CR2`` is the bias-reduced linearization of Bell &
McCaffrey (2002) with Satterthwaite degrees of freedom (Pustejovsky & Tipton
2018), its adjustment computed for the regression with the fixed effects as
dummies even when they are absorbed (as clubSandwich does); the wild cluster
bootstrap lives in ``rfp.wild_bootstrap``. ``SmallClusterWarning`` flags CR1
with fewer than ``SMALL_CLUSTERS`` (30) clusters.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy import stats


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


@dataclass
class TTest:
    """t statistic, two-sided p-value and confidence interval."""
    t: np.ndarray
    p: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    df: float
    level: float


def t_test(estimate, std_error, df, level: float = 0.95, null=0.0) -> TTest:
    """Two-sided t-test of estimate = null and the ``level`` confidence
    interval, on a Student t with ``df`` degrees of freedom (G - 1 for
    CR1, as fixest and Stata do; Satterthwaite's, not a whole number and one
    per coefficient, for CR2)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if np.any(np.asarray(df) <= 0):
        raise ValueError(f"t-test needs positive degrees of freedom, got df = {df}")
    est = np.asarray(estimate, dtype=float)
    se = np.asarray(std_error, dtype=float)
    t = (est - null) / se
    p = 2 * stats.t.sf(np.abs(t), df)
    q = stats.t.ppf(0.5 + level / 2, df)
    df = int(df) if np.ndim(df) == 0 and float(df).is_integer() else df
    return TTest(t, p, est - q * se, est + q * se, df, float(level))


# ----------------------------------------------------------------------------
# CR2: bias-reduced linearization (Bell & McCaffrey 2002; Pustejovsky &
# Tipton 2018) with Satterthwaite degrees of freedom

SMALL_CLUSTERS = 30


class SmallClusterWarning(UserWarning):
    """Few clusters: CR1 with t on G - 1 can over-reject; use CR2 or the
    wild cluster bootstrap."""


def warn_small_clusters(n_clusters: int, what: str = "the fixed-effects row", stacklevel=3):
    """``SmallClusterWarning`` when fewer than ``SMALL_CLUSTERS`` clusters
    carry CR1 inference."""
    if n_clusters < SMALL_CLUSTERS:
        warnings.warn(
            f"rfp: only {n_clusters} clusters: CR1 standard errors with t on G - 1 = "
            f"{n_clusters - 1} df can over-reject with fewer than {SMALL_CLUSTERS} clusters; "
            f"for {what} use vcov = 'CR2' (Bell-McCaffrey with Satterthwaite df) or "
            f"vcov = 'wild' (wild cluster bootstrap)", SmallClusterWarning, stacklevel=stacklevel)


class FixedEffectBasis:
    """The projection P_U onto the fixed-effect dummies U (without forming
    the n × n matrix), as a factor P_U = Z Z'.

    The first fixed effect A (the one with most levels) enters as
    A D^{-1/2} (D its level counts, a sparse factor); the others R through
    R̃ = R − A D^{-1} A'R (R made orthogonal to A), as R̃ S^{1/2} with
    S = (R̃'R̃)^+ (a pseudo-inverse: one redundant level per extra fixed
    effect, or more when they are not connected). Then P_U = P_A + P_R̃.
    """

    def __init__(self, fe_codes, n: int):
        fe_codes = [np.asarray(c).reshape(-1) for c in fe_codes]
        self.n = n
        if not fe_codes:
            self.z = sp.csr_matrix((n, 0))
            return
        fe_codes = sorted(fe_codes, key=lambda c: -np.unique(c).size)
        a = _dummies(fe_codes[0])
        counts = np.asarray(a.sum(axis=0)).reshape(-1)
        parts = [a @ sp.diags(1.0 / np.sqrt(counts))]
        if len(fe_codes) > 1:
            r = sp.hstack([_dummies(c) for c in fe_codes[1:]]).tocsr()
            if r.shape[1] * n > 5e7:
                raise ValueError(
                    f"CR2 with several fixed effects: the fixed effects after the largest have "
                    f"{r.shape[1]} levels in all, too many for the exact projection; use "
                    f"vcov = 'CR1' or 'wild', or absorb fewer fixed effects")
            r_tilde = (r - a @ sp.diags(1.0 / counts) @ (a.T @ r)).toarray()
            s_half = _sym_power(r_tilde.T @ r_tilde, -0.5)
            parts.append(sp.csr_matrix(r_tilde @ s_half))
        self.z = sp.hstack(parts).tocsr()

    def rows(self, index) -> np.ndarray:
        """Z restricted to ``index`` rows, dense (n_g × L)."""
        return self.z[index].toarray()


def _dummies(codes) -> sp.csr_matrix:
    codes = np.unique(codes, return_inverse=True)[1].reshape(-1)
    n = codes.shape[0]
    return sp.csr_matrix((np.ones(n), (np.arange(n), codes)), shape=(n, int(codes.max()) + 1))


def _sym_power(m, power, tol=1e-12):
    """m^power for a symmetric positive semi-definite m by its eigenvalues;
    eigenvalues ≤ tol are set to zero (a pseudo-inverse power, as clubSandwich's
    ``Sym_power`` does)."""
    values, vectors = np.linalg.eigh((m + m.T) / 2)
    keep = values > tol
    scaled = np.zeros_like(values)
    scaled[keep] = values[keep] ** power
    return (vectors * scaled) @ vectors.T


@dataclass
class CR2:
    """CR2 variance of OLS coefficients and Satterthwaite degrees of freedom.

    For the regression of y on X and fixed effects U (absorbed: ``x`` is the
    within-transformed X̃ = M_U X, ``resid`` the residuals), the full design's
    hat matrix is H = P_U + X̃ M X̃', M = (X̃'X̃)^{-1}, so the CR2 adjustment
    equals that of the regression with U as dummies:

        A_g = (I − H_gg)^{-1/2}   (symmetric; pseudo-inverse root),
        V   = M [Σ_g X̃_g' A_g e_g e_g' A_g X̃_g] M      (no further factor).

    Satterthwaite degrees of freedom for a contrast c (Bell & McCaffrey 2002,
    Pustejovsky & Tipton 2018 eq. 11, working model Φ = I): with
    u_g = A_g X̃_g M c, c'Vc = Σ_g (u_g'e_g)² = ε'WW'ε where the g-th column
    of W is (I − H)_{·g} u_g, and

        Ω = W'W,  Ω_gh = δ_gh u_g'u_g − u_g' H_gh u_h,
        ν = tr(Ω)² / tr(Ω²).
    """
    vcov: np.ndarray
    bread: np.ndarray
    x: np.ndarray
    index: list
    adjust: list
    z: FixedEffectBasis

    @classmethod
    def fit(cls, x, resid, cluster, fe_codes=()) -> "CR2":
        x = np.asarray(x, dtype=float)
        if x.ndim == 1:
            x = x[:, None]
        resid = np.asarray(resid, dtype=float).reshape(-1)
        codes, n_clusters = encode(cluster)
        if n_clusters < 2:
            raise ValueError("cluster-robust variance needs at least two clusters")
        bread = np.linalg.inv(x.T @ x)
        basis = FixedEffectBasis(fe_codes, len(resid))
        order = np.argsort(codes, kind="stable")
        index = np.split(order, np.cumsum(np.bincount(codes, minlength=n_clusters))[:-1])
        adjust, scores = [], []
        for rows in index:
            zg, xg = basis.rows(rows), x[rows]
            h_gg = zg @ zg.T + xg @ bread @ xg.T
            a_g = _sym_power(np.eye(len(rows)) - h_gg, -0.5)
            adjust.append(a_g)
            scores.append(xg.T @ (a_g @ resid[rows]))
        scores = np.array(scores)
        v = bread @ (scores.T @ scores) @ bread
        return cls((v + v.T) / 2, bread, x, index, adjust, basis)

    def df(self, contrast) -> float:
        """Satterthwaite degrees of freedom of c'β̂ (class docstring)."""
        c = np.asarray(contrast, dtype=float).reshape(-1)
        mc = self.bread @ c
        u = [a_g @ (self.x[rows] @ mc) for a_g, rows in zip(self.adjust, self.index)]
        z_hat = np.column_stack([self.z.rows(rows).T @ u_g for rows, u_g in zip(self.index, u)])
        x_hat = np.column_stack([self.x[rows].T @ u_g for rows, u_g in zip(self.index, u)])
        omega = (np.diag([u_g @ u_g for u_g in u]) - z_hat.T @ z_hat
                 - x_hat.T @ self.bread @ x_hat)
        return float(np.trace(omega) ** 2 / np.sum(omega * omega))

    def df_coefficients(self) -> np.ndarray:
        """Satterthwaite df of each coefficient."""
        p = self.x.shape[1]
        return np.array([self.df(np.eye(p)[j]) for j in range(p)])
