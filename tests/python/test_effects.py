"""Effects (DML, AIPW, T-learner), cluster folds, compare(), cluster_trial.

References are computed here, independently of rfp.effects: cross-fitted OLS
by numpy lstsq, logistic MLE by statsmodels, the AIPW and DML formulas and
their cluster-robust variances written out. Fits are linear and small.
"""
import warnings

import jax
import numpy as np
import pyarrow as pa
import pytest
import statsmodels.api as sm

import rfp
from rfp.effects.result import Effect
from rfp.effects.scores import FunctionalFormWarning, aipw_from_nuisances
from rfp.effects.propensity import PENALTY_GRID, cluster_propensity, loo_penalty
from rfp.effects.estimators import aipw, dml_plm
from rfp.effects.folds import cluster_folds, median_over_splits, split_seed
from rfp.effects.crossfit import crossfit
from rfp.effects.reading import treatment_is_clustered
from rfp.baselines.balancing.tables import entropy_balance_from_table
from rfp.baselines.fixed_effects import fixed_effects
from rfp.diagnostics import anova_icc
from rfp.inference.weighted_mean import weighted_att
from rfp.simulate import cluster_trial

from montecarlo import assert_covers

# Repeated same-shape fits reuse compiled programs through the persistent
# cache that rfp turns on at import, in the test session's own folder
# (conftest.py).  This file used to point JAX at a fixed folder in /tmp shared
# by every test run and worktree on the machine: concurrent runs wrote the
# same entries, and a make test died with a segfault reading one.

# ERM on a linear model, trained to convergence on every training row: OLS / MLE.
@pytest.fixture(autouse=True)
def method_nuisances_one_split(monkeypatch):
    """The tests in this file check the estimators against hand-written
    references with the method's own nuisances on one fold split (written
    before the defaults nuisance="select" and repeats=None); the ladder and
    the default repeats are tested in test_nuisance.py."""
    for fn in (dml_plm, aipw, rfp.compare):
        monkeypatch.setattr(fn, "__kwdefaults__",
                            {**fn.__kwdefaults__, "nuisance": "method", "repeats": 1})


OLS_LIKE = dict(model="linear", alpha=1.0, inner_steps=0, learning_rate=0.1,
                schedule="cosine", max_steps=600, patience=None, validation_share=0.0)


def continuous_frame(seed=0, n_clusters=20, per=10):
    """Continuous treatment with a cluster-level and an individual control."""
    rng = np.random.default_rng(seed)
    cl = np.repeat(np.arange(n_clusters), per)
    z = rng.normal(size=n_clusters)[cl]
    x1 = rng.normal(size=cl.size) + 0.5 * z
    d = 0.7 * z + 0.5 * x1 + rng.normal(size=cl.size)
    y = 1.5 * d + z - x1 + 0.3 * rng.normal(size=n_clusters)[cl] + rng.normal(size=cl.size)
    return pa.table({"y": y, "d": d, "x1": x1, "z": z, "g": [f"c{c:02d}" for c in cl]})


def codes_of(labels):
    return np.unique(np.asarray(labels), return_inverse=True)[1].reshape(-1)


# ----------------------------------------------------------------------------- folds

def test_cluster_folds_put_each_cluster_in_exactly_one_fold():
    sim = cluster_trial(n_strata=3, clusters_per_stratum=7, n_per_cluster=5, seed=3)
    cl = sim.data["cluster"].to_numpy()
    d = sim.data["d"].to_numpy()
    fold = cluster_folds(cl, folds=4, seed=1, treatment=d)
    per_cluster = {c: set(fold[cl == c]) for c in np.unique(cl)}
    assert all(len(f) == 1 for f in per_cluster.values())
    sizes = np.bincount([f.pop() for f in per_cluster.values()], minlength=4)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 21
    # treated clusters are spread over the folds as evenly as the count allows
    treated = np.unique(cl[d == 1])
    spread = np.bincount([fold[cl == c][0] for c in treated], minlength=4)
    assert spread.max() - spread.min() <= 1
    assert not np.array_equal(fold, cluster_folds(cl, folds=4, seed=2, treatment=d))
    with pytest.raises(ValueError, match="folds must be between 2 and the number of clusters"):
        cluster_folds(cl, folds=22)


def _partition(fold, cl):
    return {frozenset(np.unique(cl[fold == f])) for f in np.unique(fold)}


@pytest.mark.parametrize("folds", [2, 5])
def test_cluster_folds_differ_by_seed_for_a_continuous_treatment(folds):
    """Distinct cluster means of the treatment leave no ties to break: the
    seed must still change the partition (not only the fold labels), or
    repeated cross-fitting would repeat one split."""
    t = continuous_frame(seed=4)
    cl, d = np.asarray(t["g"]), np.asarray(t["d"])
    parts = [_partition(cluster_folds(cl, folds, split_seed(3, s), d), cl)
             for s in range(4)]
    assert len({frozenset(p) for p in parts}) == 4
    for s in range(4):
        sizes = np.bincount(cluster_folds(cl, folds, s, d)[::10], minlength=folds)
        assert sizes.max() - sizes.min() <= 1          # 20 clusters of 10 rows


def test_crossfit_never_trains_on_the_cluster_it_predicts():
    t = continuous_frame(n_clusters=9, per=4)
    cl = codes_of(t["g"].to_numpy())
    x = np.column_stack([t["x1"].to_numpy(), t["z"].to_numpy()])
    fold = cluster_folds(cl, folds=3, seed=0)
    pred, models = crossfit(x, t["y"].to_numpy(), cl, fold, model="linear",
                                    max_steps=10, patience=None, eval_every=10)
    assert not np.any(np.isnan(pred))               # every row predicted once ...
    for k, model in enumerate(models):
        trained_on = set(model.cluster_labels.tolist())
        predicted = set(cl[fold == k].tolist())
        assert trained_on.isdisjoint(predicted)
        assert trained_on | predicted == set(cl.tolist())
        # ... by the model of its own fold, fitted on the other folds' rows only
        np.testing.assert_array_equal(pred[fold == k], model.predict_arrays(x[fold == k]))
        assert model.n_obs == np.sum(fold != k)


