"""Hierarchical balancing weights: individual weights with a penalty on
their dispersion within and between clusters."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from rfp.baselines.balancing.inputs import _binary, _column_sd, _matrix, _names, _outside_range
from rfp.baselines.balancing.quadratic_program import _solve_qp


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
