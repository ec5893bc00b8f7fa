"""Time per outer step of R_k(theta): rfp's bucketed, vmapped objective
against a plain loop over clusters (one jitted inner loop per cluster, the way
a user would write it), on 200 clusters of uneven size.

Both compute the same value and gradient (checked) for an MLP with k inner
steps; the step is value_and_grad plus the Adam update.  Prints the median
seconds per step of each and the ratio loop / rfp, measured in the same run.

    .venv/bin/python bench/bench_objective.py [--clusters 200] [--inner-steps 3] [--repeats 20]
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rfp  # noqa: F401  (float64)
from rfp.core.bilevel import Objective, gather
from rfp.core.layout import make_buckets, padded_rows
from rfp.core.models import as_model


def data(n_clusters, seed=0):
    rng = np.random.default_rng(seed)
    sizes = np.clip(rng.lognormal(3.0, 1.0, n_clusters).astype(int), 1, 2000)
    cluster = np.repeat(np.arange(n_clusters), sizes)
    x = rng.normal(size=(cluster.size, 4))
    y = np.sin(x[:, 0]) + x[:, 1] * 0.5 + rng.normal(size=cluster.size) * 0.3
    return x, y, cluster


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--clusters", type=int, default=200)
    p.add_argument("--inner-steps", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args(argv)
    x, y, cluster = data(a.clusters)
    model = as_model("mlp", hidden=(32, 32))
    obj = Objective(model.apply, "squared", a.inner_steps, 0.1)
    params = model.init(jax.random.PRNGKey(0), jnp.asarray(x[:1]))
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
    state = opt.init(params)
    alpha = 0.5
    n = len(y)

    # rfp: all clusters of a size bucket in parallel, one jitted step
    t0 = time.perf_counter()
    buckets = gather(make_buckets(cluster), x, y, np.ones(n))

    @jax.jit
    def rfp_step(params, state):
        value, grads = jax.value_and_grad(obj)(params, alpha, buckets)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    jax.block_until_ready(rfp_step(params, state))
    rfp_compile = time.perf_counter() - t0

    # plain loop: one jitted function per cluster (recompiled per distinct size)
    def cluster_term(theta, xc, yc):
        def inner(th):
            return jnp.mean((yc - model.apply(th, xc)[0]) ** 2)
        th = theta
        for _ in range(a.inner_steps):
            th = jax.tree.map(lambda t, g: t - 0.1 * g, th, jax.grad(inner)(th))
        pooled = jnp.sum((yc - model.apply(theta, xc)[0]) ** 2)
        adapted = jnp.sum((yc - model.apply(th, xc)[0]) ** 2)
        return (alpha * pooled + (1 - alpha) * adapted) / n

    cluster_vg = jax.jit(jax.value_and_grad(cluster_term))
    update = jax.jit(lambda g, s, p: opt.update(g, s, p))
    per_cluster = [(jnp.asarray(x[cluster == c]), jnp.asarray(y[cluster == c])) for c in range(a.clusters)]

    def loop_step(params, state):
        value, grads = 0.0, jax.tree.map(jnp.zeros_like, params)
        for xc, yc in per_cluster:
            v, g = cluster_vg(params, xc, yc)
            value = value + v
            grads = jax.tree.map(jnp.add, grads, g)
        updates, state = update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    t0 = time.perf_counter()
    jax.block_until_ready(loop_step(params, state))
    loop_compile = time.perf_counter() - t0

    v_rfp = float(rfp_step(params, state)[2])
    v_loop = float(loop_step(params, state)[2])
    assert abs(v_rfp - v_loop) < 1e-10 * abs(v_loop), (v_rfp, v_loop)

    t_rfp = median_time(lambda: rfp_step(params, state), a.repeats)
    t_loop = median_time(lambda: loop_step(params, state), a.repeats)
    print(f"backend: {jax.default_backend()} ({jax.devices()[0].device_kind}), float64")
    print(f"data: {a.clusters} clusters, {n} observations (sizes {np.bincount(cluster).min()}-"
          f"{np.bincount(cluster).max()}), padded rows {padded_rows(make_buckets(cluster))}; "
          f"MLP 32x32, k={a.inner_steps} inner steps, second order")
    print(f"objective value rfp {v_rfp:.12f} loop {v_loop:.12f}")
    print(f"first step incl. compile: rfp {rfp_compile:.2f}s  loop {loop_compile:.2f}s")
    print(f"median seconds per outer step: rfp {t_rfp:.5f}  loop {t_loop:.5f}")
    print(f"ratio loop / rfp: {t_loop / t_rfp:.1f}x")


if __name__ == "__main__":
    main()
