"""Balancing weights for the ATT (docs/DESIGN.md, "Comparisons").

Each estimator returns its weights together with the solver's own status; none
raises for a balance problem that has no solution (it says so instead).

entropy_balance
    Hainmueller (2012). Control weights w minimising Σ w_i log(w_i / q_i)
    subject to Σ w_i = 1 and Σ w_i x_i = m (the treated means), solved through
    the dual  min_β log Σ q_i exp(β'(x_i − m))  by Newton's method with a
    backtracking line search; w_i ∝ q_i exp(β'x_i) (exponential tilting).

hierarchical_balance
    Multilevel balancing weights (Ben-Michael & Feller, "Matrix constraints for
    multilevel observational studies"): exact global balance, per-cluster sums,
    and a penalty 1/λ on within-cluster imbalance, λ being the prior precision
    (1/σ_β) of the cluster deviations β_j − μ_β in the paper's hierarchical
    propensity model: λ → ∞ pools completely (global balance and per-cluster
    sums only), λ → 0 balances every cluster. A QP solved by OSQP.

cluster_balance
    Treatment assigned to whole clusters: weights on control clusters that
    balance cluster means of individual covariates and cluster covariates,
    minimising the variance of the weighted control mean under a random-
    intercept model, Σ w_c² (icc + (1 − icc)/n_c); a QP solved by OSQP.

The ``*_from_table`` wrappers read an Arrow-compatible table (``rfp.data``),
check the columns, and add a balance table and effective sample size
(``rfp.diagnostics``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import osqp
import pyarrow as pa
from scipy import sparse

from .. import results
from ..data import (as_table, case_weights, check_magnitudes, check_weighted_arms, drop_missing,
                    encode_clusters, kept_weights, normalise_weights, numeric, require_columns)
from ..diagnostics import balance_table, effective_sample_size

__all__ = [
    "EntropyBalance", "HierarchicalBalance", "ClusterBalance", "BalancingFit",
    "entropy_balance", "hierarchical_balance", "cluster_balance",
    "entropy_balance_from_table", "hierarchical_balance_from_table",
    "cluster_balance_from_table",
]


# ----------------------------------------------------------------------------
# small helpers

def _matrix(a, what: str) -> np.ndarray:
    x = np.asarray(a, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-d array (rows = units), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} contains NaN or inf")
    return x


def _binary(a, what: str, n: int) -> np.ndarray:
    t = np.asarray(a).reshape(-1)
    if t.shape[0] != n:
        raise ValueError(f"{what} has length {t.shape[0]}, expected {n}")
    if not np.all(np.isin(t, [0, 1])):
        raise ValueError(f"{what} must be binary (0/1 or boolean); values seen: "
                         f"{np.unique(t)[:10].tolist()}")
    return t.astype(bool)


def _names(names, p: int) -> list:
    if names is None:
        return [f"x{k + 1}" for k in range(p)]
    names = [str(v) for v in names]
    if len(names) != p:
        raise ValueError(f"{len(names)} covariate names for {p} covariates")
    return names


def _column_sd(x: np.ndarray) -> np.ndarray:
    """Sample SD (ddof = 1) of each column, 1 where a column is constant."""
    if x.shape[0] < 2:
        return np.ones(x.shape[1])
    s = x.std(axis=0, ddof=1)
    return np.where(s > 0, s, 1.0)


def _outside_range(xc: np.ndarray, m: np.ndarray, names: list) -> list:
    """Univariate witnesses of infeasible balance: targets outside [min, max]."""
    out = []
    lo, hi = xc.min(axis=0), xc.max(axis=0)
    for k, name in enumerate(names):
        if m[k] < lo[k]:
            out.append(f"target mean of '{name}' ({m[k]:.6g}) is below the smallest control value ({lo[k]:.6g})")
        elif m[k] > hi[k]:
            out.append(f"target mean of '{name}' ({m[k]:.6g}) is above the largest control value ({hi[k]:.6g})")
    return out


# ----------------------------------------------------------------------------
# entropy balancing

@dataclass
class EntropyBalance:
    """Result of ``entropy_balance``.

    weights: (n0,) control weights, Σ w = 1.  coef: dual coefficients β in the
    covariates' units, w_i ∝ q_i exp(β'x_i).  status: "converged" (exact
    balance), "approximate" (exact balance failed and the penalised fallback
    below returned weights), or, with ``fallback="none"``, "infeasible"
    (certified: the dual fell below log min q, impossible when balance is
    attainable, or a nonzero distance from m to the controls' convex hull),
    "max_iter" or "stalled"; then ``weights`` are the closest balance
    attainable (the hull's nearest point to m in SD units), not entropy
    weights.  converged: exact balance reached.  balance: "exact",
    "approximate" or "none".  exact_status: the status of the exact attempt.
    penalty: the fallback's ridge penalty λ (0 for exact balance).
    imbalance: Σ w x − m per covariate at the returned weights
    (``std_imbalance`` the same in SDs of the controls); worst_covariate
    names the largest |imbalance| / SD_k.  closest_imbalance: the smallest
    attainable imbalance (SD units; the convex hull's nearest point), when
    exact balance failed.
    """
    weights: np.ndarray
    coef: np.ndarray
    converged: bool
    status: str
    message: str
    iterations: int
    max_violation: float
    imbalance: np.ndarray
    worst_covariate: str
    dual_norm: float
    dual_objective: float
    names: list = field(default_factory=list)
    balance: str = "exact"
    exact_status: str = "converged"
    penalty: float = 0.0
    std_imbalance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    closest_imbalance: np.ndarray = field(default_factory=lambda: np.zeros(0))


# Fallback penalties λ (standardised covariates), tried from the largest down.
FALLBACK_PENALTIES = tuple(float(v) for v in 10.0 ** np.arange(0.0, -4.5, -0.5))
FALLBACK_SLACK = 0.05


def _entropy_newton(z, logq, penalty=0.0, max_iter=200, tol=1e-10):
    """Newton on the (ridge-penalised) entropy-balancing dual

        f(β) = log Σ q_i exp(β'z_i) + (λ/2) ‖β‖²,

    ∇f = Σ w_i z_i + λβ, ∇²f = Σ w_i z_i z_i' − (Σ w z)(Σ w z)' + λI. With
    λ = 0 it is Hainmueller's dual (exact balance); with λ > 0 it is the dual
    of  min_w KL(w‖q) + (1/2λ) ‖Σ w_i z_i‖²  over the simplex (approximate
    balance: the imbalance at the optimum is −λβ), strictly convex and always
    solvable. Returns (β, f, η, status, iterations, dual norms)."""
    def dual(b):
        eta = logq + z @ b
        c = eta.max()
        return c + np.log(np.exp(eta - c).sum()) + 0.5 * penalty * float(b @ b), eta

    beta = np.zeros(z.shape[1])
    f, eta = dual(beta)
    floor = logq.min() - 1e-10 * (1.0 + abs(logq.min()))
    status, it, norms = "max_iter", 0, [0.0]
    for it in range(max_iter + 1):
        w = np.exp(eta - (f - 0.5 * penalty * float(beta @ beta)))
        g = z.T @ w + penalty * beta
        if g.size == 0 or np.max(np.abs(g)) <= tol:
            status = "converged"
            break
        if it == max_iter:
            break
        zw = z.T @ w
        h = (z * w[:, None]).T @ z - np.outer(zw, zw) + penalty * np.eye(g.size)
        mu = 1e-12 * max(np.trace(h) / h.shape[0], 1e-300)
        d = np.linalg.solve(h + mu * np.eye(h.shape[0]), -g)
        slope = g @ d
        if not np.isfinite(slope) or slope >= 0:
            d, slope = -g, -(g @ g)
        t = 1.0
        for _ in range(60):
            f_new, eta_new = dual(beta + t * d)
            if np.isfinite(f_new) and f_new <= f + 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            status = "stalled"
            break
        beta, f, eta = beta + t * d, f_new, eta_new
        norms.append(float(np.linalg.norm(beta)))
        if penalty == 0 and f < floor:
            status = "infeasible"
            it += 1
            break
    return beta, f, eta, status, it, norms


def entropy_balance(X_control, target_means, base_weights=None, max_iter: int = 200,
                    tol: float = 1e-10, names=None, fallback: str = "approximate",
                    slack: float = FALLBACK_SLACK) -> EntropyBalance:
    """Entropy balancing weights for the ATT (Hainmueller 2012).

    Primal:  min_w Σ w_i log(w_i / q_i)  s.t.  Σ w_i = 1,  Σ w_i x_i = m.
    Dual:    min_β f(β) = log Σ q_i exp(β'z_i),  z_i = (x_i − m) / s  (s = SD of
             each covariate among controls), with ∇f = Σ w_i z_i (the scaled
             imbalance) and ∇²f = Σ w_i z_i z_i' − ∇f ∇f', w_i = q_i e^{β'z_i} / Σ.
    Newton steps (H + μI) d = −∇f (μ = 1e-12 · tr H / p guards singular H),
    Armijo backtracking, log-sum-exp throughout. Stops when max_k |∇f_k| ≤ tol
    (imbalance ≤ tol SDs). q: base weights (default uniform), normalised.

    Infeasibility: if balance is attainable then f(β) ≥ −KL(w*‖q) ≥ log min q,
    so an iterate with f(β) < log min q certifies that m lies outside the
    convex hull of the controls. If Newton stops otherwise unconverged, the
    distance from m to that hull (a small QP) decides: > 1e-7 SD is also
    "infeasible".

    Approximate balance (``fallback="approximate"``, the default) when exact
    balance fails for any reason: the ridge-penalised dual (``_entropy_newton``;
    the primal trades entropy against (1/2λ)‖imbalance‖² in SD units, the
    approximate balancing of Wang & Zubizarreta 2020 / the balancer package)
    is solved for λ = 1, 10^-0.5, ..., 10^-4, and the largest λ whose
    imbalance ‖Σ w z‖ is within ``slack`` SD (Euclidean) of the smallest
    attainable one (the hull's nearest point) is kept: the most even weights
    that balance nearly as well as any weights can. status "approximate",
    converged False, and ``imbalance`` / ``std_imbalance`` say per covariate
    how far balance is off. ``fallback="none"`` keeps the exact attempt's
    status and returns the hull's closest-balance weights instead.
    """
    if fallback not in ("approximate", "none"):
        raise ValueError(f"fallback must be 'approximate' or 'none', got {fallback!r}")
    if not (np.isfinite(slack) and slack >= 0):
        raise ValueError(f"slack must be a nonnegative number of SDs, got {slack!r}")
    x = _matrix(X_control, "X_control")
    n0, p = x.shape
    names = _names(names, p)
    m = np.asarray(target_means, dtype=float).reshape(-1)
    if m.shape != (p,):
        raise ValueError(f"target_means has {m.size} entries for {p} covariates")
    if not np.all(np.isfinite(m)):
        raise ValueError("target_means contains NaN or inf")
    if n0 == 0:
        raise ValueError("there are no control units to weight")
    q = np.ones(n0) if base_weights is None else np.asarray(base_weights, dtype=float).reshape(-1)
    if q.shape != (n0,) or not np.all(np.isfinite(q)) or np.any(q < 0) or q.sum() <= 0:
        raise ValueError("base_weights must be n0 finite nonnegative numbers with a positive sum")
    q = q / q.sum()
    keep = q > 0
    xk, logq = x[keep], np.log(q[keep])

    spread = xk.std(axis=0)
    active = spread > 1e-12 * np.maximum(1.0, np.abs(xk).max(axis=0))
    scale = np.where(active, spread, 1.0)
    z = (xk[:, active] - m[active]) / scale[active]

    # A covariate constant among the controls balances only if it equals its target.
    const_gap = np.abs(xk[0, ~active] - m[~active]) if n0 else np.zeros(0)
    if np.any(const_gap > tol * np.maximum(1.0, np.abs(m[~active]))):
        beta, f, eta, status, it, norms = (np.zeros(int(active.sum())), 0.0, logq.copy(),
                                           "infeasible", 0, [0.0])
        f = float(np.log(np.exp(eta).sum()))
    else:
        beta, f, eta, status, it, norms = _entropy_newton(z, logq, 0.0, max_iter, tol)

    w = np.exp(eta - f)
    weights = np.zeros(n0)
    weights[keep] = w
    coef = np.zeros(p)
    coef[active] = beta / scale[active]
    converged = status == "converged"
    exact_status = status
    closest = np.zeros(0)
    penalty = 0.0
    balance = "exact" if converged else "none"
    if not converged and p:
        # The point of the controls' convex hull closest to the target (SD units):
        # a second, independent certificate and the honest "remaining imbalance".
        wk, closest = _closest_balance((xk - m) / scale)
        if status == "infeasible" or np.max(np.abs(closest)) > 1e-7:
            status = exact_status = "infeasible"
            weights = np.zeros(n0)
            weights[keep] = wk
        if fallback == "approximate" and z.shape[1]:
            # (a covariate constant among the controls adds the same gap to every w)
            best = float(np.linalg.norm(closest[active]))
            for lam in FALLBACK_PENALTIES:
                b_l, f_l, eta_l, st_l, it_l, _ = _entropy_newton(z, logq, lam, max_iter, tol)
                if st_l != "converged":
                    continue
                w_l = np.exp(eta_l - (f_l - 0.5 * lam * float(b_l @ b_l)))
                w_l = w_l / w_l.sum()
                beta, f, it, penalty, status, balance = b_l, f_l, it_l, lam, "approximate", "approximate"
                weights = np.zeros(n0)
                weights[keep] = w_l
                coef = np.zeros(p)
                coef[active] = beta / scale[active]
                norms = [float(np.linalg.norm(beta))]
                if np.linalg.norm(z.T @ w_l) <= best + slack:
                    break
    imbalance = weights @ x - m
    std_gap = np.abs(imbalance) / scale
    worst = names[int(np.argmax(std_gap))] if p else ""
    why = _outside_range(xk, m, names)
    if converged:
        message = f"balance reached in {it} Newton step(s)"
    elif status == "approximate":
        first = ("is infeasible (the treated means lie outside the convex hull of the controls)"
                 if exact_status == "infeasible" else f"was not reached ({exact_status})")
        message = (
            f"exact balance {first}; approximate balance instead (ridge-penalised dual, penalty {penalty:.3g}): "
            f"largest remaining imbalance in '{worst}' ({imbalance[int(np.argmax(std_gap))]:.6g}, "
            f"{std_gap.max():.3g} SD; the smallest attainable is "
            f"{float(np.linalg.norm(closest)):.3g} SD overall)"
            + ("; " + "; ".join(why) if why else ""))
    else:
        parts = {
            "infeasible": "balance is infeasible: the treated means lie outside the convex hull "
                          "of the controls; the weights returned are the closest balance "
                          "attainable (nearest point of the hull in SD units), not entropy weights",
            "max_iter": f"no convergence in {max_iter} Newton steps",
            "stalled": "the line search stalled (numerical precision)",
        }[status]
        growing = len(norms) > 3 and norms[-1] > 2.0 * norms[len(norms) // 2] > 0
        message = (
            f"{parts}; largest remaining imbalance in '{worst}' "
            f"({imbalance[int(np.argmax(std_gap))]:.6g}, {std_gap.max():.3g} SD)"
            + (f"; dual norm still growing ({norms[-1]:.3g}): the target is probably on the "
               f"boundary of the controls' convex hull" if growing and status != "infeasible" else "")
            + ("; " + "; ".join(why) if why else "")
        )
    return EntropyBalance(
        weights=weights, coef=coef, converged=converged, status=status, message=message,
        iterations=it, max_violation=float(np.max(np.abs(imbalance))) if p else 0.0,
        imbalance=imbalance, worst_covariate=worst, dual_norm=norms[-1],
        dual_objective=float(f), names=names, balance=balance, exact_status=exact_status,
        penalty=penalty, std_imbalance=imbalance / scale, closest_imbalance=closest,
    )


# ----------------------------------------------------------------------------
# OSQP

def _solve_qp(P, A, lo, hi, q=None):
    """min ½ z'Pz + q'z  s.t.  lo ≤ Az ≤ hi, with tight tolerances and polishing.
    Returns (z, status string, iterations)."""
    n = P.shape[0]
    q = np.zeros(n) if q is None else q
    settings = dict(eps_abs=1e-10, eps_rel=1e-10, max_iter=200_000, verbose=False)
    if osqp.__version__.startswith("0."):
        settings.update(polish=True, polish_refine_iter=50)
    else:
        settings.update(polishing=True, polish_refine_iter=50)
    solver = osqp.OSQP()
    solver.setup(sparse.triu(sparse.csc_matrix(P), format="csc"), q, sparse.csc_matrix(A),
                 lo, hi, **settings)
    try:
        res = solver.solve(raise_error=False)
    except TypeError:  # osqp < 1.0
        res = solver.solve()
    return res.x, str(res.info.status), int(res.info.iter)


def _closest_balance(z: np.ndarray):
    """min_w ½‖Σ w_i z_i‖² + ½·1e-9‖w‖²  s.t. w ≥ 0, Σ w = 1 (OSQP): weights whose
    mean is (up to the tiny ridge that makes them unique) the point of the
    convex hull of the rows of z nearest the origin. Returns (w, Σ w z)."""
    n, p = z.shape
    P = sparse.diags(np.concatenate([np.full(n, 1e-9), np.ones(p)]))
    A = sparse.vstack([
        sparse.hstack([sparse.csr_matrix(z.T), -sparse.identity(p)]),       # r = Σ w z
        sparse.hstack([sparse.csr_matrix(np.ones((1, n))), sparse.csr_matrix((1, p))]),
        sparse.hstack([sparse.identity(n), sparse.csr_matrix((n, p))]),
    ], format="csc")
    lo = np.concatenate([np.zeros(p), [1.0], np.zeros(n)])
    hi = np.concatenate([np.zeros(p), [1.0], np.full(n, np.inf)])
    sol, _, _ = _solve_qp(P, A, lo, hi)
    w = np.maximum(sol[:n], 0.0)
    w = w / w.sum()
    return w, z.T @ w


# ----------------------------------------------------------------------------
# hierarchical (multilevel) balancing

@dataclass
class HierarchicalBalance:
    """Result of ``hierarchical_balance``.

    weights: (n,) unit weights: 1 for treated units, the balancing weight for
    controls (summing to n_1c in each cluster c; 0 in clusters without treated
    units). ATT = mean_T y − Σ_C w y / n_1.  global_imbalance: (p,) treated
    mean − weighted control mean.  cluster_imbalance: (G1, p) the same within
    each cluster that has treated units (rows labelled by ``clusters``).
    Both in covariate units.  objective: the QP objective at the solution
    (standardized covariates).  status: OSQP's status ("solved" when solved);
    when the QP is infeasible the control weights are NaN and ``message``
    says why.
    """
    weights: np.ndarray
    solved: bool
    status: str
    message: str
    objective: float
    global_imbalance: np.ndarray
    cluster_imbalance: np.ndarray
    clusters: np.ndarray
    lam: float
    iterations: int
    names: list = field(default_factory=list)


def hierarchical_balance(X, treated, cluster, lam, standardize: bool = True,
                         names=None) -> HierarchicalBalance:
    """Multilevel balancing weights with partial pooling (Ben-Michael & Feller).

    With controls i (weights w_i), clusters c containing treated units, and
    S_c = Σ_{T,c} x̃_i − Σ_{C,c} w_i x̃_i the within-cluster imbalance of the
    (standardized, x̃ = x / SD(x) over all units, if ``standardize``) covariates:

        min_w  ½ Σ_i w_i²  +  (1 / 2λ) Σ_c ‖S_c‖²
        s.t.   Σ_c S_c = 0                      (exact global balance)
               Σ_{C,c} w_i = n_1c for every c   (per-cluster sums)
               w_i ≥ 0.

    λ is the prior precision of the paper's hierarchical propensity model. The
    Lagrange dual is a model for the weights (odds) w_i = [α_c + β_c'x̃_i]_+
    with cluster coefficients β_c whose deviations from the global μ_β are
    penalised by (λ/2) Σ_c ‖β_c − μ_β‖² and μ_β left free (exact global
    balance): the slides' (1/2σ_β) Σ ‖β_j − μ_β‖², so λ = 1/σ_β, and the
    primal weight on school balance σ_β/2 is 1/(2λ). (With the entropy in
    place of ½ Σ w² the same dual is the slides' logit model.) The ridge
    ½ Σ w² equals ½ Σ (w_i − n_1c/n_0c)² up to a constant, because the
    per-cluster sums are fixed: it keeps weights near uniform within clusters
    and makes the solution unique, so no separate ridge parameter is needed.
    (Read as "a penalty λ on within-cluster imbalance", λ → ∞ would force
    within-cluster balance; the issue's "λ → ∞ keeps only global balance plus
    per-cluster sums" and the paper's prior both fix the precision reading.)

        λ → ∞: complete pooling — only global balance plus per-cluster sums,
               the least-dispersed such weights (``lam=np.inf`` solves this).
        λ → 0: no pooling — exact balance within every cluster (``lam=0``
               imposes it as constraints; it may be infeasible).

    Controls in clusters without treated units get weight 0 (their sum is
    n_1c = 0). A cluster with treated units but no controls is an error.
    Solved by OSQP (eps 1e-10, polished); an infeasible problem is reported
    in ``status`` / ``message`` with NaN weights, not raised.
    """
    x = _matrix(X, "X")
    n, p = x.shape
    names = _names(names, p)
    t = _binary(treated, "treated", n)
    cl = np.asarray(cluster).reshape(-1)
    if cl.shape[0] != n:
        raise ValueError(f"cluster has length {cl.shape[0]}, expected {n}")
    lam = float(lam)
    if not (lam >= 0):
        raise ValueError(f"lam must be a nonnegative number (np.inf allowed), got {lam}")
    if t.all() or not t.any():
        raise ValueError("treated is constant: need both treated and control units")
    labels, code = np.unique(cl, return_inverse=True)
    n1c = np.bincount(code, weights=t, minlength=len(labels))
    n0c = np.bincount(code, weights=~t, minlength=len(labels))
    lonely = np.flatnonzero((n1c > 0) & (n0c == 0))
    if lonely.size:
        raise ValueError(
            f"cluster {labels[lonely[0]]!r} has {int(n1c[lonely[0]])} treated unit(s) but no "
            f"controls, so its control weights cannot sum to its treated count "
            f"({lonely.size} such cluster(s)); drop those clusters or use cluster_balance "
            f"if treatment is assigned to whole clusters"
        )
    xs = x / _column_sd(x) if standardize else x
    tc = np.flatnonzero(n1c > 0)                      # clusters with treated units
    g1 = tc.size
    ctrl = np.flatnonzero(~t & (n1c[code] > 0))       # controls that can be weighted
    n0 = ctrl.size
    row_of = {c: r for r, c in enumerate(tc)}
    crow = np.array([row_of[c] for c in code[ctrl]])  # cluster row of each control
    # treated sums per cluster, T_c (g1, p)
    tsum = np.zeros((g1, p))
    np.add.at(tsum, np.array([row_of[c] for c in code[t]]), xs[t])

    penalised = 0.0 < lam < np.inf
    nv = n0 + (g1 * p if penalised else 0)
    blocks, lo = [], []
    # per-cluster sums
    blocks.append(sparse.csr_matrix((np.ones(n0), (crow, np.arange(n0))), shape=(g1, nv)))
    lo.append(n1c[tc])
    # exact global balance (implied by the within-cluster constraints when lam = 0)
    if lam > 0 and p:
        g = sparse.hstack([sparse.csr_matrix(xs[ctrl].T), sparse.csr_matrix((p, nv - n0))])
        blocks.append(g)
        lo.append(tsum.sum(axis=0))
    # within-cluster imbalance: S_c + Σ w x̃ = T_c (penalised) or Σ w x̃ = T_c (lam = 0)
    if lam < np.inf and p:
        rows = (crow[:, None] * p + np.arange(p)[None, :]).ravel()
        cols = np.repeat(np.arange(n0), p)
        within = sparse.csr_matrix((xs[ctrl].ravel(), (rows, cols)), shape=(g1 * p, nv))
        if penalised:
            within = within + sparse.hstack([sparse.csr_matrix((g1 * p, n0)),
                                             sparse.identity(g1 * p, format="csr")])
        blocks.append(within)
        lo.append(tsum.ravel())
    neq = sum(b.shape[0] for b in blocks)
    blocks.append(sparse.hstack([sparse.identity(n0), sparse.csr_matrix((n0, nv - n0))]))
    A = sparse.vstack(blocks, format="csc")
    lo = np.concatenate(lo + [np.zeros(n0)])
    hi = np.concatenate([lo[:neq], np.full(n0, np.inf)])
    diag = np.concatenate([np.ones(n0), np.full(nv - n0, 1.0 / lam if penalised else 0.0)])
    z, status, iters = _solve_qp(sparse.diags(diag), A, lo, hi)

    solved = status == "solved"
    weights = np.ones(n)
    weights[~t] = 0.0
    if z is None or "infeasible" in status or not np.all(np.isfinite(z[:n0])):
        weights[ctrl] = np.nan
        wc = np.full(n0, np.nan)
    else:
        wc = np.maximum(z[:n0], 0.0)
        weights[ctrl] = wc
    # imbalances in covariate units, mean scale
    wsum = np.zeros((g1, p))
    np.add.at(wsum, crow, wc[:, None] * x[ctrl])
    traw = np.zeros((g1, p))
    np.add.at(traw, np.array([row_of[c] for c in code[t]]), x[t])
    cluster_imb = (traw - wsum) / n1c[tc][:, None]
    global_imb = (traw.sum(axis=0) - wsum.sum(axis=0)) / t.sum()
    s_std = tsum - np.stack([np.bincount(crow, weights=wc * xs[ctrl, k], minlength=g1)
                             for k in range(p)], axis=1) if p else np.zeros((g1, 0))
    pen = 0.0 if lam == np.inf else (0.0 if lam == 0 else float(np.sum(s_std ** 2)) / (2 * lam))
    objective = 0.5 * float(wc @ wc) + pen
    if solved:
        message = f"solved by OSQP in {iters} iterations"
    elif "infeasible" in status and "primal" in status:
        why = _outside_range(x[ctrl], x[t].mean(axis=0), names)
        message = ("no nonnegative weights give exact global balance with per-cluster sums"
                   + (" and exact within-cluster balance (lam = 0)" if lam == 0 else "")
                   + ("; " + "; ".join(why) if why else ""))
    else:
        message = f"OSQP stopped with status '{status}' after {iters} iterations"
    return HierarchicalBalance(
        weights=weights, solved=solved, status=status, message=message, objective=objective,
        global_imbalance=global_imb, cluster_imbalance=cluster_imb, clusters=labels[tc],
        lam=lam, iterations=iters, names=names,
    )


# ----------------------------------------------------------------------------
# cluster-level treatment

@dataclass
class ClusterBalance:
    """Result of ``cluster_balance``.

    weights: (G,) cluster weights: n_c / N_1 for treated clusters (their share
    of treated individuals) and the balancing weight w_c (Σ = 1) for controls,
    so ATT = Σ_T weight·ȳ_c − Σ_C w_c ȳ_c.  target: treated individual-level
    means.  imbalance: Σ_C w_c x_c − target (covariate units).
    variance_factor: Σ_C w_c² (icc + (1 − icc)/n_c), the variance of the
    weighted control mean in units of the outcome's total variance.
    ess: Kish's effective number of control clusters.  balance: "exact",
    "approximate" (the tolerance fallback of ``cluster_balance``) or "none"
    (no weights: NaN, ``message`` says why).  tol: the tolerance per
    covariate (covariate units) of the QP that gave the weights;
    std_imbalance: imbalance in SDs of the cluster means; closest_imbalance:
    the smallest attainable imbalance (SD units, nearest point of the control
    clusters' convex hull) when exact balance was infeasible; exact_status:
    OSQP's status for the problem with the requested ``tol``.
    """
    weights: np.ndarray
    solved: bool
    status: str
    message: str
    objective: float
    variance_factor: float
    target: np.ndarray
    imbalance: np.ndarray
    ess: float
    icc: float
    iterations: int
    names: list = field(default_factory=list)
    balance: str = "exact"
    tol: np.ndarray = field(default_factory=lambda: np.zeros(0))
    std_imbalance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    closest_imbalance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    exact_status: str = "solved"


def cluster_balance(X_cluster, treated_cluster, cluster_sizes, icc, tol=0.0,
                    names=None, fallback: str = "approximate",
                    slack: float = FALLBACK_SLACK) -> ClusterBalance:
    """Cluster balancing weights for treatment assigned to whole clusters.

    X_cluster (G, p): per cluster, the means of individual covariates and the
    cluster covariates. Target m = Σ_T n_c x_c / Σ_T n_c (treated individuals).

    Penalty. With a random-intercept outcome model ȳ_c = μ(x_c) + u_c + ē_c,
    Var(u_c) = icc·σ², Var(e_i) = (1 − icc)·σ², the cluster mean has
    Var(ȳ_c) = σ² (icc + (1 − icc)/n_c), so for independent clusters

        Var(Σ_C w_c ȳ_c | x) = σ² Σ_C w_c² v_c,    v_c = icc + (1 − icc)/n_c.

    The weights minimise it subject to balance:

        min_w  ½ Σ_C v_c w_c²
        s.t.   Σ_C w_c = 1,  w_c ≥ 0,  |Σ_C w_c x_ck − m_k| ≤ tol_k  (all k).

    tol = 0 (default) asks for exact balance; tol (scalar or (p,), covariate
    units) gives approximate balance (Zubizarreta's stable balancing weights).
    Without covariates the solution is w_c ∝ 1/v_c: proportional to n_c when
    icc = 0 (individuals count), uniform when icc = 1 (clusters count).
    Solved by OSQP; an infeasible problem is reported in ``status``/``message``.

    Why exact balance fails, and the fallback. With treatment assigned to
    whole clusters and selection on a cluster covariate, the treated clusters'
    mean of that covariate often lies beyond every (or outside the convex hull
    of the) control clusters: in the low-overlap validation design (about 20
    control clusters) that was so in 34 of 50 samples, each certified by the
    hull distance, not a solver tolerance or scaling problem. Then no
    nonnegative weights balance exactly. ``fallback="approximate"`` (default)
    finds the hull's nearest point r* to the target (SD units, a small QP),
    and re-solves with tol_k = SD_k (|r*_k| + ``slack``): feasible by
    construction, the least-variance weights that balance within ``slack``
    SD of the best attainable, per covariate (Zubizarreta's stable balancing
    weights with a data-chosen tolerance). ``balance`` says which, and
    ``imbalance`` / ``std_imbalance`` report what is left. ``fallback="none"``
    returns NaN weights instead.
    """
    if fallback not in ("approximate", "none"):
        raise ValueError(f"fallback must be 'approximate' or 'none', got {fallback!r}")
    if not (np.isfinite(slack) and slack >= 0):
        raise ValueError(f"slack must be a nonnegative number of SDs, got {slack!r}")
    x = _matrix(X_cluster, "X_cluster")
    g, p = x.shape
    names = _names(names, p)
    t = _binary(treated_cluster, "treated_cluster", g)
    nc = np.asarray(cluster_sizes, dtype=float).reshape(-1)
    if nc.shape != (g,) or not np.all(np.isfinite(nc)) or np.any(nc <= 0):
        raise ValueError("cluster_sizes must be G positive numbers")
    icc = float(icc)
    if not 0.0 <= icc <= 1.0:
        raise ValueError(f"icc must lie in [0, 1], got {icc}")
    if t.all() or not t.any():
        raise ValueError("treated_cluster is constant: need treated and control clusters")
    tol = np.broadcast_to(np.asarray(tol, dtype=float), (p,)).copy()
    if np.any(tol < 0) or not np.all(np.isfinite(tol)):
        raise ValueError("tol must be finite and nonnegative")

    target = nc[t] @ x[t] / nc[t].sum()
    xc = x[~t]
    g0 = xc.shape[0]
    v = icc + (1.0 - icc) / nc[~t]
    sd = _column_sd(x)
    A = sparse.vstack([
        sparse.csr_matrix(np.ones((1, g0))),
        sparse.csr_matrix((xc / sd).T),
        sparse.identity(g0, format="csr"),
    ], format="csc")
    lo = np.concatenate([[1.0], (target - tol) / sd, np.zeros(g0)])
    hi = np.concatenate([[1.0], (target + tol) / sd, np.full(g0, np.inf)])
    z, status, iters = _solve_qp(sparse.diags(v), A, lo, hi)
    exact_status, balance, closest = status, "exact", np.zeros(0)
    if status != "solved" and fallback == "approximate" and p:
        _, closest = _closest_balance((xc - target) / sd)
        tol = np.maximum(tol, sd * (np.abs(closest) + slack))
        lo[1:p + 1] = (target - tol) / sd
        hi[1:p + 1] = (target + tol) / sd
        z, status, more = _solve_qp(sparse.diags(v), A, lo, hi)
        iters += more
        balance = "approximate"

    solved = status == "solved"
    weights = np.zeros(g)
    weights[t] = nc[t] / nc[t].sum()
    if z is None or "infeasible" in status or not np.all(np.isfinite(z)):
        wc = np.full(g0, np.nan)
        balance = "none"
    else:
        wc = np.maximum(z, 0.0)
    weights[~t] = wc
    imbalance = wc @ xc - target
    vf = float(np.sum(v * wc ** 2))
    if solved and balance == "approximate":
        std = np.abs(imbalance) / sd
        k = int(np.argmax(std))
        why = _outside_range(xc, target, names)
        first = ("is infeasible" if "infeasible" in exact_status
                 else f"failed (OSQP: {exact_status})")
        message = (f"exact balance {first} (the treated clusters' means lie outside the convex hull of the control "
                   f"clusters; smallest attainable imbalance {float(np.linalg.norm(closest)):.3g} SD)"
                   f"; approximate balance within {slack:g} SD of it: largest remaining "
                   f"imbalance in '{names[k]}' ({imbalance[k]:.6g}, {std[k]:.3g} SD)"
                   + ("; " + "; ".join(why) if why else ""))
    elif solved:
        message = f"solved by OSQP in {iters} iterations"
    elif "infeasible" in status and "primal" in status:
        why = _outside_range(xc, target, names)
        message = ("no nonnegative control-cluster weights balance the covariates"
                   + (" within tol" if np.any(tol > 0) else " exactly")
                   + ("; " + "; ".join(why) if why else "; relax with tol > 0"))
    else:
        message = f"OSQP stopped with status '{status}' after {iters} iterations"
    return ClusterBalance(
        weights=weights, solved=solved, status=status, message=message, objective=0.5 * vf,
        variance_factor=vf, target=target, imbalance=imbalance,
        ess=effective_sample_size(wc) if np.all(np.isfinite(wc)) else float("nan"),
        icc=icc, iterations=iters, names=names, balance=balance, tol=tol,
        std_imbalance=imbalance / sd, closest_imbalance=closest, exact_status=exact_status,
    )


# ----------------------------------------------------------------------------
# Arrow tables in

@dataclass
class BalancingFit:
    """A balancing fit on a table: the estimator's result, unit weights per
    kept row (treated 1, controls summing to the number of treated), the rows
    kept (after na_action="omit"), the balance table and the controls' ESS."""
    result: object
    weights: np.ndarray
    kept: np.ndarray
    balance: pa.Table
    ess: float
    x_names: list

    def summary(self):
        """The balance table as a pandas DataFrame indexed by covariate."""
        out = self.balance.to_pandas()
        return out.set_index(out.columns[0]) if len(out.columns) else out

    def to_pandas(self):
        """The balance table as a pandas DataFrame (one row per covariate)."""
        return self.balance.to_pandas()

    def __repr__(self) -> str:
        rows = self.balance.to_pylist()
        table = results.text_table(rows, list(rows[0])) if rows else "(no covariates)"
        converged = getattr(self.result, "converged", getattr(self.result, "solved", None))
        return "\n".join([
            f"rfp balancing weights: {type(self.result).__name__}, {int(self.kept.sum())} rows, "
            f"effective sample size of the controls {results.number(self.ess, 1)}"
            + ("" if converged is None else f", converged {results.number(bool(converged))}"),
            table,
        ])


def _read(data, treatment, x, cluster=None, cluster_x=(), weight_col=None, na_action="fail"):
    """Checked columns: X (n, p), cluster-level X, base weights, treated (n,)
    bool, cluster codes and labels, kept-row mask. Every error names the column."""
    table = as_table(data)
    x = [x] if isinstance(x, str) else list(x)
    cluster_x = [cluster_x] if isinstance(cluster_x, str) else list(cluster_x)
    if not x and not cluster_x:
        raise ValueError("no covariates: pass x=[...] naming at least one numeric column")
    if na_action not in ("fail", "omit"):
        raise ValueError(f"na_action must be 'fail' or 'omit', got {na_action!r}")
    for name, role in ((treatment, "treatment"), (cluster, "cluster variable")):
        if name is not None and name in [*x, *cluster_x]:
            raise ValueError(f"the {role} '{name}' is also a covariate: remove it from the "
                             f"covariates")
    cols = ([treatment, *x, *cluster_x] + ([cluster] if cluster is not None else [])
            + ([weight_col] if weight_col is not None else []))
    require_columns(table, cols)
    for c in x:
        numeric(table, c, "covariate")
    for c in cluster_x:
        numeric(table, c, "cluster covariate")
    if weight_col is not None:
        numeric(table, weight_col, "base weight")
    dcol = table.column(treatment)
    dt = dcol.type
    if not (pa.types.is_integer(dt) or pa.types.is_floating(dt) or pa.types.is_boolean(dt)):
        seen = np.unique(np.asarray(dcol.drop_null().to_pylist(), dtype=object).astype(str))
        raise ValueError(f"treatment column '{treatment}' must be binary (0/1 or boolean), "
                         f"but has type {dt} with values {seen[:10].tolist()}")

    table, kept = drop_missing(table, cols, na_action)

    d = numeric(table, treatment, "treatment")
    seen = np.unique(d)
    if not np.all(np.isin(seen, [0.0, 1.0])):
        raise ValueError(f"treatment column '{treatment}' must be binary (0/1 or boolean); "
                         f"values seen: {[float(v) if v % 1 else int(v) for v in seen[:10]]}"
                         + (" ..." if seen.size > 10 else ""))
    if seen.size < 2:
        raise ValueError(f"treatment column '{treatment}' is constant (every kept row is "
                         f"{int(seen[0])}): need both treated and control units")
    xs = np.column_stack([numeric(table, c, "covariate") for c in x]) if x else np.zeros((table.num_rows, 0))
    vs = (np.column_stack([numeric(table, c, "cluster covariate") for c in cluster_x])
          if cluster_x else np.zeros((table.num_rows, 0)))
    for j, c in enumerate(x):
        check_magnitudes(xs[:, j], c, "covariate")
    for j, c in enumerate(cluster_x):
        check_magnitudes(vs[:, j], c, "cluster covariate")
    bw = numeric(table, weight_col, "base weight") if weight_col is not None else None
    codes = labels = None
    if cluster is not None:
        codes, labels = encode_clusters(table.column(cluster))
    return xs, vs, bw, d.astype(bool), codes, labels, kept, x, cluster_x


def _unit_weights_att(w: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Scale control weights to sum to the number of treated; treated get 1."""
    out = np.ones(t.size)
    wc = w[~t]
    out[~t] = wc * (t.sum() / wc.sum()) if np.all(np.isfinite(wc)) and wc.sum() > 0 else wc
    return out


def _fit(result, weights, x, t, kept, names, sd):
    ok = np.all(np.isfinite(weights))
    bal = balance_table(x, t, weights, names, sd=sd)  # NaN weights: NaN "after" columns
    return BalancingFit(result, weights, kept, bal,
                        effective_sample_size(weights[~t]) if ok else float("nan"), names)


def entropy_balance_from_table(data, treatment: str, x, base_weights: str | None = None,
                               na_action: str = "fail", sd: str = "treated", weights=None,
                               **kwargs) -> BalancingFit:
    """Entropy balancing (ATT) on a table: ``treatment`` a binary column, ``x``
    covariate columns, ``base_weights`` an optional column of control base
    weights. kwargs go to ``entropy_balance``.

    ``weights``: case (sampling) weights, a column name or one number >= 0
    per row. The target becomes the weighted treated means Σ_T w x / Σ_T w,
    the controls' base weights are multiplied by their case weights, and the
    returned unit weights are w_i for treated rows and control weights
    summing to Σ_T w (a whole-number weight k equals the row repeated k
    times)."""
    table = as_table(data)
    w_all = case_weights(table, weights)
    xs, _, bw, t, _, _, kept, names, _ = _read(table, treatment, x, weight_col=base_weights,
                                               na_action=na_action)
    cw = kept_weights(w_all, kept)
    check_weighted_arms(t, cw)      # the message every estimator gives
    # computed on weights of mean 1 (scale-free: no overflow at 1e300, no
    # underflow at 1e-300); the unit weights returned are on the user's scale
    scale = 1.0
    if cw is not None:
        raw_top = float(np.max(cw))
        cw = normalise_weights(cw)
        scale = raw_top / float(np.max(cw))      # a power of two: exact
    cw = np.ones(t.size) if cw is None else cw
    q = cw[~t] * (bw[~t] if bw is not None else 1.0)
    target = cw[t] @ xs[t] / cw[t].sum()
    res = entropy_balance(xs[~t], target, base_weights=q, names=names, **kwargs)
    w = np.ones(t.size)
    w[~t] = res.weights
    unit = _unit_weights_att(w, t)
    if weights is not None:
        unit[t] = cw[t]
        unit[~t] = unit[~t] * cw[t].sum() / t.sum()
        unit = unit * scale
    return _fit(res, unit, xs, t, kept, names, sd)


def hierarchical_balance_from_table(data, treatment: str, x, cluster: str, lam: float,
                                    na_action: str = "fail", sd: str = "treated",
                                    **kwargs) -> BalancingFit:
    """Hierarchical balancing weights on a table (see ``hierarchical_balance``).
    Treatment varies within clusters here; a cluster with treated units and
    no controls is an error naming the cluster."""
    xs, _, _, t, codes, labels, kept, names, _ = _read(data, treatment, x, cluster=cluster,
                                                        na_action=na_action)
    n1c = np.bincount(codes, weights=t, minlength=len(labels))
    n0c = np.bincount(codes, weights=~t, minlength=len(labels))
    lonely = np.flatnonzero((n1c > 0) & (n0c == 0))
    if lonely.size:
        raise ValueError(
            f"cluster '{labels[lonely[0]]}' (column '{cluster}') has treated units but no "
            f"controls ({lonely.size} such cluster(s)); hierarchical balancing needs controls in "
            f"every treated cluster; if '{treatment}' is assigned to whole clusters use "
            f"cluster_balance_from_table")
    res = hierarchical_balance(xs, t, labels[codes], lam, names=names, **kwargs)
    return _fit(res, res.weights, xs, t, kept, names, sd)


def cluster_balance_from_table(data, treatment: str, x, cluster: str, icc: float,
                               cluster_x=(), na_action: str = "fail", sd: str = "treated",
                               **kwargs) -> BalancingFit:
    """Cluster balancing weights on an individual-level table (see
    ``cluster_balance``): ``x`` individual covariates (averaged within
    cluster), ``cluster_x`` cluster covariates (constant within cluster), and
    ``treatment`` constant within cluster (an error names a cluster where it
    varies). ``weights`` are per row: 1 for treated individuals and
    N_1 w_c / n_c for individuals in control cluster c, so the individual-level
    balance table reproduces the cluster-level balance."""
    xs, vs, _, t, codes, labels, kept, xn, vn = _read(data, treatment, x, cluster=cluster,
                                                       cluster_x=cluster_x, na_action=na_action)
    g = len(labels)
    nc = np.bincount(codes, minlength=g).astype(float)
    share = np.bincount(codes, weights=t, minlength=g) / nc
    mixed = np.flatnonzero((share > 0) & (share < 1))
    if mixed.size:
        raise ValueError(
            f"treatment column '{treatment}' varies within cluster '{labels[mixed[0]]}' "
            f"(column '{cluster}'; {mixed.size} such cluster(s)), but cluster balancing assumes "
            f"treatment assigned to whole clusters; use hierarchical_balance_from_table instead")
    for k, name in enumerate(vn):
        lo = np.full(g, np.inf)
        hi = np.full(g, -np.inf)
        np.minimum.at(lo, codes, vs[:, k])
        np.maximum.at(hi, codes, vs[:, k])
        varies = np.flatnonzero(hi - lo > 1e-12 * np.maximum(1.0, np.abs(hi)))
        if varies.size:
            raise ValueError(f"cluster covariate '{name}' varies within cluster "
                             f"'{labels[varies[0]]}' (column '{cluster}'); a cluster covariate "
                             f"must be constant within each cluster (pass it in x to balance its mean)")
    allx = np.hstack([xs, vs])
    xbar = np.stack([np.bincount(codes, weights=allx[:, k], minlength=g) / nc
                     for k in range(allx.shape[1])], axis=1)
    tc = share == 1
    names = xn + vn
    res = cluster_balance(xbar, tc, nc, icc, names=names, **kwargs)
    w = np.ones(t.size)
    ctrl = ~t
    w[ctrl] = t.sum() * res.weights[codes[ctrl]] / nc[codes[ctrl]]
    return _fit(res, w, allx, t, kept, names, sd)
