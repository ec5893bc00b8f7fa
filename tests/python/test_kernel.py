"""Kernel smoother baseline against plain loops, statsmodels' KernelReg, and the
defining property of leave-cluster-out CV."""
import math
import warnings

import numpy as np
import pytest

from rfp.baselines import kernel


def loop_nw(x_train, y_train, x_eval, h, skip=None):
    """Nadaraya–Watson written out: Gaussian product kernel on x scaled by the
    training sd; ``skip(i, j)`` drops training point j when predicting at i."""
    sd = [math.sqrt(sum((v - sum(col) / len(col)) ** 2 for v in col) / len(col))
          for col in zip(*x_train)]
    out = []
    for i, x0 in enumerate(x_eval):
        num = den = 0.0
        for j, (xj, yj) in enumerate(zip(x_train, y_train)):
            if skip is not None and skip(i, j):
                continue
            u2 = sum(((a - b) / s) ** 2 for a, b, s in zip(x0, xj, sd))
            w = math.exp(-u2 / (2 * h * h))
            num += w * yj
            den += w
        out.append(num / den)
    return np.array(out)


def clustered(seed, n_clusters=30, per=20, spread=0.05, offset_sd=1.0, d=1):
    """Clusters sit at their own x-locations and carry their own offsets."""
    rng = np.random.default_rng(seed)
    cl = np.repeat(np.arange(n_clusters), per)
    centres = rng.uniform(-2, 2, size=(n_clusters, d))
    x = centres[cl] + spread * rng.normal(size=(len(cl), d))
    y = np.sin(x).sum(1) + offset_sd * rng.normal(size=n_clusters)[cl] + 0.3 * rng.normal(size=len(cl))
    return x, y, cl


def test_predictions_match_plain_loop_2d():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2)) * [1.0, 5.0] + [0.0, 3.0]
    y = x[:, 0] ** 2 + np.sin(x[:, 1]) + rng.normal(size=80)
    cl = np.repeat(np.arange(8), 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # grid edge warnings are not the point here
        model = kernel.fit(x, y, cl, bandwidths=[0.1, 0.3, 0.9])
    x_new = rng.normal(size=(25, 2)) * [1.0, 5.0] + [0.0, 3.0]
    ref = loop_nw(x.tolist(), y.tolist(), x_new.tolist(), model.bandwidth)
    np.testing.assert_allclose(model.predict(x_new), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(kernel.predict(model, x_new, chunk_bytes=1), ref, rtol=0, atol=1e-12)


def test_cv_curve_matches_plain_leave_cluster_out_loop():
    x, y, cl = clustered(seed=1, n_clusters=8, per=6, d=2, spread=0.4)
    grid = np.array([0.2, 0.5, 1.5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short grid may end at its edge
        model = kernel.fit(x, y, cl, bandwidths=grid, chunk_bytes=500)  # several chunks
        loo = kernel.fit(x, y, bandwidths=grid, leave_out="observation")
    xs, ys = x.tolist(), y.tolist()
    for h, got in zip(grid, model.cv_loss):
        pred = loop_nw(xs, ys, xs, h, skip=lambda i, j: cl[i] == cl[j])
        assert abs(got - np.mean((y - pred) ** 2)) < 1e-12
    for h, got in zip(grid, loo.cv_loss):
        pred = loop_nw(xs, ys, xs, h, skip=lambda i, j: i == j)
        assert abs(got - np.mean((y - pred) ** 2)) < 1e-12
    assert model.bandwidth == grid[np.argmin(model.cv_loss)]


def test_matches_statsmodels_kernelreg_at_fixed_bandwidth():
    nonparametric = pytest.importorskip("statsmodels.nonparametric.api")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(150, 2)) * [2.0, 0.5]
    y = np.cos(x[:, 0]) + x[:, 1] + 0.2 * rng.normal(size=150)
    h = 0.35
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = kernel.fit(x, y, np.arange(150) % 10, bandwidths=[h])
    x_new = rng.normal(size=(40, 2)) * [2.0, 0.5]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' own FutureWarnings
        ref = nonparametric.KernelReg(y, x, var_type="cc", reg_type="lc",
                                      bw=h * x.std(axis=0)).fit(x_new)[0]
    np.testing.assert_allclose(model.predict(x_new), ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_leave_cluster_out_prefers_wider_bandwidth_than_leave_one_out(seed):
    """With cluster offsets, a point's neighbours in its own cluster share its
    offset: leave-one-out rewards a bandwidth that reaches only them, while
    leave-cluster-out must average over other clusters."""
    x, y, cl = clustered(seed)
    grid = np.geomspace(0.005, 3.0, 40)
    lco = kernel.fit(x, y, cl, bandwidths=grid)
    loo = kernel.fit(x, y, bandwidths=grid, leave_out="observation")
    assert lco.bandwidth > 2 * loo.bandwidth
    # and LOO's favourite looks good only in-sample: held-out clusters do worse
    at_loo = lco.cv_loss[np.searchsorted(grid, loo.bandwidth)]
    assert at_loo > lco.cv_loss.min()


def test_small_bandwidth_does_not_underflow():
    x = np.array([0.0, 10.0, 20.0])
    with pytest.warns(UserWarning, match="smallest bandwidth on the grid"):
        model = kernel.fit(x, [1.0, 2.0, 3.0], leave_out="observation", bandwidths=[1e-3, 1.0])
    pred = kernel.nadaraya_watson(model.z, model.y, model.z, 1e-3)
    assert np.all(np.isfinite(model.cv_loss)) and np.allclose(pred, [1, 2, 3])


def test_bad_input():
    with pytest.raises(ValueError, match="cluster ids"):
        kernel.fit(np.arange(5.0), np.arange(5.0))
    with pytest.raises(ValueError, match="two clusters"):
        kernel.fit(np.arange(5.0), np.arange(5.0), cluster=np.zeros(5))
    with pytest.raises(ValueError, match="finite"):
        kernel.fit([0.0, np.nan, 1.0], [1.0, 2.0, 3.0], cluster=[0, 1, 1])
    model = kernel.fit(np.ones((6, 2)) + np.arange(6)[:, None], np.arange(6.0), [0, 0, 1, 1, 2, 2],
                       bandwidths=[2.0])
    with pytest.raises(ValueError, match="fit on 2"):
        model.predict(np.ones((3, 3)))
