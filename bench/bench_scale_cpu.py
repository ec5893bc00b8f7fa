"""Issue 11's CPU must-show: 1M rows / 10,000 clusters, MLP 32x32, k = 3.

Two parts, each in its own process (so that each has its own peak memory),
each appending one JSON line to --out:

* ``reference``: the full-batch fit of 300 steps (float64 by default; early
  stopping switched off so that all 300 steps run, the best held-out step
  of the 300 kept, as ``rfp.fit`` does).
* ``fast``: the same data and seed (so the same held-out clusters) with
  minibatches of clusters (``batch_clusters``) and float32.

Each line has the wall time of the ``rfp.fit_arrays`` call (preparation,
compilation and steps; the data are simulated before the clock starts), the
process's peak resident memory, the best held-out loss (the pooled loss on
the fit's 20% held-out clusters: the same clusters in both parts) and the
MSE on 1,000 new clusters.  ``--report`` prints the table of every line in
--out, with the fast fits' held-out loss relative to the reference's.

    .venv/bin/python bench/bench_scale_cpu.py --part reference
    .venv/bin/python bench/bench_scale_cpu.py --part fast --batch 1000 --steps 1000
    .venv/bin/python bench/bench_scale_cpu.py --report
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time

import numpy as np

DESIGN = dict(n_clusters=10_000, seed=0)
NEW = dict(n_clusters=1_000, seed=1)


def run(part, batch, steps, dtype, eval_every):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import rfp
    from gpu_suite import design    # lognormal sizes capped at 2,000: ~1M rows at 10,000
    x, y, cluster = design(**DESIGN)
    xn, yn, _ = design(**NEW)
    settings = dict(model="mlp", hidden=(32, 32), inner_steps=3, alpha=0.5, inner_lr=0.1,
                    seed=0, dtype=dtype, max_steps=steps, eval_every=eval_every,
                    min_steps=0)
    if part == "reference":
        settings.update(patience=10 ** 9)       # all steps run; the best held-out one kept
    else:
        settings.update(batch_clusters=batch, patience=10 ** 9)
    start = time.perf_counter()
    fitted = rfp.fit_arrays(x, y, cluster, **settings)
    seconds = time.perf_counter() - start
    hist = fitted.history
    kept = hist.step.index(fitted.best_step) if fitted.best_step in hist.step else -1
    return dict(part=part, batch=batch, steps=steps, dtype=dtype, eval_every=eval_every,
                rows=int(len(y)), clusters=DESIGN["n_clusters"], seconds=round(seconds, 1),
                peak_rss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
                heldout=float(hist.validation[kept]), best_step=int(fitted.best_step),
                curve=[[int(s), round(float(v), 5)] for s, v in zip(hist.step, hist.validation)],
                new_cluster_mse=float(np.mean((fitted.predict_arrays(xn) - yn) ** 2)),
                machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                load=round(os.getloadavg()[0], 1))


def report(path):
    lines = [json.loads(s) for s in open(path) if s.strip()]
    refs = [r for r in lines if r["part"] == "reference"]
    ref = refs[-1]["heldout"] if refs else float("nan")
    print("| fit | dtype | B | steps | best step | wall time | peak memory | held-out loss "
          "| / reference | new-cluster MSE | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in lines:
        print(f"| {r['part']} | {r['dtype']} | {r['batch'] or 'all'} | {r['steps']} | "
              f"{r['best_step']} | {r['seconds'] / 60:.1f} min | {r['peak_rss_gb']:.2f} GB | "
              f"{r['heldout']:.4f} | {r['heldout'] / ref:.4f} | {r['new_cluster_mse']:.4f} | "
              f"{r['load']} |")
    print(f"\n{lines[0]['rows']:,} rows, {lines[0]['clusters']:,} clusters; {lines[0]['machine']}")
    for r in lines:
        if r["part"] == "fast" and "curve" in r:
            within = [s for s, v in r["curve"] if v <= 1.02 * ref]
            print(f"fast fit B = {r['batch']}: held-out loss first within 2% of the reference "
                  f"at step {within[0] if within else 'never'} of {r['steps']}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=("reference", "fast"))
    p.add_argument("--batch", type=int, default=1000, help="clusters per step (fast part)")
    p.add_argument("--steps", type=int, default=None, help="300 (reference), 1000 (fast)")
    p.add_argument("--dtype", default=None, help="float64 (reference), float32 (fast)")
    p.add_argument("--eval-every", type=int, default=None, help="10 (reference), 50 (fast)")
    p.add_argument("--out", default="bench/scale_cpu_raw.jsonl")
    p.add_argument("--report", action="store_true")
    a = p.parse_args()
    if a.report:
        return report(a.out)
    ref = a.part == "reference"
    line = run(a.part, None if ref else a.batch, a.steps or (300 if ref else 1000),
               a.dtype or ("float64" if ref else "float32"), a.eval_every or (10 if ref else 50))
    print(json.dumps(line))
    with open(a.out, "a") as f:
        f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
