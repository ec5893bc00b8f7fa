"""Cluster-robust variance and t inference (rfp.inference) against statsmodels,
R's sandwich / stats, and fixest's documented K counts."""
import numpy as np
import pytest

from rfp.inference.cluster_robust import (cluster_if_se, cluster_if_vcov, cr1_vcov, fixest_dof_k,
    is_nested)
from rfp.inference.t_test import t_test

TOL = 1e-10


def ols_data(seed=0, n=500, n_clusters=25):
    rng = np.random.default_rng(seed)
    cl = rng.integers(0, n_clusters, n)
    x = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    y = x @ [1.0, 0.5, -0.3] + rng.normal(size=n_clusters)[cl] + rng.normal(size=n) * (1 + x[:, 1] ** 2)
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    return x, y, y - x @ beta, cl


@pytest.fixture(scope="module")
def r():
    pytest.importorskip("rpy2")
    import rpy2.robjects as ro
    try:
        ro.r("suppressMessages(library(sandwich))")
    except Exception as err:  # pragma: no cover
        pytest.skip(f"R package sandwich missing: {err}")
    return ro


def test_cr1_matches_statsmodels_cluster():
    sm = pytest.importorskip("statsmodels.api")
    x, y, resid, cl = ols_data()
    ref = sm.OLS(y, x).fit(cov_type="cluster", cov_kwds={"groups": cl}).cov_params()
    np.testing.assert_allclose(cr1_vcov(x, resid, cl), ref, rtol=0, atol=TOL)


def test_cr1_matches_vcovcl_and_string_labels(r):
    x, y, resid, cl = ols_data(seed=1)
    labels = np.array([f"school-{c:02d}" for c in cl])
    ref = np.array(r.r("""function(y, x1, x2, cl) {
        fit <- lm(y ~ x1 + x2)
        sandwich::vcovCL(fit, cluster = cl, type = "HC1")
    }""")(r.FloatVector(y), r.FloatVector(x[:, 1]), r.FloatVector(x[:, 2]), r.StrVector(labels)))
    np.testing.assert_allclose(cr1_vcov(x, resid, labels), ref, rtol=0, atol=TOL)


def test_influence_function_variance_matches_vcovcl_hc0(r):
    """OLS influence function ψ_i = n (X'X)^{-1} x_i e_i: the IF variance is
    vcovCL with type HC0 (G/(G-1) only)."""
    x, y, resid, cl = ols_data(seed=2)
    n = len(y)
    psi = n * (x * resid[:, None]) @ np.linalg.inv(x.T @ x)
    ref = np.array(r.r("""function(y, x1, x2, cl) {
        sandwich::vcovCL(lm(y ~ x1 + x2), cluster = cl, type = "HC0", cadjust = TRUE)
    }""")(r.FloatVector(y), r.FloatVector(x[:, 1]), r.FloatVector(x[:, 2]), r.IntVector(cl)))
    np.testing.assert_allclose(cluster_if_vcov(psi, cl), ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(cluster_if_se(psi, cl), np.sqrt(np.diag(ref)), rtol=0, atol=TOL)


def test_influence_function_of_a_mean_matches_statsmodels():
    """θ = E[y], ψ = y - ȳ: equals the cluster-robust variance of an
    intercept-only regression (where (n-1)/(n-K) = 1)."""
    sm = pytest.importorskip("statsmodels.api")
    _, y, _, cl = ols_data(seed=3)
    ref = sm.OLS(y, np.ones_like(y)).fit(cov_type="cluster", cov_kwds={"groups": cl}).bse[0]
    assert abs(cluster_if_se(y - y.mean(), cl) - ref) < TOL


def test_influence_function_centres_cluster_sums():
    """ψ not summing to zero: G/(G-1) Σ (S_g - S̄)² / n² is the unbiased
    sample variance of the cluster sums times G / n²."""
    rng = np.random.default_rng(4)
    cl = rng.integers(0, 12, 200)
    psi = rng.normal(size=200) + 3.0
    sums = np.array([psi[cl == g].sum() for g in range(12)])
    expected = np.var(sums, ddof=1) * 12 / 200**2
    assert abs(cluster_if_vcov(psi, cl) - expected) < 1e-12


def test_t_test_matches_r_pt_qt(r):
    est, se, df = np.array([0.3, -1.2, 0.01]), np.array([0.1, 0.5, 0.2]), 17
    res = t_test(est, se, df=df, level=0.9)
    t = est / se
    p_r = np.array(r.r["pt"](r.FloatVector(-np.abs(t)), df)) * 2
    q_r = r.r["qt"](0.95, df)[0]
    np.testing.assert_allclose(res.p, p_r, rtol=1e-12)
    np.testing.assert_allclose(res.ci_low, est - q_r * se, rtol=1e-12)
    np.testing.assert_allclose(res.ci_high, est + q_r * se, rtol=1e-12)
    # the interval's ends are exactly where the test rejects at 1 - level
    at_edge = t_test(est, se, df=df, null=res.ci_low)
    np.testing.assert_allclose(at_edge.p, 0.1, rtol=1e-10)


def test_fixest_documented_k_counts():
    """fixest's ssc() help page: y ~ x | fe1 + fe2 with fe1 = rep(1:3, c(4, 3, 3)),
    fe2 = rep(1:5, each = 2), clustered by fe1: K = 1 + 5 under "nested"."""
    fe1 = np.repeat([1, 2, 3], [4, 3, 3])
    fe2 = np.repeat([1, 2, 3, 4, 5], 2)
    assert fixest_dof_k(1, [fe1, fe2], fe1) == 1 + 5
    # clustered by something no FE is nested in: K = x + fe1 + fe2 - 1 ("full")
    other = np.arange(10) % 2
    assert fixest_dof_k(1, [fe1, fe2], other) == 1 + 3 + 5 - 1
    # every FE nested: the intercept alone stays
    assert fixest_dof_k(2, [fe1], fe1) == 2 + 1
    assert fixest_dof_k(2, [], fe1) == 2


def test_is_nested():
    cl = np.array([0, 0, 1, 1, 2, 2])
    assert is_nested(np.array([5, 5, 6, 7, 8, 8]), cl)
    assert not is_nested(np.array([5, 6, 6, 7, 8, 8]), cl)


def test_rejects_single_cluster():
    x, y, resid, _ = ols_data()
    with pytest.raises(ValueError, match="two clusters"):
        cr1_vcov(x, resid, np.zeros(len(y)))
    with pytest.raises(ValueError, match="two clusters"):
        cluster_if_vcov(resid, np.zeros(len(y)))
