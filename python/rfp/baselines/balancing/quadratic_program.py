"""The quadratic programs of the balancing estimators, solved by OSQP."""
from __future__ import annotations

import numpy as np
import osqp
from scipy import sparse


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
