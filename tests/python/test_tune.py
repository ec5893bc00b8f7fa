"""rfp.tune: K-fold cross-validation across clusters, every configuration x
fold in one compiled program.

The reference for the batched program is the plain, separately written path:
one ``fit_arrays`` per configuration and fold on the clusters outside the
fold, scored on the fold's clusters with NumPy.
"""
import numpy as np
import pytest

import rfp
from rfp.tuning.crossval import batch_chunk, fold_per_cluster, cross_validate, training_picks
from rfp.tuning.grid import expand_grid


def _data(n_clusters=12, n=15, seed=0):
    """Clusters of n rows each, or of the sizes in n (a list)."""
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(n_clusters), n)
    mu = rng.normal(0, 1, n_clusters)
    x = mu[cluster] + 0.5 * rng.normal(size=cluster.size)
    y = np.abs(x) + rng.normal(0, 0.5, n_clusters)[cluster] + 0.2 * rng.normal(size=cluster.size)
    return x[:, None], y, cluster


SMALL = dict(model="mlp", hidden=(8,), max_steps=40, eval_every=10, patience=None, seed=3)


UNEQUAL = [3, 4, 5, 7, 9, 12, 15, 18, 22, 26, 30, 40]   # several size buckets


@pytest.mark.parametrize("sizes", [15, UNEQUAL], ids=["equal", "unequal"])
def test_batched_cv_equals_separate_fits(sizes):
    """CV_g(t) of the batched program (each model gathering its own training
    clusters, padded per bucket to the longest fold) equals a loop of
    ordinary fits on the training folds, each scored on its held-out fold
    (float tolerance, float64)."""
    x, y, cluster = _data(n=sizes)
    grid = {"alpha": [1.0, 0.5], "inner_lr": [0.2], "learning_rate": [0.02, 0.005]}
    model = rfp.tune_arrays(x, y, cluster, grid=grid, folds=3, scale=False, progress=False,
                            cv_dtype="float64", **SMALL)
    cv = model.cv
    fold_of_row = cv.fold_of_cluster[cluster]   # labels 0..G-1 are their own codes
    assert sum(c["model"] == "mlp" for c in cv.configs) == 4
    for g, c in enumerate(cv.configs):
        num = den = 0.0
        for f in range(3):
            tr, te = fold_of_row != f, fold_of_row == f
            settings = {k: c[k] for k in ("alpha", "inner_lr", "learning_rate", "inner_steps")}
            if c["model"] == "linear" and c["alpha"] == 1.0:   # least squares (numpy)
                z = np.column_stack([np.ones(tr.sum()), x[tr]])
                beta = np.linalg.lstsq(z, y[tr], rcond=None)[0]
                pred = beta[0] + x[te] @ beta[1:]
            elif c["model"] == "linear":   # R_k solved directly (test_quadratic checks it)
                pred = rfp.training.fit.solve_arrays(x[tr], y[tr], cluster[tr], scale=False,
                                            **{k: c[k] for k in ("alpha", "inner_lr",
                                                                 "inner_steps")}
                                            ).predict_arrays(x[te])
            else:
                m = rfp.fit_arrays(x[tr], y[tr], cluster[tr], scale=False, progress=False,
                                   hidden=(8,), max_steps=40, eval_every=10, patience=None,
                                   seed=3, **settings)
                pred = m.predict_arrays(x[te])
            num += np.sum((y[te] - pred) ** 2)
            den += te.sum()
        assert cv.curves[g][-1] == pytest.approx(num / den, rel=1e-8, abs=1e-10)


def test_training_picks_cover_each_fold_once():
    """Every training cluster of fold f appears once among its valid picks,
    and no held-out cluster does."""
    from rfp.core.layout import make_buckets
    _, _, cluster = _data(n=UNEQUAL)
    fold = fold_per_cluster(cluster, 3, 0)
    buckets = make_buckets(cluster)
    assert len(buckets) > 1
    picks, valid = training_picks(buckets, fold, 3)
    for f in range(3):
        got = np.concatenate([b.clusters[p[f][v[f] > 0]] for b, p, v in zip(buckets, picks, valid)])
        assert sorted(got.tolist()) == np.flatnonzero(fold != f).tolist()


def test_float32_curves_follow_float64():
    """The default float32 cross-validation: curves within 1e-3 (relative)
    of float64's, the same choice, and the refit in float64."""
    x, y, cluster = _data(seed=7)
    grid = {"alpha": [1.0, 0.5, 0.0], "inner_lr": [0.2]}
    runs = [rfp.tune_arrays(x, y, cluster, grid=grid, folds=3, progress=False, cv_dtype=d,
                            **SMALL) for d in ("float32", "float64")]
    for a, b in zip(runs[0].cv.curves, runs[1].cv.curves):
        np.testing.assert_allclose(a, b, rtol=1e-3)
    assert runs[0].cv.chosen == runs[1].cv.chosen
    assert runs[0].cv.chosen_step == runs[1].cv.chosen_step
    import jax
    assert all(np.asarray(leaf).dtype == np.float64 for leaf in jax.tree.leaves(runs[0].params))
    with pytest.raises(ValueError, match="cv_dtype"):
        rfp.tune_arrays(x, y, cluster, grid=grid, folds=3, progress=False, cv_dtype="half",
                        **SMALL)


