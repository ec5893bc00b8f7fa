"""Speed settings that must not change the answer: dtype="float32" (against
float64), minibatches of clusters (batch_clusters), several devices."""
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import rfp
from rfp.simulate import tragic_triad

ROOT = Path(__file__).resolve().parents[2]


def test_float32_training_matches_float64_and_returns_float64():
    sim = tragic_triad(n_clusters=16, n_per_cluster=20, seed=3)
    kw = dict(y="y", x=["x"], cluster="cluster", alpha=0.5, inner_steps=1, hidden=(8, 8),
              max_steps=100, patience=None, validation_share=0.0, progress=False)
    m64 = rfp.fit(sim.data, **kw)
    m32 = rfp.fit(sim.data, dtype="float32", **kw)
    assert all(a.dtype == np.float64 for a in jax.tree.leaves(m32.params))
    p64, p32 = m64.predict(sim.data, as_numpy=True), m32.predict(sim.data, as_numpy=True)
    assert p32.dtype == np.float64
    # float32 rounding (relative 6e-8 per operation) carried through 100 Adam
    # steps: predictions agree to 1e-4 of the outcome's standard deviation and
    # the objective's curve to 1e-3 relative
    sd = np.std(sim.data["y"].to_numpy())
    assert np.max(np.abs(p32 - p64)) < 1e-4 * sd
    np.testing.assert_allclose(m32.history.train, m64.history.train, rtol=1e-3)


def test_dtype_setting_is_checked():
    sim = tragic_triad(n_clusters=4, n_per_cluster=5, seed=0)
    with pytest.raises(ValueError, match="dtype must be one of 'float64', 'float32'"):
        rfp.fit(sim.data, y="y", x=["x"], cluster="cluster", dtype="float16")


def equal_clusters(n_clusters=12, per=6, seed=0):
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(n_clusters), per)
    x = rng.normal(size=(cluster.size, 2))
    y = np.sin(2 * x[:, 0]) + x[:, 1] + rng.normal(size=n_clusters)[cluster] \
        + 0.3 * rng.normal(size=cluster.size)
    return x, y, cluster


def test_minibatch_gradients_average_to_the_full_batch_gradient_over_an_epoch():
    """Equal cluster sizes and weights, B = 4 of G = 12 clusters: the three
    minibatch gradients of an epoch (the sampler and selection training
    uses) average to the full-batch gradient of R_k."""
    import jax.numpy as jnp
    from rfp.core import minibatch
    from rfp.core.bilevel import Objective, gather
    from rfp.core.layout import make_buckets
    from rfp.core.models import as_model

    x, y, cluster = equal_clusters()
    model = as_model("mlp", hidden=(8,), activation="tanh")
    objective = Objective(model.apply, inner_steps=2, inner_lr=0.1)
    layout = make_buckets(cluster)
    buckets = gather(layout, x, y, np.ones(len(y)))
    params = model.init(jax.random.PRNGKey(1), jnp.asarray(x[:1]))
    grad = jax.jit(jax.grad(lambda p, b: objective(p, 0.3, b)))
    full = grad(params, buckets)

    sampler = minibatch.ClusterSampler([len(b.clusters) for b in layout], 4, seed=5)
    assert list(sampler.k) == [4]
    picks = sampler.draw(3)
    assert sorted(np.concatenate(picks[0]).tolist()) == list(range(12))   # an epoch
    grads = [grad(params, minibatch.select(buckets, [p[t]], sampler.scales())) for t, p in
             enumerate([picks[0]] * 3)]
    mean = jax.tree.map(lambda *g: sum(g) / 3, *grads)
    for a, b in zip(jax.tree.leaves(mean), jax.tree.leaves(full)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-10)
    # and a minibatch is not the whole batch (the test can fail)
    assert max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in
               zip(jax.tree.leaves(grads[0]), jax.tree.leaves(full))) > 1e-4


