"""Where an end-to-end fit spends its time outside the outer steps, on a
mid-size synthetic design: 2,000 clusters of lognormal sizes (about 100k
rows), MLP 32x32, k = 1, 30 steps.

Times, in one process: preparing the table (rfp.data.prepare), bucketing
(layout.make_buckets), gathering the padded device arrays (bilevel.gather),
the whole rfp.fit (first call: includes compilation; second call: compiled),
and the steps alone (train.chunk, compiled) so that fit - steps is the
overhead.  Pass --dtype float32 for single precision.

    .venv/bin/python bench/bench_setup.py [--clusters 2000] [--steps 30]
"""
from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import pyarrow as pa

import rfp
from rfp import data as data_mod
from rfp.core.bilevel import gather
from rfp.core.layout import make_buckets


def design(n_clusters, seed=0):
    rng = np.random.default_rng(seed)
    sizes = np.clip(rng.lognormal(3.3, 1.0, n_clusters).astype(int), 1, 2000)
    cluster = np.repeat(np.arange(n_clusters), sizes)
    x = rng.normal(size=(cluster.size, 3))
    y = np.sin(x[:, 0]) + x[:, 1] * x[:, 2] + rng.normal(size=n_clusters)[cluster] + rng.normal(size=cluster.size)
    return pa.table({"y": y, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "g": cluster})


def timed(f):
    t = time.perf_counter()
    out = f()
    jax.block_until_ready(jax.tree.leaves(out)) if out is not None else None
    return out, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clusters", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--dtype", default=None)
    a = ap.parse_args()
    table = design(a.clusters)
    extra = {"dtype": a.dtype} if a.dtype else {}
    settings = dict(alpha=0.5, inner_steps=1, max_steps=a.steps, patience=a.steps, eval_every=10,
                    progress=False, **extra)
    prepared, t_prepare = timed(lambda: data_mod.prepare(table, "y", ["x1", "x2", "x3"], "g"))
    buckets, t_buckets = timed(lambda: make_buckets(prepared.cluster))
    w = np.ones(len(prepared.y))
    _, t_gather = timed(lambda: gather(buckets, prepared.x, prepared.y, w))
    _, t_fit1 = timed(lambda: rfp.fit(table, y="y", x=["x1", "x2", "x3"], cluster="g", **settings))
    _, t_fit2 = timed(lambda: rfp.fit(table, y="y", x=["x1", "x2", "x3"], cluster="g", **settings))
    # the steps alone: one more 30-step fit's worth of compiled chunks
    from rfp.training import train as tr
    times = {}
    orig = tr.chunk

    def spy(*args, **kw):
        out, t = timed(lambda: orig(*args, **kw))
        times.setdefault("chunk", []).append(t)
        return out
    tr.chunk = spy
    try:
        _, t_fit3 = timed(lambda: rfp.fit(table, y="y", x=["x1", "x2", "x3"], cluster="g", **settings))
    finally:
        tr.chunk = orig
    t_steps = sum(times["chunk"])
    print(f"{len(prepared.y)} rows, {a.clusters} clusters, {a.steps} steps, "
          f"dtype {a.dtype or 'float64'}")
    print(f"prepare {t_prepare:.3f} s | make_buckets {t_buckets:.3f} s ({len(buckets)} buckets) | "
          f"gather {t_gather:.3f} s")
    print(f"fit, first call {t_fit1:.2f} s | fit, second call {t_fit2:.2f} s | "
          f"fit, third call {t_fit3:.2f} s of which steps {t_steps:.2f} s "
          f"({t_steps / a.steps * 1e3:.1f} ms/step) -> overhead {t_fit3 - t_steps:.2f} s")


if __name__ == "__main__":
    main()
