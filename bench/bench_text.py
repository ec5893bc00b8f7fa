"""Text columns: tokens are where the arithmetic grows (issue 21, item 5).

1. Step time of the text model's R_k (value and gradient plus the Adam
   update, as ``gpu_suite.py`` measures it: median of --repeats chunks of
   --steps steps after a first, compiling chunk; float64; second order,
   k = 1 inner step, alpha = 0.5, the embedding bag ``models.text_bag`` with
   an MLP 32x32 tanh head, 16 numbers per token, vocabulary 2,000) over
   clusters x tokens per
   text: lognormal cluster sizes (mean about 20 rows, 2 to 120), one text
   column of L token ids drawn directly (Zipf-like over the vocabulary) with
   a random length of 1 to L tokens each, so the mask matters.  Each point
   with rfp's size buckets (``layout.make_buckets``, the CPU layout) and
   with one max-padded bucket (every cluster padded to the next power of two
   of the largest), and the same rows with the numeric controls alone
   (MLP 32x32 on 3 columns: the step a user knows) in both layouts.
   Ratios: text / numeric (same layout) and max-padded / bucketed.
2. End-to-end ``rfp.fit`` on ``simulate.text_clusters(200, 25)`` with
   text="title" (x1 as the numeric control; the vocabulary built from the
   rows) against the same fit on x1 alone: --fit-steps steps each
   (patience=None), compilation included (run first, after a 2-step
   warm-up fit of each kind on other shapes, so that neither pays the
   process's first-use costs; rfp's persistent compilation cache is off in
   this script unless RFP_CACHE_DIR is set).

Prints one line per measurement and Markdown tables at the end (paste into
bench/RESULTS.md with the machine).  A time guard (--budget seconds) skips
what is left of the grid; --quick is a ~30 s smoke run.

    .venv/bin/python bench/bench_text.py [--clusters 50 400] [--tokens 8 32 128] [--quick]
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

if __name__ == "__main__":   # compile times as on a first run: rfp's persistent cache off
    os.environ.setdefault("RFP_CACHE_DIR", "off")

import jax
import jax.numpy as jnp
import numpy as np

from rfp.training import train as tr
from rfp.core.bilevel import Objective, gather
from rfp.core.layout import BUCKET_COST, make_buckets, padded_rows
from rfp.core.models import as_model

START = time.perf_counter()
VOCAB, EMBEDDING, HIDDEN, P = 2000, 16, (32, 32), 3


def sizes_of(n_clusters, rng, mean=20.0, sigma=0.7, cap=120):
    """Lognormal cluster sizes with mean about ``mean``, clipped to [2, cap]."""
    raw = rng.lognormal(np.log(mean) - sigma ** 2 / 2, sigma, n_clusters)
    return np.clip(np.round(raw).astype(int), 2, cap)


def design(n_clusters, tokens, seed=0):
    """(numeric x (n, P), text pytree, y, cluster): one text column of
    ``tokens`` slots, each text 1 to ``tokens`` real token ids (mask 1),
    then padding (id 0, mask 0).  Ids 2 .. VOCAB-1, Zipf-like."""
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(n_clusters), sizes_of(n_clusters, rng))
    n = cluster.size
    x = rng.normal(size=(n, P))
    length = rng.integers(1, tokens + 1, n)
    real = np.arange(tokens)[None, :] < length[:, None]
    ids = 2 + (rng.zipf(1.3, size=(n, tokens)) - 1) % (VOCAB - 2)
    tok = np.where(real, ids, 0).astype(np.int32)[:, None, :]          # (n, 1, L)
    mask = real.astype(np.float64)[:, None, :]
    signal = np.isin(tok, [2, 3, 5]).sum(axis=(1, 2)) / np.maximum(length, 1)
    y = (np.sin(x[:, 0]) + x[:, 1] * x[:, 2] + signal + rng.normal(size=n_clusters)[cluster]
         + rng.normal(size=n))
    return x, {"x": x, "tokens": tok, "mask": mask}, y, cluster


def model_of(kind):
    if kind == "text":
        return as_model("text", head="mlp", hidden=HIDDEN, activation="tanh",
                        embedding_dim=EMBEDDING, vocab_size=VOCAB)
    return as_model("mlp", hidden=HIDDEN, activation="tanh")


def step_time(inputs, y, cluster, kind, layout, dtype="float64", steps=3, repeats=2,
              inner_steps=1):
    """(compile + first chunk seconds, seconds per step, padded rows) of
    value and gradient of R_k plus the Adam update, ``kind`` "text" (the
    embedding bag on the pytree ``inputs``) or "numeric" (MLP on a matrix);
    ``layout`` "bucketed" (size buckets, the CPU layout), "max-padded" (one
    bucket) or "rule" (the accelerator's layout by cost, ``layout.py``)."""
    return time_model(model_of(kind), inputs, y, cluster, layout, dtype, steps, repeats,
                      inner_steps)


def time_model(model, inputs, y, cluster, layout, dtype="float64", steps=3, repeats=2,
               inner_steps=1):
    """``step_time`` for any model on any inputs (a matrix or a pytree):
    the measurement ``gpu_suite.py`` makes too."""
    objective = Objective(model.apply, inner_steps=inner_steps, inner_lr=0.0)
    if layout == "max-padded":
        buckets_np = make_buckets(cluster, max_padding=1e12, bucket_cost=0)
    else:
        buckets_np = make_buckets(cluster, bucket_cost=BUCKET_COST if layout == "rule" else 0)
    buckets = gather(buckets_np, inputs, y, np.ones(len(y)), jnp.dtype(dtype))
    first_row = jax.tree.map(lambda a: jnp.asarray(a[:1]), inputs)
    params = jax.tree.map(lambda a: a.astype(dtype), model.init(jax.random.PRNGKey(0), first_row))
    settings = (1.0, "constant", 1)
    opt_state = tr.optimizer(*settings).init(params)
    hyper = {k: jnp.asarray(v, dtype) for k, v in
             (("alpha", 0.5), ("inner_lr", 0.1), ("learning_rate", 1e-3))}
    t = time.perf_counter()
    jax.block_until_ready(tr.chunk(params, opt_state, hyper, buckets, objective, settings, steps))
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(tr.chunk(params, opt_state, hyper, buckets, objective, settings,
                                       steps))
        times.append((time.perf_counter() - t) / steps)
    return first, float(np.median(times)), padded_rows(buckets_np)


def grid(clusters, tokens, steps, repeats, deadline, layouts=("bucketed", "max-padded"),
         dtype="float64", memory=None):
    """Step times over clusters x tokens per text, the numeric-only model
    first for each cluster count (same rows); returns {(g, L or None,
    layout): (rows, first chunk s, s per step, padded rows, peak GB)}.
    Points after ``deadline`` (a ``time.perf_counter()`` value) are
    skipped; ``memory()`` (e.g. the device's peak GB) is recorded after each."""
    out = {}
    for g in clusters:
        plan = [(None, l) for l in layouts] + [(L, l) for L in tokens for l in layouts]
        for L, layout in plan:
            what = "numeric only" if L is None else f"text L={L}"
            if time.perf_counter() > deadline:
                print(f"skipped {g} clusters, {what}, {layout}, {dtype}: over the time budget")
                continue
            x, text, y, cluster = design(g, L or 8)
            inputs, kind = (x, "numeric") if L is None else (text, "text")
            try:
                first, per, padded = step_time(inputs, y, cluster, kind, layout, dtype,
                                               steps, repeats)
            except Exception as e:   # out of (device) memory at the largest sizes
                print(f"{g} clusters, {what}, {layout}, {dtype}: failed "
                      f"({type(e).__name__}: {str(e)[:120]})")
                continue
            peak = memory() if memory else float("nan")
            out[(g, L, layout)] = (len(y), first, per, padded, peak)
            print(f"{g} clusters / {len(y)} rows, {what}, {layout}, {dtype}: "
                  f"{per * 1e3:.1f} ms/step, first chunk (compile) {first:.1f} s, "
                  f"padded rows {padded}" + (f", peak memory {peak:.2f} GB" if memory else ""),
                  flush=True)
    return out


def table(results, dtype="float64"):
    """Markdown: a row per (clusters, input, layout), with max-padded (or
    rule) / bucketed for the same input and text / numeric-only for the
    same layout."""
    memory = any(np.isfinite(r[4]) for r in results.values())
    print(f"\n| clusters / rows | input | layout ({dtype}) | padded rows | ms/step | "
          "/ bucketed | text / numeric | first chunk (s) |" + (" peak GB |" if memory else "")
          + "\n|---|---|---|---|---|---|---|---|" + ("---|" if memory else ""))
    order = {"bucketed": 0, "max-padded": 1, "rule": 2}
    for (g, L, layout), (rows, first, per, padded, peak) in sorted(
            results.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0, order.get(kv[0][2], 3))):
        b = results.get((g, L, "bucketed"))
        n = results.get((g, None, layout))
        vs_b = f"{per / b[2]:.2f}" if b and layout != "bucketed" else "-"
        vs_n = f"{per / n[2]:.2f}" if n and L is not None else "-"
        print(f"| {g} / {rows} | {'numeric only (3 columns)' if L is None else f'text, L = {L}'} | "
              f"{layout} | {padded} | {per * 1e3:.1f} | {vs_b} | {vs_n} | {first:.1f} |"
              + (f" {peak:.2f} |" if memory else ""))