def test_sampler_splits_the_batch_across_buckets():
    from rfp.core.minibatch import ClusterSampler, per_bucket
    assert per_bucket([10, 30], 8).tolist() == [2, 6]
    assert per_bucket([1, 99], 4).tolist() == [1, 3]     # every bucket drawn
    s = ClusterSampler([10, 30], 8, seed=0)
    draws = s.draw(5)                                    # 5 steps: one epoch of each bucket
    assert [d.shape for d in draws] == [(5, 2), (5, 6)]
    assert sorted(draws[0].ravel().tolist()) == list(range(10))
    assert len(set(draws[1].ravel().tolist())) == 30


def test_minibatch_fit_reaches_the_full_batch_heldout_loss():
    """A simulated design (40 clusters of 25): the best held-out loss with
    B = 8 clusters per step (five times as many steps, the same number of
    cluster visits) is within 5% of the full-batch fit's."""
    sim = tragic_triad(n_clusters=40, n_per_cluster=25, overlap="high", seed=4)
    kw = dict(y="y", x=["x"], cluster="cluster", alpha=0.5, inner_steps=1, hidden=(16, 16),
              patience=10**6, eval_every=20, progress=False, seed=2)
    full = rfp.fit(sim.data, max_steps=200, **kw)
    mini = rfp.fit(sim.data, max_steps=1000, batch_clusters=8, learning_rate=5e-3, **kw)
    assert min(mini.history.validation) < 1.05 * min(full.history.validation)


def test_batch_clusters_is_checked():
    sim = tragic_triad(n_clusters=4, n_per_cluster=5, seed=0)
    for bad in (0, 2.5, "4"):
        with pytest.raises((ValueError, TypeError), match="batch_clusters must be a whole number"):
            rfp.fit(sim.data, y="y", x=["x"], cluster="cluster", batch_clusters=bad)


TWO_DEVICES = """
import jax, jax.numpy as jnp, numpy as np, rfp
from rfp.core import devices
from rfp.core.bilevel import Objective, gather
from rfp.core.layout import make_buckets
from rfp.core.models import as_model
assert len(jax.devices()) == 2
rng = np.random.default_rng(0)
sizes = rng.integers(1, 30, size=25)                       # uneven: several buckets, odd counts
cluster = np.repeat(np.arange(25), sizes)
x = rng.normal(size=(cluster.size, 2))
y = np.sin(x[:, 0]) + x[:, 1] + rng.normal(size=25)[cluster] + 0.2 * rng.normal(size=cluster.size)
model = as_model("mlp", hidden=(8, 8), activation="tanh")
objective = Objective(model.apply, inner_steps=2, inner_lr=0.1)
buckets = gather(make_buckets(cluster), x, y, rng.uniform(0.5, 2, size=cluster.size))
params = model.init(jax.random.PRNGKey(0), jnp.asarray(x[:1]))
f = jax.jit(jax.value_and_grad(lambda p, b: objective(p, 0.4, b)))
one = f(params, buckets)
m = devices.mesh(jax.devices())
sharded = devices.shard_buckets(buckets, m)
assert all(len(b["mask"].sharding.device_set) == 2 for b in sharded)
two = f(devices.replicate(params, m), sharded)
for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=1e-10)
kw = dict(model="mlp", hidden=(8,), max_steps=30, eval_every=10, patience=100, progress=False)
p1 = rfp.fit_arrays(x, y, cluster, **kw).predict_arrays(x)
p2 = rfp.fit_arrays(x, y, cluster, devices=2, **kw).predict_arrays(x)
np.testing.assert_allclose(p2, p1, rtol=0, atol=1e-8)
print("ok", float(one[0]), float(two[0]))
"""


def test_two_devices_give_the_one_device_objective():
    """Clusters split over two (forced host) devices: R_k and its gradient
    equal one device's to 1e-10 (float64), and a 30-step fit's predictions
    to 1e-8."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT / "python")}
    done = subprocess.run([sys.executable, "-c", TWO_DEVICES], env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok")


def test_devices_setting_is_checked():
    sim = tragic_triad(n_clusters=4, n_per_cluster=5, seed=0)
    with pytest.raises(ValueError, match="devices = 64 but JAX sees"):
        rfp.fit(sim.data, y="y", x=["x"], cluster="cluster", devices=64)
    with pytest.raises((ValueError, TypeError), match="devices must be a whole number >= 1 or 'all'"):
        rfp.fit(sim.data, y="y", x=["x"], cluster="cluster", devices="two")