def test_each_configuration_stops_on_its_own_patience():
    """A configuration whose curve stops improving stops training (its curve
    ends) while the others go on; what it ran equals the same run without
    patience, step for step."""
    x, y, cluster = _data(seed=8)
    grid = {"alpha": [1.0], "learning_rate": [0.3, 0.003]}
    settings = dict(SMALL, max_steps=200, cv_dtype="float64")
    free = rfp.tune_arrays(x, y, cluster, grid=grid, folds=3, progress=False,
                           **dict(settings, patience=None)).cv
    stopped = rfp.tune_arrays(x, y, cluster, grid=grid, folds=3, progress=False,
                              **dict(settings, patience=30)).cv
    lengths = [len(c) for c in stopped.curves]
    assert min(lengths) < max(lengths)             # one stopped before the other
    for a, b in zip(stopped.curves, free.curves):
        np.testing.assert_allclose(a, b[:len(a)], rtol=1e-12)


def test_compiles_once_per_shape_group():
    """Configurations differing in alpha, eta and learning rate share one
    program, the ERM rows (no inner loop) another; a second width doubles
    them.  (13 clusters: a shape no other test compiles.)"""
    x, y, cluster = _data(n_clusters=13, seed=1)
    before = batch_chunk._cache_size()
    rfp.tune_arrays(x, y, cluster, grid={"alpha": [1.0, 0.7, 0.3, 0.0], "inner_lr": [0.1, 0.3],
                                        "learning_rate": [0.01, 0.03]},
                    folds=3, progress=False, **SMALL)
    assert batch_chunk._cache_size() - before == 2
    before = batch_chunk._cache_size()
    rfp.tune_arrays(x, y, cluster, grid={"alpha": [1.0, 0.5, 0.0], "hidden": [(8,), (4,)]},
                    folds=3, progress=False, **SMALL)
    assert batch_chunk._cache_size() - before == 4   # two programs per width


def test_grid_expansion_and_table():
    base = dict(rfp.training.fit.DEFAULTS)
    configs = expand_grid(None, base)
    alphas = {c["alpha"] for c in configs}
    assert 1.0 in alphas and 0.0 in alphas          # ERM and MAML in the default grid
    assert sum(c["alpha"] == 1.0 for c in configs) == 1   # eta is moot at alpha = 1
    assert [c["inner_steps"] for c in configs if c["alpha"] == 1.0] == [0]   # no inner loop
    assert len(configs) == 3
    with pytest.raises(TypeError, match="list of candidates"):
        expand_grid({"alpha": 0.5}, base)
    with pytest.raises(ValueError, match="cannot be tuned"):
        expand_grid({"max_steps": [10]}, base)


def test_choice_one_se_and_refit():
    x, y, cluster = _data(seed=2)
    settings = dict(SMALL, max_steps=60)
    grid = {"alpha": [1.0, 0.5], "inner_lr": [0.1]}
    # margin 0 and no simple rows: the lowest CV loss among the network's rows
    best = rfp.tune_arrays(x, y, cluster, grid=grid, folds=4, progress=False, margin=0.0,
                           simple=False, **settings)
    cv = best.cv
    assert [c["model"] for c in cv.configs] == ["mlp", "mlp"]
    g = int(np.argmin(cv.loss))
    assert cv.chosen == g and cv.loss[g] == pytest.approx(np.min([np.min(c) for c in cv.curves]))
    assert best.best_step == cv.chosen_step == cv.best_step[g]
    assert best.config["alpha"] == cv.configs[g]["alpha"]
    assert len(best.validation_clusters) == 0        # refitted on every cluster
    lenient = rfp.tune_arrays(x, y, cluster, grid=grid, folds=4, one_se=True, progress=False,
                              margin=0.0, simple=False, **settings).cv
    assert lenient.chosen_step <= cv.chosen_step
    assert lenient.curves[lenient.chosen][list(lenient.steps[lenient.chosen]).index(
        lenient.chosen_step)] <= cv.loss[g] + cv.se[g] + 1e-12
    rows = cv.table()
    assert rows[-1]["cv_loss"] == pytest.approx(cv.mean_loss)   # the constant predictor
    assert sum(r["chosen"] for r in rows) == 1
    assert "<- chosen" in repr(cv) and "  mean  " in repr(cv)