def end_to_end(n_clusters, n_per_cluster, steps):
    """Wall time of rfp.fit with text="title" and x1, and of the same fit on
    x1 alone, ``steps`` steps each (no early stopping), compilation
    included; (text s, numeric s)."""
    import rfp
    data = rfp.simulate.text_clusters(n_clusters=n_clusters, n_per_cluster=n_per_cluster,
                                      seed=0).data
    small = rfp.simulate.text_clusters(n_clusters=12, n_per_cluster=7, seed=1).data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for extra in ({}, {"text": "title"}):   # warm-up: imports, backend, tokenizer
            rfp.fit(small, "y", ["x1"], "cluster", max_steps=2, min_steps=0, patience=None,
                    eval_every=1, progress=False, **extra)
    out = {}
    for name, extra in (("x1 alone", {}), ("text + x1", {"text": "title"})):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # "not converged" after a fixed number of steps
            fitted = rfp.fit(data, "y", ["x1"], "cluster", max_steps=steps, patience=None,
                             progress=False, **extra)
        out[name] = time.perf_counter() - t
        print(f"end-to-end rfp.fit, {n_clusters} clusters x {n_per_cluster} rows, {name}, "
              f"{steps} steps: {out[name]:.1f} s (best step {fitted.best_step})", flush=True)
    return out["text + x1"], out["x1 alone"]


