"""Choosing among candidates by paired evidence (rfp.selection) and tune's
table of candidates from simple to flexible.

References: the paired SE against statsmodels' cluster-robust SE of a
regression of the row-level differences on a constant; the rule on data
built so that the candidates tie (it must take the simplest) and so that the
network wins clearly (it must take the network).
"""
import warnings

import numpy as np
import pytest

import rfp
from rfp import alerts
from rfp.tuning.selection import cluster_sums, paired_difference, simplest_within


def test_paired_se_equals_statsmodels_cluster_robust_se():
    """Dbar and SE(Dbar) from per-cluster sums equal OLS of the row
    differences on a constant with statsmodels' cluster-robust covariance
    (G/(G-1) correction; with one regressor its (N-1)/(N-K) factor is 1)."""
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(0)
    sizes = rng.integers(3, 30, size=25)
    cluster = np.repeat(np.arange(25), sizes)
    loss_a = rng.gamma(2.0, size=cluster.size) + rng.normal(0, 0.5, 25)[cluster] ** 2
    loss_b = loss_a + rng.normal(0.1, 0.3, size=cluster.size) + rng.normal(0, 0.2, 25)[cluster]
    mean, se = paired_difference(cluster_sums(loss_a, cluster), cluster_sums(loss_b, cluster),
                                 np.bincount(cluster))
    ols = sm.OLS(loss_a - loss_b, np.ones((cluster.size, 1))).fit(
        cov_type="cluster", cov_kwds={"groups": cluster})
    assert mean == pytest.approx(ols.params[0], rel=1e-12)
    assert se == pytest.approx(ols.bse[0], rel=1e-10)


def test_paired_se_is_small_when_losses_move_together():
    """Two candidates with large, shared cluster-level noise: each loss has a
    large SE across clusters, their paired difference a small one."""
    rng = np.random.default_rng(1)
    shared = rng.gamma(1.0, 5.0, size=40)
    a, b = shared + 0.1, shared + rng.normal(0, 0.01, 40)
    size = np.ones(40)
    _, se = paired_difference(a, b, size)
    assert se < 0.01 < np.std(shared) / np.sqrt(40)


def test_simplest_within_takes_the_simplest_of_tied_candidates():
    rng = np.random.default_rng(2)
    base = rng.uniform(1, 2, 50)
    noise = rng.normal(0, 0.05, 50)
    tied = [base + noise - noise.mean() + 0.001, base, base + 0.001 * rng.normal(size=50)]
    pick, rows = simplest_within(tied, np.ones(50), margin=1.0)
    assert pick == 0 and rows[1]["diff"] == 0.0
    # margin 0: the lowest loss, whichever it is
    pick0, _ = simplest_within(tied, np.ones(50), margin=0.0)
    assert pick0 == int(np.argmin([np.sum(t) for t in tied]))
    # a clearly better flexible candidate wins under any margin
    clear = [base + 0.5, base + 0.4, base]
    assert simplest_within(clear, np.ones(50), margin=2.0)[0] == 2


def _clustered(g, n, truth, noise, seed):
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(g), n)
    mu_c = rng.normal(0, 1.0, g)
    x = mu_c[cluster] + rng.normal(0, 1.0, cluster.size)
    y = truth(x) + rng.normal(0, 0.3, g)[cluster] + noise * rng.normal(size=cluster.size)
    return x[:, None], y, cluster


SMALL = dict(hidden=(16,), max_steps=150, progress=False, seed=0)


def test_tune_takes_the_mean_when_nothing_predicts():
    """y unrelated to x: every candidate ties the mean, and the rule (margin
    1) takes the mean, with a warning that names it; the fit predicts the
    training mean."""
    x, y, cluster = _clustered(30, 15, lambda x: 0 * x, 1.0, seed=3)
    with pytest.warns(alerts.NoBetterThanMeanWarning, match="the fit is the training mean"):
        m = rfp.tune_arrays(x, y, cluster, margin=1.0, **SMALL)
    assert m.cv.chose_mean and m.cv.table()[-1]["chosen"]
    np.testing.assert_allclose(m.predict_arrays(x), np.mean(y), rtol=1e-12)


def test_tune_takes_the_linear_model_when_the_network_only_ties_it():
    """A linear truth: the network ties the linear model at best, and the
    rule (margin 1) takes the linear model, solved directly: its predictions
    are least squares' (numpy)."""
    x, y, cluster = _clustered(40, 15, lambda x: 1.5 * x, 0.5, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", alerts.NoBetterThanMeanWarning)
        m = rfp.tune_arrays(x, y, cluster, margin=1.0, **SMALL)
    assert m.cv.chosen_config["model"] == "linear"
    z = np.column_stack([np.ones(len(y)), x])
    if m.config["alpha"] == 1.0:
        beta = np.linalg.lstsq(z, y, rcond=None)[0]
        np.testing.assert_allclose(m.predict_arrays(x), z @ beta, rtol=1e-8, atol=1e-8)


def test_tune_takes_the_network_when_it_wins_clearly():
    """A v-shaped truth with little noise: the network beats the mean and
    the linear models by far more than the paired SE, under margin 0 and 2."""
    x, y, cluster = _clustered(40, 15, np.abs, 0.2, seed=5)
    for margin in (0.0, 2.0):
        m = rfp.tune_arrays(x, y, cluster, margin=margin, **dict(SMALL, max_steps=300))
        assert m.cv.chosen_config["model"] == "mlp"
        lin = [g for g, c in enumerate(m.cv.configs) if c["model"] == "linear"]
        assert all(m.cv.diff[g] > 2 * m.cv.se_diff[g] for g in lin)


def test_linear_winner_saves_loads_and_predicts(tmp_path):
    x, y, cluster = _clustered(30, 10, lambda x: 2.0 * x, 0.5, seed=6)
    m = rfp.tune_arrays(x, y, cluster, margin=1.0, **SMALL)
    assert m.cv.chosen_config["model"] == "linear"
    m.save(tmp_path / "lin.rfp")
    back = rfp.load(tmp_path / "lin.rfp")
    np.testing.assert_array_equal(back.predict_arrays(x), m.predict_arrays(x))
    assert back.cv.chosen == m.cv.chosen
    np.testing.assert_allclose(back.cv.se_diff, m.cv.se_diff)


def test_margin_and_simple_are_validated():
    x, y, cluster = _clustered(12, 5, np.abs, 0.2, seed=7)
    with pytest.raises(ValueError, match="margin"):
        rfp.tune_arrays(x, y, cluster, margin=-1, **SMALL)
    with pytest.raises(TypeError, match="simple"):
        rfp.tune_arrays(x, y, cluster, simple="yes", **SMALL)
