"""Warnings when a fit is not usable (rfp.alerts): each is triggered by a
case built to have the defect, and stays silent on a healthy fit."""
import warnings

import numpy as np
import pytest

import rfp
from rfp import alerts


def _signal(seed=0, n_clusters=16, n=20):
    """y = 2x + noise, x varying within and across clusters: learnable."""
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(n_clusters), n)
    x = rng.normal(0, 1, n_clusters)[cluster] + rng.normal(size=cluster.size)
    return x[:, None], 2 * x + 0.3 * rng.normal(size=cluster.size), cluster


def _reversed(n_clusters=16, n=20, share=0.25, seed=0):
    """y = x in the training clusters and y = -x in the clusters that
    ``fit`` holds out (the same split it draws): whatever the fit learns
    predicts the held-out clusters worse than their training mean."""
    from rfp.training.train import split_clusters
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(n_clusters), n)
    x = rng.normal(size=cluster.size)
    _, held = split_clusters(np.arange(n_clusters), share, seed)
    sign = np.where(np.isin(cluster, held), -1.0, 1.0)
    return x[:, None], sign * x + 0.1 * rng.normal(size=cluster.size), cluster


def _fit(data, **settings):
    x, y, cluster = data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = rfp.fit_arrays(x, y, cluster, progress=False, **settings)
    return model, [w.category for w in caught if issubclass(w.category, alerts.RFPWarning)]


def test_healthy_fit_is_silent():
    model, kinds = _fit(_signal(), model="linear", learning_rate=0.05, max_steps=1000,
                        patience=50, seed=1)
    assert model.stopped_early and kinds == []


def test_not_converged():
    model, kinds = _fit(_signal(), model="linear", learning_rate=1e-3, max_steps=30, seed=1)
    assert alerts.NotConvergedWarning in kinds and alerts.StoppedAtOnceWarning not in kinds
    assert model.best_step == 30                   # max_steps honoured exactly (not 40)


def test_max_steps_not_a_multiple_of_eval_every():
    model, _ = _fit(_signal(), model="linear", max_steps=15, eval_every=10, seed=1)
    assert model.history.step == [10, 15]


def test_no_better_than_mean_and_stopped_at_once():
    model, kinds = _fit(_reversed(), model="linear", learning_rate=0.05, max_steps=300,
                        patience=100, validation_share=0.25, seed=0, min_steps=0)
    assert alerts.NoBetterThanMeanWarning in kinds
    assert model.best_step == model.history.step[0]
    assert alerts.StoppedAtOnceWarning in kinds


def test_min_steps_keeps_no_earlier_step():
    """Early stopping keeps no step before min_steps (default 50); patience
    counts from there.  On data whose held-out loss only rises, the kept
    step is min_steps itself (10 with min_steps = 0, the old rule)."""
    for min_steps in (0, 50, 120):
        model, _ = _fit(_reversed(), model="linear", learning_rate=0.05, max_steps=400,
                        patience=100, validation_share=0.25, seed=0, min_steps=min_steps)
        h = model.history
        counted = [(v, s) for s, v in zip(h.step, h.validation) if s >= min_steps]
        assert model.best_step == min(counted)[1] >= min_steps
        assert h.step[-1] == model.best_step + 100           # stopped by patience
        if min_steps == 0:
            assert model.best_step == 10                     # the old rule kept step 10
    model, _ = _fit(_reversed(), model="linear", learning_rate=0.05, max_steps=30,
                    validation_share=0.25, seed=0)
    assert model.best_step == 30      # max_steps below min_steps: the last step counts


def test_finite_divergence_stops_and_warns():
    with pytest.warns(alerts.DivergenceWarning, match="diverged"):
        model = rfp.fit_arrays(*_signal(), model="linear", learning_rate=1e3, clip_norm=None,
                               max_steps=200, seed=1, progress=False)
    assert model.history.step[-1] < 200            # stopped
    assert np.all(np.isfinite(model.predict_arrays(_signal()[0])))


def test_nuisance_warnings_reach_effect():
    """A not-converged nuisance warns from effect() once per nuisance, with
    the count of cross-fitting fits, not only converged = False."""
    from rfp.simulate import cluster_trial
    sim = cluster_trial(n_strata=2, clusters_per_stratum=8, n_per_cluster=8, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        e = rfp.effect(sim.data, y="y", d="d", x=["x1", "x2", "z"], cluster="cluster",
                       method="dml", model="mlp", hidden=(4,), learning_rate=1e-4, max_steps=20,
                       folds=2, progress=False, repeats=1, nuisance="method")  # one split, the method's fits
    msgs = [str(w.message) for w in caught if issubclass(w.category, alerts.NotConvergedWarning)]
    assert len(msgs) == 2                           # E[y|X] and E[d|X]
    assert all("of 2 cross-fitting fit" in m for m in msgs)
    assert e.diagnostics["converged"] is False or e.diagnostics["converged"] == 0


def test_ladder_warns_only_for_the_chosen_rung(monkeypatch):
    """nuisance='select' tries constant, linear and the method; warnings of
    rungs not chosen do not reach the user."""
    from rfp.effects.crossfit import _one_nuisance
    from rfp.effects.reading import read
    from rfp.simulate import cluster_trial
    sim = cluster_trial(n_strata=2, clusters_per_stratum=8, n_per_cluster=8, seed=0)
    ed = read(sim.data, "y", "d", ["x1", "x2", "z"], "cluster")
    fold = np.repeat(np.arange(2), 8)[np.argsort(np.argsort(np.unique(ed.cluster)))][ed.cluster]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, _, chosen, _ = _one_nuisance(
            ed.x, ed.y, ed.cluster, fold, "squared", None, 0, "E[y | X]", "select",
            dict(model="mlp", learning_rate=1e-4, max_steps=20, progress=False))
    kinds = [w.category for w in caught if issubclass(w.category, alerts.RFPWarning)]
    if chosen == "method":
        assert alerts.NotConvergedWarning in kinds
    else:   # the method's not-converged fits were not chosen: silent
        assert alerts.NotConvergedWarning not in kinds
