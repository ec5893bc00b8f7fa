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
(``rfp.diagnostics``)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rfp.baselines.balancing.inputs import _check_fallback, _matrix, _names, _outside_range
from rfp.baselines.balancing.quadratic_program import _closest_balance


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
    _check_fallback(fallback, slack)
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
