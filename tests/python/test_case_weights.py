"""Case weights (``weights =``, issue 13 point 2) against independent references:
fixest's weighted least squares (pyfixest, to 1e-8), numpy's weighted least
squares, statsmodels' WLS with cluster SEs (the DML score), DoubleML's
weighted IRM (the AIPW score), and "a whole-number weight k is the row
repeated k times" (zero: the row dropped) for the objective R_k, DML, AIPW,
the T-learner and entropy balancing; errors and the deprecation of the
former modes ``weights = "obs" / "cluster"`` (now ``equal_clusters``)."""
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import rfp
from rfp.baselines.fixed_effects import fixed_effects
from rfp.core.bilevel import Objective, gather, observation_weights
from rfp.core.layout import make_buckets
from rfp.core.models import as_model
from test_fixed_effects import make_data, pyfixest_fit

jax.config.update("jax_enable_x64", True)
TOL = 1e-8


def duplicated(frame, k):
    """Row i repeated k[i] times (k whole numbers >= 0)."""
    return frame.loc[np.repeat(np.arange(len(frame)), k.astype(int))].reset_index(drop=True)


def effect_data(n_clusters=12, per=12, seed=3, clustered_treatment=False):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_clusters), per)
    u = rng.normal(size=n_clusters)[g]
    x1 = rng.normal(size=g.size) + 0.5 * u
    x2 = rng.normal(size=g.size)
    if clustered_treatment:
        d = (np.arange(n_clusters) % 2)[g].astype(float)
    else:
        d = (rng.random(g.size) < 1 / (1 + np.exp(-0.7 * x1))).astype(float)
    y = 1.0 + 0.6 * d + x1 - 0.5 * x2 + u + rng.normal(size=g.size)
    k = rng.integers(0, 4, g.size).astype(float)     # whole-number weights, zeros included,
    k[::per] = np.maximum(k[::per], 1.0)               # and every cluster kept
    return pd.DataFrame({"y": y, "d": d, "x1": x1, "x2": x2, "g": g, "k": k})


# ---- fixed effects: fixest's weighted least squares ---------------------------

@pytest.mark.parametrize("fe, fml", [([], "y ~ d + x1"), (["fe1"], "y ~ d + x1 | fe1"),
                                     (["fe1", "fe2"], "y ~ d + x1 | fe1 + fe2"),
                                     (["sub"], "y ~ d + x1 | sub")])
