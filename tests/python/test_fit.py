"""fit / predict: references (OLS, logistic MLE, a plain optax loop),
reproducibility, save/load, input types."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import rfp
from rfp.core.models import as_model

FAST = dict(max_steps=60, patience=None, eval_every=10)


def frame(n_clusters=12, per=15, seed=0, label=lambda c: c):
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(n_clusters), per)
    x1, x2 = rng.normal(size=(2, cluster.size))
    y = 3.0 + 2.0 * x1 - 1.5 * x2 + 0.3 * rng.normal(size=cluster.size)
    return pa.table({"y": y, "x1": x1 * 100.0, "x2": x2, "g": [label(c) for c in cluster]})


def test_linear_erm_converges_to_ols_on_the_original_scale():
    t = frame()
    m = rfp.fit(t, y="y", x=["x1", "x2"], cluster="g", model="linear", alpha=1.0,
                learning_rate=0.05, schedule="cosine", max_steps=3000, patience=None, validation_share=0.0)
    X = np.column_stack([np.ones(t.num_rows), t["x1"].to_numpy(), t["x2"].to_numpy()])
    beta = np.linalg.lstsq(X, t["y"].to_numpy(), rcond=None)[0]
    np.testing.assert_allclose(m.predict(t, as_numpy=True), X @ beta, atol=1e-6)


def test_linear_logistic_erm_converges_to_the_mle():
    rng = np.random.default_rng(5)
    cluster = np.repeat(np.arange(10), 40)
    x = rng.normal(size=cluster.size)
    d = (rng.random(cluster.size) < 1 / (1 + np.exp(-(0.3 + 1.2 * x)))).astype(float)
    m = rfp.fit_arrays(x[:, None], d, cluster, model="linear", loss="logistic", alpha=1.0,
                       learning_rate=0.05, schedule="cosine", max_steps=3000, patience=None, validation_share=0.0)
    X = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    for _ in range(50):  # Newton-Raphson for the logistic MLE
        p = 1 / (1 + np.exp(-X @ beta))
        beta += np.linalg.solve(X.T @ (X * (p * (1 - p))[:, None]), X.T @ (d - p))
    np.testing.assert_allclose(m.predict_arrays(x[:, None]), 1 / (1 + np.exp(-X @ beta)), atol=1e-6)


def test_alpha_one_training_equals_a_plain_optax_loop():
    """rfp.fit with alpha = 1 is ordinary training: the same Adam steps on the
    pooled loss give the same parameters."""
    rng = np.random.default_rng(2)
    cluster = np.repeat(np.arange(6), [3, 8, 5, 12, 1, 7])
    x = rng.normal(size=(cluster.size, 2))
    y = np.tanh(x[:, 0]) - x[:, 1] + 0.1 * rng.normal(size=cluster.size)
    m = rfp.fit_arrays(x, y, cluster, model="mlp", hidden=(5,), alpha=1.0, inner_steps=2,
                       inner_lr=0.3, scale=False, learning_rate=0.02, clip_norm=1.0,
                       max_steps=40, patience=None, eval_every=10, seed=4)
    model = as_model("mlp", hidden=(5,))
    params = model.init(jax.random.PRNGKey(4), jnp.asarray(x[:1]))
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.02))
    state = opt.init(params)
    loss = lambda p: jnp.mean((y - model.apply(p, jnp.asarray(x))[0]) ** 2)
    for _ in range(40):
        updates, state = opt.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    for a, b in zip(jax.tree.leaves(m.params), jax.tree.leaves(params)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_same_seed_same_numbers_other_seed_other_numbers():
    t = frame()
    a = rfp.fit(t, y="y", x=["x1", "x2"], cluster="g", seed=7, **FAST).predict(t, as_numpy=True)
    b = rfp.fit(t, y="y", x=["x1", "x2"], cluster="g", seed=7, **FAST).predict(t, as_numpy=True)
    c = rfp.fit(t, y="y", x=["x1", "x2"], cluster="g", seed=8, **FAST).predict(t, as_numpy=True)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("model", ["mlp", "linear", "neural_ode"])
def test_save_load_gives_identical_predictions(tmp_path, model):
    t = frame()
    m = rfp.fit(t, y="y", x=["x1", "x2"], cluster="g", model=model, **FAST)
    m.save(tmp_path / "m.rfp")
    back = rfp.load(tmp_path / "m.rfp")
    assert np.array_equal(m.predict(t, as_numpy=True), back.predict(t, as_numpy=True))
    assert back.config == m.config
    np.testing.assert_equal(vars(back.history), vars(m.history))
    assert list(back.train_clusters) == list(m.train_clusters)


def test_every_arrow_compatible_input_gives_the_same_fit():
    t = frame()
    settings = dict(y="y", x=["x1", "x2"], cluster="g", **FAST)
    ref = rfp.fit(t, **settings).predict(t, as_numpy=True)
    for data in (t.to_pandas(), pl.from_arrow(t), {k: t[k].to_numpy() for k in t.column_names},
                 t.to_batches()[0]):
        np.testing.assert_array_equal(rfp.fit(data, **settings).predict(data, as_numpy=True), ref)
    assert isinstance(rfp.fit(t, **settings).predict(t), pa.Array)


@pytest.mark.parametrize("label", [lambda c: f"zip{c:03d}", lambda c: int(c) * 10 + 5])
def test_cluster_column_of_any_type(label):
    ref_t = frame()
    t = frame(label=label)
    settings = dict(y="y", x=["x1", "x2"], cluster="g", **FAST)
    ref = rfp.fit(ref_t, **settings).predict(ref_t, as_numpy=True)
    np.testing.assert_array_equal(rfp.fit(t, **settings).predict(t, as_numpy=True), ref)
    dict_t = t.set_column(3, "g", pa.compute.dictionary_encode(t["g"]))
    np.testing.assert_array_equal(rfp.fit(dict_t, **settings).predict(dict_t, as_numpy=True), ref)
    m = rfp.fit(t, **settings)
    assert set(m.train_clusters) | set(m.validation_clusters) == set(t["g"].to_pylist())


def test_single_observation_clusters_are_valid():
    """Five clusters of one observation beside three of ten.  (1) A converged
    alpha = 1 linear fit uses every row: it is OLS (numpy lstsq) on all 35.
    (2) With alpha = 0.5 and 2 inner steps, a one-row cluster's adapted
    prediction has a closed form: each plain gradient step on its own loss
    (z - w'x - b)^2 multiplies the standardised residual by
    1 - 2 eta (1 + |x|^2).  (3) An mlp trains on them with inner steps and
    equals itself refitted (the bilevel steps on one-row clusters are
    deterministic), its predictions finite."""
    rng = np.random.default_rng(0)
    cluster = np.concatenate([np.arange(5), np.repeat([5, 6, 7], 10)])
    x = rng.normal(size=cluster.size)
    t = pa.table({"y": x + rng.normal(size=cluster.size), "x": x, "g": cluster})
    y = t["y"].to_numpy()
    X = np.column_stack([np.ones_like(x), x])
    ols = rfp.fit(t, y="y", x=["x"], cluster="g", model="linear", alpha=1.0, learning_rate=0.05,
                  schedule="cosine", max_steps=3000, patience=None, validation_share=0.0)
    np.testing.assert_allclose(ols.predict(t, as_numpy=True),
                               X @ np.linalg.lstsq(X, y, rcond=None)[0], atol=1e-6)
    eta = 0.2
    m = rfp.fit(t, y="y", x=["x"], cluster="g", model="linear", alpha=0.5, inner_steps=2,
                inner_lr=eta, validation_share=0.0, **FAST)
    got = m.predict_adapted(t, y="y", cluster="g", as_numpy=True)
    xs = m.scaler.x(x[:, None])[:, 0]
    z = m.scaler.y(y)
    resid = z - (xs * m.params["w"][0, 0] + m.params["b"][0])
    shrink = (1 - 2 * eta * (1 + xs ** 2)) ** 2
    single = cluster < 5
    np.testing.assert_allclose(got[single], m.scaler.y_back(z - shrink * resid)[single], rtol=1e-10)
    assert not np.allclose(got[single], m.predict(t, as_numpy=True)[single])
    mlp = rfp.fit(t, y="y", x=["x"], cluster="g", inner_steps=2, **FAST)
    pred = mlp.predict(t, as_numpy=True)
    assert np.all(np.isfinite(pred)) and np.std(pred) > 0
    np.testing.assert_array_equal(rfp.fit(t, y="y", x=["x"], cluster="g", inner_steps=2, **FAST)
                                  .predict(t, as_numpy=True), pred)


def test_user_model_with_pytree_inputs_and_penalty():
    """A user (init, apply) pair on a dict of inputs (like token ids and a mask)."""
    rng = np.random.default_rng(1)
    n, cluster = 120, np.repeat(np.arange(8), 15)
    tokens = rng.integers(0, 20, size=(n, 6))
    mask = (rng.random((n, 6)) < 0.8).astype(float)
    y = (tokens * mask).sum(1) / 20.0 + 0.1 * rng.normal(size=n)

    def init(key, x):
        return {"emb": 0.1 * jax.random.normal(key, (20,)), "b": jnp.zeros(())}

    def apply(p, x):
        yhat = (p["emb"][x["ids"]] * x["mask"]).sum(1) + p["b"]
        return yhat, jnp.sum(p["emb"] ** 2) * jnp.ones(yhat.shape[0])

    inputs = {"ids": tokens, "mask": mask}
    m = rfp.fit_arrays(inputs, y, cluster, model=(init, apply), penalty=0.01, alpha=0.5,
                       inner_steps=1, max_steps=200, patience=None, learning_rate=0.05)
    pred = m.predict_arrays(inputs)
    assert np.mean((pred - y) ** 2) < 0.5 * np.var(y)
    strong = rfp.fit_arrays(inputs, y, cluster, model=(init, apply), penalty=10.0, alpha=0.5,
                            inner_steps=1, max_steps=200, patience=None, learning_rate=0.05)
    assert np.sum(strong.params["emb"] ** 2) < np.sum(m.params["emb"] ** 2)


def test_neural_ode_penalty_lowers_kinetic_energy():
    t = frame()
    kw = dict(y="y", x=["x1", "x2"], cluster="g", model="neural_ode", max_steps=150, patience=None)
    low = rfp.fit(t, penalty=0.0, **kw)
    high = rfp.fit(t, penalty=5.0, **kw)
    model = as_model("neural_ode")
    x = jnp.asarray(low.scaler.x(np.column_stack([t["x1"].to_numpy(), t["x2"].to_numpy()])))
    e = lambda m: float(np.mean(model.apply(m.params, x)[1]))
    assert e(high) < 0.5 * e(low)


def test_early_stopping_keeps_the_best_held_out_step():
    t = frame()
    m = rfp.fit(t, y="y", x=["x1", "x2"], cluster="g", max_steps=400, patience=50)
    h = m.history
    assert m.best_step == h.step[int(np.nanargmin(h.validation))]
    assert len(m.validation_clusters) == 2 and not set(m.validation_clusters) & set(m.train_clusters)


def test_cluster_adapted_predictions_take_the_inner_steps():
    """predict_adapted equals k plain gradient steps on each cluster's own
    (standardised) loss, written out for a linear model."""
    t = frame()
    m = rfp.fit(t, y="y", x=["x1", "x2"], cluster="g", model="linear", alpha=0.5,
                inner_steps=2, inner_lr=0.2, **FAST)
    got = m.predict_adapted(t, y="y", cluster="g", as_numpy=True)
    X = m.scaler.x(np.column_stack([t["x1"].to_numpy(), t["x2"].to_numpy()]))
    z = m.scaler.y(t["y"].to_numpy())
    g = np.asarray(t["g"].to_pylist())
    want = np.empty(len(z))
    for c in np.unique(g):
        r = g == c
        w, b = m.params["w"][:, 0].copy(), float(m.params["b"][0])
        for _ in range(2):
            resid = z[r] - (X[r] @ w + b)
            w, b = w + 0.2 * 2 * X[r].T @ resid / r.sum(), b + 0.2 * 2 * resid.mean()
        want[r] = m.scaler.y_back(X[r] @ w + b)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert not np.allclose(got, m.predict(t, as_numpy=True))
    one = t.filter(pa.compute.equal(t["g"], 3))  # a single cluster adapts on its own
    np.testing.assert_allclose(m.predict_adapted(one, y="y", cluster="g", as_numpy=True), want[g == 3], rtol=1e-10)
