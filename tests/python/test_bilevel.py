"""R_k(theta) against references written cluster by cluster, without padding."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rfp  # noqa: F401  (switches on float64)
from rfp.core.bilevel import Objective, gather, observation_weights
from rfp.core.layout import Bucket, bucket_width, make_buckets, padded_rows
from rfp.core.models import as_model


def clustered(sizes, p=2, seed=0):
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(cluster)  # rows of a cluster are not contiguous
    x = rng.normal(size=(len(cluster), p))
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] + rng.normal(size=len(cluster)) * 0.3 + cluster * 0.1
    return x, y, cluster


def reference(apply, params, x, y, cluster, w, alpha, k, eta, first_order=False, loss="squared"):
    """R_k written plainly: a Python loop over clusters, each on its own rows."""
    def L(theta, xc, yc):
        yhat = apply(theta, xc)[0]
        if loss == "squared":
            return (yc - yhat) ** 2
        return jnp.log1p(jnp.exp(yhat)) - yc * yhat

    num = 0.0
    for c in np.unique(cluster):
        rows = cluster == c
        xc, yc = jnp.asarray(x[rows]), jnp.asarray(y[rows])
        theta_c = params
        for _ in range(k):
            g = jax.grad(lambda t: jnp.mean(L(t, xc, yc)))(theta_c)
            if first_order:
                g = jax.lax.stop_gradient(g)
            theta_c = jax.tree.map(lambda t, gi: t - eta * gi, theta_c, g)
        num = num + jnp.sum(w[rows] * (alpha * L(params, xc, yc) + (1 - alpha) * L(theta_c, xc, yc)))
    return num / np.sum(w)


@pytest.fixture(scope="module")
def problem():
    x, y, cluster = clustered([1, 3, 4, 7, 8, 9, 16, 30])
    model = as_model("mlp", hidden=(8,), activation="tanh")
    params = model.init(jax.random.PRNGKey(0), jnp.asarray(x[:1]))
    return x, y, cluster, model, params


@pytest.mark.parametrize("alpha,k,equal_clusters,first_order", [
    (0.5, 1, False, False), (0.3, 3, True, False), (0.7, 2, False, True), (0.0, 2, False, False),
])
def test_objective_and_gradient_equal_cluster_by_cluster_reference(problem, alpha, k,
                                                                   equal_clusters, first_order):
    x, y, cluster, model, params = problem
    w = observation_weights(cluster, equal_clusters=equal_clusters)
    obj = Objective(model.apply, "squared", k, 0.05, first_order)
    buckets = gather(make_buckets(cluster), x, y, w)
    ours = lambda p: obj(p, alpha, buckets)
    ref = lambda p: reference(model.apply, p, x, y, cluster, w, alpha, k, 0.05, first_order)
    np.testing.assert_allclose(ours(params), ref(params), rtol=1e-12)
    g1, g2 = jax.grad(ours)(params), jax.grad(ref)(params)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_extra_padding_changes_neither_loss_nor_gradient(problem):
    x, y, cluster, model, params = problem
    w = observation_weights(cluster)
    obj = Objective(model.apply, "squared", 2, 0.05)
    tight = gather(make_buckets(cluster), x, y, w)
    # one bucket, every cluster padded to 64 rows
    codes = np.unique(cluster)
    index = np.zeros((len(codes), 64), dtype=int)
    mask = np.zeros((len(codes), 64))
    for j, c in enumerate(codes):
        rows = np.flatnonzero(cluster == c)
        index[j, :len(rows)], mask[j, :len(rows)] = rows, 1
    wide = gather([Bucket(index, mask, codes)], x, y, w)
    np.testing.assert_allclose(obj(params, 0.4, tight), obj(params, 0.4, wide), rtol=1e-13)
    for a, b in zip(jax.tree.leaves(jax.grad(obj)(params, 0.4, tight)),
                    jax.tree.leaves(jax.grad(obj)(params, 0.4, wide))):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)


def test_alpha_one_is_ordinary_training(problem):
    """alpha = 1: R_k is the pooled mean loss, whatever k and eta."""
    x, y, cluster, model, params = problem
    obj = Objective(model.apply, "squared", 3, 0.2)
    buckets = gather(make_buckets(cluster), x, y, np.ones(len(y)))
    erm = lambda p: jnp.mean((jnp.asarray(y) - model.apply(p, jnp.asarray(x))[0]) ** 2)
    np.testing.assert_allclose(obj(params, 1.0, buckets), erm(params), rtol=1e-13)
    for a, b in zip(jax.tree.leaves(jax.grad(obj)(params, 1.0, buckets)), jax.tree.leaves(jax.grad(erm)(params))):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)


def test_alpha_zero_is_maml(problem):
    """alpha = 0 with equal cluster weights: the MAML task average
    (1/G) sum_c Lbar_c(theta - eta grad Lbar_c(theta)) for k = 1."""
    x, y, cluster, model, params = problem
    obj = Objective(model.apply, "squared", 1, 0.1)
    buckets = gather(make_buckets(cluster), x, y, observation_weights(cluster, equal_clusters=True))

    def maml(p):
        total = 0.0
        codes = np.unique(cluster)
        for c in codes:
            xc, yc = jnp.asarray(x[cluster == c]), jnp.asarray(y[cluster == c])
            task = lambda t: jnp.mean((yc - model.apply(t, xc)[0]) ** 2)
            adapted = jax.tree.map(lambda t, g: t - 0.1 * g, p, jax.grad(task)(p))
            total = total + task(adapted)
        return total / len(codes)

    np.testing.assert_allclose(obj(params, 0.0, buckets), maml(params), rtol=1e-12)
    for a, b in zip(jax.tree.leaves(jax.grad(obj)(params, 0.0, buckets)), jax.tree.leaves(jax.grad(maml)(params))):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_second_order_gradient_matches_closed_form_for_linear_model():
    """Linear f, squared loss, k = 1: theta_c = A_c theta + b_c with
    A_c = I - (2 eta / n_c) X_c'X_c, b_c = (2 eta / n_c) X_c'y_c, so the gradient of
    sum_i (y_i - x_i'theta_c)^2 / N is sum_c -2 A_c' X_c'(y_c - X_c theta_c) / N."""
    rng = np.random.default_rng(3)
    sizes = [5, 9, 2, 14]
    cluster = np.repeat(np.arange(4), sizes)
    X = np.column_stack([rng.normal(size=(cluster.size, 2)), np.ones(cluster.size)])
    y = rng.normal(size=cluster.size)
    eta, theta = 0.07, rng.normal(size=3)
    grad_cf = np.zeros(3)
    for c in range(4):
        Xc, yc = X[cluster == c], y[cluster == c]
        A = np.eye(3) - 2 * eta / len(yc) * Xc.T @ Xc
        theta_c = A @ theta + 2 * eta / len(yc) * Xc.T @ yc
        grad_cf += -2 * A.T @ Xc.T @ (yc - Xc @ theta_c)
    grad_cf /= len(y)
    apply = lambda p, x: (x @ p, 0.0)
    obj = Objective(apply, "squared", 1, eta)
    buckets = gather(make_buckets(cluster), X, y, np.ones(len(y)))
    np.testing.assert_allclose(jax.grad(obj)(jnp.asarray(theta), 0.0, buckets), grad_cf, rtol=1e-12)
    # first order drops A_c': the gradient is sum_c -2 X_c'(y_c - X_c theta_c) / N
    fo = Objective(apply, "squared", 1, eta, first_order=True)
    grad_fo = sum(-2 * X[cluster == c].T @ (y[cluster == c] - X[cluster == c] @ (
        (np.eye(3) - 2 * eta / sizes[c] * X[cluster == c].T @ X[cluster == c]) @ theta
        + 2 * eta / sizes[c] * X[cluster == c].T @ y[cluster == c])) for c in range(4)) / len(y)
    np.testing.assert_allclose(jax.grad(fo)(jnp.asarray(theta), 0.0, buckets), grad_fo, rtol=1e-12)


def test_logistic_loss_and_penalty_enter_as_specified(problem):
    x, _, cluster, model, params = problem
    yb = (np.random.default_rng(1).random(len(cluster)) < 0.4).astype(float)
    lam = 0.3
    pen_apply = lambda p, xx: (model.apply(p, xx)[0], jnp.sum(xx ** 2, axis=1))
    obj = Objective(pen_apply, "logistic", 0, 0.1, penalty=lam)
    buckets = gather(make_buckets(cluster), x, yb, np.ones(len(yb)))
    logit = np.asarray(model.apply(params, jnp.asarray(x))[0])
    p1 = 1 / (1 + np.exp(-logit))
    nll = -(yb * np.log(p1) + (1 - yb) * np.log(1 - p1))
    np.testing.assert_allclose(obj(params, 0.5, buckets), np.mean(nll + lam * np.sum(x ** 2, axis=1)), rtol=1e-12)


def test_buckets_bound_padding_whatever_the_skew():
    cluster = np.concatenate([np.zeros(10_000, int), np.repeat(np.arange(1, 501), 10)])
    buckets = make_buckets(cluster)
    assert padded_rows(buckets) <= 2 * len(cluster)
    assert max(b.index.shape[0] * b.index.shape[1] for b in buckets) < 2 * 10_000
    # every row appears exactly once among the unpadded slots
    used = np.concatenate([b.index[b.mask > 0] for b in buckets])
    assert np.array_equal(np.sort(used), np.arange(len(cluster)))
    for b in buckets:
        assert np.all(b.mask.sum(axis=1) <= b.index.shape[1])


def test_merging_buckets_keeps_the_padding_bound_and_compiles_fewer_shapes():
    sizes = np.clip(np.random.default_rng(0).lognormal(3.0, 1.0, 200).astype(int), 1, 2000)
    cluster = np.repeat(np.arange(200), sizes)
    powers = len({bucket_width(s) for s in sizes})
    buckets = make_buckets(cluster)
    assert len(buckets) < powers
    assert padded_rows(buckets) <= 2 * len(cluster)
    assert padded_rows(buckets) <= max(1.5 * len(cluster), padded_rows(make_buckets(cluster, max_padding=1.0)))
    assert len(make_buckets(cluster, max_padding=1.0)) == powers  # no room: no merge


def _lognormal_clusters(n_clusters, seed=0):
    sizes = np.clip(np.random.default_rng(seed).lognormal(4.0, 1.2, n_clusters).astype(int), 1, 2000)
    return sizes, np.repeat(np.arange(n_clusters), sizes)


@pytest.mark.parametrize("n_clusters", [200, 2000, 10000])
def test_layout_by_cost(n_clusters):
    """The accelerator's layout (bucket_cost > 0) costs, by the cost model
    (padded rows + BUCKET_COST rows per bucket, fitted to the H200 table in
    layout.py), no more than 1.2 x the better of size buckets and one
    max-padded bucket, keeps the memory bound, and covers every row once.
    On a CPU (bucket_cost 0) the layout is the size buckets."""
    from rfp.core.layout import BUCKET_COST, SMALL, bucket_widths, layout_cost
    sizes, cluster = _lognormal_clusters(n_clusters)
    bucketed = bucket_widths(sizes, 1.5, 0)
    max_padded = np.full(len(sizes), bucket_width(sizes.max()))
    rule = bucket_widths(sizes, 1.5, BUCKET_COST)
    best = min(layout_cost(bucketed, BUCKET_COST), layout_cost(max_padded, BUCKET_COST))
    assert layout_cost(rule, BUCKET_COST) <= 1.2 * best
    assert rule.sum() <= max(2 * sizes.sum(), SMALL)
    assert np.all(rule >= sizes) and np.all(rule <= max_padded)
    buckets = make_buckets(cluster, bucket_cost=BUCKET_COST)
    used = np.concatenate([b.index[b.mask > 0] for b in buckets])
    assert np.array_equal(np.sort(used), np.arange(len(cluster)))
    cpu = make_buckets(cluster, bucket_cost=0)
    assert [b.index.shape for b in make_buckets(cluster)] == [b.index.shape for b in cpu]
