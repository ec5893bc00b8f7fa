"""The GPU benchmark set of issue 11, in one run (meant for one H100/H200,
under 8 minutes; a time guard skips what is left after --budget seconds).

1. Step time (value and gradient of R_k plus the Adam update; MLP 32x32,
   k = 3, second order; lognormal cluster sizes capped at 2,000) for
   200 / 2,000 / 10,000 clusters, float64 and float32, with rfp's size
   buckets, with one max-padded bucket (every cluster padded to the next
   power of two of the largest) and with the accelerator's layout by cost
   ("rule", ``layout.py``: its target is never more than 20% slower than the
   better of the other two); padded rows and peak device memory.
2. End-to-end ``rfp.fit_arrays`` at 10,000 clusters (~1M rows), 300
   steps (run second, right after its reference step time), against
   300 x step time + the compilation of one chunk.  The fit compiles its
   own programs (its held-out evaluation and its 80/20 split's shapes), so
   the ratio includes that compilation; run with a warm cache for the ratio
   without it.
3. Text columns (issue 21; ``bench_text.py`` is the CPU version): step time
   of the embedding-bag model (``models.text_bag``: MLP 32x32 head, 16
   numbers per token, vocabulary 2,000; k = 1, second order) at 2,000 and
   10,000 clusters of lognormal sizes (mean about 20 rows, 2 to 120) with
   L = 32 and 128 tokens per text (random lengths, so the mask matters),
   float32, bucketed and max-padded, beside the numeric-only MLP on the same
   rows (ratios text / numeric and max-padded / bucketed).  It has the last
   --text-reserve seconds of --budget to itself (sections 1-2 stop early to
   leave them); ``--text-clusters`` with no number skips it.

Prints one line per measurement and a Markdown table at the end (paste into
bench/RESULTS.md with the machine).  On CPU, pass smaller --clusters.

    .venv/bin/python bench/gpu_suite.py [--clusters 200 2000 10000] [--budget 450]
        [--text-clusters 2000 10000] [--text-tokens 32 128]

On CPU (a smoke test): --clusters 20 --text-clusters 20 --text-tokens 8.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np

import rfp
from rfp.core.models import as_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_text  # noqa: E402  (the text section's design and step time)

START = time.perf_counter()


def design(n_clusters, seed=0):
    rng = np.random.default_rng(seed)
    sizes = np.clip(rng.lognormal(4.0, 1.2, n_clusters).astype(int), 1, 2000)
    cluster = np.repeat(np.arange(n_clusters), sizes)
    x = rng.normal(size=(cluster.size, 3))
    y = (np.sin(x[:, 0]) + x[:, 1] * x[:, 2] + rng.normal(size=n_clusters)[cluster]
         + rng.normal(size=cluster.size))
    return x, y, cluster


def peak_memory():
    stats = getattr(jax.devices()[0], "memory_stats", lambda: None)()
    return (stats or {}).get("peak_bytes_in_use", float("nan")) / 1e9


def step_time(x, y, cluster, layout, dtype, steps=10, repeats=3):
    """(compile + first chunk seconds, seconds per step, padded rows) of the
    MLP 32x32 at k = 3 (``bench_text.time_model`` measures)."""
    model = as_model("mlp", hidden=(32, 32), activation="tanh")
    return bench_text.time_model(model, x, y, cluster, layout, dtype, steps, repeats,
                                 inner_steps=3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clusters", type=int, nargs="+", default=[200, 2000, 10000])
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    ap.add_argument("--layouts", nargs="+", default=["bucketed", "max-padded", "rule"])
    ap.add_argument("--fit-steps", type=int, default=300)
    ap.add_argument("--budget", type=float, default=450.0)
    ap.add_argument("--text-clusters", type=int, nargs="*", default=[2000, 10000])
    ap.add_argument("--text-tokens", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--text-dtypes", nargs="+", default=["float32"])
    ap.add_argument("--text-layouts", nargs="+", default=["bucketed", "max-padded"])
    ap.add_argument("--text-reserve", type=float, default=150.0,
                    help="seconds at the end of --budget kept for the text section")
    a = ap.parse_args()
    numeric_budget = a.budget - (a.text_reserve if a.text_clusters else 0.0)
    print(f"device: {jax.devices()[0].device_kind} ({jax.devices()[0].platform}), "
          f"jax {jax.__version__}")
    rows, step_of, fit_line = [], {}, None
    g_max = max(a.clusters)
    # the end-to-end fit's reference (largest size, float64, bucketed) and the
    # fit first, then the rest of the grid while the budget lasts
    plan = [(g_max, "float64", "bucketed")] + [
        (g, d, l) for g in a.clusters for d in a.dtypes for l in a.layouts
        if (g, d, l) != (g_max, "float64", "bucketed")]
    data = {}
    for i, (g, dtype, layout) in enumerate(plan):
        if time.perf_counter() - START > numeric_budget:
            print(f"skipped {g} {dtype} {layout}: over the time budget")
            continue
        if g not in data:
            data = {g: design(g)}
        x, y, cluster = data[g]
        try:
            first, per_step, padded = step_time(x, y, cluster, layout, dtype)
            peak = peak_memory()
        except Exception as e:   # out of device memory at the largest size
            print(f"{g} clusters {dtype} {layout}: failed ({type(e).__name__}: {str(e)[:120]})")
            continue
        step_of[(g, dtype, layout)] = (first, per_step)
        rows.append((g, len(y), dtype, layout, per_step * 1e3, first, padded, peak))
        print(f"{g} clusters / {len(y)} rows, {dtype}, {layout}: "
              f"{per_step * 1e3:.2f} ms/step, first chunk (compile) {first:.1f} s, "
              f"padded rows {padded}, peak memory {peak:.2f} GB", flush=True)
        if i == 0:
            compile_s = max(first - 10 * per_step, 0.0)
            t = time.perf_counter()
            rfp.fit_arrays(x, y, cluster, hidden=(32, 32), inner_steps=3,
                           max_steps=a.fit_steps, patience=a.fit_steps, eval_every=10,
                           learning_rate=1e-3, progress=False)
            fit_s = time.perf_counter() - t
            bound = a.fit_steps * per_step + compile_s
            fit_line = (g, len(y), fit_s, bound, fit_s / bound)
            print(f"end-to-end fit, {g} clusters / {len(y)} rows, {a.fit_steps} steps: "
                  f"{fit_s:.1f} s; steps x step time + compile = {bound:.1f} s; "
                  f"ratio {fit_s / bound:.2f}", flush=True)
    text_results = {}
    for dtype in a.text_dtypes if a.text_clusters else []:
        print(f"text section, {dtype}:", flush=True)
        text_results[dtype] = bench_text.grid(a.text_clusters, a.text_tokens, steps=3,
                                              repeats=2, deadline=START + a.budget,
                                              layouts=tuple(a.text_layouts), dtype=dtype,
                                              memory=peak_memory)
    print("\n| clusters / rows | dtype | layout | ms/step | first chunk (s) | padded rows | "
          "peak GB |\n|---|---|---|---|---|---|---|")
    for g, n, dtype, layout, ms, first, padded, peak in rows:
        print(f"| {g} / {n} | {dtype} | {layout} | {ms:.2f} | {first:.1f} | {padded} | {peak:.2f} |")
    if fit_line:
        print(f"\nend-to-end fit {fit_line[0]} / {fit_line[1]}: {fit_line[2]:.1f} s vs "
              f"{fit_line[3]:.1f} s (ratio {fit_line[4]:.2f})")
    for dtype, results in text_results.items():
        bench_text.table(results, dtype)
    print(f"total {time.perf_counter() - START:.0f} s")


if __name__ == "__main__":
    main()