# ----------------------------------------------------------------------------- DML

def test_dml_with_linear_erm_equals_crossfitted_ols_and_cr1_by_hand():
    t = continuous_frame()
    res = dml_plm(t, "y", "d", ["x1", "z"], "g", folds=4, seed=5, **OLS_LIKE)
    y, d = t["y"].to_numpy(), t["d"].to_numpy()
    cl = codes_of(t["g"].to_numpy())
    fold = cluster_folds(cl, 4, 5, d)
    np.testing.assert_array_equal(res.nuisance["fold"], fold)

    X = np.column_stack([np.ones(len(y)), t["x1"].to_numpy(), t["z"].to_numpy()])
    g_hat, m_hat = np.empty(len(y)), np.empty(len(y))
    for k in range(4):
        tr, te = fold != k, fold == k
        g_hat[te] = X[te] @ np.linalg.lstsq(X[tr], y[tr], rcond=None)[0]
        m_hat[te] = X[te] @ np.linalg.lstsq(X[tr], d[tr], rcond=None)[0]
    u, v = y - g_hat, d - m_hat
    tau = np.sum(v * u) / np.sum(v * v)
    e = u - tau * v
    n, G = len(y), 20
    score_sums = np.array([np.sum(v[cl == c] * e[cl == c]) for c in range(G)])
    se = np.sqrt(G / (G - 1) * (n - 1) / (n - 1) * np.sum(score_sums ** 2) / np.sum(v * v) ** 2)
    q = __import__("scipy").stats.t.ppf(0.975, G - 1)

    assert abs(res.estimate - tau) < 1e-6
    assert abs(res.std_error - se) < 1e-6
    assert abs(res.ci_low - (tau - q * se)) < 1e-6 and abs(res.ci_high - (tau + q * se)) < 1e-6
    assert res.n == n and res.n_clusters == G and res.df == G - 1 and res.estimand == "PLM"
    assert abs(res.diagnostics["variance_share"] - (1 - np.var(v) / np.var(d))) < 1e-6
    tidy = res.tidy()
    assert tidy.num_rows == 1 and tidy["estimate"][0].as_py() == res.estimate


# ----------------------------------------------------------------------------- AIPW

def aipw_by_hand(y, d, e, mu0, mu1, cl, estimand):
    """AIPW and its cluster-robust influence-function SE, written out."""
    n, G = len(y), int(cl.max()) + 1
    if estimand == "ATE":
        phi = mu1 - mu0 + d * (y - mu1) / e - (1 - d) * (y - mu0) / (1 - e)
        tau = phi.mean()
        psi = phi - tau
    else:
        p = d.mean()
        num = d * (y - mu0) - (1 - d) * e / (1 - e) * (y - mu0)
        tau = num.sum() / d.sum()
        psi = (num - d * tau) / p
    s = np.array([psi[cl == c].sum() for c in range(G)])
    s = s - s.mean()
    return tau, np.sqrt(G / (G - 1) * np.sum(s ** 2) / n ** 2)


def aipw_error_bound(y, d, e, mu0, mu1, de, dmu0, dmu1, estimand):
    """First-order bound on |Δτ| from nuisance errors (de, dmu0, dmu1):
    Σ_i |∂φ_i/∂nuisance| · |Δ nuisance_i| over the estimator's denominator."""
    if estimand == "ATE":
        grad = (np.abs(1 - d / e) * dmu1 + np.abs(1 - (1 - d) / (1 - e)) * dmu0
                + (d * np.abs(y - mu1) / e ** 2 + (1 - d) * np.abs(y - mu0) / (1 - e) ** 2) * de)
        return grad.mean()
    grad = (d + (1 - d) * e / (1 - e)) * dmu0 + (1 - d) * np.abs(y - mu0) / (1 - e) ** 2 * de
    return grad.sum() / d.sum()


@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
def test_aipw_with_linear_and_logistic_nuisances_equals_hand_written_aipw(estimand):
    sim = cluster_trial(n_strata=3, clusters_per_stratum=6, n_per_cluster=8, seed=11)
    t = sim.data
    # the individual-level propensity (the method on rows); the cluster-level
    # one, the default for this clustered treatment, is tested below
    res = aipw(sim, estimand=estimand, folds=3, seed=2, propensity="individual",
                       **OLS_LIKE)
    assert res.diagnostics["propensity"] == "individual"
    y, d = t["y"].to_numpy(), t["d"].to_numpy()
    cl = t["cluster"].to_numpy()
    X = np.column_stack([np.ones(len(y)), t["x1"].to_numpy(), t["x2"].to_numpy(), t["z"].to_numpy()])
    fold = res.nuisance["fold"]
    e, mu0, mu1 = np.empty(len(y)), np.empty(len(y)), np.empty(len(y))
    for k in range(3):
        tr, te = fold != k, fold == k
        assert set(cl[tr]).isdisjoint(cl[te])
        logit = sm.Logit(d[tr], X[tr]).fit(method="newton", tol=1e-14, maxiter=200, disp=0)
        e[te] = logit.predict(X[te])
        for arm, mu in ((0, mu0), (1, mu1)):
            rows = tr & (d == arm)
            mu[te] = X[te] @ np.linalg.lstsq(X[rows], y[rows], rcond=None)[0]
    de = np.abs(res.nuisance["e"] - e)
    dmu0 = np.abs(res.nuisance["mu0"] - mu0)
    dmu1 = np.abs(res.nuisance["mu1"] - mu1) if estimand == "ATE" else np.zeros(len(y))
    opt_error = max(de.max(), dmu0.max(), dmu1.max())
    assert opt_error < 1e-5                         # the fits converged to MLE / OLS
    tau, se = aipw_by_hand(y, d, e, mu0, mu1, cl, estimand)
    bound = aipw_error_bound(y, d, e, mu0, mu1, de, dmu0, dmu1, estimand)
    assert abs(res.estimate - tau) <= 2 * bound + 1e-12
    # the SE's sensitivity to the nuisances is of the same order; allow 10x the bound
    assert abs(res.std_error - se) <= 10 * bound + 1e-10
    # and the package's SE formula on the reference nuisances is the formula exactly
    same = aipw_from_nuisances(y, d, e, mu0, mu1 if estimand == "ATE" else e * np.nan,
                                       cl, estimand, clip=0.0)
    assert abs(same.estimate - tau) < 1e-12 and abs(same.std_error - se) < 1e-12
    assert res.diagnostics["n_clipped"] == int(np.sum((res.nuisance["e"] < 0.01) | (res.nuisance["e"] > 0.99)))


