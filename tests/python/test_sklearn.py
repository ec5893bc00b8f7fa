"""The scikit-learn wrappers: the same fit as rfp.fit_arrays, scikit-learn's
parameter protocol, and DoubleML's PLR with them as both learners."""
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import rfp
from rfp.sklearn import RFPClassifier, RFPRegressor

FAST = dict(model="linear", max_steps=60, patience=None)


def clustered(seed=0, n_clusters=20, per=10, binary=False):
    rng = np.random.default_rng(seed)
    cl = np.repeat(np.arange(n_clusters), per)
    n = len(cl)
    x = rng.normal(size=(n, 2)) + rng.normal(size=(n_clusters, 1))[cl]
    m = 0.5 * x[:, 0] - 0.3 * x[:, 1]
    d = (rng.random(n) < 1 / (1 + np.exp(-m))).astype(float) if binary else \
        m + rng.normal(size=n_clusters)[cl] * 0.5 + rng.normal(size=n)
    y = 0.5 * d + x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=n_clusters)[cl] + rng.normal(size=n)
    return x, y, d, cl


def test_regressor_equals_fit_arrays_and_takes_the_cluster_column():
    x, y, _, cl = clustered()
    ref = rfp.fit_arrays(x, y, cl, **FAST, seed=3).predict_arrays(x)
    est = RFPRegressor(**FAST, seed=3).fit(x, y, groups=cl)
    np.testing.assert_array_equal(est.predict(x), ref)
    # the cluster as the last column of X: dropped from the features
    with_cl = np.column_stack([x, cl])
    est2 = RFPRegressor(**FAST, seed=3, cluster_column=-1).fit(with_cl, y)
    np.testing.assert_array_equal(est2.predict(with_cl), ref)
    assert est2.n_features_in_ == 3


def test_classifier_equals_fit_arrays_logistic():
    x, _, d, cl = clustered(binary=True)
    ref = rfp.fit_arrays(x, d, cl, loss="logistic", **FAST).predict_arrays(x)
    est = RFPClassifier(**FAST).fit(x, d, groups=cl)
    proba = est.predict_proba(x)
    np.testing.assert_array_equal(proba[:, 1], ref)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(est.predict(x), (ref > 0.5).astype(int))
    assert list(est.classes_) == [0, 1]
    with pytest.raises(ValueError, match="needs a target with two classes"):
        RFPClassifier(**FAST).fit(x, d + (x[:, 0] > 0), groups=cl)   # three classes


def test_parameter_protocol_and_clear_errors():
    est = RFPRegressor(alpha=0.3, hidden=(8,), cluster_column=2)
    params = est.get_params()
    assert params["alpha"] == 0.3 and params["hidden"] == (8,) and params["cluster_column"] == 2
    copy = clone(est).set_params(alpha=0.9)
    assert copy.alpha == 0.9 and est.alpha == 0.3
    x, y, _, cl = clustered()
    with pytest.raises(ValueError, match=r"needs the cluster of every row.*groups=cluster.*cluster_column"):
        RFPRegressor(**FAST).fit(x, y)
    with pytest.raises(ValueError, match="cluster_column=5 is not a column of X"):
        RFPRegressor(**FAST, cluster_column=5).fit(x, y)
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        RFPRegressor().predict(x)


def test_doubleml_plr_runs_with_rfp_as_both_learners():
    """DoubleML's PLR with RFPRegressor as ml_l and ml_m (the cluster passed
    as the last of DoubleML's x_cols, ``cluster_column=-1``). With the linear
    model, pooled training (alpha = 1), no held-out clusters and enough steps,
    each learner is OLS on the two controls, so θ̂ equals DoubleML's with
    scikit-learn's LinearRegression on the same folds to optimisation error
    (1e-3; the estimate is about 0.5 with SE about 0.1). Had the cluster id
    leaked in as a feature, the two would differ by far more."""
    dml = pytest.importorskip("doubleml")
    from sklearn.linear_model import LinearRegression
    x, y, d, cl = clustered(seed=1)
    frame = pd.DataFrame({"y": y, "d": d, "x1": x[:, 0], "x2": x[:, 1], "cl": cl,
                          "cl_feature": cl.astype(float)})
    ols_like = dict(model="linear", alpha=1.0, validation_share=0.0, patience=None,
                    max_steps=1500, learning_rate=0.05, cluster_column=-1)

    def fit(ml_l, ml_m, x_cols):
        data = dml.DoubleMLData(frame, "y", "d", x_cols=x_cols, cluster_cols="cl")
        np.random.seed(7)                           # the same cluster folds for both
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plr = dml.DoubleMLPLR(data, ml_l, ml_m, n_folds=2).fit()
        return float(plr.coef[0]), float(plr.se[0])

    theta_rfp, se_rfp = fit(RFPRegressor(**ols_like), RFPRegressor(**ols_like),
                            ["x1", "x2", "cl_feature"])
    theta_ols, se_ols = fit(LinearRegression(), LinearRegression(), ["x1", "x2"])
    assert np.isfinite(se_rfp) and se_rfp > 0
    assert abs(theta_rfp - theta_ols) < 1e-3, (theta_rfp, theta_ols)
    assert abs(se_rfp - se_ols) < 1e-3, (se_rfp, se_ols)