def test_fixed_effects_with_weights_equal_pyfixest(fe, fml):
    pf = pytest.importorskip("pyfixest")
    df = make_data()
    df["w"] = np.random.default_rng(1).uniform(0.2, 3.0, len(df))
    fit = fixed_effects(df, "y", "d", ["x1"], fe, cluster="cl", weights="w")
    kwargs = dict(vcov={"CRV1": "cl"}, fixef_rm="none", weights="w",
                  ssc=pf.ssc(k_adj=True, k_fixef="nonnested", G_adj=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = pf.feols(fml, df, fixef_tol=1e-13, **kwargs)
    np.testing.assert_allclose(fit.estimate, m.coef().to_numpy(), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(fit.std_error, m.se().to_numpy(), rtol=TOL)
    # unit weights are the unweighted fit; a weight vector equals the column
    same = fixed_effects(df, "y", "d", ["x1"], fe, cluster="cl", weights=df["w"].to_numpy())
    np.testing.assert_array_equal(same.estimate, fit.estimate)
    ones = fixed_effects(df, "y", "d", ["x1"], fe, cluster="cl", weights=np.ones(len(df)))
    plain = fixed_effects(df, "y", "d", ["x1"], fe, cluster="cl")
    np.testing.assert_allclose(ones.std_error, plain.std_error, rtol=1e-12)


def test_fixed_effects_zero_weights_drop_rows_as_fixest():
    """fixest drops rows of weight 0 (pyfixest refuses them): the fit equals
    pyfixest's weighted fit on the rows of positive weight."""
    pf = pytest.importorskip("pyfixest")
    df = make_data()
    w = np.random.default_rng(2).uniform(0.2, 3.0, len(df))
    w[:50] = 0.0
    fit = fixed_effects(df, "y", "d", ["x1"], ["fe1"], cluster="cl", weights=w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = pf.feols("y ~ d + x1 | fe1", df.iloc[50:].assign(w=w[50:]), weights="w",
                     vcov={"CRV1": "cl"}, fixef_rm="none", fixef_tol=1e-13,
                     ssc=pf.ssc(k_adj=True, k_fixef="nonnested", G_adj=True))
    assert fit.n == len(df) - 50
    np.testing.assert_allclose(fit.estimate, m.coef().to_numpy(), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(fit.std_error, m.se().to_numpy(), rtol=TOL)


def test_fixed_effects_cr2_with_weights_says_not_available():
    df = make_data()
    with pytest.raises(NotImplementedError, match="vcov = 'CR2' with case weights"):
        fixed_effects(df, "y", "d", ["x1"], ["fe1"], cluster="cl", weights=np.ones(len(df)),
                      vcov="CR2")


# ---- the objective R_k and the fit ---------------------------------------------

def test_objective_with_whole_weights_equals_duplicated_rows():
    """alpha < 1 and two inner steps: the weighted inner mean makes weight 2 a
    repeated row in both the pooled and the adapted loss (value and gradient)."""
    rng = np.random.default_rng(0)
    cluster = np.repeat(np.arange(6), [3, 5, 4, 7, 2, 6])
    x = rng.normal(size=(cluster.size, 2))
    y = x[:, 0] - x[:, 1] ** 2 + rng.normal(size=cluster.size)
    k = rng.integers(0, 4, cluster.size).astype(float)
    k[np.r_[0, 3, 8, 12, 19, 21]] = 1.0                    # every cluster keeps a row
    model = as_model("mlp", hidden=(5,), activation="tanh")
    params = model.init(jax.random.PRNGKey(1), jnp.asarray(x[:1]))
    obj = Objective(model.apply, "squared", 2, 0.1)
    rows = np.repeat(np.arange(cluster.size), k.astype(int))
    for equal in (False, True):
        weighted = gather(make_buckets(cluster), x, y, observation_weights(cluster, k, equal))
        dup = gather(make_buckets(cluster[rows]), x[rows], y[rows],
                     observation_weights(cluster[rows], None, equal))
        f = lambda p: obj(p, 0.5, weighted)   # noqa: E731
        g = lambda p: obj(p, 0.5, dup)        # noqa: E731
        np.testing.assert_allclose(f(params), g(params), rtol=1e-12)
        for a, b in zip(jax.tree.leaves(jax.grad(f)(params)), jax.tree.leaves(jax.grad(g)(params))):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_linear_fit_with_weights_is_weighted_least_squares():
    """model="linear", alpha = 1: R_k is the weighted mean squared error, so
    the fit converges to numpy's weighted least squares."""
    df = effect_data()
    w = df["k"].to_numpy() * np.linspace(0.5, 1.5, len(df))
    m = rfp.fit(df, y="y", x=["x1", "x2"], cluster="g", model="linear", alpha=1.0,
                weights=w, max_steps=3000, patience=None, learning_rate=0.05, progress=False)
    z = np.column_stack([np.ones(len(df)), df[["x1", "x2"]].to_numpy()])
    root = np.sqrt(w)
    beta = np.linalg.lstsq(z * root[:, None], df["y"].to_numpy() * root, rcond=None)[0]
    np.testing.assert_allclose(m.predict(df, as_numpy=True), z @ beta, atol=1e-4)
    by_name = rfp.fit(df.assign(w=w), y="y", x=["x1", "x2"], cluster="g", model="linear",
                      alpha=1.0, weights="w", max_steps=3000, patience=None,
                      learning_rate=0.05, progress=False)
    np.testing.assert_array_equal(by_name.predict(df, as_numpy=True),
                                  m.predict(df, as_numpy=True))
    unweighted = np.linalg.lstsq(z, df["y"].to_numpy(), rcond=None)[0]
    assert np.max(np.abs(beta - unweighted)) > 1e-2      # the check can fail


def test_weight_column_is_not_a_control_and_rows_follow_na_omit():
    df = effect_data()
    df.loc[[4, 30], "x2"] = np.nan
    w = df["k"].to_numpy()
    settings = dict(model="linear", alpha=1.0, max_steps=50, patience=None, progress=False)
    with pytest.warns(UserWarning, match="dropped 2 row"):
        a = rfp.fit(df, y="y", x=["x1", "x2"], cluster="g", weights=w, na_action="omit",
                    **settings)
    keep = df["x2"].notna().to_numpy()
    b = rfp.fit(df[keep], y="y", x=["x1", "x2"], cluster="g", weights=w[keep], **settings)
    np.testing.assert_array_equal(a.predict(df[keep], as_numpy=True),
                                  b.predict(df[keep], as_numpy=True))
    c = rfp.fit(df[keep], y="y", x="all", cluster="g", weights="k", **settings)
    assert "k" not in c.x_names


# ---- effects: weighted scores = duplicated rows on the same folds --------------

LINEAR = dict(model="linear", alpha=1.0, progress=False)


def test_dml_with_whole_weights_equals_duplicated_rows():
    df = effect_data()
    k = df["k"].to_numpy()
    fold = rfp.effects.folds.cluster_folds(df["g"].to_numpy(), 3, seed=0)
    dup = duplicated(df, k)
    a = rfp.effect(df, y="y", d="d", x=["x1", "x2"], cluster="g", weights="k", fold=fold,
                   **LINEAR)
    b = rfp.effect(dup, y="y", d="d", x=["x1", "x2"], cluster="g",
                   fold=np.repeat(fold, k.astype(int)), **LINEAR)
    assert a.diagnostics["nuisance_models"] == b.diagnostics["nuisance_models"]
    np.testing.assert_allclose(a.estimate, b.estimate, rtol=1e-10)
    np.testing.assert_allclose(a.std_error, b.std_error, rtol=1e-10)
    plain = rfp.effect(df, y="y", d="d", x=["x1", "x2"], cluster="g", fold=fold, **LINEAR)
    assert abs(plain.estimate - a.estimate) > 1e-6


@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
@pytest.mark.filterwarnings("ignore::rfp.effects.scores.OverlapWarning")
def test_aipw_with_whole_weights_equals_duplicated_rows(estimand):
    """Treatment by cluster, so the folds (dealt by cluster treatment share)
    and the cluster-level propensity (on weighted cluster means) are those of
    the duplicated data."""
    df = effect_data(clustered_treatment=True)
    k = df["k"].to_numpy()
    common = dict(y="y", d="d", x=["x1", "x2"], cluster="g", method="aipw", estimand=estimand,
                  folds=3, repeats=1, propensity_penalty=1.0, **LINEAR)
    a = rfp.effect(df, weights=k, **common)
    b = rfp.effect(duplicated(df, k), **common)
    np.testing.assert_allclose(a.estimate, b.estimate, rtol=1e-10)
    np.testing.assert_allclose(a.std_error, b.std_error, rtol=1e-10)
    plain = rfp.effect(df, **common)
    assert abs(plain.estimate - a.estimate) > 1e-6


def test_t_learner_with_weights_equals_duplicated_rows():
    df = effect_data()
    k = df["k"].to_numpy()
    settings = dict(model="linear", alpha=1.0, max_steps=400, patience=None, learning_rate=0.05,
                    progress=False)
    a = rfp.effect(df, y="y", d="d", x=["x1", "x2"], cluster="g", method="t_learner",
                   weights="k", **settings)
    b = rfp.effect(duplicated(df, k), y="y", d="d", x=["x1", "x2"], cluster="g",
                   method="t_learner", **settings)
    # gradient fits on the same weighted objective from the same start
    np.testing.assert_allclose(a.predict(df), b.predict(df), rtol=1e-6, atol=1e-6)


def test_entropy_balancing_with_whole_weights_equals_duplicated_rows():
    df = effect_data()
    k = df["k"].to_numpy()
    a = rfp.balance(df, "d", ["x1", "x2"], weights="k")
    b = rfp.balance(duplicated(df, k), "d", ["x1", "x2"])
    rows = np.repeat(np.arange(len(df)), k.astype(int))
    summed = np.bincount(rows, weights=np.asarray(b.weights), minlength=len(df))
    np.testing.assert_allclose(np.asarray(a.weights), summed, rtol=1e-8, atol=1e-10)
    with pytest.raises(NotImplementedError, match=r"balance\(method='entropy'\) only"):
        rfp.balance(df, "d", ["x1", "x2"], cluster="g", method="hierarchical", weights="k")


@pytest.mark.filterwarnings("ignore::rfp.inference.small_clusters.SmallClusterWarning")
def test_compare_passes_weights_to_the_rows_that_take_them():
    df = effect_data()
    k = df["k"].to_numpy()
    out = rfp.compare(df, y="y", d="d", x=["x1", "x2"], cluster="g", weights="k",
                      methods=["fixed_effects", "kernel"], progress=False).to_pandas()
    fe = fixed_effects(df, "y", "d", ["x1", "x2"], cluster="g", weights=k)
    row = out.set_index("method").loc["fixed_effects"]
    np.testing.assert_allclose(row["estimate"], fe.row()["estimate"], rtol=1e-12)
    np.testing.assert_allclose(row["std_error"], fe.row()["std_error"], rtol=1e-12)
    assert "takes no case weights" in out.set_index("method").loc["kernel", "note"]


# ---- errors ---------------------------------------------------------------------

BAD = [
    (lambda n: -np.ones(n), ValueError, r"weights must be finite numbers >= 0 \(one case weight "
                                        r"per row\), but row 1 is -1"),
    (lambda n: np.r_[np.ones(n - 1), np.nan], ValueError, r"row \d+ is missing \(NA/NaN\)"),
    (lambda n: np.ones(n + 1), ValueError, r"weights has \d+ value\(s\) but the data have \d+ "
                                           r"rows"),
    (lambda n: "nope", ValueError, r"weights: column 'nope' not found"),
    (lambda n: np.zeros(n), ValueError, "weights are all zero"),
    (lambda n: 2.0, TypeError, "weights must be a column name or one number >= 0 per row"),
]


@pytest.mark.parametrize("make, error, message", BAD, ids=[b[2][:20] for b in BAD])
@pytest.mark.parametrize("entry", ["fit", "effect", "fixed_effects", "balance"])
def test_bad_weights_are_named(make, error, message, entry):
    df = effect_data(n_clusters=4, per=5)
    w = make(len(df))
    call = {
        "fit": lambda: rfp.fit(df, y="y", x=["x1"], cluster="g", weights=w, max_steps=1),
        "effect": lambda: rfp.effect(df, y="y", d="d", x=["x1"], cluster="g", weights=w,
                                     folds=2, max_steps=1),
        "fixed_effects": lambda: fixed_effects(df, "y", "d", ["x1"], cluster="g", weights=w),
        "balance": lambda: rfp.balance(df, "d", ["x1"], weights=w),
    }[entry]
    with pytest.raises(error, match=message):
        call()


def test_weight_column_with_a_negative_value_names_column_and_row():
    df = effect_data(n_clusters=4, per=5)
    df.loc[6, "k"] = -2.0
    with pytest.raises(ValueError, match=r"weights \(column 'k'\) must be finite numbers >= 0 "
                                         r"\(one case weight per row\), but row 7 is -2"):
        rfp.effect(df, y="y", d="d", x=["x1"], cluster="g", weights="k", folds=2)


# ---- the former modes -------------------------------------------------------------

def test_old_weight_modes_warn_and_map_to_equal_clusters():
    df = effect_data(n_clusters=6, per=6)
    settings = dict(model="linear", max_steps=30, patience=None, progress=False)
    with pytest.warns(FutureWarning, match="use equal_clusters = True"):
        old = rfp.fit(df, y="y", x=["x1"], cluster="g", weights="cluster", **settings)
    new = rfp.fit(df, y="y", x=["x1"], cluster="g", equal_clusters=True, **settings)
    assert old.config["equal_clusters"] is True and old.config["weights"] is None
    np.testing.assert_array_equal(old.predict(df, as_numpy=True), new.predict(df, as_numpy=True))
    with pytest.warns(FutureWarning, match="use equal_clusters = False"):
        rfp.settings.validate({"weights": "obs"}, "dml")
    with pytest.raises(ValueError, match="contradicts equal_clusters = False"):
        rfp.settings.validate({"weights": "cluster", "equal_clusters": False}, "fit")
    with pytest.raises(ValueError, match="applies to the method's fits only"):
        rfp.settings.validate({"weights": "cluster"}, "fixed_effects")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # a saved model: no warning
        assert rfp.settings.validate({"weights": "cluster"}, "fit", saved=True) == {
            "weights": None, "equal_clusters": True}


def test_heterogeneity_refuses_weights():
    df = effect_data(n_clusters=4, per=5)
    with pytest.raises(NotImplementedError, match="not supported by heterogeneity"):
        rfp.heterogeneity(df, y="y", d="d", x=["x1"], cluster="g", weights="k")


def test_estimators_called_directly_do_not_read_an_old_mode_silently():
    """rfp.effects.estimators.dml_plm skips the validator: weights="cluster" with no
    column of that name is refused as the former mode; a column of that name
    is the case weights, with a FutureWarning (issue 19, item 5)."""
    df = effect_data(n_clusters=6, per=5)
    with pytest.raises(ValueError, match="is the former mode"):
        rfp.effects.estimators.dml_plm(df, y="y", d="d", x=["x1"], cluster="g", weights="cluster",
                            folds=2, model="linear")
    df = df.rename(columns={"g": "cluster"})
    with pytest.warns(FutureWarning, match="names the data's column 'cluster', used as case "
                                           "weights"):
        est = rfp.effects.estimators.dml_plm(df, y="y", d="d", x=["x1"], cluster="cluster",
                                  weights="cluster", folds=2, model="linear")
    with warnings.catch_warnings():                    # the same data: the same warnings
        warnings.simplefilter("ignore", UserWarning)
        same = rfp.effects.estimators.dml_plm(df, y="y", d="d", x=["x1"], cluster="cluster",
                                   weights=df["cluster"].to_numpy(dtype=float), folds=2,
                                   model="linear")
        unweighted = rfp.effects.estimators.dml_plm(df, y="y", d="d", x=["x1"], cluster="cluster", folds=2,
                                         model="linear")
    assert (est.estimate, est.std_error) == (same.estimate, same.std_error)
    assert est.estimate != unweighted.estimate


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_tune_and_save_keep_the_case_weights(tmp_path):
    df = effect_data(n_clusters=6, per=8)
    settings = dict(model="linear", max_steps=20, progress=False)
    tuned = rfp.tune(df, y="y", x=["x1"], cluster="g", weights="k", folds=2,
                     grid={"alpha": [1.0, 0.5]}, **settings)
    np.testing.assert_array_equal(tuned.config["weights"], df["k"].to_numpy())
    path = tmp_path / "m.npz"
    tuned.save(path)
    back = rfp.load(path)
    np.testing.assert_array_equal(back.config["weights"], df["k"].to_numpy())
    np.testing.assert_array_equal(back.predict(df, as_numpy=True), tuned.predict(df, as_numpy=True))


def test_weighted_aipw_score_equals_doubleml_weighted_irm():
    """The weighted ATE score on given nuisance predictions equals DoubleML's
    IRM with ``weights`` (external predictions; weights of mean 1, since
    DoubleML's estimate is mean(w φ), ours Σ w φ / Σ w, which does not
    depend on the weights' scale). SE: DoubleML's heteroskedasticity-robust
    one times sqrt(n / (n − 1)) = ours with one cluster per row."""
    dml = pytest.importorskip("doubleml")
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from rfp.effects.scores import aipw_from_nuisances
    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=(n, 2))
    e = 1 / (1 + np.exp(-x[:, 0]))
    d = (rng.random(n) < e).astype(float)
    y = 1 + d + x[:, 0] + rng.normal(size=n)
    mu0 = 1 + x[:, 0] + 0.1 * rng.normal(size=n)
    mu1 = mu0 + 1 + 0.2 * rng.normal(size=n)
    e_hat = np.clip(e + 0.05 * rng.normal(size=n), 0.05, 0.95)
    w = rng.uniform(0.2, 3.0, n)
    w = w / w.mean()
    model = dml.DoubleMLIRM(dml.DoubleMLData.from_arrays(x, y, d), LinearRegression(),
                            LogisticRegression(), weights=w, n_folds=2)
    model.fit(external_predictions={"d": {"ml_g0": mu0[:, None], "ml_g1": mu1[:, None],
                                          "ml_m": e_hat[:, None]}})
    ours = aipw_from_nuisances(y, d, e_hat, mu0, mu1, np.arange(n), "ATE", 0.01, w=w)
    np.testing.assert_allclose(ours.estimate, model.coef[0], rtol=1e-10)
    np.testing.assert_allclose(ours.std_error, model.se[0] * np.sqrt(n / (n - 1)), rtol=1e-10)
    scaled = aipw_from_nuisances(y, d, e_hat, mu0, mu1, np.arange(n), "ATE", 0.01, w=3 * w)
    np.testing.assert_allclose(scaled.estimate, ours.estimate, rtol=1e-12)
    np.testing.assert_allclose(scaled.std_error, ours.std_error, rtol=1e-12)
    plain = aipw_from_nuisances(y, d, e_hat, mu0, mu1, np.arange(n), "ATE", 0.01)
    assert abs(plain.estimate - ours.estimate) > 1e-4


def test_weighted_dml_score_equals_statsmodels_wls_with_cluster_se():
    """τ̂ = Σ w V U / Σ w V² and its CR1 SE are statsmodels' WLS of U on V (no
    intercept) with cluster-robust covariance (G/(G−1)·(n−1)/(n−K), K = 1)."""
    sm = pytest.importorskip("statsmodels.api")
    from rfp.effects.scores import plm_from_residuals
    rng = np.random.default_rng(0)
    n, g = 240, np.repeat(np.arange(24), 10)
    d = rng.normal(size=n)
    y = 0.5 * d + rng.normal(size=n) + rng.normal(size=24)[g]
    g_hat, m_hat = 0.1 * rng.normal(size=n), 0.2 * rng.normal(size=n)
    w = rng.uniform(0.2, 3.0, n)
    ours = plm_from_residuals(y, d, g_hat, m_hat, g, warn_share=None, w=w)
    ref = sm.WLS(y - g_hat, (d - m_hat)[:, None], weights=w).fit(
        cov_type="cluster", cov_kwds={"groups": g})
    np.testing.assert_allclose(ours.estimate, ref.params[0], rtol=1e-10)
    np.testing.assert_allclose(ours.std_error, ref.bse[0], rtol=1e-10)