def test_aipw_clips_extreme_propensities_and_reports_how_many():
    rng = np.random.default_rng(0)
    n = 200
    cl = np.repeat(np.arange(20), 10)
    d = np.tile([0.0, 1.0], n // 2)
    y = d + rng.normal(size=n)
    e_hat = np.linspace(0.001, 0.999, n)
    out = aipw_from_nuisances(y, d, e_hat, np.zeros(n), np.ones(n), cl, "ATE", clip=0.05)
    assert out.diagnostics["n_clipped"] == int(np.sum((e_hat < 0.05) | (e_hat > 0.95)))
    e = np.clip(e_hat, 0.05, 0.95)
    tau, _ = aipw_by_hand(y, d, e, np.zeros(n), np.ones(n), cl, "ATE")
    assert abs(out.estimate - tau) < 1e-12


# ----------------------------------------------------------------------------- cluster-level propensity

def cluster_design(sim):
    """One row per cluster: the cluster means of (x1, x2, z) and the cluster's treatment."""
    t = sim.data
    cl = t["cluster"].to_numpy()
    labels = np.unique(cl)
    X = np.column_stack([t[c].to_numpy() for c in ("x1", "x2", "z")])
    xc = np.array([X[cl == c].mean(axis=0) for c in labels])
    dc = np.array([t["d"].to_numpy()[cl == c][0] for c in labels])
    return xc, dc, labels, cl


def penalised_logit_gradient_hessian(Z, d, pen, b):
    p = 1 / (1 + np.exp(-(Z @ b)))
    return Z.T @ (p - d) + pen * b, (Z * (p * (1 - p))[:, None]).T @ Z + np.diag(pen)


@pytest.mark.parametrize("penalty", [0.0, 1.0])
def test_cluster_propensity_equals_logit_on_cluster_means_per_fold(penalty):
    """penalty 0: statsmodels' Logit MLE (Newton to 1e-14); penalty 1:
    statsmodels' GLM ridge (fit_regularized, L1_wt = 0, the intercept
    unpenalised; its objective is −loglik/n + α/2 ‖b‖², so α = penalty / n).
    Both on the standardised cluster-mean design of the training clusters.
    The tolerance is the optimisation error of the two fits: with g the
    gradient of the penalised objective at a solution and H its Hessian,
    ‖b − b*‖ ≲ ‖g‖ / λ_min(H) (doubled for the curvature's change), and
    |Δ logistic(z·b)| ≤ ‖z‖ ‖Δb‖ / 4."""
    sim = cluster_trial(n_strata=4, clusters_per_stratum=6, n_per_cluster=7, overlap="high",
                        seed=5)
    xc, dc, labels, cl = cluster_design(sim)
    t = sim.data
    X = np.column_stack([t[c].to_numpy() for c in ("x1", "x2", "z")])
    d = t["d"].to_numpy()
    fold = cluster_folds(cl, 3, 1, d)
    e, info = cluster_propensity(X, d, cl, fold, penalty)
    assert info["converged"]
    fold_c = np.array([fold[cl == c][0] for c in labels])
    ref = np.empty(len(labels))
    tol = np.empty(len(labels))
    for k in range(3):
        tr, te = fold_c != k, fold_c == k
        assert 0 < dc[tr].sum() < tr.sum()
        m, s = xc[tr].mean(axis=0), xc[tr].std(axis=0)
        Z = np.column_stack([np.ones(tr.sum()), (xc[tr] - m) / s])
        Zte = np.column_stack([np.ones(te.sum()), (xc[te] - m) / s])
        pen = np.r_[0.0, np.full(3, penalty)]
        if penalty == 0:
            fit = sm.Logit(dc[tr], Z).fit(method="newton", tol=1e-14, maxiter=200, disp=0)
        else:
            fit = sm.GLM(dc[tr], Z, family=sm.families.Binomial()).fit_regularized(
                alpha=pen / tr.sum(), L1_wt=0.0, cnvrg_tol=1e-14, maxiter=1000)
        b_ref = np.asarray(fit.params)
        ref[te] = 1 / (1 + np.exp(-(Zte @ b_ref)))
        g_ref, H = penalised_logit_gradient_hessian(Z, dc[tr], pen, b_ref)
        g_ours, _ = penalised_logit_gradient_hessian(Z, dc[tr], pen, info["folds"][k]["coef"])
        db = 2 * (np.linalg.norm(g_ref) + np.linalg.norm(g_ours)) / np.linalg.eigvalsh(H).min()
        tol[te] = np.linalg.norm(Zte, axis=1) * db / 4 + 1e-12
    diff = np.abs(e - ref[np.searchsorted(labels, cl)])
    print(f"\npenalty {penalty}: max |ê − reference| = {diff.max():.2e}, "
          f"tolerance {tol.min():.2e}–{tol.max():.2e}")
    assert np.all(diff <= tol[np.searchsorted(labels, cl)])
    assert diff.max() < 1e-4                        # and the tolerance is not vacuous


def test_propensity_penalty_by_leave_one_cluster_out_with_the_one_se_rule():
    """The LOO deviances recomputed with scipy's BFGS on the penalised
    objective (gtol 1e-9; deviances then agree to ~1e-6), the one-SE rule
    applied by hand; and the default "cv" fit is the ridge fit at that penalty."""
    from scipy.optimize import minimize
    # (a draw whose LOO minimum, λ = 1, and one-SE choice, λ ≈ 31.6, are both inside the grid)
    sim = cluster_trial(n_strata=4, clusters_per_stratum=5, n_per_cluster=4, overlap="low",
                        seed=8)
    xc, dc, labels, cl = cluster_design(sim)
    grid = PENALTY_GRID
    dev = np.empty((len(grid), len(dc)))
    for j, lam in enumerate(grid):
        for i in range(len(dc)):
            keep = np.arange(len(dc)) != i
            m, s = xc[keep].mean(axis=0), xc[keep].std(axis=0)
            Z = np.column_stack([np.ones(keep.sum()), (xc[keep] - m) / s])
            pen = np.r_[0.0, np.full(3, lam)]

            def f(b):
                eta = Z @ b
                return np.sum(np.logaddexp(0, eta) - dc[keep] * eta) + 0.5 * np.sum(pen * b * b)

            def g(b):
                return Z.T @ (1 / (1 + np.exp(-(Z @ b))) - dc[keep]) + pen * b

            b = minimize(f, np.zeros(4), jac=g, method="BFGS", options={"gtol": 1e-9}).x
            p = 1 / (1 + np.exp(-(b[0] + (xc[i] - m) / s @ b[1:])))
            p = min(max(p, 1e-12), 1 - 1e-12)
            dev[j, i] = -2 * (dc[i] * np.log(p) + (1 - dc[i]) * np.log(1 - p))
    mean, se = dev.mean(axis=1), dev.std(axis=1, ddof=1) / np.sqrt(len(dc))
    expected = grid[max(j for j in range(len(grid)) if mean[j] <= mean.min() + se[mean.argmin()])]
    lam, mean_ours, se_ours = loo_penalty(xc, dc)
    print(f"\nLOO deviance: max |difference| {np.abs(mean_ours - mean).max():.1e}; "
          f"penalty {lam:g} (expected {expected:g})")
    np.testing.assert_allclose(mean_ours, mean, atol=1e-5)
    np.testing.assert_allclose(se_ours, se, atol=1e-5)
    assert lam == expected and grid[0] < lam < grid[-1] and lam > grid[int(np.argmin(mean))]
    t = sim.data
    X = np.column_stack([t[c].to_numpy() for c in ("x1", "x2", "z")])
    d = t["d"].to_numpy()
    fold = cluster_folds(cl, 2, 0, d)
    e_cv, info = cluster_propensity(X, d, cl, fold)
    for k, f in enumerate(info["folds"]):
        rows = fold == k
        e_fixed, _ = cluster_propensity(X, d, cl, fold, f["penalty"])
        np.testing.assert_array_equal(e_cv[rows], e_fixed[rows])
        fold_c = np.array([fold[cl == c][0] for c in labels])
        assert f["penalty"] == loo_penalty(xc[fold_c != k], dc[fold_c != k])[0]


def test_aipw_uses_one_cluster_level_propensity_per_cluster_and_compare_agrees():
    sim = cluster_trial(n_strata=2, clusters_per_stratum=8, n_per_cluster=6, seed=21)
    settings = dict(model="linear", inner_steps=1, max_steps=30, patience=None, eval_every=10)
    res = aipw(sim, folds=2, seed=3, **settings)
    cl = sim.data["cluster"].to_numpy()
    e = res.nuisance["e"]
    for c in np.unique(cl):
        assert np.all(e[cl == c] == e[cl == c][0])
    assert res.diagnostics["propensity"] == "cluster"
    assert len(res.diagnostics["propensity_penalty"]) == 2
    assert res.diagnostics["propensity_min"] == e.min()
    assert res.diagnostics["propensity_max"] == e.max()
    assert res.diagnostics["n_clipped"] == int(np.sum((e < 0.01) | (e > 0.99)))
    t = sim.data
    X = np.column_stack([t[c].to_numpy() for c in ("x1", "x2", "z")])
    expected, _ = cluster_propensity(X, t["d"].to_numpy(), cl, res.nuisance["fold"])
    np.testing.assert_array_equal(e, expected)
    # compare()'s AIPW rows use the same propensity and outcome fits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tab = rfp.compare(sim, methods=["aipw"], folds=2, seed=3, **settings).to_pylist()
    assert [r["estimand"] for r in tab] == ["ATE", "ATT"]
    assert tab[0]["estimate"] == pytest.approx(res.estimate, abs=1e-10)
    assert tab[0]["std_error"] == pytest.approx(res.std_error, abs=1e-10)
    # the individual-level propensity is still available, and is not constant in clusters here
    ind = aipw(sim, folds=2, seed=3, propensity="individual", **settings)
    assert ind.diagnostics["propensity"] == "individual"
    assert not np.array_equal(ind.nuisance["e"], e)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tab_ind = rfp.compare(sim, methods=["aipw"], folds=2, seed=3, propensity="individual",
                              **settings).to_pylist()
    assert tab_ind[0]["estimate"] == pytest.approx(ind.estimate, abs=1e-10)


def test_propensity_option_is_checked():
    t = _table(np.tile([0.0, 1.0], 8))             # treatment varies within clusters
    with pytest.raises(ValueError, match="propensity='cluster' needs a treatment assigned to "
                                         "whole clusters.*'d' varies"):
        aipw(t, "y", "d", ["x"], "g", propensity="cluster")
    with pytest.raises(ValueError, match="propensity must be 'auto', 'cluster' or 'individual'"):
        aipw(t, "y", "d", ["x"], "g", propensity="school")


@pytest.mark.slow
def test_aipw_with_cluster_propensity_coverage_and_bias_on_cluster_trial():
    """AIPW ATE with the default (cluster-level) propensity on the design of
    test_dml_coverage_and_bias_on_cluster_trial: linear outcome models by the
    method (alpha = 0.5, one inner step) on ``outcome_features``, high
    overlap, constant tau = 1, 40 clusters, 2 cluster folds. 2,000
    replications (about 3 minutes): coverage in
    montecarlo.coverage_band(0.95, 2000) = [0.9345, 0.9655] (a true 0.92
    passes with probability < 0.01; measured 0.9495), bias within 3 Monte
    Carlo SEs (measured -0.051, SE 0.044). It used 40 replications and a
    floor of 0.847, which a true coverage of 0.88 passed."""
    reps, tau = 2000, 1.0
    est, covered, e_min, e_max, clipped = [], [], [], [], 0
    settings = dict(model="linear", alpha=0.5, inner_steps=1, inner_lr=0.1, learning_rate=0.1,
                    schedule="cosine", max_steps=200, patience=None, validation_share=0.0)
    for r in range(reps):
        sim = cluster_trial(n_strata=4, clusters_per_stratum=10, n_per_cluster=10,
                            overlap="high", tau=tau, seed=1000 + r)
        table, names = outcome_features(sim)
        res = aipw(table, "y", "d", names, "cluster", folds=2, seed=r, **settings)
        assert res.diagnostics["propensity"] == "cluster"
        est.append(res.estimate)
        covered.append(res.ci_low <= tau <= res.ci_high)
        e_min.append(res.diagnostics["propensity_min"])
        e_max.append(res.diagnostics["propensity_max"])
        clipped += res.diagnostics["n_clipped"]
    est = np.array(est)
    coverage = float(np.mean(covered))
    bias, bias_se = est.mean() - tau, est.std(ddof=1) / np.sqrt(reps)
    print(f"\nAIPW ATE (cluster propensity) on cluster_trial, {reps} reps: coverage "
          f"{coverage:.3f}, bias {bias:+.4f} ± {bias_se:.4f} (se), sd {est.std(ddof=1):.4f}, "
          f"max |error| {np.abs(est - tau).max():.3f}, propensity range "
          f"{min(e_min):.3f}–{max(e_max):.3f}, rows clipped {clipped}")
    assert_covers(covered, 0.95, "AIPW ATE (method nuisances) coverage")
    assert abs(bias) <= 3 * bias_se


# ----------------------------------------------------------------------------- T-learner

def test_t_learner_predicts_the_difference_of_the_arm_fits_on_new_data():
    sim = cluster_trial(n_strata=2, clusters_per_stratum=8, n_per_cluster=10,
                        effect="heterogeneous", seed=4)
    fitted = rfp.effect(sim, method="t_learner", **OLS_LIKE)
    new = cluster_trial(n_strata=2, clusters_per_stratum=3, n_per_cluster=5, seed=99).data
    t = sim.data
    y, d = t["y"].to_numpy(), t["d"].to_numpy()
    X = np.column_stack([np.ones(len(y)), t["x1"].to_numpy(), t["x2"].to_numpy(), t["z"].to_numpy()])
    Xn = np.column_stack([np.ones(new.num_rows), new["x1"].to_numpy(), new["x2"].to_numpy(),
                          new["z"].to_numpy()])
    b1 = np.linalg.lstsq(X[d == 1], y[d == 1], rcond=None)[0]
    b0 = np.linalg.lstsq(X[d == 0], y[d == 0], rcond=None)[0]
    np.testing.assert_allclose(fitted.predict(new.drop_columns(["cluster", "y", "d"])),
                               Xn @ (b1 - b0), atol=1e-6)
    assert fitted.x_names == ["x1", "x2", "z"]


# ----------------------------------------------------------------------------- simulation

def outcome_features(sim):
    """cluster_trial's table with the terms of its outcome function
    f = z + 0.5 z² + sin(x1) + 0.25 x1 x2 as extra controls, so that a linear
    E[Y | X] model is (up to τ·e(z), nearly linear in z when overlap is high)
    correctly specified."""
    t = sim.data
    x1, x2, z = (t[c].to_numpy() for c in ("x1", "x2", "z"))
    names = ["x1", "x2", "z", "z_sq", "sin_x1", "x1_x2"]
    extra = {"z_sq": z ** 2, "sin_x1": np.sin(x1), "x1_x2": x1 * x2}
    for name, values in extra.items():
        t = t.append_column(name, pa.array(values))
    return t, names


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "known under-coverage: 2,000 replications cover 0.8925 (band [0.9345, 0.9655]) with a bias "
    "of -0.022 (Monte Carlo SE 0.0056); the 40-replication version passed with 0.847 as floor"))
