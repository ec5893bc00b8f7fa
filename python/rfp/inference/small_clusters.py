"""Small-cluster inference: ``SmallClusterWarning`` flags CR1 with fewer
than ``SMALL_CLUSTERS`` (30) clusters, and ``CR2`` is the bias-reduced
linearization of Bell & McCaffrey (2002) with Satterthwaite degrees of
freedom (Pustejovsky & Tipton 2018), its adjustment computed for the
regression with the fixed effects as dummies even when they are absorbed (as
clubSandwich does)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from rfp.inference.cluster_robust import encode


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