def fit_table(fit, n_clusters, n_per_cluster, steps):
    text, numeric = fit
    print(f"\n| rfp.fit, {n_clusters} clusters x {n_per_cluster} rows, {steps} steps | wall s |\n"
          f"|---|---|\n| x1 alone | {numeric:.1f} |\n| text=\"title\" + x1 | {text:.1f} |\n"
          f"| ratio text / x1 alone | {text / numeric:.2f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clusters", type=int, nargs="+", default=[50, 400])
    ap.add_argument("--tokens", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--steps", type=int, default=3, help="steps per timed chunk")
    ap.add_argument("--repeats", type=int, default=2, help="timed chunks per point (median)")
    ap.add_argument("--fit-clusters", type=int, default=200)
    ap.add_argument("--fit-steps", type=int, default=200)
    ap.add_argument("--budget", type=float, default=200.0,
                    help="seconds (from the start) after which the rest of the grid is skipped")
    ap.add_argument("--quick", action="store_true", help="a ~30 s smoke run")
    a = ap.parse_args()
    if a.quick:
        a.clusters, a.tokens, a.steps, a.repeats = [50], [8], 2, 1
        a.fit_clusters, a.fit_steps, a.budget = 40, 20, 40.0
    print(f"device: {jax.devices()[0].device_kind} ({jax.devices()[0].platform}), "
          f"jax {jax.__version__}", flush=True)
    fit = end_to_end(a.fit_clusters, 25, a.fit_steps)
    results = grid(a.clusters, a.tokens, a.steps, a.repeats, START + a.budget)
    fit_table(fit, a.fit_clusters, 25, a.fit_steps)
    table(results)
    print(f"total {time.perf_counter() - START:.0f} s")


if __name__ == "__main__":
    main()