def test_dml_coverage_and_bias_on_cluster_trial():
    """A small version of validation/effects_study.py: DML with the method's
    linear nuisances (alpha = 0.5, one inner step) on a cluster-level design
    with a constant effect tau = 1 and high overlap. Both nuisances are
    (nearly) correctly specified: the logistic propensity e(z) =
    logistic(0.5 z) exactly, the outcome through ``outcome_features``.
    2,000 replications (about 1 minute): coverage in
    montecarlo.coverage_band(0.95, 2000) = [0.9345, 0.9655] (a true 0.92
    passes with probability < 0.01), bias within 3 Monte Carlo SEs. It
    fails today (coverage 0.8925, bias -0.022, 3.9 Monte Carlo SEs): marked
    xfail(strict=True), so that the fix shows up as an unexpected pass."""
    reps, tau = 2000, 1.0
    est, covered = [], []
    settings = dict(model="linear", alpha=0.5, inner_steps=1, inner_lr=0.1, learning_rate=0.1,
                    schedule="cosine", max_steps=200, patience=None, validation_share=0.0)
    for r in range(reps):
        sim = cluster_trial(n_strata=4, clusters_per_stratum=10, n_per_cluster=10,
                            overlap="high", tau=tau, seed=1000 + r)
        table, names = outcome_features(sim)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FunctionalFormWarning)
            res = dml_plm(table, "y", "d", names, "cluster", folds=2, seed=r, **settings)
        est.append(res.estimate)
        covered.append(res.ci_low <= tau <= res.ci_high)
    est = np.array(est)
    coverage = float(np.mean(covered))
    bias, bias_se = est.mean() - tau, est.std(ddof=1) / np.sqrt(reps)
    print(f"\nDML on cluster_trial, {reps} reps: coverage {coverage:.3f}, "
          f"bias {bias:+.4f} ± {bias_se:.4f} (se), sd {est.std(ddof=1):.4f}")
    assert_covers(covered, 0.95, "DML (method nuisances) coverage")
    assert abs(bias) <= 3 * bias_se


