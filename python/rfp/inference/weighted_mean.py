"""Inference for a weighted difference in means (the ATT of balancing
weights and of kernel imputation),

    τ̂ = ȳ_T − Σ_C w_i y_i / Σ_C w_i,

by the cluster-robust variance (``cluster_robust.cluster_if_se``) of the
linearisation

    ψ_i = n/n_1 · D_i (r_i − r̄_T) − n/Σ_C w · (1 − D_i) w_i r_i,

where r_i is the outcome residual from the w-weighted least squares of y on
(1, balanced covariates) among controls (the calibration / GREG
linearisation, which accounts for the balance constraints; τ̂ is unchanged
because the weights balance those covariates)."""
from __future__ import annotations

import numpy as np

from rfp.inference.cluster_robust import cluster_if_se


def weighted_att(y, d, w, cluster, covariates=None):
    """τ̂ = Σ_T w y / Σ_T w − Σ_C w y / Σ_C w and its cluster-robust SE from
    the linearisation in the module docstring (residuals on ``covariates`` by
    w-weighted least squares among controls, or on a constant). Treated
    rows' ``w`` are 1 unless case weights were given."""
    t = d == 1
    c = ~t
    wt, wc = w[t], w[c]
    n, w1, wsum = len(y), float(wt.sum()), float(wc.sum())
    tau = float(wt @ y[t] / w1 - wc @ y[c] / wsum)
    z = np.ones((n, 1)) if covariates is None else np.column_stack([np.ones(n), covariates])
    root = np.sqrt(wc)
    coef = np.linalg.lstsq(z[c] * root[:, None], y[c] * root, rcond=None)[0]
    r = y - z @ coef
    psi = np.zeros(n)
    psi[t] = n / w1 * wt * (r[t] - wt @ r[t] / w1)
    psi[c] = -n / wsum * wc * r[c]
    return tau, cluster_if_se(psi, cluster)
