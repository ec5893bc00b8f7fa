"""Held-out-cluster error of the kernel smoother beside ERM, MAML and the
method on the tragic-triad design (the comparison in
vignettes/tragic-triad.Rmd, over more samples than the vignette runs).

Same design, seeds and fit settings as validation/tragic_triad.py: sample r
(seed r) with 40 clusters x 30 and tail sd 1, fits with seed r, 50 test
clusters with seed 10_000 + r. The kernel is Nadaraya-Watson
(rfp.baselines.kernel) with the bandwidth chosen by leave-cluster-out CV
("kernel") or leave-one-observation-out CV ("kernel_loo"). Prints one line per
replication, then each method's mean error and the paired differences
method - other with their standard errors.

    .venv/bin/python validation/tragic_triad_kernel.py --seeds 0-19 100-119 --overlap low
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

import rfp
from rfp.baselines import kernel
from rfp.simulate import held_out, tragic_triad

SETTINGS = {"model": "mlp", "hidden": [32, 32], "inner_steps": 1, "inner_lr": 0.1,
            "max_steps": 2000, "patience": 200}
ALPHAS = {"erm": 1.0, "maml": 0.0, "method": 0.5}


def replication(r: int, overlap: str) -> dict:
    sim = tragic_triad(n_clusters=40, n_per_cluster=30, overlap=overlap, sd_tail=1.0, seed=r)
    test = held_out(sim, 50, seed=10_000 + r)
    mu = test.data["mu"].to_numpy()
    x, y, cl = (sim.data[c].to_numpy() for c in ("x", "y", "cluster"))
    errs = {}
    for name, alpha in ALPHAS.items():
        model = rfp.fit(sim.data, y="y", x=["x"], cluster="cluster", alpha=alpha, seed=r,
                        progress=False, **SETTINGS)
        errs[name] = float(np.mean((model.predict(test.data, as_numpy=True) - mu) ** 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a CV minimum at the grid's edge is reported, not fatal
        for name, leave_out in (("kernel", "cluster"), ("kernel_loo", "observation")):
            fit = kernel.fit(x, y, cl, leave_out=leave_out)
            errs[name] = float(np.mean((fit.predict(test.data["x"].to_numpy()) - mu) ** 2))
    return errs


def seeds(specs) -> list:
    out = []
    for spec in specs:
        lo, _, hi = spec.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", nargs="+", default=["0-19"], help="seeds or ranges a-b")
    p.add_argument("--overlap", default="low")
    a = p.parse_args(argv)
    start = time.time()
    rows = []
    for r in seeds(a.seeds):
        rows.append(replication(r, a.overlap))
        print(f"seed {r}: " + "  ".join(f"{k}={v:.4f}" for k, v in rows[-1].items()),
              file=sys.stderr, flush=True)
    e = {k: np.array([row[k] for row in rows]) for k in rows[0]}
    n = len(rows)
    print(f"overlap={a.overlap} seeds={' '.join(a.seeds)} (n={n}) settings={SETTINGS} "
          f"({time.time() - start:.0f}s)")
    for k, v in e.items():
        print(f"  {k:12s} {v.mean():.4f} (se {v.std(ddof=1) / np.sqrt(n):.4f})")
    for other in ("kernel", "kernel_loo", "maml", "erm"):
        d = e["method"] - e[other]
        print(f"  method-{other:10s} {d.mean():+.4f} (se {d.std(ddof=1) / np.sqrt(n):.4f}, "
              f"method lower in {np.mean(d < 0):.0%} of samples)")


if __name__ == "__main__":
    main()
