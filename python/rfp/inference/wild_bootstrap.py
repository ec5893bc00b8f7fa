"""Wild cluster bootstrap for one OLS coefficient, null imposed (WCR).

Cameron, Gelbach & Miller (2008); Roodman, MacKinnon, Nielsen & Webb (2019,
"Fast and wild"), restricted "11" variant. For the regression of y on X and
fixed effects U (absorbed: X̃ = M_U X, ỹ = M_U y) and the hypothesis
β_j = θ:

1. Restricted fit: û(θ) = residual of ỹ − θ x̃_j on the other columns of X̃
   (with U, by Frisch–Waugh–Lovell); it is affine in θ.
2. Bootstrap samples y* = (restricted fit) + v_g û_g(θ), one weight v_g per
   cluster: Rademacher (±1) or Webb's six points ±√(1/2), ±1, ±√(3/2);
   Rademacher enumerates all 2^G sign vectors when 2^G ≤ B.
3. Each y* is refitted with the full design (U and X): since X̃'M_U = X̃',
   β̂*_j − θ = m_j' X̃'(v ⊙ û) with m_j the j-th row of M = (X̃'X̃)^{-1}, and
   the residuals are e* = (I − P_U − X̃ M X̃')(v ⊙ û). Its CR1 t statistic is
   t* = (β̂*_j − θ) / se*(β̂*_j), se*² ∝ Σ_g (m_j' X̃_g' e*_g)², the same
   CR1 factor as the sample's t (the factor cancels in the p-value).
4. p(θ) = share of draws with |t*| > |t(θ)| (two-sided; ``wildboottest``'s
   convention; the draws v = ±1, which reproduce |t(θ)| exactly, are ties
   and do not count, whatever the rounding), and the interval {θ : p(θ) ≥ 1 − level} by test inversion
   (bisection on each side of β̂), the same draws v for every θ.

Every per-draw quantity is linear in v, so with T[g, h] the effect of v_h
on cluster g's score, t*(θ) = b(θ)'v / √(Σ_g (T(θ)v)_g²) and b, T are affine
in θ: one B × G product per θ, no refit and no n × B matrix.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from rfp.inference.cluster_robust import encode
from rfp.inference.small_clusters import FixedEffectBasis
from rfp.settings import check

WEBB = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])


@dataclass
class WildBootstrap:
    """Bootstrap p-value of β_j = ``null`` and the ``level`` interval by test
    inversion. ``t`` is the sample's CR1 t statistic; ``draws`` the number of
    weight vectors used (2^G under full enumeration). An endpoint is ±inf
    when no θ up to 2^60 standard errors away on that side is rejected."""
    p_value: float
    ci_low: float
    ci_high: float
    t: float
    draws: int
    weights: str
    seed: int
    level: float
    null: float
    full_enumeration: bool


def draw_weights(n_clusters: int, draws: int, weights: str, seed: int):
    """(B × G weight matrix, full enumeration?); ``draws`` and ``weights``
    checked by the settings validator (bootstrap_draws, bootstrap_weights)."""
    weights = check("bootstrap_weights", weights)
    draws = check("bootstrap_draws", draws)
    if weights == "rademacher" and 2 ** n_clusters <= draws:
        return np.array(list(product([-1.0, 1.0], repeat=n_clusters))), True
    rng = np.random.default_rng(seed)
    if weights == "rademacher":
        return rng.choice([-1.0, 1.0], size=(int(draws), n_clusters)), False
    return rng.choice(WEBB, size=(int(draws), n_clusters)), False


def warn_coarse(n_clusters: int, weights: str, level: float) -> None:
    """``SmallClusterWarning`` when the distinct weight vectors (2^G for
    Rademacher, 6^G for Webb) are too few for the level: the p-value moves in
    steps of 2 / 2^G at best (v and −v give the same |t*|), so when that
    step exceeds 1 − level a p-value of 0 only says p < step, and the
    interval's endpoints rest on a handful of draws."""
    base = 2 if weights == "rademacher" else 6
    if n_clusters > 40:
        return
    distinct = base ** n_clusters
    smallest = 2.0 / distinct
    alpha = 1.0 - float(level)
    if smallest <= alpha:
        return
    import warnings

    from rfp.inference.small_clusters import SmallClusterWarning
    advice = ("bootstrap_weights = 'webb' (6^G draws) helps from 3 clusters on; "
              if weights == "rademacher" else "")
    warnings.warn(
        f"only {distinct} distinct wild bootstrap draws ({n_clusters} clusters) with {weights} "
        f"weights: the smallest attainable p-value is {smallest:g} (above 0; a p-value of 0 "
        f"only says p < {smallest:g}), so the test at level {alpha:g} and the {level:.0%} "
        f"interval rest on too few draws to be read as such; {advice}with so few clusters "
        f"no cluster-robust inference is reliable", SmallClusterWarning, stacklevel=3)