def test_constant_predictor_row_is_its_cv_loss():
    """The 'mean' row: training-fold mean scored on each held-out fold."""
    x, y, cluster = _data(seed=4)
    m = rfp.tune_arrays(x, y, cluster, grid={"alpha": [1.0]}, folds=3, scale=False,
                        progress=False, **SMALL)
    f = m.cv.fold_of_cluster[cluster]
    ref = sum(np.sum((y[f == k] - y[f != k].mean()) ** 2) for k in range(3)) / len(y)
    assert m.cv.mean_loss == pytest.approx(ref, rel=1e-12)


def test_tune_on_a_table_and_bad_settings():
    from rfp.simulate import tragic_triad
    sim = tragic_triad(n_clusters=10, n_per_cluster=10, seed=0)
    m = rfp.tune(sim.data, y="y", x=["x"], cluster="cluster", grid={"alpha": [1.0, 0.5]},
                 folds=2, progress=False, **SMALL)
    assert m.x_names == ["x"] and np.all(np.isfinite(m.predict(sim.data, as_numpy=True)))
    with pytest.raises(ValueError, match="folds"):
        rfp.tune(sim.data, y="y", x=["x"], cluster="cluster", folds=11, progress=False, **SMALL)
    with pytest.raises(ValueError, match="schedule"):
        rfp.tune(sim.data, y="y", x=["x"], cluster="cluster", schedule="cosine", progress=False,
                 **SMALL)


def test_cv_plot(tmp_path):
    x, y, cluster = _data(seed=5)
    m = rfp.tune_arrays(x, y, cluster, grid={"alpha": [1.0, 0.5]}, folds=3, progress=False,
                        **SMALL)
    fig = m.cv.plot(tmp_path / "cv.png")
    assert (tmp_path / "cv.png").stat().st_size > 0
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "training mean" in labels and sum("(chosen)" in t for t in labels) == 1


def test_batched_and_sequential_programs_agree():
    """vmap (accelerators) and lax.map (CPU) over the models: same curves."""
    from rfp.training.fit import _config, _model_for
    from rfp.core.bilevel import Objective
    x, y, cluster = _data(seed=6)
    base = _config(dict(SMALL))
    configs = [_config(c) for c in expand_grid({"alpha": [1.0, 0.5]}, base)]
    m = _model_for(base, "mlp")
    runs = [cross_validate(lambda c: Objective(m.apply, "squared", 1, 0.0),
                                    lambda c: m.init, x, y, cluster, np.ones(len(y)), configs,
                                    folds=3, max_steps=60, patience=20, sequential=seq)
            for seq in (True, False)]
    for a, b in zip(runs[0].curves, runs[1].curves):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_ensemble_members_are_refits_from_their_seeds(tmp_path):
    """tune(ensemble = 3): member s equals an ordinary refit from seed
    seed + s at the chosen configuration and step (trained separately, by
    fit_arrays), and the prediction is the mean of the members'.  A saved
    ensemble loads to identical predictions."""
    x, y, cluster = _data(n=UNEQUAL, seed=9)
    grid = {"alpha": [1.0, 0.5], "inner_lr": [0.2]}
    m = rfp.tune_arrays(x, y, cluster, grid=grid, folds=3, progress=False, ensemble=3, **SMALL)
    c = m.config
    preds = []
    for s in range(3):
        single = rfp.fit_arrays(x, y, cluster, progress=False,
                                **{k: v for k, v in c.items() if k not in ("model", "seed")},
                                seed=c["seed"] + s)
        preds.append(single.predict_arrays(x))
        import jax
        for a, b in zip(jax.tree.leaves(single.params), jax.tree.leaves(m.members)):
            np.testing.assert_allclose(b[s], a, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(m.predict_arrays(x), np.mean(preds, axis=0), rtol=1e-8)
    assert np.std(preds, axis=0).max() > 1e-6            # the members differ
    path = tmp_path / "ensemble.rfp"
    m.save(path)
    back = rfp.load(path)
    np.testing.assert_array_equal(back.predict_arrays(x), m.predict_arrays(x))
    with pytest.raises(ValueError, match="ensemble"):
        rfp.tune_arrays(x, y, cluster, grid=grid, folds=3, progress=False, ensemble=0, **SMALL)


def test_min_steps_bounds_the_chosen_step():
    """tune chooses no step before min_steps when one is given (its
    default is 0: the cross-validated curve spans every cluster)."""
    x, y, cluster = _data(seed=10)
    m = rfp.tune_arrays(x, y, cluster, grid={"alpha": [1.0, 0.5], "learning_rate": [0.3]},
                        folds=3, progress=False, **dict(SMALL, max_steps=80, min_steps=40))
    network = [c["model"] == "mlp" for c in m.cv.configs]
    assert np.all(m.cv.best_step[network] >= 40)
    assert m.cv.chosen_step >= 40 or m.cv.chosen_config["model"] in ("linear", "constant")