# ----------------------------------------------------------------------------- repeated cross-fitting
def test_median_over_splits_is_chernozhukov_median_aggregation():
    """tau = median tau_s; sigma^2 = median(sigma_s^2 + (tau_s - tau)^2)
    (Chernozhukov et al. 2018, Section 3.4), written out here."""
    est = np.array([1.0, 1.4, 0.7, 1.1, 2.0])
    se = np.array([0.3, 0.2, 0.5, 0.25, 0.4])
    splits = [Effect("dml", "PLM", e, s, np.nan, np.nan, 100, 20, 19, 0.95,
                             {"converged": k != 3})
              for k, (e, s) in enumerate(zip(est, se))]
    out = median_over_splits(splits)
    assert out.estimate == 1.1
    sigma = np.sqrt(np.median(se ** 2 + (est - 1.1) ** 2))
    assert out.std_error == pytest.approx(sigma, rel=1e-14)
    from scipy import stats
    q = stats.t.ppf(0.975, 19)
    assert out.ci_low == pytest.approx(1.1 - q * sigma, rel=1e-12)
    assert out.ci_high == pytest.approx(1.1 + q * sigma, rel=1e-12)
    assert out.diagnostics["repeats"] == 5 and out.diagnostics["converged"] is False
    assert out.diagnostics["split_estimates"] == list(est)


