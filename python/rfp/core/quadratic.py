"""Linear models under the squared loss: R_k is a quadratic in theta.

For f(theta, x) = z'theta with z = (1, x) and L_i(theta) = (y_i - z_i'theta)^2,
cluster c's weighted mean loss has the gradient 2 (A_c theta - b_c), where
A_c = sum_c w_i z_i z_i' / s_c, b_c = sum_c w_i z_i y_i / s_c and
s_c = sum_c w_i.  Each inner step of eq. 20 is then an affine map,
theta <- (I - 2 eta A_c) theta + 2 eta b_c, and after k steps

    theta_c^k = M_c theta + m_c,   M_c = (I - 2 eta A_c)^k,
    m_c = sum_{j<k} (I - 2 eta A_c)^j 2 eta b_c.

Every term of R_k (eq. 18), alpha L_i(theta) + (1 - alpha) L_i(theta_c^k), is
the square of an affine function of theta, so R_k is a convex quadratic for
any alpha, k and eta, minimised where its gradient is zero:

    sum_c s_c [alpha A_c + (1 - alpha) M_c' A_c M_c] theta
        = sum_c s_c [alpha b_c + (1 - alpha) M_c' (b_c - A_c m_c)],

solved by least squares (the minimum-norm solution when controls are
collinear).  The cost is a pass over the data and one (p+1) x (p+1) matrix
product per cluster and inner step: no learning rate, steps or compilation.
``tests/python/test_quadratic.py`` checks the solution against gradient
descent on ``bilevel.Objective`` run to convergence and checks that
Objective's gradient vanishes there.

The first-order variant (``first_order = True``) follows a field that is not
the gradient of R_k, and the logistic loss is not quadratic: both keep
gradient descent.
"""
from __future__ import annotations

import numpy as np

CHUNK_ENTRIES = 4_000_000     # clusters per chunk x (p+1)^2: bounds the memory


def is_quadratic(settings: dict) -> bool:
    """True when the settings describe a linear model whose R_k is quadratic:
    model "linear", the squared loss, second order, no forward penalty."""
    return (settings.get("model") == "linear" and settings.get("loss", "squared") == "squared"
            and not settings.get("first_order", False)
            and float(settings.get("penalty", 0.0)) == 0.0)


def normal_equations(x, y, codes, w, alpha: float, inner_steps: int, inner_lr: float):
    """(H, r) with H theta = r the zero of R_k's gradient (halved), theta =
    (intercept, slopes); ``codes`` are cluster codes 0..G-1."""
    x = np.asarray(x, dtype=float).reshape(len(y), -1)
    z = np.column_stack([np.ones(len(y)), x])
    q = z.shape[1]
    order = np.argsort(codes, kind="stable")
    z, y, w, codes = z[order], np.asarray(y, float)[order], np.asarray(w, float)[order], codes[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    zw = z * w[:, None]
    s = np.add.reduceat(w, starts)                                   # s_c
    h, r = np.zeros((q, q)), np.zeros(q)
    ends = np.r_[starts[1:], len(y)]
    per_chunk = max(1, CHUNK_ENTRIES // (q * q))
    for lo in range(0, len(starts), per_chunk):
        idx = np.arange(lo, min(lo + per_chunk, len(starts)))
        idx = idx[s[idx] > 0]                  # a cluster of weight 0 adds nothing
        if not idx.size:
            continue
        a = np.stack([zw[starts[c]:ends[c]].T @ z[starts[c]:ends[c]] for c in idx])
        b = np.stack([zw[starts[c]:ends[c]].T @ y[starts[c]:ends[c]] for c in idx])
        sc = s[idx]
        a, b = a / sc[:, None, None], b / sc[:, None]
        step = np.eye(q) - 2.0 * inner_lr * a                       # I - 2 eta A_c
        m_mat = np.broadcast_to(np.eye(q), a.shape).copy()
        m_vec = np.zeros_like(b)
        for _ in range(int(inner_steps)):
            m_mat = step @ m_mat
            m_vec = np.einsum("cij,cj->ci", step, m_vec) + 2.0 * inner_lr * b
        mt = np.swapaxes(m_mat, 1, 2)
        adapted_h = mt @ a @ m_mat
        adapted_r = np.einsum("cij,cj->ci", mt, b - np.einsum("cij,cj->ci", a, m_vec))
        h += np.einsum("c,cij->ij", sc, alpha * a + (1 - alpha) * adapted_h)
        r += np.einsum("c,ci->i", sc, alpha * b + (1 - alpha) * adapted_r)
    return h, r


def minimise(x, y, codes, w, alpha: float, inner_steps: int, inner_lr: float) -> dict:
    """argmin_theta R_k(theta) over all clusters as the linear model's
    parameters ({"w": (p, 1), "b": (1,)}, ``models.linear``)."""
    h, r = normal_equations(x, y, codes, w, alpha, inner_steps, inner_lr)
    theta = np.linalg.lstsq(h, r, rcond=None)[0]
    return {"b": theta[:1].copy(), "w": theta[1:, None].copy()}