def wild_cluster_bootstrap(x, y, cluster, coef: int, fe_codes=(), *, draws: int = 9999,
                           weights: str = "rademacher", seed: int = 0, level: float = 0.95,
                           null: float = 0.0, k: int | None = None) -> WildBootstrap:
    """WCR bootstrap test and interval for coefficient ``coef`` (a column of
    ``x``). ``x`` and ``y`` are the design and outcome after absorbing the
    fixed effects ``fe_codes`` (integer codes per row), which the bootstrap
    refits keep, exactly as with dummies (module docstring). ``k`` is the
    parameter count K of the CR1 factor of the reported t (default: the
    columns of ``x``)."""
    level = check("level", level)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float).reshape(-1)
    n, p = x.shape
    codes, n_clusters = encode(cluster)
    if n_clusters < 2:
        raise ValueError("the wild cluster bootstrap needs at least two clusters")
    v, full = draw_weights(n_clusters, draws, weights, seed)
    warn_coarse(n_clusters, check("bootstrap_weights", weights), level)
    bread = np.linalg.inv(x.T @ x)
    beta = bread @ (x.T @ y)
    m_j = bread[coef]
    basis = FixedEffectBasis(fe_codes, n)
    order = np.argsort(codes, kind="stable")
    index = np.split(order, np.cumsum(np.bincount(codes, minlength=n_clusters))[:-1])

    # the restricted residual û(θ) = r0 − θ r1
    others = [k for k in range(p) if k != coef]
    x_r = x[:, others]

    def residual(target):
        if not others:
            return target
        return target - x_r @ np.linalg.lstsq(x_r, target, rcond=None)[0]

    r0, r1 = residual(y), residual(x[:, coef])

    # pieces that do not depend on û
    a = x @ m_j                                           # a_g = X̃_g m_j
    alpha = np.column_stack([basis.rows(rows).T @ a[rows] for rows in index])   # L × G
    beta_g = np.column_stack([x[rows].T @ a[rows] for rows in index])           # p × G

    def pieces(u):
        """(b, T) for residual vector u: β̂*_j − θ = b'v, score_g = (T v)_g."""
        zeta = np.column_stack([basis.rows(rows).T @ u[rows] for rows in index])  # L × G
        s = np.column_stack([x[rows].T @ u[rows] for rows in index])             # p × G
        own = np.array([a[rows] @ u[rows] for rows in index])
        t_mat = np.diag(own) - alpha.T @ zeta - beta_g.T @ bread @ s
        return m_j @ s, t_mat

    b0, t0 = pieces(r0)
    b1, t1 = pieces(r1)
    vb0, vb1 = v @ b0, v @ b1
    vt0, vt1 = v @ t0.T, v @ t1.T

    # the sample's CR1 score per cluster: m_j' X̃_g' e_g
    resid = y - x @ beta
    score = np.array([a[rows] @ resid[rows] for rows in index])
    se = float(np.sqrt(np.sum(score ** 2)))               # CR1 factor cancels

    def p_value(theta):
        t_sample = (beta[coef] - theta) / se
        numer = vb0 - theta * vb1
        denom = np.sqrt(np.sum((vt0 - theta * vt1) ** 2, axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            t_boot = numer / denom
        return float(np.mean(np.abs(t_boot) > np.abs(t_sample) * (1 + 1e-10)))

    alpha_level = 1 - level

    def endpoint(direction):
        inside = float(beta[coef])
        step = se if se > 0 else 1.0
        outside = None
        for _ in range(60):
            trial = inside + direction * step
            if p_value(trial) < alpha_level:
                outside = trial
                break
            inside, step = trial, step * 2
        if outside is None:
            return direction * np.inf
        for _ in range(200):
            if abs(outside - inside) <= 1e-10 * max(1.0, abs(inside)):
                break
            mid = (inside + outside) / 2
            if p_value(mid) < alpha_level:
                outside = mid
            else:
                inside = mid
        return (inside + outside) / 2

    n_draws = v.shape[0]
    k = p if k is None else int(k)
    factor = n_clusters / (n_clusters - 1) * (n - 1) / (n - k)   # for the reported t only
    t_stat = float((beta[coef] - null) / (se * np.sqrt(factor)))
    return WildBootstrap(p_value(null), endpoint(-1), endpoint(+1), t_stat, n_draws, weights,
                         int(seed), float(level), float(null), full)