def test_repeated_crossfitting_is_the_median_of_single_splits_and_compare_agrees():
    table = continuous_frame(seed=4)
    kw = dict(folds=2, model="linear", alpha=0.5, inner_steps=1, max_steps=40, patience=None,
              validation_share=0.0)
    single = [dml_plm(table, "y", "d", ["x1", "z"], "g", seed=split_seed(3, s),
                              **kw) for s in range(3)]
    rep = dml_plm(table, "y", "d", ["x1", "z"], "g", seed=3, repeats=3, **kw)
    est = np.array([e.estimate for e in single])
    se = np.array([e.std_error for e in single])
    assert rep.estimate == pytest.approx(np.median(est), abs=1e-12)
    assert rep.std_error == pytest.approx(np.sqrt(np.median(se ** 2 + (est - np.median(est)) ** 2)),
                                          abs=1e-12)
    assert len(set(np.round(est, 10))) == 3       # the splits differ
    assert dml_plm(table, "y", "d", ["x1", "z"], "g", seed=3, repeats=1,
                           **kw).estimate == single[0].estimate
    # the same in compare(), whose DML row shares its nuisances with AIPW
    sim = cluster_trial(n_strata=2, clusters_per_stratum=8, n_per_cluster=6, seed=21)
    ckw = dict(folds=2, model="linear", inner_steps=1, max_steps=30, patience=None,
               eval_every=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = rfp.compare(sim, methods=["dml", "aipw"], seed=5, repeats=3, **ckw).to_pylist()
        dml = dml_plm(sim, seed=5, repeats=3, **ckw)
        att = aipw(sim, estimand="ATT", seed=5, repeats=3, **ckw)
    assert row[0]["estimate"] == pytest.approx(dml.estimate, abs=1e-10)
    assert row[0]["std_error"] == pytest.approx(dml.std_error, abs=1e-10)
    assert (row[2]["method"], row[2]["estimand"]) == ("aipw", "ATT")
    assert row[2]["estimate"] == pytest.approx(att.estimate, abs=1e-10)
    with pytest.raises(ValueError, match="repeats must be a whole number >= 1"):
        dml_plm(table, "y", "d", ["x1", "z"], "g", repeats=0, **kw)


def test_one_progress_bar_counts_every_fit_of_an_estimator(capsys):
    """progress=True: one bar over folds x nuisances x repeats fits (here
    2 x 2 x 2 = 8), counted by the steps each fit reports; a user callback
    reaches every fit unchanged."""
    from rfp.progress import over_fits
    with over_fits({"progress": True}, 3) as settings:
        counter = settings["progress"]
        for _ in range(3):                       # three fits of 30 steps, reported every 10
            for step in (10, 20, 30):
                counter(step, 30)
        assert counter.bar.n == 2               # the third is counted when it is over
    assert counter.bar.n == 3
    table = continuous_frame(seed=4)
    kw = dict(folds=2, model="mlp", hidden=(4,), alpha=0.5, inner_steps=1, max_steps=40,
              patience=None, validation_share=0.0, eval_every=10)   # fitted by gradient descent
    dml_plm(table, "y", "d", ["x1", "z"], "g", repeats=2, progress=True, **kw)
    err = capsys.readouterr().err
    assert "rfp fits" in err and "0/8" in err    # one bar, 8 fits (tqdm redraws sparingly)
    seen = []
    dml_plm(table, "y", "d", ["x1", "z"], "g", progress=lambda *a: seen.append(a[0]),
                    **kw)
    assert seen.count(10) == 4                   # 2 folds x 2 nuisances, each from step 10
    with over_fits({}, 3) as settings:           # not a terminal: no bar
        assert settings["progress"] is False


def test_cluster_trial_truths_match_large_sample_averages():
    sim = cluster_trial(n_strata=4, clusters_per_stratum=5000, n_per_cluster=2,
                        effect="heterogeneous", overlap="low", seed=8)
    t = sim.data
    tau_i, e, d = t["tau_i"].to_numpy(), t["e"].to_numpy(), t["d"].to_numpy()
    truth = sim.settings["truth"]
    assert abs(truth["ATT"] - np.sum(e * tau_i) / np.sum(e)) < 0.02
    assert abs(truth["PLM"] - np.sum(e * (1 - e) * tau_i) / np.sum(e * (1 - e))) < 0.02
    assert abs(truth["ATE"] - tau_i.mean()) < 0.02
    assert truth["SATT"] == pytest.approx(tau_i[d == 1].mean())
    assert truth["ATT"] > truth["ATE"] + 0.1      # selection on z with kappa > 0
    x = np.column_stack([t[c].to_numpy() for c in sim.x_names])
    np.testing.assert_allclose(sim.truth(x), tau_i)
    # selection on the cluster covariate biases the naive comparison
    y = t["y"].to_numpy()
    assert y[d == 1].mean() - y[d == 0].mean() > truth["SATT"] + 1.0
    # treatment is constant within clusters
    assert treatment_is_clustered(d, t["cluster"].to_numpy())


# ----------------------------------------------------------------------------- variance share

def test_variance_share_warning_when_treatment_is_a_function_of_cluster_covariates():
    rng = np.random.default_rng(1)
    G, per = 24, 8
    cl = np.repeat(np.arange(G), per)
    z = rng.normal(size=G)
    d = (z > 0).astype(float)[cl]                   # D = 1{z_c > 0}: a cluster-level function
    x1 = rng.normal(size=cl.size)
    y = d + z[cl] + x1 + rng.normal(size=cl.size)
    t = pa.table({"y": y, "d": d, "x1": x1, "z": z[cl], "g": cl})
    with pytest.warns(FunctionalFormWarning, match="functional-form"):
        res = dml_plm(t, "y", "d", ["x1", "z"], "g", folds=3, **OLS_LIKE)
    assert res.diagnostics["variance_share"] > 0.9

    # treatment varying within clusters, independent of the controls: no warning
    d_within = rng.integers(0, 2, size=cl.size).astype(float)
    t2 = t.set_column(1, "d", pa.array(d_within))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FunctionalFormWarning)
        res2 = dml_plm(t2, "y", "d", ["x1", "z"], "g", folds=3, **OLS_LIKE)
    assert res2.diagnostics["variance_share"] < 0.5


# ----------------------------------------------------------------------------- compare

def test_compare_table_rows_and_reference_numbers():
    sim = cluster_trial(n_strata=2, clusters_per_stratum=8, n_per_cluster=6, seed=21)
    settings = dict(model="linear", inner_steps=1, max_steps=30, patience=None, eval_every=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tab = rfp.compare(sim, folds=2, **settings)
    rows = tab.to_pylist()
    assert [(r["method"], r["estimand"]) for r in rows] == [
        ("fixed_effects", "OLS"), ("entropy_balancing", "ATT"), ("cluster_balancing", "ATT"),
        ("dml", "PLM"), ("aipw", "ATE"), ("aipw", "ATT"), ("kernel", "ATT"),
        ("dml_maml", "PLM"), ("dml_erm", "PLM")]
    for c in ("method", "estimand", "estimate", "std_error", "ci_low", "ci_high", "n", "clusters",
              "ess", "converged", "variance_share", "truth", "error"):
        assert c in tab.column_names
    assert all(r["n"] == 96 and r["clusters"] == 16 for r in rows)
    for r in rows:
        assert r["error"] == pytest.approx(r["estimate"] - sim.settings["truth"][r["estimand"]],
                                           nan_ok=True)

    t = sim.data
    fe = fixed_effects(t, "y", "d", ["x1", "x2", "z"], fe="stratum", cluster="cluster").row()
    assert rows[0]["estimate"] == pytest.approx(fe["estimate"], abs=1e-10)
    assert rows[0]["std_error"] == pytest.approx(fe["std_error"], abs=1e-10)

    # entropy balancing: weighted difference in means, GREG-linearised cluster SE
    eb = entropy_balance_from_table(t, "d", ["x1", "x2", "z"])
    y, d, w = t["y"].to_numpy(), t["d"].to_numpy().astype(bool), eb.weights
    cl = t["cluster"].to_numpy()
    X = np.column_stack([t[c].to_numpy() for c in ("x1", "x2", "z")])
    tau = y[d].mean() - np.sum(w[~d] * y[~d]) / np.sum(w[~d])
    Z = np.column_stack([np.ones(len(y)), X])
    W = np.diag(w[~d])
    gamma = np.linalg.solve(Z[~d].T @ W @ Z[~d], Z[~d].T @ W @ y[~d])
    r = y - Z @ gamma
    n, n1 = len(y), d.sum()
    psi = np.where(d, n / n1 * (r - r[d].mean()), -n / w[~d].sum() * w * r)
    s = np.array([psi[cl == c].sum() for c in np.unique(cl)])
    se = np.sqrt(16 / 15 * np.sum((s - s.mean()) ** 2) / n ** 2)
    assert rows[1]["estimate"] == pytest.approx(tau, abs=1e-10)
    assert rows[1]["std_error"] == pytest.approx(se, rel=1e-8)


def test_weighted_att_with_unit_weights_is_the_difference_in_means_with_cluster_se():
    rng = np.random.default_rng(3)
    cl = np.repeat(np.arange(10), 6)
    d = (cl < 4).astype(float)
    y = d + rng.normal(size=cl.size)
    tau, se = weighted_att(y, d, np.ones(cl.size), cl)
    assert tau == pytest.approx(y[d == 1].mean() - y[d == 0].mean())
    # the difference in means as OLS on (1, d), CR1 with K = 2 and n-1/n-K removed:
    # IF-based variance is G/(G-1) Σ_g S_g² / n² (no (n-1)/(n-K))
    X = np.column_stack([np.ones(cl.size), d])
    b = np.linalg.lstsq(X, y, rcond=None)[0]
    e = y - X @ b
    bread = np.linalg.inv(X.T @ X)
    s = np.array([X[cl == c].T @ e[cl == c] for c in range(10)])
    v = 10 / 9 * bread @ s.T @ s @ bread
    assert se == pytest.approx(np.sqrt(v[1, 1]), rel=1e-10)


def test_anova_icc_recovers_a_large_between_cluster_share():
    rng = np.random.default_rng(0)
    cl = np.repeat(np.arange(400), 10)
    y = rng.normal(size=400)[cl] + rng.normal(size=cl.size)
    assert anova_icc(y, cl) == pytest.approx(0.5, abs=0.05)


def test_balance_dispatches_to_the_balancing_baselines():
    sim = cluster_trial(n_strata=2, clusters_per_stratum=10, n_per_cluster=5, seed=2)
    eb = rfp.balance(sim, "d", ["x1", "x2", "z"])
    assert eb.result.converged and eb.balance.num_rows == 3 and eb.ess > 0
    cb = rfp.balance(sim, "d", ["x1", "x2", "z"], cluster="cluster", method="cluster", icc=0.2)
    assert cb.result.solved
    assert cb.x_names == ["x1", "x2", "z"]          # z detected as a cluster covariate
    with pytest.raises(ValueError, match="needs icc="):
        rfp.balance(sim, "d", ["x1"], cluster="cluster", method="cluster")


# ----------------------------------------------------------------------------- bad input

def _table(d, cl=None):
    n = len(d)
    cl = np.repeat(np.arange(n // 4), 4) if cl is None else cl
    return pa.table({"y": np.arange(n, dtype=float), "d": d, "x": np.linspace(0, 1, n), "g": cl})


def test_non_binary_treatment_is_named_with_its_values():
    t = _table(np.tile([0.0, 1.0, 2.0, 0.5], 4))
    with pytest.raises(ValueError, match=r"treatment column 'd' must be binary \(0/1\) for AIPW; "
                                         r"values seen: \[0, 0.5, 1, 2\]"):
        aipw(t, "y", "d", ["x"], "g")
    with pytest.raises(ValueError, match="must be binary .* for the T-learner"):
        rfp.effect(t, "y", "d", ["x"], "g", method="t_learner")
    # compare(): the binary-only rows say why they are left out; FE runs
    rows = rfp.compare(t, "y", "d", ["x"], "g", folds=2, methods=["fixed_effects", "entropy_balancing",
                                                          "aipw", "kernel"]).to_pylist()
    assert np.isfinite(rows[0]["estimate"]) and rows[0]["estimand"] == "OLS"
    for r in rows[1:]:
        assert np.isnan(r["estimate"]) and r["note"].startswith("left out: binary treatment only")


def test_compare_with_a_continuous_treatment_and_without_controls():
    sm_ols = sm.OLS
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(20), 10)
    x = rng.normal(size=200)
    d = 0.5 * x + rng.normal(size=200)
    y = 2.0 * d + x + rng.normal(size=200)
    t = {"y": y, "d": d, "x": x, "g": g}
    rows = {r["method"]: r for r in rfp.compare(
        t, "y", "d", ["x"], "g", methods=["fixed_effects", "dml"], nuisance="linear",
        folds=4).to_pylist()}
    ref = sm_ols(y, np.column_stack([np.ones(200), d, x])).fit()
    assert rows["fixed_effects"]["estimate"] == pytest.approx(ref.params[1], abs=1e-10)
    assert abs(rows["dml"]["estimate"] - 2.0) < 4 * rows["dml"]["std_error"]
    # no controls: only the fixed-effects row (a difference in means / OLS on d) runs
    rows = rfp.compare(t, "y", "d", [], "g", methods=["fixed_effects", "dml", "kernel"]).to_pylist()
    ref = sm_ols(y, np.column_stack([np.ones(200), d])).fit()
    assert rows[0]["estimate"] == pytest.approx(ref.params[1], abs=1e-10)
    assert rows[1]["note"].startswith("left out: needs controls")
    assert all(r["note"].startswith("left out") for r in rows[1:])


def test_constant_treatment_is_an_error():
    t = _table(np.ones(16))
    for method in ("dml", "aipw", "t_learner"):
        with pytest.raises(ValueError, match="treatment column 'd' is constant"):
            rfp.effect(t, "y", "d", ["x"], "g", method=method)


def test_treatment_varying_within_a_cluster_named_when_design_is_cluster():
    d = np.repeat([0.0, 1.0, 0.0, 1.0], 4)
    d[9] = 1.0                                      # row 9 lies in cluster "c"
    t = _table(d, cl=np.repeat(["a", "b", "c", "d"], 4))
    with pytest.raises(ValueError, match="treatment column 'd' varies within cluster 'c' "
                                         r"\(column 'g'; 1 such cluster\(s\)\)"):
        dml_plm(t, "y", "d", ["x"], "g", design="cluster")
    with pytest.raises(ValueError, match="design must be"):
        dml_plm(t, "y", "d", ["x"], "g", design="clusters")


def test_other_bad_input():
    t = _table(np.tile([0.0, 1.0], 8))
    with pytest.raises(ValueError, match="column.*'w'.*not found"):
        dml_plm(t, "y", "d", ["w"], "g")
    with pytest.raises(ValueError, match="cluster= is required"):
        dml_plm(t, "y", "d", ["x"])
    with pytest.raises(ValueError, match="the treatment 'd' is also a control"):
        dml_plm(t, "y", "d", ["x", "d"], "g")
    with pytest.raises(ValueError, match="estimand must be 'ATE' or 'ATT'"):
        aipw(t, "y", "d", ["x"], "g", estimand="ATC")
    with pytest.raises(ValueError, match="method must be one of"):
        rfp.effect(t, "y", "d", ["x"], "g", method="iv")
    with pytest.raises(TypeError, match="do not pass loss="):
        dml_plm(t, "y", "d", ["x"], "g", folds=2, loss="logistic")
    with pytest.raises(ValueError, match="unknown method"):
        rfp.compare(t, "y", "d", ["x"], "g", methods=["lasso"])
    nan = t.set_column(2, "x", pa.array([np.nan] + [0.5] * 15))
    with pytest.raises(ValueError, match="column 'x' has 1 missing value"):
        dml_plm(nan, "y", "d", ["x"], "g")
    text = t.set_column(1, "d", pa.array(["yes", "no"] * 8))
    with pytest.raises(ValueError, match="treatment column 'd' must be numeric"):
        aipw(text, "y", "d", ["x"], "g")
